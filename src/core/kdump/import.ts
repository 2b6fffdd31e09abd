/**
 * `kexec-ts kdump import`: the common settings of Debian's /etc/default/kdump-tools (shell
 * variables, kdump-tools.conf) and of kdump-utils' /etc/kdump.conf (one directive per line,
 * kdump.conf(5)) turned into a kexec-ts kdump.conf, so a user can switch. What has no
 * counterpart (network targets, hooks, an external compressor) is listed, never dropped
 * silently. Pure: texts in, a config and notes out.
 */
import { KexecError } from "../errors.js";
import { CONFIG_KEYS, defaultConfig, formatConfig, formatValue, parseConfig, type DumpCodec, type FailureAction, type FinalAction, type KdumpConfig } from "./config.js";

export interface ImportSource {
  /** "/etc/default/kdump-tools" or "/etc/kdump.conf"; the kind is told by the name. */
  path: string;
  text: string;
}

export interface ImportResult {
  config: KdumpConfig;
  /** Per kexec-ts key: where its value came from. */
  notes: Record<string, string[]>;
  /** Settings that were read but have no counterpart, each with the reason. */
  skipped: string[];
  /** The source files read, by kind. */
  sources: { path: string; kind: "kdump-tools" | "kdump-utils" }[];
}

/** The words kexec-ts puts on every capture command line itself, or that mean nothing to it. */
const OWN_CAPTURE_WORDS = /^(reset_devices|irqpoll|nr_cpus=\d+|maxcpus=\d+|systemd\.unit=kdump-tools-dump\.service|kdump_needed)$/;

export interface MakedumpfileArgs {
  codec?: DumpCodec;
  dumpLevel?: number;
  /** Options kexec-ts does not take from the config, as given. */
  rest: string[];
  /** `-d` values kexec-ts cannot take, each with the reason. */
  invalid: string[];
}

/** makedumpfile options as the distro scripts pass them: the codec and -d level (getopt: -cd31 is -c -d 31). */
export function readMakedumpfileArgs(words: readonly string[]): MakedumpfileArgs {
  const out: MakedumpfileArgs = { rest: [], invalid: [] };
  const codecs: Record<string, DumpCodec> = { c: "zlib", l: "lzo", p: "snappy", z: "zstd" };
  const level = (text: string | undefined) => {
    const why = dumpLevelProblem(text);
    if (why === undefined) out.dumpLevel = Number(text);
    else out.invalid.push(`-d ${text ?? ""}`.trimEnd() + `: ${why}`);
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const long = /^--dump-level=(.*)$/.exec(w);
    if (long !== null) {
      level(long[1]);
      continue;
    }
    // Short flags, bundled or not: -d31, -d 31, -cd31, -lF, -cd 31 (the level is the rest of the word, else the next word).
    const short = /^-([clpzF]*)(d(.*))?$/.exec(w);
    if (short !== null && (short[1] !== "" || short[2] !== undefined)) {
      for (const ch of short[1]!) {
        const codec = codecs[ch];
        if (codec !== undefined) out.codec = codec;
        else out.rest.push(`-${ch}`);
      }
      if (short[2] !== undefined) level(short[3] !== "" ? short[3] : words[++i]);
      continue;
    }
    out.rest.push(w);
  }
  return out;
}

/**
 * Why a -d value is not one kexec-ts takes, or undefined. makedumpfile reads each level with
 * atoi, so 0x1f is 0 and 1e1 is 1 to it: only decimal digits mean the same to both.
 */
function dumpLevelProblem(text: string | undefined): string | undefined {
  if (text === undefined || text === "") return "no level given";
  if (/^[0-9]+(,[0-9]+)+$/.test(text)) return "a list of levels (makedumpfile retries with the next when the disk fills up); kexec-ts takes one: set dump_level by hand";
  if (!/^[0-9]+$/.test(text)) return "expected a level in decimal digits, 0..31";
  if (Number(text) > 31) return "expected 0..31 (makedumpfile's -d bitmask)";
  return undefined;
}

