/**
 * After the reboot: what the last crash left. `kdump report` (run by kexec-ts-kdump-report.service
 * before the service re-arms) summarizes each dump not reported yet to the journal, converts a
 * raw copy the capture init left on raw_target, tells a crash that left nothing from a clean
 * reboot, and settles a pending `kdump test`.
 */
import { closeSync, existsSync, lstatSync, openSync, readSync, rmSync, statSync, writeSync, fsyncSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { RAW_RECORD_MAGIC, RAW_RECORD_SIZE } from "../../core/kdump/capture-init.js";
import { dumpDirTime, type DumpReport } from "../../core/kdump/dumps.js";
import type { CaptureSettings } from "../../core/kdump/capture-settings.js";
import { isKexecError, type KexecError } from "../../core/errors.js";
import { describeJsonValue } from "../../core/format.js";
import { captureSave } from "./save.js";
import { checkDumpTarget, listDumps, readDump, readJsonFile, readStateFile, summarizeDumpOnDisk, targetError, type DumpOnDisk } from "./dumps.js";
import { makeDirectories, writeFullyAt } from "../files.js";
import { bootStatePath, reportedPath, testStatePath, type KdumpPaths } from "./paths.js";
import { readBootId, writeJsonDurably, type BootRecord } from "./service.js";
import type { KdumpConfig } from "../../core/kdump/config.js";

export interface TestState {
  id: string;
  at: string;
  bootId: string | null;
}

export interface TestResult {
  id: string;
  at: string;
  result: "pending" | "passed" | "failed";
  detail: string;
  dump: string | null;
}

/** A pending `kdump test`'s outcome: the dump whose log carries its id, or why there is none. */
export function testResult(paths: KdumpPaths, dumps: readonly DumpOnDisk[]): TestResult | null {
  const path = testStatePath(paths);
  const { value: t, problem } = readStateFile<TestState>(path, { id: "string", at: "string", bootId: "string|null" });
  // Not known to have passed: said so, with what to do.
  if (problem !== null) return { id: "(unreadable)", at: "unknown", result: "failed", dump: null, detail: `${path} is damaged: ${problem}; the test's outcome cannot be told (run kdump test again)` };
  if (t === null) return null;
  const hit = dumps.find((d) => d.report?.testId === t.id);
  if (hit !== undefined) {
    // The directory's word too: a vmcore gone or cut since the save is no proof the capture works.
    // Not known to be whole (a directory this user may not list) is not a pass either, nor called incomplete.
    const detail = hit.complete === true ? `the test crash was captured: ${hit.dir}`
      : hit.complete === null ? `the test crash's dump ${hit.dir} cannot be checked: ${hit.problem}` : `the test crash left an incomplete dump: ${hit.problem ?? hit.report!.state}`;
    return { id: t.id, at: t.at, result: hit.complete === true ? "passed" : "failed", dump: hit.dir, detail };
  }
  if (t.bootId !== null && t.bootId === readBootId()) return { id: t.id, at: t.at, result: "pending", dump: null, detail: "the test crash has not happened in this boot yet" };
  return { id: t.id, at: t.at, result: "failed", dump: null, detail: `the machine rebooted after the test crash of ${t.at}, and no dump carries its id: the capture did not save (see the console log)` };
}

/** The record the capture init writes in the raw target's last 4 KiB, if there is a new one. */
export interface RawRecord {
  time: string;
  bytes: number;
  vmcore: number;
  complete: boolean;
  reason: string;
}

export function readRawRecord(device: string): RawRecord | null {
  let fd: number;
  try {
    // A block device (or, for tests and images, a file) only: open() on a FIFO waits for a writer,
    // and raw_target = a FIFO (a typo for /run/initctl, say) hung the report service at every boot,
    // and with it the arming service ordered after it. start refuses anything but a block device.
    const st = statSync(device);
    if (!st.isBlockDevice() && !st.isFile()) return null;
    fd = openSync(device, "r");
  } catch {
    return null;
  }
  try {
    const sizeBytes = deviceSize(device);
    if (sizeBytes === null || sizeBytes < RAW_RECORD_SIZE) return null;
    const buf = Buffer.alloc(RAW_RECORD_SIZE);
    readSync(fd, buf, 0, RAW_RECORD_SIZE, sizeBytes - RAW_RECORD_SIZE);
    const text = buf.toString("latin1").replace(/\0.*$/s, "");
    if (!text.startsWith(`${RAW_RECORD_MAGIC}\n`)) return null;
    const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(text)?.[1] ?? "";
    return { time: field("time"), bytes: Number(field("bytes")), vmcore: Number(field("vmcore")), complete: field("complete") === "1", reason: field("reason") };
  } finally {
    closeSync(fd);
  }
}

function deviceSize(device: string): number | null {
  try {
    const st = statSync(device);
    if (st.isFile()) return st.size;
    const base = device.split("/").pop()!;
    const sectors = Number(readSmallText(`/sys/class/block/${base}/size`));
    return Number.isFinite(sectors) ? sectors * 512 : null;
  } catch {
    return null;
  }
}

function readSmallText(path: string): string {
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf, 0, 64, 0);
    return buf.toString("utf8", 0, n).trim();
  } finally {
    closeSync(fd);
  }
}

