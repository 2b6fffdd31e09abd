/**
 * `vmcore save` at the edge: the source file, the compression threads, the sink (a file written
 * as DST.incomplete, fsynced and renamed; or a flattened stream on standard output, written with
 * the pipe's back-pressure), and the signals that stop a dump. What goes where in the dump is the
 * core's (core/vmcore/dump-writer.ts).
 */
import { closeSync, fstatSync, unlinkSync, write } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { KexecError } from "../../core/errors.js";
import { hex } from "../../core/format.js";
import { DL_EXCLUDE_ZERO, emptyCounts, excludeByPageFlags, type DumpBitmaps, type ExclusionCounts } from "../../core/vmcore/exclude.js";
import { prepareDumpBitmaps, writeElfDump, writeKdumpDump, type DumpCodec, type DumpExclusion, type DumpFormat, type DumpHooks, type DumpResult, type DumpSink } from "../../core/vmcore/dump-writer.js";
import { FLAT_END, encodeFlatHeader, encodeFlatRecordHeader } from "../../core/vmcore/flat.js";
import { vmcoreKernelMemory, type Vmcore } from "../../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "./open.js";
import { stdoutCarriesTheOutput } from "../entry.js";
import { tryKoffi } from "../ffi.js";
import { checkOutputPath, openTemporaryOutput, outputName, renameOutputIntoPlace, syncAndCloseOutput, temporaryOutputPath, writeError, writeFullyAt } from "../files.js";
import { readFullyAt } from "./file.js";
import { openVmcoreSource } from "./mapped-file.js";
import { inlineCompressor, workerCompressor, type Compressor, type SourceFile } from "./pool.js";
import { Progress } from "./progress.js";

export type { DumpFormat } from "../../core/vmcore/dump-writer.js";

export interface SaveOptions {
  src: string;
  /** A file, or "-" for standard output (flattened only). */
  dst: string;
  format: DumpFormat;
  /** makedumpfile's flattened format (-F): records of (offset, bytes) for a pipe (default: a plain file). */
  flat?: boolean;
  codec: DumpCodec;
  dumpLevel: number;
  /** Compression worker threads beside the main thread (which compresses a share); "auto": one per other core when there is enough to compress to pay for starting them. */
  threads: number | "auto";
  progress: boolean;
  /** Stop after this many pages, as if a fault happened (tests of the incomplete path). */
  faultAfterPages?: number;
  /** Replace a regular file already at `dst` (--force; makedumpfile -f). Never the source, never anything but a regular file. */
  overwrite?: boolean;
  /**
   * The dump's permissions (before the umask): 0o600 unless given, as makedumpfile creates its
   * dumps. A dump is the crashed kernel's memory: its keys, its users' passwords and files.
   */
  mode?: number;
  /** Page frames per window of the 2nd bitmap, kdump or ELF (tests: several windows on a small vmcore); DumpOptions.windowPages. */
  windowPages?: number;
}

export interface SaveResult extends DumpResult {
  /** The file written, for messages: DST, DST.incomplete, or the same beside the file a link at DST names; none on standard output. */
  file?: string;
  /** Seconds spent in fsync of the file and its directory (reported apart: the safety, not the speed). */
  syncSeconds?: number;
}

/** A sink with an end: the flattened stream's end record, and the pipe drained. */
interface OutputSink extends DumpSink {
  finish(): Promise<void>;
}

