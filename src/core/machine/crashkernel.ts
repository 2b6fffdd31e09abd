/**
 * The crashkernel= grammar of kernel/crash_reserve.c and
 * Documentation/admin-guide/kdump/kdump.rst:
 *
 *   crashkernel=size[KMG][@offset[KMG]]
 *   crashkernel=range1:size1[,range2:size2,...][@offset]     range = start-[end]
 *   crashkernel=size,high   crashkernel=size,low   crashkernel=size,cma
 *
 * Numbers are memparse() numbers: decimal, 0x hex or 0-prefixed octal, then an
 * optional K/M/G/T/P/E (either case). The last occurrence of each form wins,
 * and the plain forms skip any occurrence that ends in ,high/,low/,cma.
 *
 * One deliberate difference: in the range form the kernel stops checking the
 * syntax after the range that matches this machine's RAM, so garbage in later
 * ranges only fails on machines with more memory. Here the whole value must
 * parse, so the mistake shows up before it bites.
 */
import { KexecError } from "../errors.js";
import { MAX_U64 } from "./text.js";

export interface CrashkernelRange {
  /** RAM sizes, half-open: the range matches when start <= RAM < end (end null: no upper bound). */
  start: bigint;
  end: bigint | null;
  size: bigint;
}

export type CrashkernelArg =
  | { form: "fixed"; size: bigint; offset: bigint | null }
  | { form: "ranges"; ranges: CrashkernelRange[]; offset: bigint | null }
  | { form: "high"; size: bigint }
  | { form: "low"; size: bigint }
  | { form: "cma"; size: bigint };

export type CrashkernelPlain = Extract<CrashkernelArg, { form: "fixed" | "ranges" }>;

/** What a whole command line asks for: the winning occurrence of each form. */
export interface CrashkernelSpec {
  plain: CrashkernelPlain | null;
  high: bigint | null;
  low: bigint | null;
  cma: bigint | null;
  /** Every crashkernel= value on the line, in order, and whether it is the one that counts. */
  occurrences: { value: string; form: "plain" | "high" | "low" | "cma"; used: boolean }[];
}

const SUFFIXES = [",high", ",low", ",cma"] as const;
const UNIT_SHIFT: Record<string, bigint> = { k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n };
const SZ_128M = 128n << 20n;

const HINT =
  "see Documentation/admin-guide/kdump/kdump.rst: crashkernel=256M, crashkernel=256M@16M, crashkernel=1G-4G:192M,4G-:512M, crashkernel=512M,high";

/** Parses one value (the text after "crashkernel="; a leading "crashkernel=" is accepted too). */
export function parseCrashkernel(text: string): CrashkernelArg {
  const value = text.startsWith("crashkernel=") ? text.slice("crashkernel=".length) : text;
  const p = new Cursor(value);
  for (const suffix of SUFFIXES) {
    if (!value.endsWith(suffix)) continue;
    const size = p.memory("a size like 256M");
    p.literal(suffix);
    p.end();
    return { form: suffix.slice(1) as "high" | "low" | "cma", size };
  }
  if (value.includes(":")) {
    const ranges: CrashkernelRange[] = [];
    do {
      const start = p.memory("the start of a RAM range, like 1G");
      p.literal("-");
      let end: bigint | null = null;
      if (p.peek() !== ":") {
        const at = p.pos;
        end = p.memory("the end of the RAM range or ':'");
        if (end <= start) p.fail(at, `a range end above the start ${formatMemory(start)}`, `${formatMemory(end)}`);
      }
      p.literal(":");
      const size = p.memory("the reservation size for this range, like 256M");
      ranges.push({ start, end, size });
    } while (p.accept(","));
    const offset = p.accept("@") ? p.memory("an offset after '@', like 16M") : null;
    p.end();
    return { form: "ranges", ranges, offset };
  }
  const size = p.memory("a size like 256M");
  if (p.peek() === "-") p.fail(p.pos, "'@' or the end of the value (a RAM range like 1G-4G needs ':size' after it)");
  const offset = p.accept("@") ? p.memory("an offset after '@', like 16M") : null;
  p.end();
  return { form: "fixed", size, offset };
}

/** Prints a value that parseCrashkernel reads back to the same thing. */
export function formatCrashkernel(arg: CrashkernelArg): string {
  const at = (o: bigint | null): string => (o === null ? "" : `@${formatMemory(o)}`);
  switch (arg.form) {
    case "fixed":
      return `${formatMemory(arg.size)}${at(arg.offset)}`;
    case "ranges":
      return (
        arg.ranges.map((r) => `${formatMemory(r.start)}-${r.end === null ? "" : formatMemory(r.end)}:${formatMemory(r.size)}`).join(",") +
        at(arg.offset)
      );
    default:
      return `${formatMemory(arg.size)},${arg.form}`;
  }
}

