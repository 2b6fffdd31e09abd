/**
 * The one error type that kexec-ts lets escape. Everything a user can cause —
 * a truncated image, an iomem line that does not parse, a hole that cannot be
 * found — becomes a KexecError with a stable code, structured data and a hint.
 * A broken invariant of kexec-ts' own is a KexecError("internal"); anything
 * else reaching the top is a bug too.
 */

export type ErrorCode =
  | "parse"          // bytes or text that do not have the expected shape
  | "not-a-kernel"   // input is readable but is no kernel image we know
  | "decompress"     // a compressed payload is corrupt or unsupported
  | "io"             // a file could not be read or written
  | "usage"          // command-line misuse
  | "machine"        // the machine state is missing something required
  | "plan"           // no valid placement exists: the plan cannot be made
  | "check"          // a check failed and --force was not given
  | "syscall"        // the kernel refused
  | "lab"            // the QEMU lab could not run
  | "internal";      // a bug in kexec-ts: a broken invariant, a writer overflow, an unknown field

/**
 * The process exit status for each code: one table, which the README's exit
 * status section is checked against. sysexits.h values where one fits; the
 * small numbers are answers (`check`'s 0/1/2, `plan`'s 3), not failures of kexec-ts.
 */
export const EXIT_STATUS: Readonly<Record<ErrorCode, number>> = {
  check: 2,
  plan: 3,
  usage: 64,
  parse: 65,
  "not-a-kernel": 65,
  decompress: 65,
  machine: 69,
  internal: 70,
  syscall: 71,
  io: 74,
  lab: 78,
};

export interface ErrorData {
  file?: string;
  field?: string;
  offset?: number | bigint;
  expected?: string;
  actual?: string;
  [key: string]: unknown;
}

export class KexecError extends Error {
  readonly code: ErrorCode;
  readonly data: ErrorData;
  readonly hint: string | undefined;

  /** `cause`, when given, is the error this one explains (an errno from Node, a parser's error). */
  constructor(code: ErrorCode, message: string, data: ErrorData = {}, hint?: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KexecError";
    this.code = code;
    this.data = data;
    this.hint = hint;
  }

  /** A copy with the file name filled in, for errors raised by pure parsers that never see paths. */
  inFile(file: string): KexecError {
    // Named already in its data; a message that starts with it (openVmcore's errors say `${what}: ...`)
    // is not named twice, but its data gets the file too (--json readers look there).
    if (this.data.file !== undefined) return this;
    const named = this.message.startsWith(`${file}: `);
    const copy = new KexecError(this.code, named ? this.message : `${file}: ${this.message}`, { ...this.data, file }, this.hint, { cause: this.cause });
    copy.stack = this.stack;
    return copy;
  }

  /** Bigints (addresses, sizes), at any depth, become "0x..." strings: JSON numbers lose 64-bit values. */
  toJSON(): Record<string, unknown> {
    const plain = (v: unknown): unknown => {
      if (typeof v === "bigint") return `0x${v.toString(16)}`;
      if (Array.isArray(v)) return v.map(plain);
      if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
      return v;
    };
    return { error: this.code, message: this.message, data: plain(this.data), hint: this.hint ?? null };
  }
}

export function isKexecError(e: unknown): e is KexecError {
  return e instanceof KexecError;
}