function writeAllAsync(fd: number, data: Uint8Array, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number) => {
      if (done >= data.length) { resolve(); return; }
      write(fd, data, done, data.length - done, position + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}

/**
 * The dump file. `inline`: the writer's batches are written in this thread too, as makedumpfile
 * writes them, instead of on libuv's threads. A compressed dump writes two small pieces per
 * batch of 256 pages (its pages, ~150 KiB at -d 1 with lzo, and their descriptors, 6 KiB):
 * 5,000 writes for a 4 GiB vmcore. Each one handed to libuv wakes one of its four threads
 * (a futex, 27,000 calls in all), and those threads then compete for two cores with the
 * compressing ones. On the 2-core Intel host of stop 40 (alternating runs, medians), written
 * here: 4 GiB -d 1 lzo 1.575 s against 1.676 with `--threads 0`, 1.276 against 1.396 with a
 * worker; 1 GiB -d 1 zlib 2.182 against 2.242 s. An ELF dump (or a kdump file without
 * compression) writes its pages as they are, a gigabyte per GiB at -d 1, and there the copy
 * into the page cache on another core is worth its wake-ups: 1 GiB -d 1 took 1.101 s so,
 * 1.169 s written inline.
 */
function fileSink(fd: number, path: string, inline: boolean): OutputSink {
  const writeback = writebackStarter(fd);
  return {
    write(offset, data) {
      writeFullyAt(fd, data, Number(offset));
    },
    writeAsync: async (offset, data) => {
      if (inline) writeFullyAt(fd, data, Number(offset));
      else await writeAllAsync(fd, data, Number(offset));
      writeback?.wrote(data.length);
    },
    readBack(offset, into) {
      readFullyAt(fd, path, offset, into, 0, into.length, "the device that holds the dump may be failing", (end) =>
        new KexecError("io", `${path}: reading back the dump's bitmap at ${hex(end)}: the file ends there`, { file: path, offset: end }, "was the dump file truncated while it was written?"));
    },
    // The descriptor is fsynced and closed after this: no writeback call may still be on its way to it.
    finish: async () => { await writeback?.settled(); },
  };
}

/** Dirty bytes between two starts of writeback. */
const WRITEBACK_EVERY = 16 << 20;
const SYNC_FILE_RANGE_WRITE = 2;

/**
 * Starts the disk writing the dump while it is made (sync_file_range SYNC_FILE_RANGE_WRITE over
 * the file, on koffi's own thread, one call at a time), so the fsync at the end finds little
 * left to write and the page cache does not pile up gigabytes of the dump dirty (where the kernel
 * throttles every write). Undefined where koffi or libc.so.6 cannot be loaded: then fsync does it all.
 */
function writebackStarter(fd: number): { wrote(bytes: number): void; settled(): Promise<void> } | undefined {
  const koffi = tryKoffi();
  if (koffi === undefined) return undefined;
  let syncFileRange: { async(...args: unknown[]): void };
  try {
    syncFileRange = koffi.load("libc.so.6").func("int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)") as typeof syncFileRange;
  } catch {
    return undefined; // not glibc (no libc.so.6): the fsync does it all
  }
  let dirty = 0;
  let running: Promise<void> | undefined;
  return {
    wrote(bytes) {
      dirty += bytes;
      if (running || dirty < WRITEBACK_EVERY) return;
      dirty = 0;
      // Offset 0, length 0: the whole file; pages already under writeback are passed over. A failure
      // here is not the dump's: the fsync at the end reports what did not reach the disk.
      running = new Promise((resolve) => syncFileRange.async(fd, 0, 0, SYNC_FILE_RANGE_WRITE, () => { running = undefined; resolve(); }));
    },
    settled: async () => { await running; },
  };
}

/**
 * The flattened format on standard output, through process.stdout: on a pipe that is a libuv
 * stream, which waits for a slow reader (a compressor, ssh) where writeSync(1) on the
 * non-blocking pipe Node makes of it fails with EAGAIN. Records go out in call order. A
 * writeAsync settles once its bytes are in the pipe, not when the stream has queued them: the
 * writer keeps only a few batches in flight, so what waits for a slow reader stays a few MiB
 * (with the stream's own queue as the bound, a reader slower than the save, as ssh over a
 * network is, had the stream hold the whole dump: 236 MiB for a 1 GiB vmcore's ELF dump).
 */
function stdoutFlatSink(): OutputSink {
  const out = process.stdout;
  stdoutCarriesTheOutput();
  let failure: KexecError | undefined;
  let sent = 0;
  // Redirected into a file (> FILE), standard output fails as a file does (ENOSPC), not as a reader that left.
  let toFile = false;
  try { toFile = fstatSync(1).isFile(); } catch { /* a closed descriptor fails the first write, and says so */ }
  // The reader (cat > FILE, a compressor, ssh) stopped: typically a full disk behind the pipe. The
  // error comes as the stream's 'error' event or as a write's callback, whichever Node calls first
  // (a reader gone before the first write: the callback): both are this one KexecError.
  const failWith = (e: NodeJS.ErrnoException): KexecError => failure ??= new KexecError("io", `standard output${toFile ? " (a file)" : ""}: ${e.code === "EPIPE" ? "the reader of the stream went away" : e.message} after ${sent} bytes: the flattened dump is cut short`,
      { file: "-", errno: e.code ?? "EIO", offset: sent }, toFile
        ? `${e.code === "ENOSPC" ? "free some space on the file system of the file standard output goes to" : "check the file standard output goes to"}; what is in it is an incomplete dump`
        : "see why the command reading the stream stopped (its own error: a full file system?); what it wrote is an incomplete dump", { cause: e });
  out.on("error", failWith);
  /** Queues `data` as it is (the caller leaves it untouched until `done`). */
  const put = (data: Uint8Array, done?: (e?: Error | null) => void): void => {
    if (failure) throw failure;
    sent += data.length;
    out.write(data, done);
  };
  put(encodeFlatHeader());
  return {
    // The caller may change `data` once this returns: a copy is queued (headers, descriptors: small).
    write(offset, data) {
      // makedumpfile -R stops at the first record of size 0, taking it for the end.
      if (data.length === 0) return;
      put(encodeFlatRecordHeader(offset, data.length));
      put(data.slice());
    },
    writeAsync: (offset, data) => new Promise<void>((resolve, reject) => {
      if (failure) { reject(failure); return; }
      if (data.length === 0) { resolve(); return; }
      put(encodeFlatRecordHeader(offset, data.length));
      put(data, (e) => (e ? reject(failWith(e)) : failure ? reject(failure) : resolve()));
    }),
    finish: () => new Promise((resolve, reject) => {
      if (failure) { reject(failure); return; }
      out.write(FLAT_END.slice(), (e) => (e ? reject(failWith(e)) : resolve()));
    }),
  };
}

/** The flattened format into a file (as a pipe would have written it). */
function fileFlatSink(fd: number): OutputSink {
  let at = 0;
  const put = (data: Uint8Array) => { writeFullyAt(fd, data, at); at += data.length; };
  put(encodeFlatHeader());
  const record = (offset: bigint, data: Uint8Array) => {
    if (data.length === 0) return;
    put(encodeFlatRecordHeader(offset, data.length));
    put(data);
  };
  return { write: record, async writeAsync(offset, data) { record(offset, data); }, async finish() { put(FLAT_END); } };
}

/** SIGINT, SIGTERM and SIGHUP stop the dump between batches; what was written stays readable. */
class Signals {
  reason: string | undefined;
  private readonly handlers: [NodeJS.Signals, () => void][] = [];
  constructor() {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as NodeJS.Signals[]) {
      const h = () => { this.reason ??= `stopped by ${sig}`; };
      process.on(sig, h);
      this.handlers.push([sig, h]);
    }
  }
  dispose(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
  }
}

