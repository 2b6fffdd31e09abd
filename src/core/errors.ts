/**
 * The one error type that kexec-ts lets escape. Everything a user can cause —
 * a truncated image, an iomem line that does not parse, a hole that cannot be
 * found — becomes a KexecError with a stable code, structured data and a hint.
 * Anything else reaching the CLI is a bug in kexec-ts.
 */

export type ErrorCode =
  | "parse"          // bytes or text that do not have the expected shape
  | "not-a-kernel"   // input is readable but is no kernel image we know
  | "decompress"     // a compressed payload is corrupt or unsupported
  | "io"             // a file could not be read or written
  | "usage"          // command-line misuse
  | "machine"        // the machine state is missing something required
  | "plan"           // no valid placement exists
  | "check"          // a check failed and --force was not given
  | "syscall"        // the kernel refused
  | "lab";           // the QEMU lab could not run

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

  constructor(code: ErrorCode, message: string, data: ErrorData = {}, hint?: string) {
    super(message);
    this.name = "KexecError";
    this.code = code;
    this.data = data;
    this.hint = hint;
  }

  /** A copy with the file name filled in, for errors raised by pure parsers that never see paths. */
  inFile(file: string): KexecError {
    if (this.data.file !== undefined) return this;
    const copy = new KexecError(this.code, `${file}: ${this.message}`, { ...this.data, file }, this.hint);
    copy.stack = this.stack;
    return copy;
  }

  toJSON(): Record<string, unknown> {
    const data: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(this.data)) data[k] = typeof v === "bigint" ? `0x${v.toString(16)}` : v;
    return { error: this.code, message: this.message, data, hint: this.hint ?? null };
  }
}

export function isKexecError(e: unknown): e is KexecError {
  return e instanceof KexecError;
}
