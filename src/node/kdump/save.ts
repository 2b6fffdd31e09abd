/**
 * `kexec-ts kdump save SETTINGS`: what the capture init runs after a panic. It writes
 * <target>/<host>-<UTC time of the crash>/ in the order that keeps the most if it is cut off:
 *
 *   old dumps removed (count, free-space floor; never this one) → dmesg.txt (small, the most
 *   useful part) → report.json saying "saving" → vmcore (written as vmcore.incomplete, fsynced,
 *   renamed) → report.json with the outcome → capture.log (the init's log and this one).
 *
 * A second panic or a reset during the save leaves report.json at "saving" and the dump marked
 * incomplete, which `kdump report` says after the reboot. Exit 0 when the dump is complete.
 */
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, readFileSync, rmSync, statSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KexecError, isKexecError } from "../../core/errors.js";
import { size } from "../../core/format.js";
import { parseCaptureSettings, type CaptureSettings } from "../../core/kdump/capture-settings.js";
import { analyzeLog, chooseRemovals, dumpDirName, type DumpReport } from "../../core/kdump/dumps.js";
import { listDumps, newDumpDir } from "./dumps.js";
import { formatDmesg, readLockless } from "../../core/vmcore/dmesg.js";
import { vmcoreKernelMemory } from "../../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "../vmcore/open.js";
import { openRandomAccess } from "../vmcore/file.js";
import { saveVmcoreTo } from "../vmcore/save.js";
import { makeDirectories, writeFullyAt } from "../files.js";

export interface CaptureSaveOptions {
  /** The crashed kernel's memory; /proc/vmcore in the capture kernel. */
  vmcore: string;
  /** Where the log lines go besides capture.log (the console). */
  console: (line: string) => void;
  /** Shared with the capture init: its log, and the mark that Node started; null outside the capture kernel. */
  runDir: string | null;
  /** Lines for report.json about where the dump came from (a converted raw copy). */
  notes?: string[];
}

/** `kdump save SETTINGS` in the capture kernel: the settings the initramfs was built with. */
export async function captureSaveFromFile(settingsPath: string, opts: CaptureSaveOptions): Promise<number> {
  if (opts.runDir !== null) {
    try {
      writeFileSync(join(opts.runDir, "started"), `${process.pid}\n`);
    } catch { /* run by hand, outside the capture initramfs */ }
  }
  return (await captureSave(parseCaptureSettings(readFileSync(settingsPath, "utf8"), settingsPath), opts)).exit;
}

/** A log kept for capture.log and printed as it goes. */
class CaptureLog {
  readonly lines: string[] = [];
  private readonly start = performance.now();
  constructor(private readonly out: (line: string) => void) {}
  say(text: string): void {
    this.lines.push(`${this.uptime()} ${text}`);
    this.out(`kexec-ts kdump: ${text}`);
  }
  /** Seconds since the capture kernel booted, the init log's clock, so capture.log reads in one time line. */
  private uptime(): string {
    try {
      return readFileSync("/proc/uptime", "utf8").split(" ")[0]!;
    } catch {
      return ((performance.now() - this.start) / 1000).toFixed(2);
    }
  }
}