export async function saveVmcoreTo(opts: SaveOptions): Promise<SaveResult> {
  const toStdout = opts.dst === "-";
  if (toStdout && !opts.flat) throw new KexecError("usage", "only the flattened format can be written to standard output", { field: "format" }, "use --format flat (makedumpfile -F), then makedumpfile -R to make a file of it");
  // Where the dump goes: DST, or the file a symbolic link at DST names (the link is kept).
  const target = toStdout ? opts.dst : checkDestination(opts.src, opts.dst, opts.overwrite === true);
  const src = openVmcoreSource(opts.src);
  try {
    const core = openVmcoreWithSystemCodecs(src, opts.src);
    const ps = core.memory.pageSize;
    const presentBytes = core.memory.ranges.reduce((sum, r) => sum + (r.end - r.start), 0n);
    // The compression threads start now, so that their start-up overlaps the exclusion scan.
    const threads = opts.format === "elf" || opts.codec === "none" ? 0 : resolveThreads(opts.threads, presentBytes, opts.dumpLevel, opts.codec);
    // With threads to share the exclusion scan, the dumpable bitmap is made in shared memory.
    const sharedScan = threads > 0 && core.elf !== undefined && core.vmcoreinfo !== undefined && (opts.dumpLevel & ~DL_EXCLUDE_ZERO) !== 0;
    // An ELF source is read by the compressing threads themselves: whole runs, seen in place through a mapping (or read).
    const source: SourceFile | undefined = core.elf ? { path: opts.src, readInto: src.readInto, ...(src.view ? { view: src.view } : {}) } : undefined;
    const compressor = threads > 0 ? workerCompressor(opts.codec, ps, threads, source) : inlineCompressor(opts.codec, ps, source);
    try {
      // Both writers make the dumpable bitmap a window at a time (dump-writer.ts), with this
      // exclusion (an ELF dump's has no threads to share: its pages are not compressed).
      const sharing = { failed: false };
      const exclusion: DumpExclusion = sharedScan
        ? { allocate: (bytes) => new Uint8Array(new SharedArrayBuffer(bytes)), prepare: (window) => shareExclusion(core, window, opts, compressor, sharing) }
        : {};
      const tmp = temporaryOutputPath(target);
      let fd = -1;
      if (!toStdout) {
        try {
          // Read as well as written: the 2nd bitmap is read back from it (DumpSink.readBack).
          fd = openTemporaryOutput(tmp, opts.mode ?? 0o600, true);
        } catch (e) {
          throw writeError(e, tmp, "the dump");
        }
      }
      const signals = new Signals();
      let progress: Progress | undefined;
      const hooks: DumpHooks = {
        stopReason: () => signals.reason,
        start: (total) => { progress = new Progress(opts.progress, total); },
        progress: (read, out) => progress?.update(read, out),
        yield: () => new Promise((r) => setImmediate(r)),
      };
      try {
        const sink = toStdout ? stdoutFlatSink() : opts.flat ? fileFlatSink(fd) : fileSink(fd, tmp, opts.format === "kdump" && opts.codec !== "none");
        const dumpOptions = { codec: opts.codec, dumpLevel: opts.dumpLevel, what: opts.src, ...(opts.faultAfterPages === undefined ? {} : { faultAfterPages: opts.faultAfterPages }), ...(opts.windowPages === undefined ? {} : { windowPages: opts.windowPages }) };
        let result: SaveResult;
        try {
          result = opts.format === "elf"
            ? await writeElfDump(core, dumpOptions, sink, hooks, exclusion)
            : await writeKdumpDump(core, dumpOptions, sink, compressor, hooks, exclusion);
        } catch (e) {
          // Not a dump cut short (that is a result, and keeps DST.incomplete): no dump at all, as
          // when the exclusion scan finds VMCOREINFO unusable. Nothing is left behind.
          if (!toStdout) try { unlinkSync(tmp); } catch { /* gone already */ }
          throw e;
        }
        progress?.finish();
        await sink.finish();
        if (!toStdout) {
          // process.hrtime, not performance.now: the first use of `performance` loads node:perf_hooks, 2.7 ms.
          const syncStart = process.hrtime.bigint();
          const written = fd;
          fd = -1;
          syncAndCloseOutput(written, { path: opts.dst, what: "the dump" }, target);
          if (result.complete) renameOutputIntoPlace(tmp, { path: opts.dst, what: "the dump" }, target);
          result.syncSeconds = Number(process.hrtime.bigint() - syncStart) / 1e9;
          result.file = result.complete ? target : tmp;
        }
        return result;
      } finally {
        signals.dispose();
        if (fd >= 0) {
          try { closeSync(fd); } catch { /* already closed */ }
        }
      }
    } finally {
      await compressor.close();
    }
  } finally {
    src.close();
  }
}