/** 256 MiB → "256M": the largest unit that divides exactly, as a user would write it. */
export function formatMemory(bytes: bigint): string {
  if (bytes === 0n) return "0";
  for (const [unit, shift] of [["E", 60n], ["P", 50n], ["T", 40n], ["G", 30n], ["M", 20n], ["K", 10n]] as const) {
    if (bytes % (1n << shift) === 0n) return `${bytes >> shift}${unit}`;
  }
  return bytes.toString();
}

/** Splits a command line the way the kernel's next_arg() does: spaces separate, double quotes group. */
export function splitCmdline(cmdline: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  let started = false;
  for (const ch of cmdline) {
    if (ch === '"') {
      quoted = !quoted;
      started = true;
      continue;
    }
    if (!quoted && /\s/.test(ch)) {
      if (started) out.push(current);
      current = "";
      started = false;
      continue;
    }
    current += ch;
    started = true;
  }
  if (started) out.push(current);
  return out;
}

/**
 * Every crashkernel= on a command line, reduced to the occurrences the kernel
 * uses; null when there is none. Only the winners are parsed, as in the kernel:
 * a broken value that a later one overrides does no harm.
 */
export function crashkernelFromCmdline(cmdline: string): CrashkernelSpec | null {
  // The kernel scans the whole boot command line, arguments after "--" included.
  const values = splitCmdline(cmdline)
    .filter((t) => t.startsWith("crashkernel="))
    .map((t) => t.slice("crashkernel=".length));
  if (values.length === 0) return null;
  const formOf = (v: string): "plain" | "high" | "low" | "cma" => {
    for (const s of SUFFIXES) if (v.endsWith(s)) return s.slice(1) as "high" | "low" | "cma";
    return "plain";
  };
  const occurrences = values.map((value) => ({ value, form: formOf(value), used: false }));
  const last = (form: "plain" | "high" | "low" | "cma"): string | null => {
    for (let i = occurrences.length - 1; i >= 0; i--) {
      const o = occurrences[i]!;
      if (o.form === form) {
        o.used = true;
        return o.value;
      }
    }
    return null;
  };
  const parseIn = (value: string | null): CrashkernelArg | null => {
    if (value === null) return null;
    try {
      return parseCrashkernel(value);
    } catch (e) {
      if (e instanceof KexecError) throw new KexecError(e.code, `crashkernel=${value}: ${e.message}`, { ...e.data, field: "crashkernel" }, e.hint);
      throw e;
    }
  };
  const plain = parseIn(last("plain")) as CrashkernelPlain | null;
  const sized = (form: "high" | "low" | "cma"): bigint | null => {
    const a = parseIn(last(form));
    return a && "size" in a ? a.size : null;
  };
  return { plain, high: sized("high"), low: sized("low"), cma: sized("cma"), occurrences };
}

export interface CrashkernelResolution {
  /** Whether the kernel would attempt a reservation (it may still fail to find the memory). */
  ok: boolean;
  /** One sentence: what the kernel does with this spec on this much RAM. */
  reason: string;
  form: "fixed" | "ranges" | "high" | null;
  systemRam: bigint;
  /** RAM rounded up to 128 MiB, which is what the range form compares against. */
  roundedRam: bigint;
  /** Index into the range list of the range that matched. */
  matchedRange: number | null;
  size: bigint;
  /** A fixed base from @offset; null lets the kernel choose (an @0 also means "choose"). */
  offset: bigint | null;
  /** ,high: the reservation may go above 4 GiB, with a separate low part. */
  high: boolean;
  /** The ,low size; null with lowIsDefault when the kernel picks its default (>= 256 MiB on x86_64). */
  lowSize: bigint | null;
  lowIsDefault: boolean;
  cmaSize: bigint | null;
}

/**
 * What parse_crashkernel() computes for `systemRam` bytes of RAM (the kernel
 * passes memblock_phys_mem_size(); the sum of "System RAM" is the closest
 * outside view). Placement is not decided here.
 */