/** A value checked by the kexec-ts key's own parser, so that import never writes what parseConfig refuses. */
function parseAs<K extends keyof KdumpConfig>(field: K, text: string): { value: KdumpConfig[K] } | { why: string } {
  const k = CONFIG_KEYS.find((x) => x.field === field)!;
  const value = k.parse(text) as KdumpConfig[K] | undefined;
  return value === undefined ? { why: `${JSON.stringify(text)}: expected ${k.expected} (kexec-ts' ${k.name})` } : { value };
}

export interface ShellAssignment {
  name: string;
  /** The value with quotes removed and nothing expanded. */
  value: string;
  line: number;
  /** A `$` or backquote outside single quotes: only a shell knows the value. */
  dynamic: boolean;
  /** Why the line is not one plain assignment that can be read without a shell (an unclosed quote, a second word). */
  problem?: string;
}

/**
 * `VAR=value` lines of a sourced shell file. The value is one shell word whose quoted and
 * unquoted parts join as sh joins them ("/srv/"crash is /srv/crash); nothing is expanded.
 */
export function readShellAssignments(text: string): ShellAssignment[] {
  const out: ShellAssignment[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    // A file saved with CRLF line ends: sh would keep the \r in the value, kdump-tools' users mean none.
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(raw.replace(/\r$/, ""));
    if (m === null) continue;
    out.push({ name: m[1]!, line: i + 1, ...readShellWord(m[2]!) });
  }
  return out;
}