/**
 * The dump level's exclusion, shared with the compression threads: they are idle until it ends,
 * and it reads every struct page (64 bytes per 4 KiB page: 256 MiB at 16 GiB, 16 GiB at 1 TiB).
 * The dumpable bitmap is in shared memory, and each thread takes groups of page frames from a
 * common counter (exclude.ts), so a thread still starting leaves the work to the others, and is
 * not waited for (pool.ts). If a thread fails its part, the main thread scans everything again
 * alone: the same bitmap, or the error, told as a scan in this thread tells it.
 */
async function shareExclusion(core: Vmcore, window: DumpBitmaps, opts: SaveOptions, compressor: Compressor, sharing: { failed: boolean }): Promise<void> {
  const first = window.dumpableFirst ?? 0;
  if (!sharing.failed) {
    const counter = new Int32Array(new SharedArrayBuffer(4));
    const shares = compressor.shareExclusion?.({ dumpable: window.dumpable, first, level: opts.dumpLevel, counter }) ?? (() => Promise.resolve([]));
    // This window's counts apart, until every thread's part has succeeded.
    const mine = { ...window, counts: emptyCounts() };
    let failed = false;
    try {
      excludeByPageFlags(vmcoreKernelMemory(core), core.vmcoreinfo!, mine, opts.dumpLevel, core.memory.pageSize, undefined, { claim: () => Atomics.add(counter, 0, 1) });
      window.scanBuffer = mine.scanBuffer;
    } catch {
      failed = true;
      // No group is left for the workers to take: they stop at their next claim.
      Atomics.store(counter, 0, 0x3fffffff);
    }
    const replies = await shares();
    if (!failed && !replies.some((r) => r.error !== undefined)) {
      for (const counts of [mine.counts, ...replies.map((r) => ("counts" in r ? r.counts : undefined))]) {
        if (counts === undefined) continue;
        for (const key of Object.keys(window.counts) as (keyof ExclusionCounts)[]) window.counts[key] += counts[key];
      }
      return;
    }
    // This window and the ones after it are scanned here alone.
    sharing.failed = true;
    window.present.bytesInto(window.dumpable, first / 8);
  }
  prepareDumpBitmaps(core, window, opts.dumpLevel, opts.src);
}

