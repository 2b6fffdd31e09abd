/**
 * Parsers for the small one-value files under /proc and /sys that describe the
 * running kernel and its kexec state. Each takes the file's text and returns a
 * value or throws a KexecError("parse") saying what it expected.
 */
import { KexecError } from "../errors.js";
import { MAX_U64, lineError, numberedLines, parseDecimal, parseHex, singleValue, valueError } from "./text.js";

const HINT = "this file should be the kernel's own output; re-take it with `kexec-ts snapshot`";

export interface KernelVersion {
  /** "6.1.0-18-amd64", the same string as uname -r. */
  release: string;
  /** The whole /proc/version line. */
  banner: string;
}

/** /proc/version: "Linux version <release> (<builder>) (<compiler>) #<n> ...". */
export function parseProcVersion(text: string): KernelVersion {
  const banner = singleValue(text);
  const m = /^Linux version (\S+)/.exec(banner);
  if (!m) throw valueError(banner, `"Linux version <release> ..."`, HINT);
  return { release: m[1]!, banner };
}

export type KernelArch = "x86_64" | "i386";

/**
 * The utsname machine ("x86_64", "i686", ...) from /proc/sys/kernel/arch. Unlike
 * uname(2) it is not changed by the linux32 personality, so a 32-bit user space
 * on a 64-bit kernel still sees "x86_64" here. Other architectures give null.
 */
export function archFromMachine(machine: string): KernelArch | null {
  const m = singleValue(machine);
  if (m === "x86_64") return "x86_64";
  if (/^i[3-6]86$/.test(m)) return "i386";
  return null;
}

/** Arch from words distro kernels put in their release or banner ("amd64", "686-pae", "x86_64"). */
export function archFromVersionText(text: string): KernelArch | null {
  if (/amd64|x86_64|x86-64/.test(text)) return "x86_64";
  if (/i[3-6]86|[-.]686\b|[-.]686-pae|\bx86_32\b/.test(text)) return "i386";
  return null;
}

/** /sys/kernel/address_bits (since Linux 6.x): BITS_PER_LONG of the running kernel. */
export function parseAddressBits(text: string): 32 | 64 {
  const v = singleValue(text);
  if (v === "32") return 32;
  if (v === "64") return 64;
  throw valueError(v, `"32" or "64"`, HINT);
}

/** /proc/meminfo as bytes ("MemTotal: 24684084 kB"); counts without a unit are kept as they are. */
export function parseMeminfo(text: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const line of numberedLines(text)) {
    if (line.text.trim() === "") continue;
    const m = /^([^:\s]+):\s*(\d+)(?:\s+(kB))?\s*$/.exec(line.text);
    if (!m) throw lineError(line, `"Name: <number> [kB]"`, JSON.stringify(line.text), HINT);
    // The kernel counts in unsigned longs: a byte count past 64 bits (a MemTotal of 2^70) is damage.
    const count = BigInt(m[2]!);
    const bytes = m[3] ? count * 1024n : count;
    if (bytes > MAX_U64) throw lineError(line, `a count of 64 bits at most${m[3] ? " in bytes (2^54 kB)" : ""}`, `${m[2]!.length > 40 ? `${m[2]!.slice(0, 40)}...` : m[2]!}${m[3] ? " kB" : ""}`, HINT);
    out[m[1]!] = bytes;
  }
  return out;
}

/**
 * CPU numbers are below this: x86's NR_CPUS is at most 8192 (MAXSMP). The bound is what keeps a
 * damaged list ("0-65536" three hundred times, or a number past 2^53, where i++ stops counting)
 * from growing without end.
 */
export const MAX_CPU_NUMBER = 8192;

