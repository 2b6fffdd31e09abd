/**
 * kexec-ts standing in for makedumpfile: run as `makedumpfile` (a link whose name is
 * makedumpfile) or as `kexec-ts makedumpfile ARGS`. The distributions' kdump scripts call it by
 * name with these command lines:
 *
 *   Debian kdump-tools 1:1.8.1 (kdump-config savecore): `makedumpfile -F -c -d 31 /proc/vmcore | compress > F`
 *     and `makedumpfile --dump-dmesg /proc/vmcore dmesg.STAMP`
 *   Fedora/RHEL kdump-utils (dracut/99kdumpbase/kdump.sh): `makedumpfile -l --message-level 7 -d 31
 *     [--num-threads=N] /proc/vmcore DIR/vmcore-incomplete`, with -F to ssh or a raw disk; its tests
 *     restore with `makedumpfile -R vmcore < vmcore.flat`
 *   SUSE kdump (dracut/kdump-save): `makedumpfile -F -E|-c|-l|-p|-z [--num-threads N] --message-level N
 *     -d N /proc/vmcore > fifo` and `makedumpfile -F --message-level 8 --dump-dmesg /proc/vmcore > fifo`,
 *     reading OSRELEASE= and CRASHTIME= from the debug messages on stderr
 *
 * Each option means what it means in makedumpfile 1.7 (its getopt_long table and
 * check_param_for_*), with its exit statuses: 0 completed, 1 failed. An option kexec-ts does not
 * implement is refused by name, never ignored.
 */
import { closeSync, readSync, rmSync } from "node:fs";
import { KexecError, isKexecError } from "../../core/errors.js";
import { formatDmesg, readLockless } from "../../core/vmcore/dmesg.js";
import type { DumpCodec } from "../../core/vmcore/dump-writer.js";
import { FlatReassembler } from "../../core/vmcore/flat.js";
import { vmcoreKernelMemory } from "../../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "../../node/vmcore/open.js";
import { messageWriteErrorsIgnored, stdoutCarriesTheOutput } from "../../node/entry.js";
import { checkOutputPath, errnoText, openTemporaryOutput, renameOutputIntoPlace, syncAndCloseOutput, temporaryOutputPath, writeError, writeFullyAt, writeOutputFile, type OutputPath } from "../../node/files.js";
import { openRandomAccess } from "../../node/vmcore/file.js";
import { saveVmcoreTo, type SaveOptions } from "../../node/vmcore/save.js";
import { describeSave } from "./vmcore.js";

/** makedumpfile's COMPLETED and FAILED. */
export const MDF_COMPLETED = 0;
export const MDF_FAILED = 1;

/** Message level bits (makedumpfile.h ML_PRINT_*); the default is 7. */
const ML_PRINT_PROGRESS = 0x01;
const ML_PRINT_COMMON_MSG = 0x02;
const ML_PRINT_ERROR_MSG = 0x04;
const ML_PRINT_DEBUG_MSG = 0x08;
const ML_PRINT_REPORT_MSG = 0x10;
const DEFAULT_MSG_LEVEL = 7;

interface OptionSpec {
  long?: string;
  short?: string;
  arg: boolean;
  /** Why kexec-ts refuses it; absent for the options it implements. */
  refused?: string;
}

