#!/usr/bin/env node
/**
 * kexec-ts command line. Parses once, dispatches to a command, and catches
 * once: a KexecError prints `kexec-ts: <message>` and `hint: <hint>` and
 * exits with the code from exit-codes.ts; anything else is a bug and says how
 * to report it.
 */
import { isKexecError } from "../core/errors.js";
import { EXIT_BUG, EXIT_FOR_ERROR } from "./exit-codes.js";
import { parseArgs, has, helpText } from "./options.js";
import { basename } from "node:path";
import { packageVersion, runCommand } from "./commands.js";

async function main(argv: string[]): Promise<number> {
  // Installed as makedumpfile (a link), or `kexec-ts makedumpfile ...`: makedumpfile's own command line.
  const invokedAs = basename(process.argv[1] ?? "");
  if (invokedAs === "makedumpfile" || argv[0] === "makedumpfile") {
    const { makedumpfileCommand } = await import("./makedumpfile.js");
    return makedumpfileCommand(invokedAs === "makedumpfile" ? argv : argv.slice(1), packageVersion());
  }
  const args = parseArgs(argv);
  if (has(args, "help") || argv.length === 0) {
    process.stdout.write(helpText());
    return 0;
  }
  return runCommand(args);
}

// `kexec-ts plan ... | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (isKexecError(e)) {
      process.stderr.write(`kexec-ts: ${e.message}\n`);
      if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
      process.exitCode = EXIT_FOR_ERROR[e.code];
      return;
    }
    process.stderr.write(`kexec-ts: internal error (a bug in kexec-ts): ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.stderr.write("hint: please report it with the command line, the output of `kexec-ts snapshot DIR` and the image's `kexec-ts inspect --json`\n");
    process.exitCode = EXIT_BUG;
  },
);