/** One word as sh reads it after `=`: '...' literal, "..." with \ before $ ` " \ only, \x outside quotes. */
function readShellWord(text: string): { value: string; dynamic: boolean; problem?: string } {
  let value = "";
  let dynamic = false;
  let i = 0;
  const unclosed = (quote: string) => ({ value, dynamic, problem: `the ${quote} is not closed on this line (a value over several lines is not read)` });
  // Blanks and sh's operators end the word.
  while (i < text.length && !/[ \t;&|<>()]/.test(text[i]!)) {
    const ch = text[i]!;
    if (ch === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) return unclosed("'");
      value += text.slice(i + 1, close);
      i = close + 1;
    } else if (ch === '"') {
      for (i++; ; i++) {
        if (i >= text.length) return unclosed('"');
        const c = text[i]!;
        if (c === '"') break;
        if (c === "\\" && i + 1 < text.length && '$`"\\'.includes(text[i + 1]!)) value += text[++i];
        else {
          if (c === "$" || c === "`") dynamic = true;
          value += c;
        }
      }
      i++;
    } else if (ch === "\\") {
      if (i + 1 >= text.length) return { value, dynamic, problem: "the line ends in \\ (a value over several lines is not read)" };
      value += text[i + 1];
      i += 2;
    } else {
      if (ch === "$" || ch === "`") dynamic = true;
      value += ch;
      i++;
    }
  }
  const rest = text.slice(i);
  if (/^([ \t]*|[ \t]+#.*)$/.test(rest)) return { value, dynamic };
  // A substitution may hold blanks ($(uname -r)): it is skipped as dynamic whatever follows.
  if (dynamic) return { value: text.trim(), dynamic };
  return { value, dynamic, problem: `${JSON.stringify(rest.trim())} follows the value: sh would not read this line as one plain assignment` };
}

function failureFromCommand(cmd: string): FailureAction | undefined {
  if (/\b(bash|sh)\b/.test(cmd)) return "shell";
  if (/\bpoweroff\b/.test(cmd)) return "poweroff";
  if (/\bhalt\b/.test(cmd)) return "halt";
  if (/\breboot\b/.test(cmd)) return "reboot";
  return undefined;
}

/** The variables kdump-tools reads, by name or prefix. */
function isKdumpToolsSetting(name: string): boolean {
  return /^(USE_KDUMP|KDUMP_\w+|MAKEDUMP_\w+|(NFS|SSH|FTP)(_\w+)?|HOSTTAG)$/.test(name);
}

/** Imports one kdump-tools file; returns how many of kdump-tools' own settings it has. */
function importKdumpTools(src: ImportSource, r: ImportResult): number {
  let recognised = 0;
  const c = r.config;
  const note = (key: string, text: string) => (r.notes[key] ??= []).push(`${text} (${src.path})`);
  const skip = (what: string, why: string) => r.skipped.push(`${src.path}: ${what}: ${why}`);
  for (const a of readShellAssignments(src.text)) {
    if (isKdumpToolsSetting(a.name)) recognised++;
    const at = `${a.name} (line ${a.line})`;
    if (a.problem !== undefined && isKdumpToolsSetting(a.name)) {
      skip(at, `${a.problem}; set the kexec-ts key by hand`);
      continue;
    }
    if (a.dynamic && a.name !== "KDUMP_CMDLINE") {
      skip(at, `"${a.value}" needs a shell to evaluate; set the kexec-ts key by hand`);
      continue;
    }
    switch (a.name) {
      case "USE_KDUMP":
        if (a.value === "0") skip(at, "kdump was disabled there; kexec-ts arms only once its unit is enabled (kexec-ts kdump install)");
        break;
      case "KDUMP_COREDIR": {
        const target = parseAs("target", a.value);
        if ("why" in target) skip(at, target.why);
        else {
          c.target = target.value;
          note("target", `from KDUMP_COREDIR`);
        }
        break;
      }
      case "KDUMP_KERNEL":
        // kdump-tools keeps a link to the running kernel there; kexec-ts uses the running kernel by default.
        if (a.value === "/var/lib/kdump/vmlinuz" || a.value === "") note("kernel", `KDUMP_KERNEL=${a.value || "(empty)"} is kdump-tools' link to the running kernel: the default`);
        else {
          const kernel = parseAs("kernel", a.value);
          if ("why" in kernel) skip(at, kernel.why);
          else {
            c.kernel = kernel.value;
            note("kernel", "from KDUMP_KERNEL");
          }
        }
        break;
      case "KDUMP_INITRD":
        skip(at, "kexec-ts builds its own capture initramfs (kexec-ts kdump rebuild)");
        break;
      case "KDUMP_NUM_DUMPS": {
        if (a.value === "") break;
        const keep = parseAs("keep", a.value);
        if ("why" in keep) skip(at, keep.why);
        else {
          c.keep = keep.value;
          note("keep", "from KDUMP_NUM_DUMPS");
        }
        break;
      }
      case "KDUMP_FAIL_CMD": {
        const action = failureFromCommand(a.value);
        if (action !== undefined) {
          c.failureAction = action;
          note("failure_action", `from KDUMP_FAIL_CMD="${a.value}"`);
        } else skip(at, `"${a.value}" is a command; kexec-ts offers reboot, halt, poweroff, shell or dmesg-only`);
        break;
      }
      case "KDUMP_DUMP_DMESG":
        if (a.value === "0") skip(at, "kexec-ts always writes dmesg.txt next to the dump");
        break;
      case "KDUMP_COMPRESSION":
        if (a.value !== "") skip(at, `an external ${a.value} over the whole file; kexec-ts compresses each page (codec)`);
        break;
      case "MAKEDUMP_ARGS": {
        const m = readMakedumpfileArgs(a.value.split(/\s+/).filter(Boolean));
        if (m.codec !== undefined) {
          c.codec = m.codec;
          note("codec", `from MAKEDUMP_ARGS="${a.value}"`);
        }
        if (m.dumpLevel !== undefined) {
          c.dumpLevel = m.dumpLevel;
          note("dump_level", `from MAKEDUMP_ARGS="${a.value}"`);
        }
        for (const why of m.invalid) skip(at, why);
        if (m.rest.length) skip(`${at}: ${m.rest.join(" ")}`, "makedumpfile options kexec-ts does not take from the config");
        break;
      }
      case "KDUMP_CMDLINE_APPEND": {
        const words = a.value.split(/\s+/).filter((w) => w !== "" && !OWN_CAPTURE_WORDS.test(w));
        c.append = words.join(" ");
        note("append", `from KDUMP_CMDLINE_APPEND, without the words kexec-ts adds itself (reset_devices, irqpoll, nr_cpus=1) and kdump-tools' systemd unit`);
        break;
      }
      case "KDUMP_CMDLINE":
        if (a.value !== "") skip(at, "kexec-ts always starts from /proc/cmdline; put additions in append");
        break;
      case "KDUMP_KEXEC_ARGS":
        if (a.value !== "") skip(at, "kexec-ts chooses the syscall and placement itself (see the syscall key)");
        break;
      case "NFS": case "SSH": case "FTP":
        if (a.value !== "") skip(at, "network targets are not supported; the target is a local directory (or raw_target)");
        break;
      default:
        if (isKdumpToolsSetting(a.name) && a.value !== "") skip(at, "no kexec-ts counterpart");
    }
  }
  return recognised;
}

/** kdump.conf(5)'s directives, and older kexec-tools' ones a file may still carry. */
const KDUMP_UTILS_DIRECTIVES = new Set([
  "raw", "nfs", "ssh", "sshkey", "path", "core_collector", "kdump_post", "kdump_pre", "extra_bins", "extra_modules",
  "failure_action", "default", "final_action", "force_rebuild", "force_no_rebuild", "dracut_args", "fence_kdump_args",
  "fence_kdump_nodes", "auto_reset_crashkernel", "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat",
  "blacklist", "options", "link_delay", "disk_timeout", "debug_mem_level", "net",
]);

/** Imports one kdump-utils file; returns how many kdump.conf directives it has. */
function importKdumpUtils(src: ImportSource, r: ImportResult): number {
  let recognised = 0;
  const c = r.config;
  const note = (key: string, text: string) => (r.notes[key] ??= []).push(`${text} (${src.path})`);
  const skip = (what: string, why: string) => r.skipped.push(`${src.path}: ${what}: ${why}`);
  let fsTarget: string | undefined;
  for (const [i, raw] of src.text.split("\n").entries()) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const [directive, ...words] = line.split(/\s+/);
    if (KDUMP_UTILS_DIRECTIVES.has(directive!)) recognised++;
    const value = words.join(" ");
    const at = `${directive} (line ${i + 1})`;
    switch (directive) {
      case "path": {
        const target = parseAs("target", value);
        if ("why" in target) {
          skip(at, target.why);
          break;
        }
        c.target = target.value;
        note("target", `from path${fsTarget ? `; kdump-utils writes it on ${fsTarget}, so make sure that file system is mounted so that ${c.target} is on it` : ""}`);
        break;
      }
      case "raw": {
        const raw = value === "" ? { why: "no device given" } : parseAs("rawTarget", value);
        if ("why" in raw) skip(at, raw.why);
        else {
          c.rawTarget = raw.value;
          note("raw_target", "from raw");
        }
        break;
      }
      case "ext2": case "ext3": case "ext4": case "xfs": case "btrfs": case "vfat":
        fsTarget = `${directive} ${value}`;
        skip(at, "kexec-ts finds the target's file system from where the target directory is mounted; mount it (fstab) under the target path");
        break;
      case "core_collector": {
        if (words[0] !== "makedumpfile") {
          skip(at, `"${value}": kexec-ts saves with its own vmcore save`);
          break;
        }
        const m = readMakedumpfileArgs(words.slice(1));
        if (m.codec !== undefined) {
          c.codec = m.codec;
          note("codec", `from core_collector ${value}`);
        }
        if (m.dumpLevel !== undefined) {
          c.dumpLevel = m.dumpLevel;
          note("dump_level", `from core_collector ${value}`);
        }
        for (const why of m.invalid) skip(at, why);
        const rest = m.rest.filter((w, k, all) => w !== "--message-level" && all[k - 1] !== "--message-level" && !/^--message-level=/.test(w));
        if (rest.length) skip(`${at}: ${rest.join(" ")}`, "makedumpfile options kexec-ts does not take from the config");
        break;
      }
      case "failure_action": case "default": {
        const known: Record<string, FailureAction> = { reboot: "reboot", halt: "halt", poweroff: "poweroff", shell: "shell" };
        if (known[value] !== undefined) {
          c.failureAction = known[value];
          note("failure_action", `from ${directive} ${value}`);
        } else skip(at, `"${value}" has no counterpart; kexec-ts offers reboot, halt, poweroff, shell or dmesg-only`);
        break;
      }
      case "final_action": {
        const known: Record<string, FinalAction> = { reboot: "reboot", halt: "halt", poweroff: "poweroff" };
        if (known[value] !== undefined) {
          c.finalAction = known[value];
          note("final_action", `from final_action ${value}`);
        } else skip(at, `"${value}" has no counterpart`);
        break;
      }
      case "ssh": case "nfs": case "sshkey":
        skip(at, "network targets are not supported; the target is a local directory (or raw_target)");
        break;
      default:
        skip(at, "no kexec-ts counterpart");
    }
  }
  return recognised;
}

