/** One table from error kinds to process exit codes (sysexits.h values where one fits). */
import type { ErrorCode } from "../core/errors.js";

export const EXIT_OK = 0;
/** `check`: warnings only. kexec-tools' -S also uses 1 for "loaded". */
export const EXIT_WARN = 1;
/** `check`: at least one fail; also a load refused by a failing check. */
export const EXIT_FAIL = 2;
export const EXIT_BUG = 70;

export const EXIT_FOR_ERROR: Record<ErrorCode, number> = {
  usage: 64,
  parse: 65,
  "not-a-kernel": 65,
  decompress: 65,
  io: 74,
  machine: 69,
  plan: 2,
  check: 2,
  syscall: 71,
  lab: 2,
};
