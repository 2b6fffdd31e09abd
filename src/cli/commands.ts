/**
 * The command router: each command takes parsed arguments, does IO at this edge, and returns an
 * exit code. Command modules load on first use, so `vmcore save` in a capture kernel does not pay
 * for parsing the image, planning and lab code it never runs (Node compiles every module it imports).
 */
import { createRequire } from "node:module";
import { basename } from "node:path";
import { KexecError } from "../core/errors.js";
import { has, value, type ParsedArgs } from "./options.js";

type Command = (args: ParsedArgs, rest: string[]) => Promise<number>;

const SUBCOMMANDS: Record<string, () => Promise<Command>> = {
  inspect: async () => (await import("./image-commands.js")).inspectCommand,
  machine: async () => (await import("./image-commands.js")).machineCommand,
  snapshot: async () => (await import("./image-commands.js")).snapshotCommand,
  demo: async () => (await import("./image-commands.js")).demoCommand,
  plan: async () => (await import("./load.js")).planCommand,
  check: async () => (await import("./check.js")).checkCommand,
  lab: async () => (await import("./lab.js")).labCommand,
  vmcore: async () => (await import("./vmcore.js")).vmcoreCommand,
  "drop-in": async () => (await import("./drop-in.js")).dropInCommand,
  help: async () => async () => 0,
};

export async function runCommand(args: ParsedArgs): Promise<number> {
  if (has(args, "version")) {
    process.stdout.write(`kexec-ts ${packageVersion()}\n`);
    return 0;
  }
  const [first, ...rest] = args.positionals;
  // Run as /sbin/kexec (kexec-ts drop-in install kexec), every word is kexec-tools': a kernel named "check" is a kernel.
  if (basename(process.argv[1] ?? "") === "kexec") return kexecCommand(args);
  const command = first !== undefined && Object.hasOwn(SUBCOMMANDS, first) ? SUBCOMMANDS[first] : undefined;
  if (command) return (await command())(args, rest);
  return kexecCommand(args);
}

function packageVersion(): string {
  const require = createRequire(import.meta.url);
  return (require("../../package.json") as { version: string }).version;
}

/** kexec-tools compatible mode: kexec-ts [-l|-p|-e|-u|-S] ... */
async function kexecCommand(args: ParsedArgs): Promise<number> {
  const { execCommand, loadCommand, unloadCommand } = await import("./load.js");
  if (has(args, "status")) {
    const { readMachine } = await import("../node/machine.js");
    const machine = await readMachine(value(args, "root") ?? "/");
    // kexec-tools: -S alone asks about the crash kernel; with -l about the kexec kernel.
    const loaded = has(args, "load") ? machine.kexec.loaded : machine.kexec.crashLoaded;
    return loaded ? 1 : 0;
  }
  if (has(args, "unload")) return unloadCommand(args);
  // -f alone is kexec-tools' "load and jump now"; with -l or -p it only lets a
  // load go ahead past failing checks (DESIGN.md), and jumps nowhere.
  if (has(args, "load") || has(args, "load-panic")) return loadCommand(args, args.positionals);
  if (has(args, "exec")) return execCommand(args);
  if (has(args, "force") && args.positionals.length > 0) {
    args.flags.set("load", [""]);
    const code = await loadCommand(args, args.positionals);
    return code === 0 ? execCommand(args) : code;
  }
  const word = args.positionals[0];
  throw new KexecError("usage", word === undefined ? "nothing to do: give an action (-l, -p, -e, -u, -S) or a command" : `unknown command "${word}"`, { actual: word ?? "" }, "see kexec-ts --help");
}
