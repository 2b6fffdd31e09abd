#!/usr/bin/env node
/**
 * kexec-ts command line: parse once (with the named command's own short
 * flags), route to a command module, and end in the one catch
 * (src/node/entry.ts), which turns a KexecError into `kexec-ts: <message>`,
 * `hint: <hint>` and the exit status of its code.
 */
import { runEntryPoint } from "../node/entry.js";
import { parseCommandLine, runCommand } from "./commands.js";
import { helpText } from "./help.js";
import { has } from "./options.js";
import { createRequire } from "node:module";
import { basename } from "node:path";

async function main(argv: string[]): Promise<number> {
  // Installed as makedumpfile (a link), or `kexec-ts makedumpfile ...`: makedumpfile's own command line,
  // which kexec-ts's flag table would misread (its -d, -F, -E...), so it is routed before parsing.
  const invokedAs = basename(process.argv[1] ?? "");
  if (invokedAs === "makedumpfile" || argv[0] === "makedumpfile") {
    const { makedumpfileCommand } = await import("./commands/makedumpfile.js");
    return makedumpfileCommand(invokedAs === "makedumpfile" ? argv : argv.slice(1), packageVersion());
  }
  const asKexec = invokedAs === "kexec";
  const args = parseCommandLine(argv, asKexec);
  if (has(args, "help") || argv.length === 0) {
    process.stdout.write(helpText());
    return 0;
  }
  if (has(args, "version")) {
    process.stdout.write(`kexec-ts ${packageVersion()}\n`);
    return 0;
  }
  return runCommand(args, asKexec);
}

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  return (require("../../package.json") as { version: string }).version;
}

// --json anywhere on the command line: an error is JSON on standard output too (a usage error included).
runEntryPoint("kexec-ts", () => main(process.argv.slice(2)), { jsonErrors: process.argv.slice(2).includes("--json") });