/** Every option of makedumpfile 1.7's getopt_long table ("b:cDd:eEFfg:hi:lL:pRvXx:z" and longopts). */
const OPTIONS: readonly OptionSpec[] = [
  { short: "c", arg: false }, { short: "l", arg: false }, { short: "p", arg: false }, { short: "z", arg: false },
  { short: "E", arg: false }, { short: "F", arg: false }, { short: "R", arg: false }, { short: "d", arg: true },
  { short: "f", arg: false }, { short: "D", arg: false }, { short: "h", long: "help", arg: false }, { short: "v", arg: false },
  { long: "dump-dmesg", arg: false }, { long: "message-level", arg: true }, { long: "num-threads", arg: true },
  { long: "check-params", arg: false }, { long: "show-stats", arg: false },
  // kexec-ts always reads the source with read(2), which is what --non-mmap asks for.
  { long: "non-mmap", arg: false },
  { short: "b", arg: true, refused: "the cache block order is makedumpfile's own tuning" },
  { short: "e", arg: false, refused: "excluding unused vmemmap pages is not implemented" },
  { short: "g", arg: true, refused: "generating VMCOREINFO from a vmlinux is not implemented" },
  { short: "i", arg: true, refused: "kexec-ts reads the VMCOREINFO in the dump itself, not from a file" },
  { short: "L", arg: true, refused: "a size limit for the dump file is not implemented" },
  { short: "X", arg: false, refused: "Xen dumps are not supported" },
  { short: "x", arg: true, refused: "kexec-ts reads the crashed kernel's VMCOREINFO, not a vmlinux's debug information" },
  { long: "split", arg: false, refused: "splitting a dump into several files is not implemented" },
  { long: "reassemble", arg: false, refused: "reassembling split dumps is not implemented" },
  { long: "xen-syms", arg: true, refused: "Xen dumps are not supported" },
  { long: "xen-vmcoreinfo", arg: true, refused: "Xen dumps are not supported" },
  { long: "xen_phys_start", arg: true, refused: "Xen dumps are not supported" },
  { long: "vtop", arg: true, refused: "address translation of a given address is not implemented" },
  { long: "partial-dmesg", arg: false, refused: "only the whole log is written (--dump-dmesg)" },
  { long: "config", arg: true, refused: "filter configuration files are not implemented" },
  { long: "diskset", arg: true, refused: "sadump disk sets are not supported" },
  { long: "cyclic-buffer", arg: true, refused: "makedumpfile's cyclic buffer size has no meaning here" },
  { long: "eppic", arg: true, refused: "eppic macros are not implemented" },
  { long: "mem-usage", arg: false, refused: "--mem-usage is not implemented" },
  { long: "splitblock-size", arg: true, refused: "splitting a dump is not implemented" },
  { long: "work-dir", arg: true, refused: "kexec-ts keeps its bitmaps in memory" },
  { long: "dry-run", arg: false, refused: "--dry-run is not implemented" },
  { long: "extension", arg: true, refused: "makedumpfile extensions are not supported" },
];

/** makedumpfile's two lines for a command line it cannot use (main's '?' case and each check_param_for_* failure). */
const COMMANDLINE_INVALID = "Commandline parameter is invalid.\nTry `makedumpfile --help' for more information.\n";

/**
 * Where makedumpfile's messages go at the moment it gives up: -F sends its common messages to
 * stderr (flag_strerr_message) and --message-level filters them, each from the point in argv where
 * it is read, so a refusal inside the option loop sees only the options before it.
 */
export interface MessageStreams {
  flat: boolean;
  level: number;
  /** --check-params: the level is held at 7, and no "makedumpfile Failed." ends the output. */
  checkParams: boolean;
}

/**
 * A command line refused, with what makedumpfile prints for it. `by` says whose words the message is:
 * - "getopt": glibc's complaint (an unknown option, a missing argument), on stderr whatever the
 *   message level, as getopt_long prints it; makedumpfile's COMMANDLINE_INVALID follows.
 * - "makedumpfile": makedumpfile's own line ("Dump_level(99) is invalid."), a common message; nothing else.
 * - "kexec-ts": kexec-ts's explanation (an option it lacks, or what makes the command line invalid),
 *   an error message on stderr as its runtime errors are, so stdout carries makedumpfile's lines only.
 */
export class MakedumpfileUsageError extends KexecError {
  constructor(
    readonly by: "getopt" | "makedumpfile" | "kexec-ts",
    message: string,
    /** makedumpfile's common messages for it, before the blank line and "makedumpfile Failed.". */
    readonly commonMessages: string,
    readonly streams: MessageStreams,
    data: Record<string, string> = {},
    hint?: string,
  ) {
    super("usage", message, data, hint);
  }
}

/** getopt_long's complaint, before makedumpfile's option loop attaches where its messages go. */
class GetoptComplaint extends Error {
  constructor(message: string, readonly field: string) {
    super(`makedumpfile: ${message}`);
  }
}

interface GetoptResult {
  spec: OptionSpec;
  /** As the user gave it: "-x", "--split". */
  shown: string;
  value?: string;
}

/**
 * getopt_long as glibc does it: bundled short options, -d31 and -d 31, --long=V and --long V, unique
 * prefixes of long names, operands anywhere (collected into `positionals`), `--` ends options.
 * Options come one at a time, so that the caller acts on each before the next is read, as
 * makedumpfile's loop does; its complaints are glibc's words.
 */