/** "0-3,5\n" (lib/bitmap_str / cpulist) → [0,1,2,3,5]. An empty list is allowed. */
export function parseCpuList(text: string): number[] {
  const v = singleValue(text);
  if (v === "") return [];
  const cpus = new Set<number>();
  for (const part of v.split(",")) {
    const m = /^(\d{1,6})(?:-(\d{1,6}))?$/.exec(part);
    const a = m ? Number(m[1]) : NaN;
    const b = m && m[2] !== undefined ? Number(m[2]) : a;
    if (!m || b < a) throw valueError(v, `a CPU list like "0-3,5", and "${part}" is not a valid item`, HINT);
    if (b >= MAX_CPU_NUMBER) throw valueError(v, `CPU numbers below ${MAX_CPU_NUMBER} (x86's largest NR_CPUS), and "${part}" reaches ${b}`, HINT);
    for (let i = a; i <= b; i++) cpus.add(i);
  }
  return [...cpus].sort((x, y) => x - y);
}

/** A sysfs/procfs boolean written as 0 or 1 (kexec_loaded, kexec_load_disabled). */
export function parseFlag(text: string): boolean {
  const v = singleValue(text);
  if (v === "0") return false;
  if (v === "1") return true;
  throw valueError(v, `"0" or "1"`, HINT);
}

/** A signed decimal integer (kexec_load_limit_*: -1 means unlimited). */
export function parseInteger(text: string): number {
  const v = singleValue(text);
  if (!/^-?\d{1,15}$/.test(v)) throw valueError(v, "a decimal integer", HINT);
  return Number(v);
}

/** An unsigned decimal byte count (kexec_crash_size, crash_notes_size). */
export function parseByteCount(text: string): bigint {
  const v = parseDecimal(singleValue(text));
  if (v === undefined) throw valueError(singleValue(text), "a decimal number of bytes of 64 bits at most", HINT);
  return v;
}

/** An address printed with %llx or %pa (crash_notes). */
export function parseAddress(text: string): bigint {
  const v = parseHex(singleValue(text));
  if (v === undefined) throw valueError(singleValue(text), "a hex address", HINT);
  return v;
}

export type LockdownMode = "none" | "integrity" | "confidentiality";

/** /sys/kernel/security/lockdown: "none [integrity] confidentiality"; the bracketed one is active. */
export function parseLockdown(text: string): LockdownMode {
  const v = singleValue(text);
  const m = /\[([a-z]+)\]/.exec(v);
  if (!m || !["none", "integrity", "confidentiality"].includes(m[1]!)) {
    throw valueError(v, `the modes with the active one in brackets, like "none [integrity] confidentiality"`, HINT);
  }
  return m[1] as LockdownMode;
}

/** /sys/kernel/vmcoreinfo: "<paddr> <size>", both hex (kernel/ksysfs.c vmcoreinfo_show). */
export function parseVmcoreinfo(text: string): { address: bigint; size: bigint } {
  const v = singleValue(text);
  const parts = v.split(/\s+/);
  const address = parts.length === 2 ? parseHex(parts[0]!) : undefined;
  const size = parts.length === 2 ? parseHex(parts[1]!) : undefined;
  if (address === undefined || size === undefined) throw valueError(v, `"<hex address> <hex size>"`, HINT);
  return { address, size };
}

/**
 * An efivarfs variable: 4 bytes of attributes, then the data. SecureBoot's data
 * is one byte, 1 when the firmware enforces signatures.
 */
export function parseSecureBootVariable(bytes: Uint8Array): boolean {
  if (bytes.length !== 5) {
    throw new KexecError(
      "parse",
      `SecureBoot variable: expected 5 bytes (4 of attributes, 1 of value), found ${bytes.length}`,
      { expected: "5 bytes", actual: `${bytes.length} bytes` },
      "read it from /sys/firmware/efi/efivars (efivarfs), not from a copy made with another tool",
    );
  }
  const value = bytes[4]!;
  if (value > 1) {
    throw new KexecError(
      "parse",
      `SecureBoot variable: expected the value byte at offset 4 to be 0 or 1, found ${value}`,
      { offset: 4, expected: "0 or 1", actual: String(value) },
      "the variable looks corrupt; check `mokutil --sb-state`",
    );
  }
  return value === 1;
}

/** /sys/firmware/efi/fw_platform_size: "64" or "32", the firmware's word size. */
export function parseFwPlatformSize(text: string): 32 | 64 {
  const v = singleValue(text);
  if (v === "32") return 32;
  if (v === "64") return 64;
  throw valueError(v, `"32" or "64"`, HINT);
}