/**
 * Starting two workers costs 70-90 ms here (fresh isolates loading the codecs); they pay for
 * themselves once the pages take longer than that to compress on one thread: zlib level 1 does
 * about 140 MB/s, zstd level 1 about 500 MB/s, liblzo2 about 1 GB/s on vmcore pages (measured
 * on the lab's 6.1 vmcores, most pages of a -d 1 dump being zeros that are only scanned).
 *
 * lzo's bound is the highest because the main thread alone is nearly as fast. On the 2-core
 * Intel host of stop 40, with the dump written in the main thread (fileSink), one worker against
 * none (alternating runs, medians; makedumpfile in brackets): 1 GiB -d 1 0.472 against 0.555 s
 * (0.433), 4 GiB -d 1 1.276 against 1.575 (1.262), 4 GiB -d 31 0.245 against 0.259 (0.174),
 * 16 GiB -d 31 0.421 against 0.534 (0.427); but 1 GiB -d 31, which keeps 88 MiB of pages, 0.201
 * against 0.186 (0.108): the worker's start is not paid back there. Its estimate (a quarter of
 * 1 GiB) is under this bound, a 4 GiB machine's at -d 31 and any 1 GiB machine's at -d 1 above
 * it. Before stop 40 lzo started no worker on two cores: with the writes on libuv's threads, two
 * full bench runs on AMD EPYC hosts had measured one slower by 7-34% on five of ten lzo rows.
 */
const WORKERS_FROM_BYTES: Record<Exclude<DumpCodec, "none">, bigint> = {
  zlib: 16n << 20n,
  snappy: 64n << 20n,
  zstd: 64n << 20n,
  lzo: 512n << 20n,
};

/**
 * The bytes a dump will compress, guessed before the exclusion scan: page-flag levels drop most
 * of a machine (the lab's 1-16 GiB dumps keep 3-13% at -d 31), so a quarter of what is present
 * errs on the side of starting the threads.
 */
function estimatedDumpBytes(presentBytes: bigint, dumpLevel: number): bigint {
  return dumpLevel & ~DL_EXCLUDE_ZERO ? presentBytes / 4n : presentBytes;
}

/** Worker threads: with "auto", one per core but the main thread's, which compresses its share (pool.ts). */
function resolveThreads(threads: number | "auto", presentBytes: bigint, dumpLevel: number, codec: Exclude<DumpCodec, "none">): number {
  if (threads !== "auto") return threads;
  return autoThreads(codec, presentBytes, dumpLevel, typeof availableParallelism === "function" ? availableParallelism() : cpus().length);
}

/** What `--threads auto` starts on `cores` cores for a vmcore with `presentBytes` of memory. */
export function autoThreads(codec: Exclude<DumpCodec, "none">, presentBytes: bigint, dumpLevel: number, cores: number): number {
  return estimatedDumpBytes(presentBytes, dumpLevel) >= WORKERS_FROM_BYTES[codec] && cores >= 2 ? cores - 1 : 0;
}

/**
 * The dump is written as DST.incomplete and renamed over DST: whatever is at DST goes. Beyond what
 * any output refuses (checkOutputPath: the source itself, a directory, a device or FIFO), an
 * existing file is kept unless told to replace it: makedumpfile refuses that too, without -f.
 * DST a symbolic link: both names are beside the file it points at, and that file, if it exists,
 * is the existing one (--force replaces it; the link stays). Returns where the dump is written.
 */
function checkDestination(src: string, dst: string, overwrite: boolean): string {
  const { target, existing } = checkOutputPath({
    path: dst, what: "the dump", command: "vmcore save", exampleName: "vmcore",
    inputs: [{ path: src, what: "the vmcore being saved" }],
    streamHint: "give a file name; to write into a pipe or a device, send the flattened format to standard output (--format flat, DST -) and redirect it",
  });
  if (existing !== undefined && !overwrite) {
    throw new KexecError("usage", `${outputName(dst, target)} exists: vmcore save does not replace it unless told to`, { file: dst, ...(target === dst ? {} : { target }), expected: "a new file", actual: `a file of ${existing.size} bytes` }, `remove ${target === dst ? "it" : target} first, or give --force to replace it`);
  }
  return target;
}
