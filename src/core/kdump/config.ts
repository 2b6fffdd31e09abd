/**
 * /etc/kexec-ts/kdump.conf: one `key = value` per line, `#` starts a comment (at the start of
 * a line, or after whitespace). A value in double quotes is taken whole, `#` and outer spaces
 * included, with \" and \\ inside standing for " and \. One table (CONFIG_KEYS) drives parsing, the defaults, the
 * documented default file and `kdump import`'s output. An unknown key, a key given twice or
 * a value out of range is refused with the line number, so a typo never silently becomes a
 * default at the worst moment. Pure: text in, a config object out.
 */
import { KexecError } from "../errors.js";
import { formatMemory } from "../machine/crashkernel.js";
import type { DumpCodec } from "../vmcore/dump-writer.js";

export type { DumpCodec };

export type FailureAction = "reboot" | "halt" | "poweroff" | "shell" | "dmesg-only";
export type FinalAction = "reboot" | "halt" | "poweroff" | "shell";
export type CaptureMode = "default" | "self-contained";
export type SyscallChoice = "auto" | "file" | "load";

export interface KdumpConfig {
  /** Directory on a local file system where each dump gets <host>-<UTC time>/. */
  target: string;
  /** A block device that takes a raw copy of /proc/vmcore when Node cannot start; null: none. */
  rawTarget: string | null;
  dumpLevel: number;
  codec: DumpCodec;
  /** Dumps kept, the new one included; 0: no limit. */
  keep: number;
  /** Old dumps are removed while the target has less free space than this. */
  minFree: bigint;
  /** The capture kernel; null: /boot/vmlinuz-<running release>. */
  kernel: string | null;
  /** Words added to the capture kernel's command line. */
  append: string;
  mode: CaptureMode;
  failureAction: FailureAction;
  finalAction: FinalAction;
  syscall: SyscallChoice;
  /** Node's --max-old-space-size in the capture kernel, MiB. */
  heapMiB: number;
  /** Compression threads in the capture kernel (0: the main thread only). */
  threads: number;
}

export interface ConfigKey<K extends keyof KdumpConfig = keyof KdumpConfig> {
  /** The spelling in the file. */
  name: string;
  field: K;
  /** The default, as it is written in the file. */
  defaultText: string;
  /** What the value may be, for error messages. */
  expected: string;
  /** Comment lines above the key in the documented default file. */
  doc: string[];
  parse(text: string): KdumpConfig[K] | undefined;
}

const oneOf = <T extends string>(values: readonly T[]) => (text: string): T | undefined => (values as readonly string[]).includes(text) ? (text as T) : undefined;

const integer = (min: number, max: number) => (text: string): number | undefined => {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
};

/** "256M", "1G", "512K", "0", "1048576": binary units, as crashkernel= writes them. */
export function parseConfigSize(text: string): bigint | undefined {
  const m = /^([0-9]+)\s*([KMGT]?)(i?B)?$/i.exec(text);
  if (m === null) return undefined;
  const shift = { "": 0n, K: 10n, M: 20n, G: 30n, T: 40n }[m[2]!.toUpperCase() as "" | "K" | "M" | "G" | "T"];
  return BigInt(m[1]!) << shift;
}

const absolutePath = (text: string): string | undefined => (text.startsWith("/") && !text.includes("\0") ? text.replace(/\/+$/, "") || "/" : undefined);
const optionalPath = (text: string): string | null | undefined => (text === "" ? null : absolutePath(text));

function key<K extends keyof KdumpConfig>(k: ConfigKey<K>): ConfigKey<K> {
  return k;
}