export function resolveCrashkernel(spec: CrashkernelSpec, systemRam: bigint): CrashkernelResolution {
  const roundedRam = ((systemRam + SZ_128M - 1n) / SZ_128M) * SZ_128M;
  const base: CrashkernelResolution = {
    ok: false,
    reason: "",
    form: null,
    systemRam,
    roundedRam,
    matchedRange: null,
    size: 0n,
    offset: null,
    high: false,
    lowSize: null,
    lowIsDefault: false,
    cmaSize: spec.cma,
  };
  const fail = (reason: string, extra: Partial<CrashkernelResolution> = {}): CrashkernelResolution => ({ ...base, ...extra, ok: false, reason });
  /**
   * `what` says what a reservation that the kernel accepts reserves; `asker`, what asks for it,
   * when it does not ("crashkernel=8G asks for 8G, ...": not "crashkernel=8G reserves 8G asks for 8G").
   */
  const finish = (r: CrashkernelResolution, what: string, asker: string): CrashkernelResolution => {
    if (r.size === 0n) return fail(`${asker} asks for 0 bytes, so nothing is reserved`, r);
    if (r.size >= systemRam) return fail(`${asker} asks for ${formatMemory(r.size)}, not less than the ${formatMemory(systemRam)} of RAM, so the kernel rejects it`, r);
    return { ...r, ok: true, reason: what };
  };
  const offsetOf = (o: bigint | null): bigint | null => (o === null || o === 0n ? null : o);

  if (spec.plain?.form === "fixed") {
    const asker = `crashkernel=${formatCrashkernel(spec.plain)}`;
    const what = `${asker} reserves ${formatMemory(spec.plain.size)}${spec.plain.offset ? ` at ${formatMemory(spec.plain.offset)}` : ""}`;
    return finish({ ...base, form: "fixed", size: spec.plain.size, offset: offsetOf(spec.plain.offset) }, what, asker);
  }
  if (spec.plain?.form === "ranges") {
    const ranges = spec.plain.ranges;
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i]!;
      // The kernel checks each size against RAM as it walks, before testing the match.
      if (r.size >= roundedRam) {
        return fail(`range ${i + 1} (${describeRange(r)}) asks for ${formatMemory(r.size)}, not less than the ${formatMemory(roundedRam)} of RAM (rounded up to 128M), so the kernel rejects the whole value`, { form: "ranges" });
      }
      if (roundedRam >= r.start && (r.end === null || roundedRam < r.end)) {
        const matched = `RAM ${formatMemory(roundedRam)} (rounded up to 128M) falls in range ${i + 1} (${describeRange(r)}), which`;
        return finish({ ...base, form: "ranges", matchedRange: i, size: r.size, offset: offsetOf(spec.plain.offset) }, `${matched} reserves ${formatMemory(r.size)}`, matched);
      }
    }
    return fail(`no range matches RAM ${formatMemory(roundedRam)} (rounded up to 128M), so nothing is reserved`, { form: "ranges" });
  }
  if (spec.high !== null) {
    const lowIsDefault = spec.low === null;
    const asker = `crashkernel=${formatMemory(spec.high)},high`;
    const what =
      `${asker} reserves ${formatMemory(spec.high)} preferably above 4G, plus ` +
      (lowIsDefault ? "a default-sized low part below 4G" : spec.low === 0n ? "no low part (,low is 0)" : `${formatMemory(spec.low!)} below 4G`);
    return finish({ ...base, form: "high", size: spec.high, high: true, lowSize: spec.low, lowIsDefault }, what, asker);
  }
  if (spec.low !== null) return fail("crashkernel=,low only counts together with crashkernel=,high; without it the kernel reserves nothing");
  if (spec.cma !== null) return fail("crashkernel=,cma adds to a normal reservation; alone it reserves nothing");
  return fail("no crashkernel= on the command line");
}

function describeRange(r: CrashkernelRange): string {
  return `${formatMemory(r.start)}-${r.end === null ? "" : formatMemory(r.end)}:${formatMemory(r.size)}`;
}

/** A position in the value with memparse() and error reporting. */
class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  peek(): string | undefined {
    return this.text[this.pos];
  }

  accept(s: string): boolean {
    if (this.text.startsWith(s, this.pos)) {
      this.pos += s.length;
      return true;
    }
    return false;
  }

  literal(s: string): void {
    if (!this.accept(s)) this.fail(this.pos, `'${s}'`);
  }

  end(): void {
    if (this.pos < this.text.length) this.fail(this.pos, "the end of the value");
  }

  /** memparse(): simple_strtoull(base 0) then an optional binary suffix. */
  memory(expected: string): bigint {
    const start = this.pos;
    const t = this.text;
    let radix = 10;
    let digits = /[0-9]/;
    if (t[this.pos] === "0" && (t[this.pos + 1] === "x" || t[this.pos + 1] === "X") && /[0-9a-fA-F]/.test(t[this.pos + 2] ?? "")) {
      radix = 16;
      digits = /[0-9a-fA-F]/;
      this.pos += 2;
    } else if (t[this.pos] === "0") {
      radix = 8;
      digits = /[0-7]/;
    }
    const from = this.pos;
    while (this.pos < t.length && digits.test(t[this.pos]!)) this.pos++;
    if (this.pos === from) this.fail(start, expected);
    let value = 0n;
    for (const c of t.slice(from, this.pos)) value = value * BigInt(radix) + BigInt(parseInt(c, radix));
    const shift = UNIT_SHIFT[(t[this.pos] ?? "").toLowerCase()];
    if (shift !== undefined) {
      value <<= shift;
      this.pos++;
    }
    if (value > MAX_U64) this.fail(start, "a size that fits in 64 bits", t.slice(start, this.pos));
    return value;
  }

  fail(at: number, expected: string, found?: string): never {
    const ch = this.text[at];
    const actual = found ?? (ch === undefined ? "the end of the value" : `'${ch}'`);
    const where = ch === undefined && found === undefined ? `after character ${at}` : `at character ${at + 1}`;
    throw new KexecError(
      "parse",
      `unexpected ${actual} ${where} of "${this.text}": expected ${expected}`,
      { field: "crashkernel", offset: at, text: this.text, expected, actual },
      HINT,
    );
  }
}
