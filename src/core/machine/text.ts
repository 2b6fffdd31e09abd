/**
 * Helpers shared by the line-oriented /proc and /sys parsers: splitting a file
 * into numbered lines and building the one kind of error they raise.
 */
import { KexecError } from "../errors.js";

export interface Line {
  /** 1-based, as an editor shows it. */
  number: number;
  text: string;
}

/** Lines of a text file, numbered; a trailing newline does not make an extra empty line. */
export function numberedLines(text: string): Line[] {
  const parts = text.split("\n");
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts.map((t, i) => ({ number: i + 1, text: t.endsWith("\r") ? t.slice(0, -1) : t }));
}

/**
 * A parse error at one line of a text file. The file name is added by the
 * caller (KexecError.inFile) because the pure parsers never see paths.
 */
export function lineError(line: Line, expected: string, found: string, hint: string): KexecError {
  // A damaged line can be any length (200,000 digits of MemTotal): the message shows its start.
  const shown = line.text.length > 160 ? `${line.text.slice(0, 160)}...` : line.text;
  return new KexecError(
    "parse",
    `line ${line.number}: expected ${expected}, found ${found}: ${JSON.stringify(shown)}`,
    { line: line.number, text: shown, expected, actual: found },
    hint,
  );
}

/** A parse error for a one-value sysfs/procfs file (no line structure worth naming). */
export function valueError(text: string, expected: string, hint: string): KexecError {
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  return new KexecError(
    "parse",
    `line 1: expected ${expected}, found ${JSON.stringify(shown)}`,
    { line: 1, text: shown, expected, actual: shown },
    hint,
  );
}

/** The largest value the kernel prints with %llx or %pa: every address and size in /proc and /sys. */
export const MAX_U64 = (1n << 64n) - 1n;

/**
 * Strict unsigned hex without prefix, as /proc/iomem prints it, of 64 bits at most: a longer
 * value is no kernel's (a damaged firmware memmap end of 2^80 once reached boot_params' e820
 * writer, 8 bytes a field, as an internal error).
 */
export function parseBareHex(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F]+$/.test(text)) return undefined;
  const value = BigInt(`0x${text}`);
  return value <= MAX_U64 ? value : undefined;
}

/** Hex with an optional 0x prefix, as sysfs prints addresses (%llx or %pa). */
export function parseHex(text: string): bigint | undefined {
  const t = text.startsWith("0x") || text.startsWith("0X") ? text.slice(2) : text;
  return parseBareHex(t);
}

/** Unsigned decimal of 64 bits at most (%llu, %zu): a longer value is no kernel's (seen: 40 nines as kexec_crash_size, printed back as 200 KB of digits). */
export function parseDecimal(text: string): bigint | undefined {
  if (!/^[0-9]+$/.test(text)) return undefined;
  const value = BigInt(text);
  return value <= MAX_U64 ? value : undefined;
}

/** Single-value files end with one newline; some have none (or trailing spaces). */
export function singleValue(text: string): string {
  return text.replace(/[\s\0]+$/, "");
}

/** Runs a pure parser and names `file` in any KexecError it raises (a function: named only when it fails, for thousands of files). */
export function inFile<T>(file: string | (() => string), parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof KexecError) throw e.inFile(typeof file === "string" ? file : file());
    throw e;
  }
}