export const CONFIG_KEYS: readonly ConfigKey[] = [
  key({ name: "target", field: "target", defaultText: "/var/crash", expected: "an absolute directory path",
    doc: ["Directory for the dumps, on a local file system the capture kernel can mount.", "Each crash gets <target>/<host>-<UTC time>/ with vmcore, dmesg.txt, report.json, capture.log."],
    parse: absolutePath }),
  key({ name: "raw_target", field: "rawTarget", defaultText: "", expected: "a block device path such as /dev/vdb, or nothing",
    doc: ["Last resort: a block device that gets a raw copy of /proc/vmcore when Node cannot start in", "the capture kernel (everything on it is overwritten). `kexec-ts kdump report` converts it after the reboot. Empty: none."],
    parse: optionalPath }),
  key({ name: "dump_level", field: "dumpLevel", defaultText: "31", expected: "0..31 (makedumpfile's -d bitmask)",
    doc: ["Pages left out: 1 zero, 2 cache, 4 private cache, 8 user data, 16 free (makedumpfile's -d)."],
    parse: integer(0, 31) }),
  key({ name: "codec", field: "codec", defaultText: "lzo", expected: "zlib, lzo, zstd, snappy or none",
    doc: ["Page compression: lzo is the fastest with the system's liblzo2 (makedumpfile -l)."],
    parse: oneOf(["zlib", "lzo", "zstd", "snappy", "none"] as const) }),
  key({ name: "keep", field: "keep", defaultText: "3", expected: "a count up to 100000, 0 for no limit",
    doc: ["How many dumps to keep, the new one included; older ones are removed before a save."],
    parse: integer(0, 100000) }),
  key({ name: "min_free", field: "minFree", defaultText: "64M", expected: "a size such as 64M or 1G",
    doc: ["Before a save, old dumps are removed (oldest first) while the target has less free space than this."],
    parse: parseConfigSize }),
  key({ name: "kernel", field: "kernel", defaultText: "", expected: "an absolute path to a bzImage, or nothing",
    doc: ["The capture kernel. Empty: /boot/vmlinuz-<release of the running kernel>."],
    parse: optionalPath }),
  key({ name: "append", field: "append", defaultText: "", expected: "kernel command-line words",
    doc: ["Added to the capture kernel's command line, which starts from /proc/cmdline without", "crashkernel=, hugepages and panic_on_warn, plus nr_cpus=1 irqpoll reset_devices."],
    parse: (t) => t }),
  key({ name: "mode", field: "mode", defaultText: "default", expected: "default or self-contained",
    doc: ["default: the capture initramfs mounts the real root read-only and runs its Node and kexec-ts.", "self-contained: Node and kexec-ts are inside the capture initramfs (for roots it cannot mount); needs a bigger reservation."],
    parse: oneOf(["default", "self-contained"] as const) }),
  key({ name: "failure_action", field: "failureAction", defaultText: "reboot", expected: "reboot, halt, poweroff, shell or dmesg-only",
    doc: ["When the dump cannot be saved: reboot, halt, poweroff, shell (a console shell),", "or dmesg-only (save at least the crashed kernel's log, then reboot)."],
    parse: oneOf(["reboot", "halt", "poweroff", "shell", "dmesg-only"] as const) }),
  key({ name: "final_action", field: "finalAction", defaultText: "reboot", expected: "reboot, halt, poweroff or shell",
    doc: ["After a successful save."],
    parse: oneOf(["reboot", "halt", "poweroff", "shell"] as const) }),
  key({ name: "syscall", field: "syscall", defaultText: "auto", expected: "auto, file or load",
    doc: ["auto: kexec_file_load, and kexec_load only where the kernel refuses the file loader in a way", "kexec_load may not (never under lockdown or after a signature refusal). file / load: only that one."],
    parse: oneOf(["auto", "file", "load"] as const) }),
  key({ name: "heap", field: "heapMiB", defaultText: "48", expected: "MiB for Node's heap in the capture kernel, 16..4096",
    doc: ["Node's heap cap in the capture kernel (--max-old-space-size, MiB)."],
    parse: integer(16, 4096) }),
  key({ name: "threads", field: "threads", defaultText: "0", expected: "0..64",
    doc: ["Compression threads in the capture kernel, which runs on one CPU (nr_cpus=1): 0 compresses", "in the main thread; each thread costs about 8 MiB more of the reservation."],
    parse: integer(0, 64) }),
];

export const DEFAULT_CONFIG_PATH = "/etc/kexec-ts/kdump.conf";

function findKey(name: string): ConfigKey | undefined {
  return CONFIG_KEYS.find((k) => k.name === name);
}

/** The key a typo most likely meant: the closest name by edit distance, if close enough. */
export function closestKey(name: string): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const k of CONFIG_KEYS) {
    const d = editDistance(name.toLowerCase().replace(/-/g, "_"), k.name);
    if (best === undefined || d < best.d) best = { name: k.name, d };
  }
  return best !== undefined && best.d <= Math.max(2, Math.floor(name.length / 3)) ? best.name : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length]!;
}

export function defaultConfig(): KdumpConfig {
  const out: Partial<Record<keyof KdumpConfig, unknown>> = {};
  for (const k of CONFIG_KEYS) out[k.field] = k.parse(k.defaultText);
  return out as KdumpConfig;
}

/** Strips a comment: `#` at the start or after whitespace (a path or a value may contain `#` otherwise). */
function stripComment(line: string): string {
  const m = /(^|\s)#/.exec(line);
  return (m === null ? line : line.slice(0, m.index)).trim();
}

