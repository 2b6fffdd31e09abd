/** The dumps in a target directory, read from disk: names, sizes, their report.json. */
import { mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { dumpDirTime, dumpReportFromJson, type DumpEntry, type DumpReport } from "../../core/kdump/dumps.js";
import { specialFileKind } from "../files.js";

function dirBytes(dir: string): number {
  let total = 0;
  for (const f of readdirSync(dir)) {
    try {
      total += statSync(join(dir, f)).size;
    } catch { /* removed meanwhile */ }
  }
  return total;
}

/** Dumps of ours in the target (<host>-<UTC time> directories), oldest first. */
export function listDumps(target: string): DumpEntry[] {
  let names: string[];
  try {
    names = readdirSync(target);
  } catch {
    return [];
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
  /** File name → size in bytes. */
  files: Record<string, number>;
  report: DumpReport | null;
  /** Why report.json is there but unreadable (not JSON, a field missing or of the wrong type); null when read or absent. */
  reportProblem: string | null;
}

export function readDump(target: string, entry: DumpEntry): DumpOnDisk {
  const dir = join(target, entry.name);
  const files: Record<string, number> = {};
  try {
    for (const f of readdirSync(dir).sort()) {
      try {
        files[f] = statSync(join(dir, f)).size;
      } catch { /* removed meanwhile */ }
    }
  } catch { /* gone */ }
  return { ...entry, dir, files, ...readReport(join(dir, "report.json")) };
}

/** A dump's report.json: absent (the save was cut off before writing it), the record, or why it cannot be read. */
function readReport(path: string): { report: DumpReport | null; reportProblem: string | null } {
  let text: string;
  try {
    // A FIFO or device under that name would block the read, or never end it.
    const st = statSync(path);
    if (!st.isFile()) return { report: null, reportProblem: `it is ${st.isDirectory() ? "a directory" : specialFileKind(st)}, not a file` };
    text = readFileSync(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") return { report: null, reportProblem: null };
    return { report: null, reportProblem: `cannot read it: ${err.message}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { report: null, reportProblem: `not JSON (${(e as Error).message})` };
  }
  const { report, problem } = dumpReportFromJson(json);
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

