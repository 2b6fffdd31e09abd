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
import { FLAGS, has, parseArgs, type FlagGroup, type FlagSpec, type ParsedArgs } from "./options.js";

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
  /**
   * The flags it takes: what its module (and the helpers it calls) reads. Any other flag is
   * refused by name before the module loads, so a typo or a flag meant for another command
   * is said, not ignored. --help and --version are always taken.
   */
  readonly takes: readonly Takes[];
  /** It reads its options itself, after its word (makedumpfile's, not kexec-ts's flag table). */
  readonly ownOptions?: string;
  /** The most operands it reads (`inspect IMAGE`: 1); one more is refused, as a flag it does not read is. Unset: it checks them itself. */
  readonly operands?: number;
}

/** A flag group of the flag table (`"load"`), or one flag by its long name (`"--root"`). */
export type Takes = FlagGroup | `--${string}`;

/**
 * kexec-tools takes every one of its options with any action (`kexec -e --initrd=F` is not an
 * error there), and distribution scripts pass them so, so the actions take all of the action and
 * load flags, not only what each one reads; what they refuse belongs clearly to another command
 * (`-l IMAGE --vmcore F`, `--dump-level`). --userspace and --root are read by every load.
 */
const ACTION_TAKES: readonly Takes[] = ["action", "load", "--debug", "--json", "--root", "--userspace"];
/** What a load request is built from (request.ts, prepare.ts): `check`, `plan` and `report` read it as -l/-p do. */
const LOAD_REQUEST_TAKES: readonly Takes[] = ["--load", "--load-panic", "load", "--userspace", "--root"];

/** kexec-tools' actions; which one runs when several are given is chooseAction's (kexec's own) precedence. */
export const ACTIONS: readonly (CommandSpec & { readonly flag: string })[] = [
  { flag: "load", name: "-l", usage: "IMAGE [load flags]", summary: "load IMAGE for a later -e (drop-in for kexec -l)", takes: ACTION_TAKES, load: () => import("./commands/load.js") },
  { flag: "load-panic", name: "-p", usage: "IMAGE [load flags]", summary: "load IMAGE as the crash (kdump) kernel", takes: ACTION_TAKES, load: () => import("./commands/load.js") },
  { flag: "exec", name: "-e", usage: "[--force] [--no-sync]", summary: "jump to the loaded kernel (under systemd through `systemctl kexec`, unless --force)", takes: ACTION_TAKES, load: () => import("./commands/exec.js") },
  { flag: "unload", name: "-u", usage: "[-p] [-s|-c|-a]", summary: "unload the kexec kernel (with -p: the crash kernel)", takes: ACTION_TAKES, load: () => import("./commands/unload.js") },
  { flag: "status", name: "-S", usage: "[-l]", summary: "exit 1 if the crash kernel (with -l: the kexec kernel) is loaded, 0 if not", takes: ACTION_TAKES, load: () => import("./commands/status.js") },
  { flag: "force", name: "-f", usage: "IMAGE [load flags]", summary: "load IMAGE and jump at once, as kexec -f", takes: ACTION_TAKES, load: () => import("./commands/force.js") },
];

export const COMMANDS: readonly CommandSpec[] = [
  { name: "check", operands: 1, usage: "-l|-p IMAGE [load flags] [--root DIR] [--json]", summary: "the verdicts only: exit 0 ok, 1 warnings, 2 a failing check", takes: [...LOAD_REQUEST_TAKES, "--json"], load: () => import("./commands/check.js") },
  { name: "plan", operands: 1, usage: "-l|-p IMAGE [load flags] [--root DIR] [--json]", summary: "the exact segments, entry and flags, plus the checks; nothing is loaded", takes: [...LOAD_REQUEST_TAKES, "--json"], load: () => import("./commands/plan.js") },
  { name: "inspect", operands: 1, usage: "IMAGE [--json] [--vmlinux] [--extract=FILE]", summary: "what the image is and what it supports", takes: ["--json", "--vmlinux", "--extract"], load: () => import("./commands/inspect.js") },
  { name: "machine", operands: 0, usage: "[--root DIR] [--json]", summary: "the machine model: memory map, crash region, paging, kexec state", takes: ["--root", "--json"], load: () => import("./commands/machine.js") },
  { name: "snapshot", operands: 1, usage: "DIR | --tar FILE [--root DIR]", summary: "copy every file `machine` reads into DIR (or one tar archive); replay with --root DIR or in the web app", takes: ["--tar", "--root"], load: () => import("./commands/snapshot.js") },
  { name: "report", operands: 1, usage: "[-l|-p IMAGE] [load flags] [--root DIR] [--vmcore FILE] -o FILE", summary: "one self-contained HTML page: the memory map, the plan, the checks, the hand-over's page tables, a vmcore", takes: [...LOAD_REQUEST_TAKES, "--vmcore", "--output"], load: () => import("./commands/report.js") },
  { name: "lab", usage: "--from A --to B [lab flags] | lab suite [NAME...]", summary: "do it in QEMU with real kernels: exit 0 it worked, 1 it did not, 78 the lab could not run", takes: ["lab", "--append", "--debug", "--json"], load: () => import("./commands/lab.js") },
  { name: "vmcore", usage: "save [vmcore flags] SRC DST | info FILE [--json] | dmesg FILE [--json]", summary: "save a crashed kernel's memory as makedumpfile does; read a dump's facts and log", takes: ["vmcore", "--json", "--debug", "--force"], load: () => import("./commands/vmcore.js"), shortFlags: { d: "dump-level" } },
  { name: "makedumpfile", usage: "[makedumpfile's options] VMCORE [DUMPFILE] | -R DUMPFILE < stream", summary: "stand in for makedumpfile, on its own command line (also as a link named makedumpfile)", takes: [], ownOptions: "makedumpfile's own options, written after the word makedumpfile", load: () => import("./commands/makedumpfile.js") },
  { name: "kdump", usage: "status|start|stop|restart|rebuild|estimate|test --yes|report|list|import|install|uninstall [--config FILE] [--json]", summary: "the kdump service: arm a crash kernel at boot, save the dump, report what happened", takes: ["kdump", "--force", "--json"], load: () => import("./commands/kdump.js") },
  { name: "drop-in", usage: "install|remove|status [kexec|makedumpfile] [--json]", summary: "kexec-ts as /sbin/kexec or makedumpfile for scripts such as kdump-tools (dpkg-divert), and back", takes: ["--json"], load: () => import("./commands/drop-in.js") },
  { name: "demo", operands: 0, usage: "", summary: "what `npm start` runs: this machine (or a sample snapshot) and a kernel, predicted", takes: ["--root"], load: () => import("./commands/demo.js") },
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
  if (command) {
    refuseFlagsNotTaken(command, args);
    refuseOperandsNotRead(command, rest);
    return { command, operands: rest };
  }
  const action = chooseAction(args);
  if (action) {
    refuseFlagsNotTaken(action, args);
    return { command: action, operands: args.positionals };
  }
  throw new KexecError("usage", first === undefined ? "nothing to do: give an action (-l, -p, -e, -u, -S) or a command" : `unknown command "${first}"`, { actual: first ?? "" }, "see kexec-ts --help");
}