/** Parses the file's text; `file` names it in errors. Keys not given keep their defaults. */
export function parseConfig(text: string, file = DEFAULT_CONFIG_PATH): KdumpConfig {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const seen = new Map<string, number>();
  const lines = text.split("\n");
  for (const [i, raw] of lines.entries()) {
    const lineNo = i + 1;
    const uncommented = stripComment(raw.replace(/\r$/, ""));
    if (uncommented === "") continue;
    const eq = uncommented.indexOf("=");
    // A quoted value may hold what stripComment took for a comment: the value is read from the whole line.
    const line = eq < 0 ? uncommented : raw.replace(/\r$/, "").trim();
    const where = `${file}:${lineNo}`;
    if (eq < 0) {
      throw new KexecError("parse", `${where}: expected "key = value", found ${JSON.stringify(line)}`, { file, line: lineNo, actual: line }, `see the comments in a default file: kexec-ts kdump install writes one; keys: ${CONFIG_KEYS.map((k) => k.name).join(", ")}`);
    }
    const name = line.slice(0, eq).trim();
    const valueText = readValue(line.slice(eq + 1).trim());
    const k = findKey(name);
    if (k === undefined) {
      const guess = closestKey(name);
      throw new KexecError("parse", `${where}: unknown key ${JSON.stringify(name)}${guess ? ` (did you mean ${guess}?)` : ""}`, { file, line: lineNo, field: name },
        `the keys are: ${CONFIG_KEYS.map((x) => x.name).join(", ")}`);
    }
    const earlier = seen.get(k.name);
    if (earlier !== undefined) {
      throw new KexecError("parse", `${where}: ${k.name} is set twice (first on line ${earlier})`, { file, line: lineNo, field: k.name }, "keep one of the two lines");
    }
    seen.set(k.name, lineNo);
    const parsed = k.parse(valueText);
    if (parsed === undefined) {
      throw new KexecError("parse", `${where}: ${k.name} = ${JSON.stringify(valueText)}: expected ${k.expected}`, { file, line: lineNo, field: k.name, expected: k.expected, actual: valueText },
        `the default is ${k.name} = ${k.defaultText || "(empty)"}`);
    }
    config[k.field] = parsed;
  }
  return config as unknown as KdumpConfig;
}

/**
 * A value's text after `=`. `"..."` followed by nothing or a comment is a quoted value (\" and
 * \\ are the only escapes, as formatValue writes them). Anything else keeps the rule of files
 * written before quoting: the comment goes, then one pair of outer double quotes, if any.
 */
function readValue(text: string): string {
  if (text.startsWith('"')) {
    let value = "";
    for (let i = 1; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) value += text[++i];
      else if (ch !== '"') value += ch;
      else if (/^(\s+#.*|\s*)$/.test(text.slice(i + 1))) return value;
      else break;
    }
  }
  const uncommented = stripComment(text);
  return uncommented.length >= 2 && uncommented.startsWith('"') && uncommented.endsWith('"') ? uncommented.slice(1, -1) : uncommented;
}

/** Whether a value must be quoted to read back the same: outer spaces, a `#` that would start a comment, or a leading quote. */
function needsQuotes(text: string): boolean {
  return text !== text.trim() || /(^|\s)#/.test(text) || text.startsWith('"');
}

/** The value of one field as the file spells it. */
export function formatValue(field: keyof KdumpConfig, config: KdumpConfig): string {
  const v = config[field];
  if (v === null) return "";
  if (typeof v === "bigint") return formatMemory(v);
  const text = String(v);
  return needsQuotes(text) ? `"${text.replace(/["\\]/g, "\\$&")}"` : text;
}

/**
 * The file: every key with its comment, set to `config`'s value. `notes` are extra comment
 * lines per key (import says where a value came from), and `header` goes on top.
 */
export function formatConfig(config: KdumpConfig, header: string[] = [], notes: Partial<Record<string, string[]>> = {}): string {
  const out = [
    ...header.map((l) => `# ${l}`.trimEnd()),
    ...(header.length ? [""] : []),
    "# kexec-ts kdump configuration. `kexec-ts kdump status` checks it; see README \"The kdump service\".",
    "# One `key = value` per line; an unknown key or a bad value is refused with its line number.",
    "# A value in double quotes keeps `#` and outer spaces; inside, \\\" is \" and \\\\ is \\.",
    "",
  ];
  for (const k of CONFIG_KEYS) {
    for (const d of k.doc) out.push(`# ${d}`);
    out.push(`#   default: ${k.name} = ${k.defaultText}`.trimEnd());
    for (const n of notes[k.name] ?? []) out.push(`# ${n}`);
    out.push(`${k.name} = ${formatValue(k.field, config)}`.trimEnd(), "");
  }
  return out.join("\n");
}