function* getoptLong(argv: readonly string[], positionals: string[]): Generator<GetoptResult> {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") { positionals.push(...argv.slice(i + 1)); return; }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const exact = OPTIONS.find((o) => o.long === name);
      const matches = exact ? [exact] : OPTIONS.filter((o) => o.long?.startsWith(name));
      if (matches.length === 0) throw new GetoptComplaint(`unrecognized option '--${name}'`, `--${name}`);
      if (matches.length > 1) throw new GetoptComplaint(`option '--${name}' is ambiguous; possibilities:${matches.map((o) => ` '--${o.long}'`).join("")}`, `--${name}`);
      const spec = matches[0]!;
      let value: string | undefined;
      if (spec.arg) {
        value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new GetoptComplaint(`option '--${spec.long}' requires an argument`, `--${spec.long!}`);
      } else if (eq >= 0) throw new GetoptComplaint(`option '--${spec.long}' doesn't allow an argument`, `--${spec.long!}`);
      yield { spec, shown: `--${spec.long}`, ...(value === undefined ? {} : { value }) };
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const ch = a[k]!;
        const spec = OPTIONS.find((o) => o.short === ch);
        if (!spec) throw new GetoptComplaint(`invalid option -- '${ch}'`, `-${ch}`);
        if (spec.arg) {
          const value = k + 1 < a.length ? a.slice(k + 1) : argv[++i];
          if (value === undefined) throw new GetoptComplaint(`option requires an argument -- '${ch}'`, `-${ch}`);
          yield { spec, shown: `-${ch}`, value };
          break;
        }
        yield { spec, shown: `-${ch}` };
      }
      continue;
    }
    positionals.push(a);
  }
}

function refusal(shown: string, why: string, streams: MessageStreams): MakedumpfileUsageError {
  return new MakedumpfileUsageError("kexec-ts", `option ${shown} is not supported by kexec-ts: ${why}`, "", streams, { field: shown },
    "drop it, or run Debian's makedumpfile (/usr/bin/makedumpfile from the makedumpfile package) for it");
}

/** atoi's reading where it is a whole number; undefined for text kexec-ts will not guess at ("abc", "3x", "1,31"). */
function wholeNumber(text: string): number | undefined {
  return /^-?[0-9]+$/.test(text) ? Number(text) : undefined;
}

export type MakedumpfileAction =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "dump"; save: SaveOptions; force: boolean }
  | { kind: "dmesg"; vmcore: string; dst: string | "-"; force: boolean }
  | { kind: "rearrange"; dst: string; force: boolean };

export interface MakedumpfilePlan {
  action: MakedumpfileAction;
  messageLevel: number;
  checkOnly: boolean;
}

/**
 * What a command line asks for, checked as makedumpfile's main checks it: the option loop first,
 * each option acting in argv order (a refusal there sees the -F and --message-level before it),
 * then check_param_for_* on the whole. Refusals are MakedumpfileUsageErrors.
 */
