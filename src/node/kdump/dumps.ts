/** The dumps in a target directory, read from disk: names, sizes, their report.json. */
import { closeSync, fstatSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { dumpCompleteness, dumpDirTime, dumpReportFromJson, summarizeDump, type DumpCompleteness, type DumpEntry, type DumpReport } from "../../core/kdump/dumps.js";
import { KexecError } from "../../core/errors.js";
import { describeJsonValue } from "../../core/format.js";
import { readDumpHeaderMark, type DumpHeaderMark } from "../../core/vmcore/vmcore.js";
import { descriptorAccess } from "../vmcore/file.js";
import { errnoText, fileKind } from "../files.js";
import { openRegularFile } from "../rootfs.js";

/** The bytes of a dump's files; 0 for a directory that cannot be listed (readDump says why: its report.json cannot be read either). */
function dirBytes(dir: string): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    // A dump directory a user may not read (0700), or one removed meanwhile, made every command
    // that lists dumps (save's retention in the capture kernel included) fail with a stack trace.
    return 0;
  }
  let total = 0;
  for (const f of names) {
    try {
      total += statSync(join(dir, f)).size;
    } catch { /* removed meanwhile */ }
  }
  return total;
}

/**
 * The error for a dump target (or a file in it) that cannot be used: the errno's meaning and
 * what to change. `configFile` is where target = is set, for the hint.
 */
export function targetError(e: unknown, path: string, doing: string, configFile = "the kdump config"): KexecError {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? "EIO";
  // Node's message is "ENOTDIR: not a directory, scandir '/path'": the middle is strerror's.
  const meaning = /^E[A-Z0-9]+: ([^,]+),/.exec(err?.message ?? "")?.[1] ?? err?.message ?? String(e);
  const setting = `target = in ${configFile}`;
  const hints: Record<string, string> = {
    ENOTDIR: `point ${setting} at a directory`,
    EEXIST: `point ${setting} at a directory`,
    ENOENT: `point ${setting} at a directory on a local file system`,
    ENAMETOOLONG: `point ${setting} at a shorter path`,
    EACCES: "run as root, or fix the target's permissions",
    EPERM: "run as root, or fix the target's permissions",
    EROFS: `the target's file system is mounted read-only: remount it read-write, or point ${setting} elsewhere`,
    ENOSPC: "free space on the target's file system (old dumps can go)",
    EISDIR: `move the directory ${path} out of the way`,
  };
  return new KexecError("io", `${path}: cannot ${doing}: ${meaning} (${code})`, { file: path, field: "target", errno: code }, hints[code] ?? `check ${setting}`, { cause: e });
}

/** The target is a directory, or not there yet (no dump was saved); anything else is the config's mistake. */
export function checkDumpTarget(target: string, configFile?: string): void {
  let st;
  try {
    st = statSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw targetError(e, target, "use it as the dump target", configFile);
  }
  if (!st.isDirectory()) {
    const kind = fileKind(st);
    throw new KexecError("io", `${target}: the dump target is not a directory (it is ${kind})`, { file: target, field: "target", expected: "a directory", actual: kind },
      `point target = in ${configFile ?? "the kdump config"} at a directory`);
  }
}

