/**
 * The one catch every entry point ends in (the kexec-ts command line, the lab's
 * suite and capture scripts): a KexecError prints `<name>: <message>` and
 * `hint: <hint>` and exits with its code's status from EXIT_STATUS; anything
 * else — a throw, a rejected promise or an 'error' event nobody handled — is a
 * bug in kexec-ts and says how to report it (exit 70). KEXEC_TS_DEBUG=1 adds
 * the stack and the chain of causes.
 */
import { EXIT_STATUS, isKexecError } from "../core/errors.js";

export const EXIT_BUG = EXIT_STATUS.internal;
const REPORT_HINT = "please report it with the command line, the output of `kexec-ts snapshot DIR` and the image's `kexec-ts inspect --json`";

/** Prints the error as the command line shows it and returns the exit status. */
export function reportError(name: string, e: unknown, write: (text: string) => void = (t) => process.stderr.write(t)): number {
  const debug = process.env["KEXEC_TS_DEBUG"] === "1";
  if (isKexecError(e)) {
    write(`${name}: ${e.code === "internal" ? "internal error (a bug in kexec-ts): " : ""}${e.message}\n`);
    if (e.hint) write(`hint: ${e.hint}\n`);
    if (e.code === "internal" && !e.hint?.includes("report")) write(`hint: ${REPORT_HINT}\n`);
    if (debug) write(causeChain(e));
    return EXIT_STATUS[e.code];
  }
  write(`${name}: internal error (a bug in kexec-ts): ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  write(`hint: ${REPORT_HINT}\n`);
  if (debug) write(causeChain(e));
  return EXIT_BUG;
}

/**
 * The error as JSON, for `--json`: what reportError says, with the exit status. A tool reading
 * a command's JSON output finds this object on standard output instead of nothing.
 */
export function errorJson(e: unknown): Record<string, unknown> {
  if (isKexecError(e)) return { ...e.toJSON(), exit: EXIT_STATUS[e.code] };
  return { error: "internal", message: `internal error (a bug in kexec-ts): ${e instanceof Error ? e.message : String(e)}`, data: {}, hint: REPORT_HINT, exit: EXIT_BUG };
}

function causeChain(e: unknown): string {
  let text = "";
  let at: unknown = e;
  for (let depth = 0; at instanceof Error && depth < 8; depth++, at = at.cause) text += `${depth === 0 ? "" : "caused by: "}${at.stack ?? at.message}\n`;
  return text;
}

let stdoutCarriesOutput = false;

/**
 * Standard output carries the command's product (a dump streamed to a pipe), so a reader that
 * goes away has cut it short: the writer handles that error itself and fails, instead of the
 * quiet exit that suits `kexec-ts plan ... | head`.
 */
export function stdoutCarriesTheOutput(): void {
  stdoutCarriesOutput = true;
}

let messagesBestEffort = false;

/**
 * The command's messages on standard output and standard error are best effort: a write that
 * fails (stdout on /dev/full, a hung-up console, a closed pipe) neither ends the process nor
 * changes its status. The makedumpfile drop-in's messages are makedumpfile's printf()s, whose
 * failures makedumpfile never sees; kdump-utils sends them to /dev/console and trusts the status.
 * Output that is the product (stdoutCarriesTheOutput) is still the writer's to fail.
 */
export function messageWriteErrorsIgnored(): void {
  messagesBestEffort = true;
}

/**
 * Runs `main` as a process's entry point: its status becomes the exit status, every failure goes
 * through reportError. With `jsonErrors` (the command line has --json) the failure is also
 * written to standard output as errorJson, unless the command wrote there already: a second
 * JSON document after its result would make the output unparseable.
 */
export function runEntryPoint(name: string, main: () => Promise<number>, options: { jsonErrors?: boolean } = {}): void {
  let stdoutUsed = false;
  if (options.jsonErrors) {
    const write = process.stdout.write.bind(process.stdout) as (...a: unknown[]) => boolean;
    process.stdout.write = ((...a: unknown[]) => { stdoutUsed = true; return write(...a); }) as typeof process.stdout.write;
  }
  const fail = (e: unknown) => {
    if (options.jsonErrors && !stdoutUsed) {
      try {
        process.stdout.write(`${JSON.stringify(errorJson(e), null, 2)}\n`);
      } catch { /* standard output is gone: the text on standard error still says it */ }
    }
    process.exitCode = reportError(name, e);
  };
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (stream === process.stdout && stdoutCarriesOutput) return;
      if (messagesBestEffort) return;
      // `kexec-ts plan ... | head` closes the pipe early: that is the reader's choice, not an error.
      if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
      process.exit(EXIT_STATUS.io);
    });
  }
  process.on("uncaughtException", (e) => {
    fail(e);
    process.exit();
  });
  process.on("unhandledRejection", (e) => {
    fail(e);
    process.exit();
  });
  main().then((code) => {
    process.exitCode = code;
  }, fail);
}