/** A "Key:  N kB" line of a /proc file's text (meminfo, status), in bytes; null where there is none. */
function kbField(text: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

function meminfo(): { memTotal: number | null; memAvailable: number | null } {
  try {
    const text = readFileSync("/proc/meminfo", "utf8");
    return { memTotal: kbField(text, "MemTotal"), memAvailable: kbField(text, "MemAvailable") };
  } catch {
    return { memTotal: null, memAvailable: null };
  }
}

/** A field of /proc/self/status, in bytes; null where there is none. */
function selfStatusBytes(key: string): number | null {
  try {
    return kbField(readFileSync("/proc/self/status", "utf8"), key);
  } catch {
    return null;
  }
}

/** This process's private resident memory now (RssAnon: heap, buffers; not the binary's pages, which the kernel can drop). */
const privateResident = (): number | null => selfStatusBytes("RssAnon");

/** Peak resident memory of this process (VmHWM), the figure the reservation has to hold. */
export const residentPeak = (): number | null => selfStatusBytes("VmHWM");

function heapCapMiB(): number | null {
  const flag = process.execArgv.find((a) => a.startsWith("--max-old-space-size="));
  return flag === undefined ? null : Number(flag.slice(flag.indexOf("=") + 1));
}

/**
 * Writes a file and fsyncs it. With `reserve`, the file is padded with spaces to that size, so
 * that rewriting it later (`rewriteInPlace`) needs no new blocks: report.json and capture.log
 * are written before the vmcore and still get their final content when the vmcore fills the target.
 */
function writeDurably(path: string, text: string, reserve = 0): void {
  const fd = openSync(path, "w", 0o600);
  try {
    const body = new TextEncoder().encode(text);
    const bytes = new Uint8Array(Math.max(body.length, reserve)).fill(0x20);
    bytes.set(body, 0);
    writeFullyAt(fd, bytes, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Overwrites from the start and cuts the file to the new length: within the reserved size, a full disk does not stop it. */
function rewriteInPlace(path: string, text: string): void {
  const fd = openSync(path, "r+");
  try {
    const bytes = new TextEncoder().encode(text);
    writeFullyAt(fd, bytes, 0);
    ftruncateSync(fd, bytes.length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Room kept for the final report.json and capture.log (JSON allows the padding spaces; the log's are cut at the end). */
const REPORT_RESERVE = 16 * 1024;
/** How much of the vmcore a second crash during the save may lose. */
const FLUSH_EVERY_MS = 2000;
const LOG_RESERVE = 64 * 1024;

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try { fsyncSync(fd); } finally { closeSync(fd); }
  } catch { /* best effort: some file systems refuse fsync on a directory */ }
}

function freeBytes(dir: string): bigint {
  const s = statfsSync(dir, { bigint: true });
  return s.bavail * s.bsize;
}

function problemText(e: unknown): string {
  if (isKexecError(e)) return e.message;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === "ENOSPC") return "the target is full (ENOSPC)";
  return err?.message ?? String(e);
}

export async function captureSave(settings: CaptureSettings, opts: CaptureSaveOptions): Promise<{ exit: number; dir: string }> {
  const t0 = performance.now();
  const log = new CaptureLog(opts.console);
  const mem = meminfo();
  log.say(`Node ${process.version} started; ${mem.memAvailable === null ? "" : `${size(mem.memAvailable)} available of ${size(mem.memTotal ?? 0)}`}`);

  const src = openRandomAccess(opts.vmcore);
  let core;
  try {
    core = openVmcoreWithSystemCodecs(src, opts.vmcore);
  } catch (e) {
    src.close();
    throw e;
  }
  const crashSeconds = core.vmcoreinfo?.crashTime;
  const crashTime = crashSeconds !== undefined ? new Date(Number(crashSeconds) * 1000) : new Date();
  const kernel = core.vmcoreinfo?.osRelease ?? null;

  // Room first: old dumps go before this one is started, so it is never among them.
  makeDirectories(settings.target);
  const base = dumpDirName(settings.host, crashTime);
  const removals = chooseRemovals(listDumps(settings.target), base, settings.keep, freeBytes(settings.target), BigInt(settings.minFree));
  for (const d of removals) {
    log.say(`removing the old dump ${d.name} (${size(d.bytes)}) to keep ${settings.keep || "any number of"} dumps and ${size(BigInt(settings.minFree))} free`);
    rmSync(join(settings.target, d.name), { recursive: true, force: true });
  }
  const name = newDumpDir(settings.target, base);
  const dir = join(settings.target, name);
  syncDir(settings.target);
  log.say(`saving to ${join(settings.targetInSystem, name)}`);

  const report: DumpReport = {
    format: 1,
    state: "saving",
    host: settings.host,
    crashTime: crashTime.toISOString(),
    kernel,
    panic: null,
    backtrace: [],
    testId: null,
    dump: { file: "vmcore.incomplete", complete: false, bytes: 0, dumpLevel: settings.dumpLevel, codec: settings.codec, pagesWritten: 0, problem: "the save has not finished" },
    dmesg: { error: "not read yet" },
    seconds: { total: 0, dmesg: 0, vmcore: 0 },
    memory: { memTotal: mem.memTotal, memAvailableAtStart: mem.memAvailable, memAvailableLeast: mem.memAvailable, nodeRssPeak: null, nodePrivatePeak: null, heapCapMiB: heapCapMiB() },
    capture: { mode: settings.mode, builtBy: settings.builtBy, kernelRelease: settings.kernelRelease, node: process.version },
    startedAt: new Date().toISOString(),
    finishedAt: null,
    notes: opts.notes ?? [],
  };

  // The log first: it is small and tells most of the story even if nothing else gets written.
  const tDmesg = performance.now();
  try {
    if (core.vmcoreinfo === undefined) throw new KexecError("parse", "the vmcore has no VMCOREINFO", { field: "VMCOREINFO" }, "the crashed kernel wrote no VMCOREINFO (CONFIG_CRASH_CORE); save it with dump level 0 or 1");
    const records = readLockless(vmcoreKernelMemory(core), core.vmcoreinfo);
    const text = formatDmesg(records);
    writeDurably(join(dir, "dmesg.txt"), text);
    const facts = analyzeLog(records.flatMap((r) => r.text.split("\n")));
    Object.assign(report, facts);
    report.dmesg = { file: "dmesg.txt", records: records.length };
    log.say(`dmesg.txt: ${records.length} records; ${facts.panic ?? "no panic line found"}`);
  } catch (e) {
    report.dmesg = { error: problemText(e) };
    log.say(`could not read the crashed kernel's log: ${problemText(e)}`);
  }
  report.seconds.dmesg = (performance.now() - tDmesg) / 1000;
  src.close();
  let initLog = "";
  try {
    if (opts.runDir !== null) initLog = readFileSync(join(opts.runDir, "init.log"), "utf8");
  } catch { /* run by hand */ }
  const logText = () => `${initLog}${initLog && !initLog.endsWith("\n") ? "\n" : ""}${log.lines.join("\n")}\n`;
  writeDurably(join(dir, "report.json"), `${JSON.stringify(report, null, 2)}\n`, REPORT_RESERVE);
  writeDurably(join(dir, "capture.log"), logText(), LOG_RESERVE);
  syncDir(dir);

  const tSave = performance.now();
  // The least memory left while saving is what says whether the reservation was enough, and by how much.
  const sampler = setInterval(() => {
    const now = meminfo().memAvailable;
    if (now !== null && (report.memory.memAvailableLeast === null || now < report.memory.memAvailableLeast)) report.memory.memAvailableLeast = now;
    const anon = privateResident();
    const privatePeak = report.memory.nodePrivatePeak ?? null;
    if (anon !== null && (privatePeak === null || anon > privatePeak)) report.memory.nodePrivatePeak = anon;
  }, 200);
  sampler.unref();
  let exit = 0;
  // The name is made durable before the save starts, and what is written is flushed every few
  // seconds: a second crash or a reset during the save leaves a vmcore.incomplete with what it had.
  const partial = join(dir, "vmcore.incomplete");
  closeSync(openSync(partial, "w", 0o600));
  syncDir(dir);
  const flushFd = openSync(partial, "r");
  const flusher = setInterval(() => {
    try {
      fdatasyncSync(flushFd);
    } catch { /* the save itself reports write errors */ }
  }, FLUSH_EVERY_MS);
  flusher.unref();
  try {
    const result = await saveVmcoreTo({ src: opts.vmcore, dst: join(dir, "vmcore"), format: "kdump", codec: settings.codec, dumpLevel: settings.dumpLevel, threads: settings.threads, progress: false });
    report.dump.complete = result.complete;
    report.dump.file = result.complete ? "vmcore" : "vmcore.incomplete";
    report.dump.pagesWritten = Number(result.pagesWritten);
    report.dump.problem = result.complete ? null : result.missing ?? "unknown";
    if (!result.complete) exit = 74;
  } catch (e) {
    report.dump.problem = problemText(e);
    exit = isKexecError(e) && e.code === "io" ? 74 : 1;
  }
  clearInterval(sampler);
  clearInterval(flusher);
  closeSync(flushFd);
  report.seconds.vmcore = (performance.now() - tSave) / 1000;
  for (const f of ["vmcore", "vmcore.incomplete"]) {
    try {
      report.dump.bytes = statSync(join(dir, f)).size;
      break;
    } catch { /* not this one */ }
  }
  report.state = exit === 0 ? "saved" : "failed";
  report.memory.nodeRssPeak = residentPeak();
  report.finishedAt = new Date().toISOString();
  report.seconds.total = (performance.now() - t0) / 1000;
  log.say(exit === 0
    ? `vmcore: ${size(report.dump.bytes)} in ${report.seconds.vmcore.toFixed(1)} s (dump level ${settings.dumpLevel}, ${settings.codec}); Node's peak ${size(report.memory.nodeRssPeak ?? 0)} (private ${size(report.memory.nodePrivatePeak ?? 0)}); of MemTotal ${size(report.memory.memTotal ?? 0)} the least available ${size(report.memory.memAvailableLeast ?? 0)}`
    : `vmcore NOT complete: ${report.dump.problem}`);
  // Rewritten in the room kept for them, so a full target does not lose them; each is tried on its own.
  try {
    rewriteInPlace(join(dir, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
  } catch (e) {
    log.say(`could not write report.json: ${problemText(e)}`);
  }
  try {
    rewriteInPlace(join(dir, "capture.log"), logText());
  } catch (e) {
    log.say(`could not write capture.log: ${problemText(e)}`);
  }
  syncDir(dir);
  return { exit, dir };
}