/** Dumps of ours in the target (<host>-<UTC time> directories), oldest first; none while the target does not exist. */
export function listDumps(target: string, configFile?: string): DumpEntry[] {
  checkDumpTarget(target, configFile);
  let names: string[];
  try {
    names = readdirSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw targetError(e, target, "list the dumps", configFile);
  }
  const out: DumpEntry[] = [];
  for (const name of names) {
    const time = dumpDirTime(name);
    if (time === null) continue;
    try {
      if (!statSync(join(target, name)).isDirectory()) continue;
    } catch {
      continue;
    }
    out.push({ name, time, bytes: dirBytes(join(target, name)) });
  }
  return out.sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

export interface DumpOnDisk extends DumpEntry {
  dir: string;
  /** Regular file name (a symbolic link to one included) → size in bytes. */
  files: Record<string, number>;
  /** The other entries → what they are ("a directory", "a symbolic link to nothing"): a vmcore that is one is not a dump. */
  irregular: Record<string, string>;
  report: DumpReport | null;
  /** Why report.json is there but unreadable (not JSON, a field missing or of the wrong type); null when read or absent. */
  reportProblem: string | null;
  /** Why the directory could not be listed (EACCES for a user); null when it was. `files` are then unknown, not absent. */
  listProblem: string | null;
  /**
   * Whether the dump is whole, report.json held against the directory (dumpCompleteness); false
   * without a readable report.json; null when not known (the directory could not be listed).
   */
  complete: boolean | null;
  /** Why not complete, or why not known; null when it is. */
  problem: string | null;
  /** What the vmcore's own header says of its completeness; null where it was not read (report.json does not call it whole, or it is not there). */
  vmcoreHeader: DumpHeaderMark | null;
}

/** A dump as `kdump report` writes it to the journal and `list` shows it: summarizeDump of what readDump read. */
export function summarizeDumpOnDisk(d: DumpOnDisk): string[] {
  return summarizeDump(d.dir, d.report, d.files, d.reportProblem, d.irregular, { listProblem: d.listProblem, header: d.vmcoreHeader });
}

/** The file system calls readDump makes that a test must be able to fail: root reads a 0700 directory regardless. */
export interface DumpDirIo {
  readdir(dir: string): string[];
}

const NODE_DUMP_DIR_IO: DumpDirIo = { readdir: (dir) => readdirSync(dir) };

export function readDump(target: string, entry: DumpEntry, io: DumpDirIo = NODE_DUMP_DIR_IO): DumpOnDisk {
  const dir = join(target, entry.name);
  const files: Record<string, number> = {};
  const irregular: Record<string, string> = {};
  let names: string[] = [];
  let listProblem: string | null = null;
  try {
    names = io.readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ENOENT: removed since listDumps saw it. Anything else leaves its files unknown, which is not "no vmcore".
    if (code !== "ENOENT") listProblem = `${errnoText(e, dir)}${code === "EACCES" || code === "EPERM" ? "; run as root, or fix the directory's permissions" : ""}`;
  }
  for (const f of names.sort()) {
    try {
      const st = statSync(join(dir, f));
      if (st.isFile()) files[f] = st.size;
      else irregular[f] = fileKind(st);
    } catch {
      // A symbolic link to nothing: stat follows it; said, since a vmcore that is one is no dump.
      try {
        if (lstatSync(join(dir, f)).isSymbolicLink()) irregular[f] = "a symbolic link to nothing";
      } catch { /* removed meanwhile */ }
    }
  }
  const { report, reportProblem } = readReport(join(dir, "report.json"));
  // Only for a vmcore report.json calls whole and that is there: the header can only take that back.
  const vmcore = report?.dump.complete && Object.prototype.hasOwnProperty.call(files, report.dump.file) ? join(dir, report.dump.file) : null;
  const vmcoreHeader = vmcore === null ? null : readVmcoreHeaderMark(vmcore);
  const verdict: DumpCompleteness = report !== null ? dumpCompleteness(report, files, irregular, { listProblem, header: vmcoreHeader })
    : listProblem !== null ? { complete: null, problem: `the directory cannot be listed: ${listProblem}; whether it holds a whole vmcore is not known` }
    : { complete: false, problem: reportProblem === null ? "the capture left no report.json: it was cut off before it finished" : `report.json is unreadable: ${reportProblem}` };
  return { ...entry, dir, files, irregular, report, reportProblem, listProblem, vmcoreHeader, ...verdict };
}

/**
 * What a vmcore's header says of its completeness (readDumpHeaderMark), from the headers it
 * reads (never the page data); a file that cannot be read is of unknown completeness by its header.
 */
function readVmcoreHeaderMark(path: string): DumpHeaderMark {
  let fd: number;
  try {
    // A regular file only: a FIFO put there since the directory was listed must not hold up the list.
    fd = openRegularFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { format: null, says: "unknown", detail: `cannot read it: ${errnoText(e, path)}${code === "EACCES" || code === "EPERM" ? "; run as root" : ""}` };
  }
  try {
    return readDumpHeaderMark(descriptorAccess(fd, path, BigInt(fstatSync(fd).size), true), path);
  } catch (e) {
    return { format: null, says: "unknown", detail: `cannot read it: ${errnoText(e, path)}` };
  } finally {
    closeSync(fd);
  }
}

/**
 * A small JSON file kexec-ts wrote (a dump's report.json, the report's bookkeeping, the state
 * files), read back: null where there is none, else its value or why it cannot be used.
 */
export function readJsonFile(path: string): { json: unknown; problem: null } | { problem: string } | null {
  let text: string;
  try {
    // A FIFO or device under that name would block the read, or never end it.
    const st = statSync(path);
    if (!st.isFile()) return { problem: `it is ${fileKind(st)}, not a file` };
    text = readFileSync(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") return null;
    // Node's message repeated the path the caller names ("EACCES: permission denied, open '/var/crash/...'"),
    // and a user's `kdump list` of dumps save wrote 0600 read as damage, with no word of what to do.
    const denied = err.code === "EACCES" || err.code === "EPERM";
    return { problem: `cannot read it: ${errnoText(e, path)}${denied ? "; run as root (kdump save writes it readable by root only)" : ""}` };
  }
  try {
    return { json: JSON.parse(text), problem: null };
  } catch (e) {
    return { problem: `not JSON (${(e as Error).message})` };
  }
}

/** What a field of a state file must be: one of the common kinds, or a test with what it expects (for messages). */
export type StateField = "string" | "string|null" | "boolean" | "strings" | "strings|absent" | { expected: string; fits: (value: unknown) => boolean };

const STATE_FIELD_KINDS: Record<Exclude<StateField, object>, { expected: string; fits: (value: unknown) => boolean }> = {
  string: { expected: "a string", fits: (v) => typeof v === "string" },
  "string|null": { expected: "a string or null", fits: (v) => typeof v === "string" || v === null },
  boolean: { expected: "true or false", fits: (v) => typeof v === "boolean" },
  strings: { expected: "a list of strings", fits: (v) => Array.isArray(v) && v.every((x) => typeof x === "string") },
  "strings|absent": { expected: "a list of strings, or absent", fits: (v) => v === undefined || (Array.isArray(v) && v.every((x) => typeof x === "string")) },
};

/**
 * A state file kexec-ts wrote (test.json, last-boot.json, /run's arm state), read back and
 * checked field by field: its value, null where there is none, or why it cannot be used. A
 * damaged one had been taken at its word: test.json of {} matched every dump without a test id,
 * "passed". What a damaged file means is each reader's to say.
 */
export function readStateFile<T>(path: string, fields: Record<keyof T, StateField>): { value: T | null; problem: string | null } {
  const file = readJsonFile(path);
  if (file === null) return { value: null, problem: null };
  if (file.problem !== null) return { value: null, problem: file.problem };
  const value = file.json;
  if (value === null || typeof value !== "object" || Array.isArray(value)) return { value: null, problem: `${describeJsonValue(value)}, expected an object` };
  for (const [name, field] of Object.entries(fields) as [string, StateField][]) {
    const v = (value as Record<string, unknown>)[name];
    const kind = typeof field === "string" ? STATE_FIELD_KINDS[field] : field;
    if (!kind.fits(v)) return { value: null, problem: `field ${name} is ${describeJsonValue(v)}, expected ${kind.expected}` };
  }
  return { value: value as T, problem: null };
}

/** A dump's report.json: absent (the save was cut off before writing it), the record, or why it cannot be read. */
function readReport(path: string): { report: DumpReport | null; reportProblem: string | null } {
  const file = readJsonFile(path);
  if (file === null) return { report: null, reportProblem: null };
  if (file.problem !== null) return { report: null, reportProblem: file.problem };
  const { report, problem } = dumpReportFromJson(file.json);
  return { report, reportProblem: problem };
}

/** A directory name not yet used: a second crash within the same second gets -2. */
export function newDumpDir(target: string, base: string): string {
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    try {
      mkdirSync(join(target, name));
      return name;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}