/** The first line that is neither blank nor a comment, with its number. */
function firstContentLine(text: string): { line: number; text: string } | undefined {
  const lines = text.split("\n");
  const i = lines.findIndex((l) => !/^\s*(#.*)?$/.test(l));
  return i < 0 ? undefined : { line: i + 1, text: lines[i]! };
}

export function importConfig(sources: readonly ImportSource[]): ImportResult {
  const r: ImportResult = { config: defaultConfig(), notes: {}, skipped: [], sources: [] };
  for (const s of sources) {
    // kdump-tools' file is shell (VAR=...); kdump-utils' is directives. The name decides, the text confirms.
    const kind = /kdump-tools/.test(s.path) || /^\s*(USE_KDUMP|KDUMP_[A-Z_]+)=/m.test(s.text) ? "kdump-tools" : "kdump-utils";
    r.sources.push({ path: s.path, kind });
    const recognised = kind === "kdump-tools" ? importKdumpTools(s, r) : importKdumpUtils(s, r);
    // Lines, and none of them a setting: the wrong file, or one in another encoding. Writing the defaults would hide that.
    const first = firstContentLine(s.text);
    if (recognised === 0 && first !== undefined) {
      const nul = s.text.includes("\0");
      throw new KexecError("parse", `${s.path}: no ${kind} setting in it${nul ? " (it holds NUL bytes: UTF-16 or binary?)" : ""}`, {
        file: s.path, line: first.line, expected: kind === "kdump-tools" ? "shell assignments such as KDUMP_COREDIR=/var/crash" : "kdump.conf directives such as path /var/crash",
        actual: JSON.stringify(first.text.slice(0, 80)),
      }, nul ? `convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8 ${s.path} > FILE), then import FILE` : "give /etc/default/kdump-tools (Debian) or /etc/kdump.conf (kdump-utils), or a copy of one");
    }
  }
  return r;
}

/** The header of the written file: what was read and what was left out. */
export function importHeader(r: ImportResult): string[] {
  return [
    `Imported by kexec-ts kdump import from ${r.sources.map((s) => `${s.path} (${s.kind})`).join(", ") || "nothing"}.`,
    ...(r.skipped.length ? ["Not imported:", ...r.skipped.map((s) => `  ${s}`)] : ["Every setting read has a counterpart below."]),
  ];
}

/**
 * The file import writes, read back before it is written: each value was checked on the way in,
 * so a file that does not parse to the same config is kexec-ts' own bug, never the user's.
 */
export function formatImport(r: ImportResult, file: string): string {
  const text = formatConfig(r.config, importHeader(r), r.notes);
  let back: KdumpConfig;
  try {
    back = parseConfig(text, file);
  } catch (e) {
    throw new KexecError("internal", `kdump import made a file it cannot read back: ${(e as Error).message}`, { file }, "please report it with the imported files", { cause: e });
  }
  for (const k of CONFIG_KEYS) {
    if (back[k.field] !== r.config[k.field]) {
      throw new KexecError("internal", `kdump import wrote ${k.name} = ${formatValue(k.field, r.config)}, which reads back as ${JSON.stringify(formatValue(k.field, back))}`, { file, field: k.name }, "please report it with the imported files");
    }
  }
  return text;
}