/** Marks the record consumed, so the next report does not convert it again. */
function consumeRawRecord(device: string): void {
  const size = deviceSize(device);
  if (size === null) return;
  const fd = openSync(device, "r+");
  try {
    writeSync(fd, Buffer.alloc(RAW_RECORD_SIZE), 0, RAW_RECORD_SIZE, size - RAW_RECORD_SIZE);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A raw copy of /proc/vmcore on the raw target becomes a dump directory as the capture kernel
 * would have written it (dmesg.txt, report.json, the vmcore at the configured level and codec).
 * The ELF core is first copied out to a file in the target: a block device's size is not its
 * content's, and the save reads its source by name.
 */
async function convertRawCopy(config: KdumpConfig, record: RawRecord, say: (line: string) => void): Promise<string | null> {
  const device = config.rawTarget!;
  makeDirectories(config.target);
  const elf = join(config.target, `.kexec-ts-raw-${process.pid}.elf`);
  const src = openSync(device, "r");
  const dst = openSync(elf, "w");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let at = 0; at < record.bytes;) {
      const n = readSync(src, buf, 0, Math.min(buf.length, record.bytes - at), at);
      if (n === 0) break;
      writeFullyAt(dst, buf.subarray(0, n), at);
      at += n;
    }
    fsyncSync(dst);
  } finally {
    closeSync(src);
    closeSync(dst);
  }
  const why = `the capture kernel could not start Node (${record.reason || "no reason recorded"}); converted from the raw copy it left on ${device} at ${record.time}`;
  const notes = [why, ...(record.complete ? [] : [`the raw copy holds ${record.bytes} of the ${record.vmcore} bytes of /proc/vmcore`])];
  try {
    const settings: CaptureSettings = {
      format: 1, builtBy: "", host: hostname(), mode: config.mode, target: config.target, targetInSystem: config.target, codec: config.codec, dumpLevel: config.dumpLevel,
      keep: 0, minFree: "0", threads: 0, failureAction: config.failureAction, finalAction: config.finalAction, kernelRelease: "",
    };
    const { dir } = await captureSave(settings, { vmcore: elf, console: () => {}, runDir: null, notes });
    say(`${why}: ${dir}`);
    return dir;
  } catch (e) {
    say(`${why}, but it could not be converted: ${isKexecError(e) ? e.message : String(e)}`);
    return null;
  } finally {
    rmSync(elf, { force: true });
  }
}

export interface ReportResult {
  /** Dumps summarized this time (not reported before), oldest first. */
  /** `complete`/`problem`: report.json held against the directory (a vmcore removed or cut since is not complete; null: not known). */
  fresh: { dir: string; lines: string[]; report: DumpReport | null; reportProblem: string | null; listProblem: string | null; complete: boolean | null; problem: string | null }[];
  latest: { dir: string; lines: string[] } | null;
  previousBoot: string | null;
  test: TestResult | null;
  rawCopy: string | null;
  /** What was wrong but did not stop the report (a damaged bookkeeping file). */
  warnings: string[];
  /** Why which dumps were reported could not be recorded: the summaries stand, and the command fails after printing them. */
  recordError: KexecError | null;
  lines: string[];
}

/**
 * The names of the dumps already reported. A damaged bookkeeping file counts as none, with a
 * warning naming it: summarizing every dump again once is harmless, a report service that
 * fails at every boot (before the service re-arms) is not.
 */
function readReportedNames(path: string): { names: string[]; warning: string | null } {
  const damaged = (why: string) => ({ names: [], warning: `${path} is damaged (${why}): every dump counts as not reported yet, and the file is written anew` });
  const file = readJsonFile(path);
  if (file === null) return { names: [], warning: null };
  if (file.problem !== null) return damaged(file.problem);
  const json = file.json;
  // A list or null had been "field names ... found absent": the file is not the object that holds it.
  if (json === null || typeof json !== "object" || Array.isArray(json)) return damaged(`expected an object { "names": [...] }, found ${describeJsonValue(json)}`);
  const names = (json as { names?: unknown }).names;
  if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
    const found = Array.isArray(names) ? "a list with a non-string in it" : describeJsonValue(names);
    return damaged(`field names: expected a list of dump names, found ${found}`);
  }
  return { names: names as string[], warning: null };
}