/**
 * kexec-ts's own parse of a command line (makedumpfile's is its own): with the short-flag meanings
 * of the command its first word names, unless it runs as /sbin/kexec, where every word is kexec-tools'.
 */
export function parseCommandLine(argv: readonly string[], actionsOnly = false): ParsedArgs {
  const word = !actionsOnly && argv[0] !== undefined && !argv[0].startsWith("-") ? argv[0] : undefined;
  return parseArgs(argv, commandNamed(word)?.shortFlags);
}

const ALWAYS_TAKEN = ["help", "version"];

/** The long names of the flags `command` takes. */
export function flagsTaken(command: CommandSpec): Set<string> {
  const takes = (f: FlagSpec) => ALWAYS_TAKEN.includes(f.long) || command.takes.some((t) => t === f.group || t === `--${f.long}`);
  return new Set(FLAGS.filter(takes).map((f) => f.long));
}

const GROUP_NOUN: Readonly<Record<FlagGroup, string>> = {
  action: "a kexec-tools action flag", load: "a load flag", output: "an output flag", general: "a general flag",
  lab: "a lab flag", vmcore: "a vmcore flag", kdump: "a kdump flag",
};

/** `kexec-ts machine takes --root, --json; --initrd is a load flag (for -l, -p, ..., check, plan, report)`. */
function notTakenHint(command: CommandSpec, flag: FlagSpec, shown: string): string {
  const takes = command.ownOptions ?? (command.takes.length === 0 ? "no flags" : command.takes.map((t) => (t.startsWith("--") ? t : `the ${t} flags`)).join(", "));
  const byActions = ACTIONS.filter((c) => flagsTaken(c).has(flag.long)).map((c) => c.name);
  const byCommands = COMMANDS.filter((c) => flagsTaken(c).has(flag.long)).map((c) => c.name);
  // The actions take every load flag (as kexec-tools does); -l and -p are where one means something.
  const actions = byActions.length === ACTIONS.length ? ["-l, -p (and kexec-tools' other actions)"] : byActions;
  return `kexec-ts ${command.name} takes ${takes}; ${shown} is ${GROUP_NOUN[flag.group]} (for ${[...actions, ...byCommands].join(", ")})`;
}

/** A flag the command does not read is refused by name, never ignored: it is a typo or meant for another command. */
function refuseFlagsNotTaken(command: CommandSpec, args: ParsedArgs): void {
  const taken = flagsTaken(command);
  for (const long of args.flags.keys()) {
    if (taken.has(long)) continue;
    const flag = FLAGS.find((f) => f.long === long)!;
    const typed = args.spelled?.get(long) ?? `--${long}`;
    const shown = typed === `--${long}` ? typed : `${typed} (--${long})`;
    throw new KexecError("usage", `${command.name} does not take ${shown}`, { field: long, actual: typed, expected: [...taken].map((f) => `--${f}`).join(" | ") },
      notTakenHint(command, flag, shown));
  }
}

/** `inspect A B` inspected A alone and said nothing of B: an operand a command does not read is refused, never ignored. */
function refuseOperandsNotRead(command: CommandSpec, operands: readonly string[]): void {
  if (command.operands === undefined || operands.length <= command.operands) return;
  const extra = operands.slice(command.operands);
  const takes = command.operands === 0 ? "no operands" : command.operands === 1 ? "one operand" : `${command.operands} operands`;
  throw new KexecError("usage", `${command.name} takes ${takes}; ${extra.map((o) => JSON.stringify(o)).join(" ")} ${extra.length === 1 ? "is one" : `are ${extra.length}`} too many`,
    { field: "operands", expected: `at most ${command.operands}`, actual: String(operands.length) }, `kexec-ts ${command.name} ${command.usage}`.trimEnd());
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
  // One module loads both; -p is named so that a refusal says the -p the user wrote.
  if (has(args, "load-panic")) return byFlag("load-panic");
  if (has(args, "load")) return byFlag("load");
  if (has(args, "exec")) return byFlag("exec");
  if (has(args, "force") && args.positionals.length > 0) return byFlag("force");
  return undefined;
}
