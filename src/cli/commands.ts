/**
 * The command table and the router. A command is a module under commands/
 * exporting `run(args, operands)`, which does its IO at this edge and returns
 * an exit status; adding one is that module plus one line here. Modules load
 * on first use, so `vmcore save` in a capture kernel does not pay for parsing
 * images, planning and lab code it never runs (Node compiles every module it imports).
 *
 * Words (`plan`, `vmcore`) name commands; without one, kexec-tools' action
 * flags (-l, -p, -e, -u, -S, -f) choose, so `kexec-ts` stands in for `kexec`.
 */
import { KexecError } from "../core/errors.js";
import { has, type ParsedArgs } from "./options.js";

export type CommandRun = (args: ParsedArgs, operands: string[]) => Promise<number>;

export interface CommandSpec {
  /** The word that selects it (`plan`), or for a kexec-tools action the invocation (`-l IMAGE`). */
  readonly name: string;
  /** The rest of the usage line: operands and, by group name, the flags it takes. */
  readonly usage: string;
  readonly summary: string;
  readonly load: () => Promise<{ run: CommandRun }>;
  /** Short letters that mean another flag under this command (makedumpfile's -d N under vmcore). */
  readonly shortFlags?: Readonly<Record<string, string>>;
}

/** kexec-tools' actions; which one runs when several are given is chooseAction's (kexec's own) precedence. */
export const ACTIONS: readonly (CommandSpec & { readonly flag: string })[] = [
  { flag: "load", name: "-l", usage: "IMAGE [load flags]", summary: "load IMAGE for a later -e (drop-in for kexec -l)", load: () => import("./commands/load.js") },
  { flag: "load-panic", name: "-p", usage: "IMAGE [load flags]", summary: "load IMAGE as the crash (kdump) kernel", load: () => import("./commands/load.js") },
  { flag: "exec", name: "-e", usage: "[--force] [--no-sync]", summary: "jump to the loaded kernel (under systemd through `systemctl kexec`, unless --force)", load: () => import("./commands/exec.js") },
  { flag: "unload", name: "-u", usage: "[-p] [-s|-c|-a]", summary: "unload the kexec kernel (with -p: the crash kernel)", load: () => import("./commands/unload.js") },
  { flag: "status", name: "-S", usage: "[-l]", summary: "exit 1 if the crash kernel (with -l: the kexec kernel) is loaded, 0 if not", load: () => import("./commands/status.js") },
  { flag: "force", name: "-f", usage: "IMAGE [load flags]", summary: "load IMAGE and jump at once, as kexec -f", load: () => import("./commands/force.js") },
];

export const COMMANDS: readonly CommandSpec[] = [
  { name: "check", usage: "-l|-p IMAGE [load flags] [--root DIR] [--json]", summary: "the verdicts only: exit 0 ok, 1 warnings, 2 a failing check", load: () => import("./commands/check.js") },
  { name: "plan", usage: "-l|-p IMAGE [load flags] [--root DIR] [--json]", summary: "the exact segments, entry and flags, plus the checks; nothing is loaded", load: () => import("./commands/plan.js") },
  { name: "inspect", usage: "IMAGE [--json] [--vmlinux] [--extract=FILE]", summary: "what the image is and what it supports", load: () => import("./commands/inspect.js") },
  { name: "machine", usage: "[--root DIR] [--json]", summary: "the machine model: memory map, crash region, paging, kexec state", load: () => import("./commands/machine.js") },
  { name: "snapshot", usage: "DIR | --tar FILE [--root DIR]", summary: "copy every file `machine` reads into DIR (or one tar archive); replay with --root DIR or in the web app", load: () => import("./commands/snapshot.js") },
  { name: "report", usage: "[-l|-p IMAGE] [load flags] [--root DIR] [--vmcore FILE] -o FILE", summary: "one self-contained HTML page: the memory map, the plan, the checks, the hand-over's page tables, a vmcore", load: () => import("./commands/report.js") },
  { name: "lab", usage: "--from A --to B [lab flags] | lab suite [NAME...]", summary: "do it in QEMU with real kernels: exit 0 it worked, 1 it did not, 78 the lab could not run", load: () => import("./commands/lab.js") },
  { name: "vmcore", usage: "save [vmcore flags] SRC DST | info FILE [--json] | dmesg FILE [--json]", summary: "save a crashed kernel's memory as makedumpfile does; read a dump's facts and log", load: () => import("./commands/vmcore.js"), shortFlags: { d: "dump-level" } },
  { name: "makedumpfile", usage: "[makedumpfile's options] VMCORE [DUMPFILE] | -R DUMPFILE < stream", summary: "stand in for makedumpfile, on its own command line (also as a link named makedumpfile)", load: () => import("./commands/makedumpfile.js") },
  { name: "kdump", usage: "status|start|stop|restart|rebuild|estimate|test --yes|report|list|import|install|uninstall [--config FILE] [--json]", summary: "the kdump service: arm a crash kernel at boot, save the dump, report what happened", load: () => import("./commands/kdump.js") },
  { name: "drop-in", usage: "install|remove|status [kexec|makedumpfile] [--json]", summary: "kexec-ts as /sbin/kexec or makedumpfile for scripts such as kdump-tools (dpkg-divert), and back", load: () => import("./commands/drop-in.js") },
  { name: "demo", usage: "", summary: "what `npm start` runs: this machine (or a sample snapshot) and a kernel, predicted", load: () => import("./commands/demo.js") },
];

/** The command an argument vector names by its first word, if any: parsing needs its short-flag meanings. */
export function commandNamed(word: string | undefined): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === word);
}

/**
 * The command (or kexec-tools action) a parsed command line asks for, and its operands.
 * `actionsOnly`: run as /sbin/kexec (kexec-ts drop-in install kexec), every word is kexec-tools'
 * (an image named "check" is an image).
 */
export function routeFor(args: ParsedArgs, actionsOnly = false): { command: CommandSpec; operands: string[] } {
  const [first, ...rest] = args.positionals;
  const command = actionsOnly ? undefined : commandNamed(first);
  if (command) return { command, operands: rest };
  const action = chooseAction(args);
  if (action) return { command: action, operands: args.positionals };
  throw new KexecError("usage", first === undefined ? "nothing to do: give an action (-l, -p, -e, -u, -S) or a command" : `unknown command "${first}"`, { actual: first ?? "" }, "see kexec-ts --help");
}

export async function runCommand(args: ParsedArgs, actionsOnly = false): Promise<number> {
  const { command, operands } = routeFor(args, actionsOnly);
  return (await command.load()).run(args, operands);
}

/**
 * kexec-tools' main(): -S wins over everything, -u over a load; -l/-p load (and
 * -f with them only overrides failing checks); -e jumps; -f alone with an
 * image loads and jumps.
 */
function chooseAction(args: ParsedArgs): CommandSpec | undefined {
  const byFlag = (flag: string) => ACTIONS.find((a) => a.flag === flag);
  if (has(args, "status")) return byFlag("status");
  if (has(args, "unload")) return byFlag("unload");
  if (has(args, "load") || has(args, "load-panic")) return byFlag("load");
  if (has(args, "exec")) return byFlag("exec");
  if (has(args, "force") && args.positionals.length > 0) return byFlag("force");
  return undefined;
}