/**
 * The names the bookkeeping keeps: the dumps there now (all reported by this run), and the names
 * reported before whose entry is still in the target though not listed as a dump (a symbolic
 * link to a disk not mounted yet: dropped, it would be reported again once it is). The names of
 * dumps removed since (by retention, by hand) go: the file had grown by one name per crash for ever.
 */
function namesToRecord(target: string, reported: ReadonlySet<string>, dumps: readonly DumpOnDisk[]): string[] {
  const listed = new Set(dumps.map((d) => d.name));
  const stillThere = (name: string): boolean => {
    try {
      lstatSync(join(target, name));
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code !== "ENOENT";
    }
  };
  // A name that is no dump directory's (a hand-edited file: "", "..", "a/b") can never be listed again.
  const dumpName = (name: string): boolean => !name.includes("/") && dumpDirTime(name) !== null;
  return [...listed, ...[...reported].filter((n) => !listed.has(n) && dumpName(n) && stillThere(n))];
}

/** `kdump report`: the summary lines (for the journal) and what they were made from. */
export async function reportCrashes(config: KdumpConfig, paths: KdumpPaths, options: { all: boolean }): Promise<ReportResult> {
  const lines: string[] = [];
  const say = (l: string) => lines.push(l);
  // Before the raw copy is converted into it and its record consumed.
  checkDumpTarget(config.target, paths.config);
  let rawCopy: string | null = null;
  if (config.rawTarget !== null) {
    const record = readRawRecord(config.rawTarget);
    if (record !== null) {
      rawCopy = await convertRawCopy(config, record, say);
      consumeRawRecord(config.rawTarget);
    }
  }
  const bookkeeping = readReportedNames(reportedPath(config.target));
  const warnings = bookkeeping.warning === null ? [] : [bookkeeping.warning];
  for (const w of warnings) say(`warning: ${w}`);
  const reported = new Set(bookkeeping.names);
  const dumps = listDumps(config.target, paths.config).map((d) => readDump(config.target, d));
  const fresh = dumps.filter((d) => options.all || !reported.has(d.name)).map((d) => ({ dir: d.dir, lines: summarizeDumpOnDisk(d), report: d.report, reportProblem: d.reportProblem, listProblem: d.listProblem, complete: d.complete, problem: d.problem }));
  for (const f of fresh) lines.push(...f.lines);
  const last = dumps[dumps.length - 1];
  const latest = last === undefined ? null : { dir: last.dir, lines: summarizeDumpOnDisk(last) };
  if (fresh.length === 0) lines.push(latest === null ? `no dumps in ${config.target}` : `no new dump; the latest is ${latest.dir}`);

  // A boot that ended while armed, without a clean stop and without a new dump: the crash left nothing behind.
  let previousBoot: string | null = null;
  const { value: boot, problem: bootProblem } = readStateFile<BootRecord>(bootStatePath(paths), { bootId: "string|null", armed: "boolean", armedAt: "string|null", cleanStop: "boolean" });
  if (bootProblem !== null) {
    const w = `${bootStatePath(paths)} is damaged: ${bootProblem}; whether the previous boot ended in a crash without a dump is not told (the service rewrites it at its next start)`;
    warnings.push(w);
    say(`warning: ${w}`);
  }
  const current = readBootId();
  if (boot !== null && boot.bootId !== current && boot.armed && !boot.cleanStop) {
    const armedAt = boot.armedAt === null ? 0 : Date.parse(boot.armedAt);
    const after = dumps.some((d) => d.time.getTime() >= armedAt - 1000) || rawCopy !== null;
    if (!after) {
      previousBoot = `the previous boot ended without a clean shutdown while kdump was armed (since ${boot.armedAt}), and no dump was saved: if it crashed, the capture failed before it could write (the console shows why; set raw_target for a last-resort copy)`;
      lines.push(previousBoot);
    }
  }
  const test = testResult(paths, dumps);
  if (test !== null) lines.push(`kdump test ${test.id} (${test.at}): ${test.result}: ${test.detail}`);
  let recordError: KexecError | null = null;
  // Where the target does not exist, no dump was saved and there is nothing to record. Writing the
  // file there made the directory: at boot, before the service arms, that turned a target = typo
  // (or a target on a disk not mounted) into a directory on whatever file system held its parent,
  // and start's "the target does not exist" refusal into a capture that saves there.
  if (existsSync(config.target)) {
    try {
      writeJsonDurably(reportedPath(config.target), { names: namesToRecord(config.target, reported, dumps) });
    } catch (e) {
      recordError = targetError(e, reportedPath(config.target), "record which dumps were reported", paths.config);
    }
  }
  return { fresh, latest, previousBoot, test, rawCopy, warnings, recordError, lines };
}
