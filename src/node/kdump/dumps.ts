/** The dumps in a target directory, read from disk: names, sizes, their report.json. */
import { mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { dumpDirTime, type DumpEntry, type DumpReport } from "../../core/kdump/dumps.js";

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
  let report: DumpReport | null = null;
  try {
    const r = JSON.parse(readFileSync(join(dir, "report.json"), "utf8")) as DumpReport;
    if (r.format === 1) report = r;
  } catch { /* cut off before it was written, or not ours */ }
  return { ...entry, dir, files, report };
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