export function planMakedumpfile(argv: readonly string[], stderrIsTTY = false): MakedumpfilePlan {
  const positionals: string[] = [];
  const streams: MessageStreams = { flat: false, level: DEFAULT_MSG_LEVEL, checkParams: false };
  // An option kexec-ts lacks, or a value it will not read, stops nothing in makedumpfile's loop
  // (makedumpfile would take it and go on): the first is said once the loop is done, where
  // makedumpfile itself would fail, with the messages where the whole command line puts them.
  let unsupported: MakedumpfileUsageError | undefined;
  let codec: DumpCodec = "none";
  let elf = false;
  let rearrange = false;
  let dmesg = false;
  let force = false;
  let debug = false;
  let stats = false;
  let dumpLevel: number | undefined;
  let threads = 0;
  let threadsGiven = false;
  let help = false;
  let version = false;
  const own = (message: string, field: string, hint: string) => {
    unsupported ??= new MakedumpfileUsageError("kexec-ts", message, "", streams, { field }, hint);
  };
  try {
    for (const { spec, shown, value } of getoptLong(argv, positionals)) {
      if (spec.refused) { unsupported ??= refusal(shown, spec.refused, streams); continue; }
      switch (spec.long ?? spec.short) {
        case "c": codec = "zlib"; break;
        case "l": codec = "lzo"; break;
        case "p": codec = "snappy"; break;
        case "z": codec = "zstd"; break;
        case "E": elf = true; break;
        case "F": streams.flat = true; break;
        case "R": rearrange = true; break;
        case "d": {
          const n = wholeNumber(value!);
          if (n === undefined) own(`-d ${value}: the dump level is one number, 0..31 (makedumpfile's -d bitmask)`, "-d", "e.g. -d 31, what the distro kdump services use");
          else if (n < 0 || n > 31) throw new MakedumpfileUsageError("makedumpfile", `Dump_level(${n}) is invalid.`, `Dump_level(${n}) is invalid.\n`, streams, { field: "-d", actual: value! });
          else dumpLevel = n;
          break;
        }
        case "f": force = true; break;
        case "D": debug = true; break;
        case "help": help = true; break;
        case "v": version = true; break;
        case "dump-dmesg": dmesg = true; break;
        case "message-level": {
          const n = wholeNumber(value!);
          if (n === undefined) own(`--message-level ${value}: the message level is a number, 0..31`, "--message-level", "e.g. --message-level 7, makedumpfile's default");
          else if (n < 0 || n > 31) {
            // set_message_level puts the default back before it says so: this line is printed even after --message-level 0.
            streams.level = DEFAULT_MSG_LEVEL;
            throw new MakedumpfileUsageError("makedumpfile", `Message_level(${n}) is invalid.`, `Message_level(${n}) is invalid.\n`, streams, { field: "--message-level", actual: value! });
          } else if (!streams.checkParams) streams.level = n;
          break;
        }
        case "num-threads": {
          // atoi() and MAX(n, 0), as makedumpfile reads it.
          const n = Number.parseInt(value!, 10);
          threads = Number.isFinite(n) && n > 0 ? Math.min(n, 256) : 0;
          threadsGiven = true;
          break;
        }
        case "check-params": streams.checkParams = true; streams.level = DEFAULT_MSG_LEVEL; break;
        case "show-stats": stats = true; break;
        case "non-mmap": break;
      }
    }
  } catch (e) {
    if (e instanceof GetoptComplaint) throw new MakedumpfileUsageError("getopt", e.message, COMMANDLINE_INVALID, streams, { field: e.field });
    throw e;
  }
  if (debug) streams.level |= ML_PRINT_DEBUG_MSG;
  if (stats) streams.level |= ML_PRINT_REPORT_MSG;
  // --check-params keeps the debug messages quiet, whatever came before or after it.
  if (streams.checkParams) streams.level = DEFAULT_MSG_LEVEL;
  const messageLevel = streams.level;
  const checkOnly = streams.checkParams;
  if (help) return { action: { kind: "help" }, messageLevel, checkOnly };
  if (version) return { action: { kind: "version" }, messageLevel, checkOnly };
  if (unsupported) throw unsupported;
  const flat = streams.flat;
  // check_param_for_*: makedumpfile says only COMMANDLINE_INVALID; kexec-ts says why, on stderr.
  const commandLineInvalid = (why: string) => new MakedumpfileUsageError("kexec-ts", why, COMMANDLINE_INVALID, streams, { actual: argv.join(" ") });
  if (rearrange) {
    // check_param_for_rearranging_dumpdata: one DUMPFILE, the stream on standard input, nothing else.
    if (positionals.length !== 1) throw commandLineInvalid("-R takes one DUMPFILE and reads the flattened stream from standard input");
    if (codec !== "none" || dumpLevel !== undefined || elf || flat) throw commandLineInvalid("-R cannot be combined with -c/-l/-p/-z, -d, -E or -F");
    return { action: { kind: "rearrange", dst: positionals[0]!, force }, messageLevel, checkOnly };
  }
  if (codec !== "none" && elf) throw commandLineInvalid("-E (ELF) stores pages uncompressed and cannot be combined with -c/-l/-p/-z");
  // makedumpfile's own line for this one says all there is to say.
  if (threads > 0 && elf) throw new MakedumpfileUsageError("makedumpfile", "--num-threads cannot used with ELF format.", `--num-threads cannot used with ELF format.\n${COMMANDLINE_INVALID}`, streams, { field: "--num-threads" });
  const [vmcore, out] = positionals;
  if (dmesg) {
    if (flat ? positionals.length !== 1 : positionals.length !== 2) throw commandLineInvalid(flat ? "--dump-dmesg with -F takes VMCORE and writes the log to standard output" : "--dump-dmesg takes VMCORE and DUMPFILE");
    return { action: { kind: "dmesg", vmcore: vmcore!, dst: flat ? "-" : out!, force }, messageLevel, checkOnly };
  }
  if (flat ? positionals.length !== 1 : positionals.length !== 2) throw commandLineInvalid(flat ? "-F takes VMCORE and writes to standard output" : "VMCORE and DUMPFILE are needed");
  const save: SaveOptions = {
    src: vmcore!, dst: flat ? "-" : out!, format: elf ? "elf" : "kdump", flat, codec, dumpLevel: dumpLevel ?? 0,
    threads: threadsGiven ? threads : "auto", progress: (messageLevel & ML_PRINT_PROGRESS) !== 0 && stderrIsTTY, overwrite: force,
    // All of the crashed kernel's memory, keys and passwords too: readable by root only, as
    // makedumpfile's open_dump_file creates it (S_IRUSR|S_IWUSR), whatever the umask.
    mode: 0o600,
  };
  return { action: { kind: "dump", save, force }, messageLevel, checkOnly };
}

const HELP = `kexec-ts standing in for makedumpfile (kdump-tools, kdump-utils and SUSE kdump call it by this name).

  makedumpfile    [-c|-l|-p|-z|-E] [-d N] [--num-threads N] [--message-level N] [-f] VMCORE DUMPFILE
  makedumpfile -F [-c|-l|-p|-z|-E] [-d N] [--num-threads N] [--message-level N] VMCORE > stream
  makedumpfile -R DUMPFILE < stream
  makedumpfile [-F] --dump-dmesg VMCORE [FILE]

  -c, -l, -p, -z  compress pages with zlib, lzo, snappy or zstd (kdump-compressed format)
  -E              ELF format (uncompressed)
  -d N            dump level, 0..31: 1 zero, 2 cache, 4 private cache, 8 user data, 16 free pages
  -F              the flattened format on standard output (for a pipe); -R turns it into a file
  -f              overwrite an existing DUMPFILE
  --message-level N, --num-threads N, --show-stats, --check-params, -D, -v, -h
Options for Xen, sadump, split dumps, filters and vmlinux files are refused by name.
`;

/**
 * The command table's entry point. main.ts routes `kexec-ts makedumpfile ...` here before kexec-ts's own
 * parser sees the arguments; this takes them again from the process's arguments in case it is reached otherwise.
 */
export async function run(): Promise<number> {
  const argv = process.argv.slice(2);
  const at = argv.indexOf("makedumpfile");
  const { createRequire } = await import("node:module");
  const version = (createRequire(import.meta.url)("../../../package.json") as { version: string }).version;
  return makedumpfileCommand(at >= 0 ? argv.slice(at + 1) : argv, version);
}

/** A message as makedumpfile prints it: to standard output, or to standard error when -F keeps standard output for the dump. */
function say(text: string, flat: boolean): void {
  (flat ? process.stderr : process.stdout).write(text);
}

/**
 * A refused command line, on the streams makedumpfile 1.7.2 uses for it: getopt's line on stderr
 * always; kexec-ts's explanation on stderr as an error message; makedumpfile's own lines and
 * "makedumpfile Failed." as common messages (stdout, or stderr after -F), so that stdout carries
 * nothing makedumpfile would not print there.
 */
function sayUsageError(e: MakedumpfileUsageError): void {
  const { flat, level, checkParams } = e.streams;
  if (e.by === "getopt") process.stderr.write(`${e.message}\n`);
  else if (e.by === "kexec-ts" && level & ML_PRINT_ERROR_MSG) process.stderr.write(`makedumpfile (kexec-ts): ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
  if (!(level & ML_PRINT_COMMON_MSG)) return;
  say(e.commonMessages, flat);
  // --check-params only checks: makedumpfile ends neither with Completed nor with Failed.
  if (!checkParams) say("\nmakedumpfile Failed.\n", flat);
}

export async function makedumpfileCommand(argv: readonly string[], version: string): Promise<number> {
  // A message that cannot be written (stderr on a full /tmp, stdout on a hung-up console) neither
  // stops the save nor fails it, as makedumpfile's printf()s do not.
  messageWriteErrorsIgnored();
  let plan: MakedumpfilePlan;
  let flat = false;
  try {
    plan = planMakedumpfile(argv, process.stderr.isTTY === true);
  } catch (e) {
    if (!(e instanceof MakedumpfileUsageError)) throw e;
    sayUsageError(e);
    return MDF_FAILED;
  }
  const level = plan.messageLevel;
  const common = (text: string) => { if (level & ML_PRINT_COMMON_MSG) say(text, flat); };
  const action = plan.action;
  if (action.kind === "help") { process.stdout.write(HELP); return MDF_COMPLETED; }
  if (action.kind === "version") { process.stdout.write(`makedumpfile: kexec-ts ${version} (drop-in for makedumpfile 1.7)\n`); return MDF_COMPLETED; }
  flat = action.kind === "dump" ? action.save.flat === true : action.kind === "dmesg" && action.dst === "-";
  if (plan.checkOnly) return MDF_COMPLETED;
  try {
    const output = outputOf(action);
    // What is there is checked first (a directory, a FIFO, the vmcore itself), then whether it
    // may be replaced: makedumpfile opens DUMPFILE with O_EXCL unless -f (check_dump_file).
    if (output !== undefined && checkOutputPath(output).existing !== undefined && !action.force) {
      throw new KexecError("io", `Can't open the dump file (${output.path}). File exists`, { file: output.path }, "remove it first, or give -f to overwrite it");
    }
    if (action.kind === "rearrange") {
      await rearrange(output!);
      common(`\nThe dumpfile is saved to ${action.dst}.\n`);
    } else if (action.kind === "dmesg") {
      await dumpDmesg(action.vmcore, output, level);
      common(`\nThe dmesg log is saved to ${action.dst === "-" ? "STDOUT" : action.dst}.\n`);
    } else {
      if (level & ML_PRINT_DEBUG_MSG) printVmcoreinfo(action.save.src, flat);
      const result = await saveVmcoreTo(action.save);
      // The report (--show-stats) is makedumpfile's REPORT_MSG: stdout unless -F, as the common messages.
      if (level & ML_PRINT_REPORT_MSG) say(describeSave(action.save, result), flat);
      if (!result.complete) {
        if (level & ML_PRINT_ERROR_MSG && !(level & ML_PRINT_REPORT_MSG && flat)) process.stderr.write(describeSave(action.save, result));
        common("\nmakedumpfile Failed.\n");
        return MDF_FAILED;
      }
      common(`\nThe dumpfile is saved to ${action.save.dst === "-" ? "STDOUT" : action.save.dst}.\n`);
    }
    common("\nmakedumpfile Completed.\n");
    return MDF_COMPLETED;
  } catch (e) {
    if (!isKexecError(e)) throw e;
    if (level & ML_PRINT_ERROR_MSG) process.stderr.write(`makedumpfile (kexec-ts): ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
    common("\nmakedumpfile Failed.\n");
    return MDF_FAILED;
  }
}

/**
 * DUMPFILE, as every kexec-ts output: written under DUMPFILE.incomplete and renamed into place
 * (files.ts), so a stream cut short or a full disk never leaves half a file under its name, and a
 * directory, a FIFO or a device there is refused before any work. Undefined for standard output.
 */
function outputOf(action: MakedumpfileAction): OutputPath | undefined {
  if (action.kind === "dump") {
    if (action.save.dst === "-") return undefined;
    return { path: action.save.dst, what: "the dump", command: "makedumpfile", inputs: [{ path: action.save.src, what: "the vmcore being saved" }], streamHint: "to write into a pipe or a device, give -F and redirect standard output" };
  }
  if (action.kind === "dmesg") {
    if (action.dst === "-") return undefined;
    return { path: action.dst, what: "the log", command: "makedumpfile --dump-dmesg", inputs: [{ path: action.vmcore, what: "the vmcore" }], streamHint: "to write into a pipe, give -F and redirect standard output" };
  }
  if (action.kind === "rearrange") return { path: action.dst, what: "the dump", command: "makedumpfile -R", inputs: [], streamHint: "give a file name" };
  return undefined;
}

/**
 * VMCOREINFO among the debug messages (--message-level 8, -D): SUSE's kdump-save reads OSRELEASE=
 * and CRASHTIME= from them on stderr with -F. They are makedumpfile's DEBUG_MSG: on standard
 * error with -F, on standard output without, as the common messages.
 */
function printVmcoreinfo(path: string, flat: boolean): void {
  const file = openRandomAccess(path);
  try {
    const info = openVmcoreWithSystemCodecs(file, path).vmcoreinfo;
    if (info) say(`${info.text.trimEnd()}\n`, flat);
  } finally {
    file.close();
  }
}

async function dumpDmesg(path: string, output: OutputPath | undefined, level: number): Promise<void> {
  const file = openRandomAccess(path);
  let text: string;
  try {
    const core = openVmcoreWithSystemCodecs(file, path);
    if (level & ML_PRINT_DEBUG_MSG && core.vmcoreinfo) say(`${core.vmcoreinfo.text.trimEnd()}\n`, output === undefined);
    text = formatDmesg(readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!));
  } catch (e) {
    // The readers of kernel structures (page tables, the ring buffer) never see the path.
    throw isKexecError(e) ? e.inFile(path) : e;
  } finally {
    file.close();
  }
  const bytes = new TextEncoder().encode(text);
  if (output === undefined) { await writeLogToStdout(bytes); return; }
  // Readable by root only, as makedumpfile creates its files.
  writeOutputFile(output, bytes, 0o600);
}

/**
 * -F --dump-dmesg: the log is the product on standard output (SUSE's kdump-save sends it through a
 * FIFO to ssh or lftp), so a reader that is gone fails the command, as makedumpfile dies of SIGPIPE
 * there; "The dmesg log is saved to STDOUT" and exit 0 would say it was saved.
 */
function writeLogToStdout(bytes: Uint8Array): Promise<void> {
  stdoutCarriesTheOutput();
  return new Promise((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) => reject(new KexecError("io", `standard output: ${e.code === "EPIPE" ? "the reader of the log went away" : e.message}: the log is not saved`,
      { file: "-", errno: e.code ?? "EIO" }, "see why the command reading standard output stopped (its own error: a full file system, a lost connection?)", { cause: e }));
    process.stdout.once("error", fail);
    process.stdout.write(bytes, (e) => {
      process.stdout.off("error", fail);
      if (e) fail(e);
      else resolve();
    });
  });
}

function writeAt(fd: number, data: Uint8Array, position: number, path: string, what: string): void {
  try {
    writeFullyAt(fd, data, position);
  } catch (e) {
    throw writeError(e, path, what);
  }
}

/**
 * -R: the flattened stream on standard input, replayed into DUMPFILE.incomplete and renamed to
 * DUMPFILE when its end record has come; a stream cut short is an error, not a wait. What a
 * stream cut short did bring stays under the temporary name, as an interrupted save leaves it.
 */
async function rearrange(output: OutputPath): Promise<void> {
  const { target } = checkOutputPath(output);
  const dst = output.path;
  const tmp = temporaryOutputPath(target);
  let fd: number;
  try {
    // Readable by root only, as makedumpfile creates it.
    fd = openTemporaryOutput(tmp, 0o600);
  } catch (e) {
    throw writeError(e, tmp, "the dump");
  }
  let wrote = false;
  try {
    const r = new FlatReassembler("the flattened dump on standard input");
    const chunk = new Uint8Array(1 << 20);
    for (;;) {
      let n: number;
      try {
        n = readSync(0, chunk, 0, chunk.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Standard input may be a non-blocking pipe: wait for the writer instead of spinning.
        if (code === "EAGAIN") { await new Promise((res) => setTimeout(res, 10)); continue; }
        throw new KexecError("io", `cannot read the flattened dump from standard input: ${errnoText(e)}`, { file: "-" }, "give the stream on standard input: makedumpfile -R DUMPFILE < stream");
      }
      if (n === 0) break;
      for (const w of r.push(chunk.subarray(0, n))) {
        writeAt(fd, w.data, Number(w.offset), tmp, "the dump");
        wrote ||= w.data.length > 0;
      }
      if (r.done) break;
    }
    r.end();
    const written = fd;
    fd = -1;
    syncAndCloseOutput(written, output, target);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    if (!wrote) rmSync(tmp, { force: true });
    else if (isKexecError(e)) throw new KexecError(e.code, `${e.message}; what was reassembled is in ${tmp}, not ${dst}`, { ...e.data, kept: tmp }, e.hint, { cause: e });
    throw e;
  }
  renameOutputIntoPlace(tmp, output, target);
}
