/**
 * The dump writers: pages of a vmcore in, in pfn order; positioned writes out, to a sink that is a
 * seekable file or a flattened stream. Pure: compression comes in as a BatchCompressor (worker
 * threads in Node, the built-in encoders elsewhere), stopping as hooks.stopReason() (signals),
 * progress as hooks.progress. Memory stays bounded: a window of the 2nd bitmap (for an ELF dump
 * too, whose segment list, planned a window at a time, is what grows with the machine) plus a
 * few batches in flight; page descriptors and data go to the sink as each batch completes.
 *
 * A dump cut short stays readable and says so. The kdump header is written first already marked
 * DUMP_DH_COMPRESSED_INCOMPLETE (for ELF, kexec-ts's note says "in progress") and rewritten
 * unmarked only at the end; on a stop, a read or a write error the written prefix is kept
 * consistent: the 2nd bitmap (or the PT_LOADs' p_filesz) is cut to the pages that are in the file,
 * and the result says what is missing.
 */
import { KexecError } from "../errors.js";
import { hex, size } from "../format.js";
import { BatchReadError, PAGE_SKIPPED, PAGE_ZERO, batchOutBytes, type CompressedBatch, type FileExtents, type PageCompressInto } from "./batch.js";
import type { PageCodec } from "./codecs.js";
import { printkPageFrames } from "./dmesg.js";
import { KEXEC_TS_NOTE_DESC, KEXEC_TS_NOTE_NAME, NT_KEXEC_TS_COMPLETE, NT_KEXEC_TS_INCOMPLETE, elfHeaderSize, encodeElfCoreHeader, encodeNote, type OutputLoad } from "./elf-writer.js";
import { DL_EXCLUDE_ZERO, PresentPages, clearBit, emptyCounts, excludeByPageFlags, isZeroPage, setBit, testBit, type DumpBitmaps, type ExclusionCounts } from "./exclude.js";
import { CODEC_FLAG, DUMP_DH_COMPRESSED_INCOMPLETE, PAGE_DESC_SIZE, encodeKdumpHeaders, findVmcoreinfo, planKdumpLayout, popcount, rankIndex, writePageDesc, type Utsname } from "./kdump.js";
import { ELF_DUMP_LIMIT, KDUMP_WRITER_LIMIT } from "./page-frame-limits.js";
import { crashedUtsname } from "./utsname.js";
import { vmcoreKernelMemory, type Vmcore } from "./vmcore.js";

export type DumpFormat = "kdump" | "elf";
export type DumpCodec = PageCodec | "none";

export interface DumpOptions {
  codec: DumpCodec;
  dumpLevel: number;
  /** The source, for messages: "/proc/vmcore". */
  what: string;
  /** The header's utsname; by default the crashed kernel's own (crashedUtsname). */
  utsname?: Utsname;
  /** Stop after this many pages, as if a fault happened (tests of the incomplete path). */
  faultAfterPages?: number;
  /** Page frames per window of the 2nd bitmap, kdump or ELF (tests: windows on a small dump); WINDOW_PAGES by default. */
  windowPages?: number;
}

/** Where bytes go: a seekable file, or a flattened stream of (offset, bytes) records. */
export interface DumpSink {
  /** Done with `data` when it returns (written, or copied): the caller may change it afterwards. */
  write(offset: bigint, data: Uint8Array): void;
  /** The same, possibly later (another thread, a pipe's back-pressure); `data` must stay untouched until it settles. */
  writeAsync(offset: bigint, data: Uint8Array): Promise<void>;
  /**
   * Reads back `into.length` bytes written before at `offset`: a file can, a pipe cannot. With
   * it, pass 2 reads the 2nd bitmap's windows back from the file; without it, it makes them again.
   */
  readBack?(offset: bigint, into: Uint8Array): void;
}

export interface BatchCompressor {
  /**
   * `pages` and `out` (each as big as the batch) belong to the compressor until the promise
   * settles; they come back in the result (or in a BatchReadError). With `extents`, those pages
   * are taken from the source file by the thread that compresses them (compressBatch). With
   * `sizes`, the page sizes go there (the result's sizes are a view of it).
   */
  submit(pages: Uint8Array, count: number, skip: Uint8Array, out: Uint8Array, extents?: FileExtents, sizes?: Int32Array): Promise<CompressedBatch>;
  /** One page, in the calling thread (the log's pages, stored before the batches). */
  readonly compressOne: PageCompressInto;
  /** Batches it compresses at once (its threads); 1 when it compresses in the calling thread. */
  readonly parallel?: number;
  /** Where batch buffers come from, when the compressor needs them in memory its threads share. */
  batchBuffer?(bytes: number): Uint8Array;
  /**
   * Called before waiting for the batch `waitingFor` (a promise submit returned). While another
   * thread is still compressing it, compresses here, now, the oldest batch handed to another
   * thread that has not begun it, and returns true. False when there is nothing to take back or
   * no need (the batch is compressed already, or was compressed here).
   */
  takeBack?(waitingFor: Promise<CompressedBatch>): boolean;
}

export interface DumpHooks {
  /** Why to stop now (a signal), or undefined to go on; asked between batches. */
  stopReason?(): string | undefined;
  start?(totalBytes: bigint): void;
  progress?(readBytes: bigint, outputBytes: bigint): void;
  /** Let other work run (signal handlers, a progress timer); asked every few thousand pages. */
  yield?(): Promise<void>;
}

export interface DumpResult {
  complete: boolean;
  pagesWritten: bigint;
  bytesWritten: bigint;
  counts: ExclusionCounts;
  missing?: string;
}

/**
 * 1 MiB of pages per batch. Each batch in flight holds two buffers of this size (the pages, and
 * what is stored of them), first touched when made: 4 MiB batches, 4 in flight, were 40 of the
 * 100 MiB peak RSS of a -d 31 save of a 1 GiB vmcore, and their page faults a tenth of its time.
 */
const BATCH_PAGES = 256;
/** What writeKdumpDump's startBatch returns instead of the next page frame: negative, never a page frame. */
const WINDOW_DONE = -1;
const STOPPED = -2;
/**
 * Batches read ahead of the writer, per batch compressed at once: one compressing, one being
 * written behind it.
 */
const IN_FLIGHT_PER_COMPRESSOR = 2;

/**
 * The 1st bitmap goes to the file in pieces of this size (8 Mi page frames, 32 GiB of 4 KiB
 * pages, each): pieces of 4 MiB were 5 MiB of a 1 TiB save's peak RSS.
 */
export const BITMAP_PIECE_BYTES = 1 << 20;

/**
 * The 2nd bitmap of a kdump file is made, counted and written a window of page frames at a time
 * (2 MiB of bitmap for 64 GiB of 4 KiB pages), then read back from the file window by window as
 * the pages are written: held whole it is 32 MiB per TiB, the one part of a save that grew with
 * the machine (103 MiB peak at 1 TiB against 63 at 16 GiB). makedumpfile's cyclic mode does the
 * same with its own window. A multiple of EXCLUSION_GROUP_PAGES: no buddy block or compound page
 * crosses a window, so a windowed scan clears the bits a whole one does. Where the output cannot
 * be read back (a flattened stream), each window is made again for pass 2: the exclusion scan
 * runs twice, as in makedumpfile's cyclic mode, where a bitmap held whole would be 32 MiB per TiB
 * in a capture kernel's crashkernel= reservation. The ELF writer plans its PT_LOADs from the same
 * windows (writeElfDump).
 */
export const WINDOW_PAGES = 1 << 24;

/**
 * The pages to dump: the dump level's exclusion by page flags (needs VMCOREINFO), and, from a
 * kdump-compressed source, only what its own dump level kept.
 */
export function prepareDumpBitmaps(core: Vmcore, bitmaps: DumpBitmaps, dumpLevel: number, what: string): void {
  if (dumpLevel & ~DL_EXCLUDE_ZERO) {
    if (!core.vmcoreinfo) throw new KexecError("parse", `${what} has no VMCOREINFO, so dump level ${dumpLevel} cannot read page flags`, { field: "VMCOREINFO" }, "use dump level 0 or 1");
    excludeByPageFlags(vmcoreKernelMemory(core), core.vmcoreinfo, bitmaps, dumpLevel, core.memory.pageSize);
  }
  if (core.kdump) {
    const has = core.memory.hasPage ? (p: number) => core.memory.hasPage!(BigInt(p)) : (p: number) => core.memory.readPage(BigInt(p)) !== undefined;
    const base = bitmaps.dumpableFirst ?? 0;
    const end = Math.min(Number(bitmaps.maxPfn), base + bitmaps.dumpable.length * 8);
    for (let p = base; p < end; p++) if (testBit(bitmaps.dumpable, p - base) && !has(p)) clearBit(bitmaps.dumpable, p - base);
  }
}

/**
 * The dump level's exclusion for one window of the 2nd bitmap: `bitmaps.dumpable` holds page
 * frames from `bitmaps.dumpableFirst` on, each set where the page is present; clear those the
 * dump leaves out, adding to `bitmaps.counts`. By default prepareDumpBitmaps; the edge shares it
 * with its compression threads.
 */
export type PrepareWindow = (bitmaps: DumpBitmaps) => void | Promise<void>;

/** How writeKdumpDump makes the 2nd bitmap. */
export interface DumpExclusion {
  prepare?: PrepareWindow;
  /** Where a window's bitmap is made (shared memory, for a scan split between threads). */
  allocate?: (bytes: number) => Uint8Array;
}

export function describeFault(e: unknown): string {
  if (e && typeof e === "object" && "code" in e && (e as { code: string }).code === "ENOSPC") return "the output device is full (ENOSPC)";
  return e instanceof Error ? e.message : String(e);
}

/**
 * A read error in the source, named once: the source's own errors start with its name. No page
 * frame: the message that ends the dump names the one where it stops being complete.
 */
function readError(what: string, message: string): string {
  return `read error in ${message.startsWith(`${what}: `) ? message : `${what}: ${message}`}`;
}

/** The first page frame of `bits` (bit 0 is page frame `first`) from bit `from` on that is set and not in `skip`. */
function firstSetPfn(bits: Uint8Array, first: number, from: number, skip: ReadonlyMap<number, unknown>): number | undefined {
  for (let i = from; i < bits.length * 8; i++) {
    if ((i & 7) === 0 && bits[i >>> 3] === 0) { i += 7; continue; }
    if ((bits[i >>> 3]! & (1 << (i & 7))) !== 0 && !skip.has(first + i)) return first + i;
  }
  return undefined;
}

export async function writeKdumpDump(core: Vmcore, opts: DumpOptions, sink: DumpSink, compressor: BatchCompressor, hooks: DumpHooks = {}, exclusion: DumpExclusion = {}): Promise<DumpResult> {
  const ps = core.memory.pageSize;
  const info = core.vmcoreinfo;
  const noteBytes = core.noteBytes;
  // Page frames to 2^40: the 2nd bitmap is held a window at a time, and every bit index is
  // relative to its window's first page frame (absolute page frames are doubles, never `>>> 3`).
  const present = new PresentPages(core.memory.ranges, ps, KDUMP_WRITER_LIMIT);
  const maxPfn = present.maxPfn;
  const codecFlag = opts.codec === "none" ? 0 : CODEC_FLAG[opts.codec];
  const headerInput = {
    utsname: opts.utsname ?? crashedUtsname(core).utsname,
    timestampSec: info?.crashTime ?? 0n,
    status: codecFlag | DUMP_DH_COMPRESSED_INCOMPLETE,
    blockSize: ps, maxMapnr: BigInt(maxPfn), nrCpus: core.cpus,
    physBase: BigInt.asUintN(64, info?.numbers.get("phys_base") ?? 0n), dumpLevel: opts.dumpLevel,
    noteBytes, vmcoreinfoInNotes: findVmcoreinfo(noteBytes), descCount: 0n,
  };
  // Where the bitmaps go does not depend on how many pages are dumped; only where the data starts does.
  let layout = planKdumpLayout(headerInput);
  // Headers first, already marked incomplete: a dump cut short at any point is recognisable.
  sink.write(0n, encodeKdumpHeaders(headerInput, layout));
  const bitmapBytes = (layout.bitmapBlocks * ps) / 2;
  const secondAt = layout.bitmapOffset + BigInt(bitmapBytes);

  // The 2nd bitmap, a window at a time where the dump needs more than one.
  const span = windowSpan(maxPfn, opts.windowPages ?? WINDOW_PAGES);
  const windowFirsts: number[] = [];
  for (let first = 0; first < maxPfn; first += span) windowFirsts.push(first);
  const windowed = windowFirsts.length > 1;
  const buffer = (exclusion.allocate ?? ((n: number) => new Uint8Array(n)))(Math.ceil(Math.min(span, maxPfn) / 8));
  const bitmaps: DumpBitmaps = { present, dumpable: buffer, dumpableFirst: 0, maxPfn: BigInt(maxPfn), counts: emptyCounts(), presentPages: BigInt(present.count) };
  let current = -1; // the window bitmaps.dumpable holds
  // A window's first page frame is a multiple of 8: its bits start at a whole byte of the bitmap.
  const windowAt = (w: number) => secondAt + BigInt(windowFirsts[w]! / 8);
  const setWindow = (w: number) => {
    const first = windowFirsts[w]!;
    bitmaps.dumpable = buffer.subarray(0, Math.ceil((Math.min(maxPfn, first + span) - first) / 8));
    bitmaps.dumpableFirst = first;
    current = w;
  };
  const prepare = exclusion.prepare ?? ((b: DumpBitmaps) => prepareDumpBitmaps(core, b, opts.dumpLevel, opts.what));
  // What changed a window's bits after pass 1 made them, for a window made again (below).
  const remade = {
    /** Windows from this one on were left empty by a stop during pass 1. */
    emptyFrom: windowFirsts.length,
    /** Page frames pass 2 found absent from a kdump source, by window. */
    absent: new Map<number, number[]>(),
    /** A dump cut short: every page frame from here on is out, but for the log's (`early`). */
    cutFrom: undefined as number | undefined,
  };
  /**
   * Window w made again into bitmaps.dumpable, where the output cannot be read back: the
   * exclusion (its counts already taken in pass 1), then what changed the bits since.
   */
  const remakeWindow = async (w: number) => {
    const first = windowFirsts[w]!;
    const bits = bitmaps.dumpable;
    if (w >= remade.emptyFrom) bits.fill(0);
    else {
      present.bytesInto(bits, first / 8);
      const counted = { ...bitmaps.counts };
      await prepare(bitmaps);
      Object.assign(bitmaps.counts, counted);
    }
    for (const p of remade.absent.get(w) ?? []) clearBit(bits, p - first);
    if (remade.cutFrom !== undefined) cutWindow(bits, first, remade.cutFrom);
  };
  /** A window's bits from page frame `cut` on cleared, but for the log's pages, stored first. */
  const cutWindow = (bits: Uint8Array, first: number, cut: number) => {
    const from = Math.max(cut, first) - first;
    if (from >= bits.length * 8) return;
    bits[from >>> 3]! &= (1 << (from & 7)) - 1;
    bits.fill(0, (from >>> 3) + 1);
    for (const p of early.keys()) if (p >= first + from && p < first + bits.length * 8) setBit(bits, p - first);
  };
  /** Window w's bits in bitmaps.dumpable, read back from the file (or made again) unless they are there already. */
  const loadWindow = async (w: number) => {
    if (w === current) return;
    setWindow(w);
    if (!windowed) return;
    if (sink.readBack) sink.readBack(windowAt(w), bitmaps.dumpable);
    else await remakeWindow(w);
  };
  // Pass 1: each window made from the present pages, the exclusion run on it, counted, and (when
  // there are several) written to its place in the output, whence pass 2 reads it back if it can.
  let descTotal = 0;
  // Dumpable pages per window (pass 1's counts, less what pass 2 clears): ranks without reading every window back.
  const windowCounts: number[] = [];
  for (let w = 0; w < windowFirsts.length; w++) {
    setWindow(w);
    present.bytesInto(bitmaps.dumpable, windowFirsts[w]! / 8);
    // A window without a present page (a hole: most of a machine with a node at 12 TiB) has
    // nothing to scan or count; its zeros are still written, as makedumpfile writes them.
    const holdsMemory = present.anyIn(windowFirsts[w]!, bitmaps.dumpable.length * 8);
    // Stopped while scanning (a signal; a TiB's scan takes seconds): the windows left are empty,
    // pass 2 stops before its first batch, and the dump is incomplete, with the log's pages.
    if (w > 0) await hooks.yield?.();
    if (hooks.stopReason?.()) {
      bitmaps.dumpable.fill(0);
      remade.emptyFrom = Math.min(remade.emptyFrom, w);
    } else if (holdsMemory) await prepare(bitmaps);
    windowCounts.push(holdsMemory ? Number(popcount(bitmaps.dumpable)) : 0);
    descTotal += windowCounts[w]!;
    // Awaited: into a pipe, the next window must not be made in this buffer while it waits.
    if (windowed) await sink.writeAsync(windowAt(w), bitmaps.dumpable);
  }
  // The scan's buffer served every window; pass 2 has no use for it unless it makes them again.
  if (!windowed || sink.readBack) bitmaps.scanBuffer = undefined;
  const descCount = BigInt(descTotal);
  headerInput.descCount = descCount;
  layout = planKdumpLayout(headerInput);
  const total = descCount * BigInt(ps);
  hooks.start?.(total);
  // The 1st bitmap is made and written a piece at a time from its runs; the 2nd, held whole, is
  // written as it is (in windows, pass 1 wrote them), then zeros up to its whole blocks. No bitmap
  // is copied or padded whole: on a 1 TiB machine each is 32 MiB. Each piece is awaited: into a
  // pipe (a flattened stream to ssh) a write waits for the reader, where sink.write would queue
  // both bitmaps in memory (64 MiB per TiB) before the reader had taken any.
  const writeBitmaps = async () => {
    const piece = new Uint8Array(Math.min(bitmapBytes, BITMAP_PIECE_BYTES));
    for (let at = 0; at < bitmapBytes; at += piece.length) {
      const part = piece.subarray(0, Math.min(piece.length, bitmapBytes - at));
      present.bytesInto(part, at);
      await sink.writeAsync(layout.bitmapOffset + BigInt(at), part);
    }
    if (!windowed && current >= 0) await sink.writeAsync(secondAt, bitmaps.dumpable);
    await sink.writeAsync(secondAt + BigInt(present.byteLength), new Uint8Array(bitmapBytes - present.byteLength));
  };
  await writeBitmaps();
  const windowOf = (p: number) => Math.floor(p / span);
  /** For each page frame: whether it is dumpable, and its rank (dumpable pages before it: its descriptor's index). */
  const ranksOf = async (pfns: Iterable<number>): Promise<Map<number, { rank: number; dumpable: boolean }>> => {
    const out = new Map<number, { rank: number; dumpable: boolean }>();
    let w = -1;
    let before = 0;
    let rank = (_: number) => 0;
    for (const p of [...pfns].sort((a, b) => a - b)) {
      if (windowOf(p) !== w) {
        w = windowOf(p);
        before = windowCounts.slice(0, w).reduce((n, c) => n + c, 0);
        await loadWindow(w);
        rank = rankIndex(bitmaps.dumpable);
      }
      const bit = p - windowFirsts[w]!;
      out.set(p, { rank: before + rank(bit), dumpable: testBit(bitmaps.dumpable, bit) });
    }
    return out;
  };
  let dataAt = layout.dataOffset;
  // Zero pages share one stored zero page (makedumpfile's pd_zero). makedumpfile 1.7.2 does this even
  // at -d 1 in this format: its bitmaps are written before the data, so it cannot drop them from the
  // 2nd bitmap, and its readers need every page of the 2nd bitmap to have a descriptor.
  sink.write(dataAt, new Uint8Array(ps));
  const zeroAt = Number(dataAt);
  dataAt += BigInt(ps);
  // The log first: the printk ring's pages are stored before the pfn-ordered pass, with their
  // descriptors in place, so a dump cut short still answers `dmesg`. Their data goes out in one
  // write, then their descriptors, one write per run of consecutive ranks (the ring is contiguous
  // memory): a write per page and per descriptor were 320 small writes, 20-30 ms on a 1 GiB save.
  const early = new Map<number, Uint8Array>();
  if (info) {
    const frames = [...printkPageFrames(vmcoreKernelMemory(core), info, ps)].map(Number).filter((p) => p < maxPfn);
    const known = await ranksOf(frames);
    const logPfns = new Set<number>();
    for (const p of frames) if (known.get(p)!.dumpable) logPfns.add(p);
    const logData = new Uint8Array(batchOutBytes(logPfns.size, ps));
    const scratch = new Uint8Array(ps);
    let stored = 0;
    const descs: { rank: number; desc: Uint8Array }[] = [];
    for (const p of logPfns) {
      const page = core.memory.readPage(BigInt(p));
      if (page === undefined) continue;
      const desc = new Uint8Array(PAGE_DESC_SIZE);
      const descView = new DataView(desc.buffer);
      if (isZeroPage(page)) writePageDesc(descView, 0, zeroAt, ps, 0);
      else {
        const n = compressor.compressOne(page, 0, scratch, 0);
        const bytes = n > 0 ? scratch.subarray(0, n) : page;
        writePageDesc(descView, 0, Number(dataAt) + stored, bytes.length, n > 0 ? codecFlag : 0);
        logData.set(bytes, stored);
        stored += bytes.length;
      }
      descs.push({ rank: known.get(p)!.rank, desc });
      early.set(p, desc);
    }
    if (stored > 0) sink.write(dataAt, logData.subarray(0, stored));
    dataAt += BigInt(stored);
    descs.sort((a, b) => a.rank - b.rank);
    for (let i = 0; i < descs.length; ) {
      let run = 1;
      while (i + run < descs.length && descs[i + run]!.rank === descs[i]!.rank + run) run++;
      const bytes = new Uint8Array(run * PAGE_DESC_SIZE);
      for (let k = 0; k < run; k++) bytes.set(descs[i + k]!.desc, k * PAGE_DESC_SIZE);
      sink.write(layout.descOffset + BigInt(descs[i]!.rank) * BigInt(PAGE_DESC_SIZE), bytes);
      i += run;
    }
  }
  // The page frames the log's pages lie between (a batch outside them has none: skipStoredAhead).
  const earlySpan = { first: Infinity, last: -Infinity };
  for (const p of early.keys()) { earlySpan.first = Math.min(earlySpan.first, p); earlySpan.last = Math.max(earlySpan.last, p); }
  let descIndex = 0n;
  let written = 0n;
  let committedUpTo = 0; // every dumpable pfn below this is written
  let committedBytes = dataAt; // the data of those pages ends here
  const pending: { done: Promise<unknown>; submitted: Promise<CompressedBatch> }[] = [];
  let chain: Promise<void> = Promise.resolve();
  // Batches are given their place in the file in pfn order, but written concurrently (libuv's
  // threads): the ledger, in that order, tells how far the file is whole.
  const ledger: { batchFirst: number; batchEnd: number; read: number; pages: number; dataEnd: bigint; state: "writing" | "done" | "failed" }[] = [];
  let ledgerHead = 0;
  const settle = () => {
    // Settled entries go: a 16 GiB -d 1 dump is 16,000 batches, and the ledger had kept them all.
    if (ledgerHead >= 1024) { ledger.splice(0, ledgerHead); ledgerHead = 0; }
    for (; ledgerHead < ledger.length; ledgerHead++) {
      const e = ledger[ledgerHead]!;
      if (e.state === "writing") return;
      if (e.state === "failed") { committedUpTo = e.batchFirst; ledgerHead = ledger.length; return; }
      committedUpTo = e.batchEnd;
      committedBytes = e.dataEnd;
      written += BigInt(e.pages);
      hooks.progress?.(BigInt(e.read) * BigInt(ps), committedBytes);
    }
  };
  let fault: string | undefined;
  let readFault: string | undefined;
  let writeFault: string | undefined;
  // Where the source stores pages whole (ELF), the compressing threads read them themselves.
  const fileRun = core.elf ? core.memory.fileRun : undefined;

  // Batch buffers are recycled: fresh multi-MiB allocations cost page faults (system time)
  // and garbage collection on every batch. At most inFlight batches are out at once.
  const batchBytes = BATCH_PAGES * ps;
  // A batch's small arrays are used again too (its page frames, skipped pages, extents, sizes,
  // descriptors). Made anew for each batch, they outlived young-generation collections while a
  // worker held the batch, and the main thread's heap grew by their garbage until a full
  // collection: 16 GiB -d 1 lzo peaked at 109-112 MiB, 93-97 with them kept (3 runs each, stop 46).
  const free: BatchBuffers[] = [];
  const newBuffer = (bytes: number) => compressor.batchBuffer?.(bytes) ?? new Uint8Array(bytes);
  const takeBuffers = (): BatchBuffers => free.pop() ?? {
    pages: newBuffer(batchBytes),
    out: newBuffer(batchOutBytes(BATCH_PAGES, ps)),
    // Doubles: page frames reach past 2^31 (8 TiB), where an Int32Array wrapped them negative.
    pfns: new Float64Array(BATCH_PAGES),
    skip: new Uint8Array(BATCH_PAGES),
    descs: new Uint8Array(BATCH_PAGES * PAGE_DESC_SIZE),
    extentList: [],
    // Where a compressing thread sees them too.
    extents: new Float64Array(newBuffer(3 * BATCH_PAGES * 8).buffer),
    sizes: new Int32Array(newBuffer(BATCH_PAGES * 4).buffer),
  };
  const inFlight = IN_FLIGHT_PER_COMPRESSOR * Math.max(1, compressor.parallel ?? 1);
  const scanned = { count: 0 };
  const describing: DescribeContext = { early, bitmaps, zeroAt, pageSize: ps, codecFlag, countZero: (opts.dumpLevel & DL_EXCLUDE_ZERO) !== 0, cleared: [] };
  let pagesSeen = 0;
  /**
   * The next batch of window `w` from page frame `cursor`: read, handed to the compressor, and its
   * write-out chained after the batches before it. Returns where the batch after it starts,
   * WINDOW_DONE when the window has no dumpable page left, or STOPPED when a fault ends the dump.
   * A closure of its own, not the loop's body: V8 optimises a function whole once it has run long
   * enough. With this inline, the batches of a 1 GiB -d 1 save made it compile writeKdumpDump
   * with it, 40-48 ms of TurboFan (--trace-opt) on a thread that competes with the compressing
   * ones; without it, 10-12 ms. That save with lzo took 0.472 s against 0.492 with a worker, 0.625
   * against 0.644 on one CPU (11 alternating runs, stop 41); 4 GiB took as long as before.
   */
  const startBatch = (w: number, windowEnd: number, cursor: number): number => {
    const buffers = takeBuffers();
    const { pfns, skip, descs, extentList: extents } = buffers;
    const next = nextDumpablePfns(bitmaps.dumpable, windowFirsts[w]!, cursor, windowEnd, pfns, scanned);
    const count = scanned.count;
    if (count === 0) { free.push(buffers); return WINDOW_DONE; }
    if (opts.faultAfterPages !== undefined && pagesSeen + count > opts.faultAfterPages) { free.push(buffers); fault = `simulated fault after ${opts.faultAfterPages} pages`; return STOPPED; }
    pagesSeen += count;
    const { pages, out } = buffers;
    skip.fill(0);
    extents.length = 0;
    try {
      readBatch(core.memory, fileRun, pfns, count, pages, skip, extents);
    } catch (e) {
      free.push(buffers);
      fault = readError(opts.what, describeFault(e));
      return STOPPED;
    }
    if (early.size > 0) skipStoredAhead(early, earlySpan, pfns, count, skip);
    if (fileRun) buffers.extents.set(extents);
    const submitted = compressor.submit(pages, count, skip, out, fileRun ? buffers.extents.subarray(0, extents.length) : undefined, buffers.sizes);
    // A failed batch is dealt with when the chain reaches it, in order; until then it is not "unhandled".
    submitted.catch(() => {});
    const batchFirst = pfns[0]!;
    const batchEnd = pfns[count - 1]! + 1;
    // Places in the file are given in submission order; several batches compress at once.
    const step = chain.then(async (): Promise<{ writing: Promise<void> } | undefined> => {
      let batch;
      try {
        batch = await submitted;
      } catch (e) {
        if (!(e instanceof BatchReadError)) throw e;
        free.push({ ...buffers, pages: e.pages, out: e.out });
        // Batches after this one may have been read; none of them is written (the dump stays a prefix).
        readFault ??= readError(opts.what, e.message);
        return;
      }
      const { sizes, data, pages: backPages } = batch;
      const release = () => free.push({ ...buffers, pages: backPages, out: new Uint8Array(data.buffer) });
      // Batches read before a read fault or a signal are still written; after a write fault, or a
      // read fault in an earlier batch, nothing is.
      if (writeFault || readFault) { release(); return; }
      const firstDesc = descIndex;
      const { n, stored } = describeBatch(sizes, pfns, count, descs, Number(dataAt), describing);
      const at = dataAt;
      dataAt += BigInt(stored);
      descIndex += BigInt(n);
      const entry = { batchFirst, batchEnd, read: count, pages: n, dataEnd: dataAt, state: "writing" as "writing" | "done" | "failed" };
      ledger.push(entry);
      const writing = Promise.all([
        sink.writeAsync(at, data),
        sink.writeAsync(layout.descOffset + firstDesc * BigInt(PAGE_DESC_SIZE), descs.subarray(0, n * PAGE_DESC_SIZE)),
      ]).then(
        () => { entry.state = "done"; },
        (e: unknown) => {
          // The descriptors of this batch may be torn: the batch counts as not written.
          writeFault ??= `write error at ${hex(at)}: ${describeFault(e)}`;
          entry.state = "failed";
        },
      ).finally(() => { release(); settle(); });
      return { writing };
    });
    chain = step.then(() => undefined);
    // Done when the batch is on its way to the disk: that bounds the batches in flight (memory
    // stays a few MiB per thread).
    pending.push({ done: step.then((r) => r?.writing), submitted });
    return next;
  };
  /**
   * Starts the batches of window `w`, at most inFlight out at once. Resolves true when the window
   * has no dumpable page left, false when the dump stops (a fault, a signal). Its own function, as
   * startBatch is: V8 counts a loop's turns to the function that holds it, and with this loop in
   * writeKdumpDump it compiled the whole writer (18-22 ms of TurboFan on a 1 GiB -d 1 save), then
   * threw that code away at the window loop's first `w++`, which had not run yet.
   */
  const startWindow = async (w: number): Promise<boolean> => {
    const windowEnd = Math.min(maxPfn, windowFirsts[w]! + span);
    let cursor = windowFirsts[w]!; // next pfn to look at
    for (;;) {
      if (hooks.stopReason?.() || fault || readFault || writeFault) return false;
      const next = startBatch(w, windowEnd, cursor);
      if (next === WINDOW_DONE) return true;
      if (next === STOPPED) return false;
      cursor = next;
      if (pending.length >= inFlight) {
        const oldest = pending.shift()!;
        // Rather than wait for another thread's batch, this thread compresses one it has not begun.
        while (compressor.takeBack?.(oldest.submitted)) { /* taken back */ }
        await oldest.done;
      }
    }
  };
  // Pass 2: the pages of each window in pfn order, its bits read back from the file or made again.
  for (let w = 0; w < windowFirsts.length; w++) {
    // A window with no page to dump is neither read back nor made again: its bits in the output are clear.
    if (windowCounts[w] === 0) continue;
    await loadWindow(w);
    if (!(await startWindow(w))) break;
    if (windowed) {
      // The next window's bits take this one's place: its batches are described first (which
      // may clear bits: pages a kdump source lacks), and what changed goes back to the output.
      await chain;
      while (pending.length > 0) await pending.shift()!.done;
      if (describing.cleared.length > 0) {
        windowCounts[w]! -= describing.cleared.length;
        if (!sink.readBack) remade.absent.set(w, describing.cleared);
        describing.cleared = [];
        try {
          sink.write(windowAt(w), bitmaps.dumpable);
        } catch (e) {
          writeFault ??= `write error at ${hex(windowAt(w))}: ${describeFault(e)}`;
        }
      }
    }
  }
  await chain;
  await Promise.all(pending.map((p) => p.done));
  const missing = hooks.stopReason?.() ?? writeFault ?? readFault ?? fault;
  if (missing) {
    // Keep the written prefix consistent: later pages leave the 2nd bitmap (readers see them as
    // excluded), except the log pages stored first, whose descriptors move to their new ranks.
    // The first dumpable page they take away is where the dump stops being complete: every
    // dumpable page below committedUpTo is written, and those from it to that page are not dumpable.
    let stopsAt: number | undefined;
    try {
      for (let w = windowOf(committedUpTo); w < windowFirsts.length; w++) {
        // No page to dump (nor of the log): its bits in the output are clear already.
        if (windowCounts[w] === 0) continue;
        const first = windowFirsts[w]!;
        // A window wholly past the cut keeps only the log's pages: once the first page missing is
        // known, it need not be read or made.
        if (committedUpTo <= first && stopsAt !== undefined) {
          setWindow(w);
          bitmaps.dumpable.fill(0);
        } else await loadWindow(w);
        const bits = bitmaps.dumpable;
        stopsAt ??= firstSetPfn(bits, first, Math.max(committedUpTo, first) - first, early);
        cutWindow(bits, first, committedUpTo);
        windowCounts[w] = Number(popcount(bits));
        if (windowed) sink.write(windowAt(w), bits);
      }
      remade.cutFrom = committedUpTo;
      const moved = await ranksOf([...early.keys()].filter((p) => p >= committedUpTo));
      for (const [p, { rank }] of moved) sink.write(layout.descOffset + BigInt(rank) * BigInt(PAGE_DESC_SIZE), early.get(p)!);
      await writeBitmaps();
    } catch { /* the header already says incomplete; nothing more can be done on a full device */ }
    const lost = BigInt(descCount) - written;
    return { complete: false, pagesWritten: written, bytesWritten: committedBytes, counts: bitmaps.counts, missing: `${missing}; pages from page frame ${hex(stopsAt ?? committedUpTo)} on (about ${lost > 0n ? lost : 0n} dumpable pages) are missing` };
  }
  await writeBitmaps();
  sink.write(0n, encodeKdumpHeaders({ ...headerInput, status: codecFlag }, layout));
  return { complete: true, pagesWritten: written, bytesWritten: dataAt, counts: bitmaps.counts };
}

/*
 * The per-page loops of writeKdumpDump, each in a small function of its own. V8 optimises a
 * function as a whole: with these loops inline, the hot loop made it compile writeKdumpDump
 * (and the batch's write-out closure) whole, 30-45 ms of its optimising compiler each, then
 * throw the code away at the first branch it had not seen (the end of the dump) and compile it
 * again. On a 1 GiB -d 31 save that compiling was more CPU than the lzo compression itself.
 */

/**
 * Fills `pfns` with the next dumpable page frames from `cursor` up to `end` (whole zero bytes of
 * the bitmap skipped); returns the new cursor, the count in `out`. Bit 0 of `bm` is page frame
 * `bmFirst`, a multiple of 8.
 */
function nextDumpablePfns(bm: Uint8Array, bmFirst: number, cursor: number, end: number, pfns: Float64Array, out: { count: number }): number {
  let count = 0;
  const want = pfns.length;
  // Bits by their offset in the window (small integers); page frames only as they are listed.
  let bit = cursor - bmFirst;
  const endBit = end - bmFirst;
  while (count < want && bit < endBit) {
    const b = bm[bit >>> 3]!;
    if (b === 0 && (bit & 7) === 0) { bit += 8; continue; }
    if (b & (1 << (bit & 7))) pfns[count++] = bmFirst + bit;
    bit++;
  }
  out.count = count;
  return bmFirst + bit;
}

/**
 * Reads a batch's pages into `pages`, or, where the source stores them whole (an ELF vmcore's
 * PT_LOADs), lists them in `extents` (batch index, file offset, pages) for the compressing thread
 * to read. A page the source does not have is marked in `skip`.
 */
function readBatch(memory: Vmcore["memory"], fileRun: Vmcore["memory"]["fileRun"], pfns: Float64Array, count: number, pages: Uint8Array, skip: Uint8Array, extents: number[]): void {
  const ps = memory.pageSize;
  for (let i = 0; i < count; ) {
    // Consecutive page frames come in one read when the source stores them together.
    let run = 1;
    while (i + run < count && pfns[i + run] === pfns[i]! + run) run++;
    if (fileRun) {
      // Whole pages inside a PT_LOAD's file part become extents; the rest (a page in an excluded
      // tail, or cut by a segment's end) is read here.
      for (let k = i; k < i + run; ) {
        const found = fileRun(pfns[k]!, i + run - k);
        if (found) { extents.push(k, found.offset, found.pages); k += found.pages; continue; }
        readPageInto(memory, pfns[k]!, pages, k, skip);
        k++;
      }
    } else if (!(memory.readRunInto?.(BigInt(pfns[i]!), run, pages, i * ps) ?? false)) {
      for (let k = i; k < i + run; k++) readPageInto(memory, pfns[k]!, pages, k, skip);
    }
    i += run;
  }
}

/**
 * Marks the batch's pages stored ahead (the log's) as skipped. Every page takes the same store:
 * the log's pages fall in one or two batches of thousands, met once TurboFan has compiled the
 * loop, and a store only they reached had no type feedback; their batch threw the optimised code
 * away (in writeKdumpDump, where this loop was: 34 ms of compiling it again on a 1 GiB -d 1 save).
 */
function skipStoredAhead(early: ReadonlyMap<number, unknown>, span: { first: number; last: number }, pfns: Float64Array, count: number, skip: Uint8Array): void {
  // A batch's page frames ascend: one wholly outside the log's span has none of its pages. Only
  // the one or two batches across the log look each page up (a Map lookup for every page of a
  // 1 GiB -d 1 save was 4-5 ms of its main thread).
  if (pfns[count - 1]! < span.first || pfns[0]! > span.last) return;
  for (let k = 0; k < count; k++) skip[k] = skip[k]! | (early.has(pfns[k]!) ? 1 : 0);
}

/** One page read here, into slot `k` of the batch, or marked in `skip` where the source does not have it. */
function readPageInto(memory: Vmcore["memory"], pfn: number, pages: Uint8Array, k: number, skip: Uint8Array): void {
  const page = memory.readPage(BigInt(pfn));
  if (page === undefined) skip[k] = 1; else pages.set(page, k * memory.pageSize);
}

/** A batch's buffers, used again by the batches after it (writeKdumpDump's free list). */
interface BatchBuffers {
  pages: Uint8Array;
  out: Uint8Array;
  pfns: Float64Array;
  skip: Uint8Array;
  descs: Uint8Array;
  /** Where readBatch lists the extents, and the same copied for the compressing thread. */
  extentList: number[];
  extents: Float64Array;
  sizes: Int32Array;
}

interface DescribeContext {
  /** Descriptors of the log pages stored ahead of the rest, by page frame. */
  early: Map<number, Uint8Array>;
  bitmaps: DumpBitmaps;
  /** The one zero page every zero page's descriptor points at. */
  zeroAt: number;
  pageSize: number;
  codecFlag: number;
  /** Zero pages are excluded by the dump level: count them as such. */
  countZero: boolean;
  /** Page frames cleared from the current window (pages the source lacks): it goes back to the output. */
  cleared: number[];
}

/** A compressed batch's page descriptors into `descs`: `n` descriptors over `stored` bytes of data from `dataAt` in the file. */
function describeBatch(sizes: ArrayLike<number>, pfns: Float64Array, count: number, descs: Uint8Array, dataAt: number, c: DescribeContext): { n: number; stored: number } {
  const descView = new DataView(descs.buffer, descs.byteOffset, descs.byteLength);
  let n = 0;
  let stored = 0;
  for (let i = 0; i < count; i++) {
    const s = sizes[i]!;
    if (s === PAGE_SKIPPED) {
      const desc = c.early.get(pfns[i]!);
      if (desc) {
        descs.set(desc, n * PAGE_DESC_SIZE);
        n++;
      } else {
        clearBit(c.bitmaps.dumpable, pfns[i]! - (c.bitmaps.dumpableFirst ?? 0)); // absent from a kdump source
        c.cleared.push(pfns[i]!);
      }
      continue;
    }
    if (s === PAGE_ZERO) {
      writePageDesc(descView, n * PAGE_DESC_SIZE, c.zeroAt, c.pageSize, 0);
      n++;
      if (c.countZero) c.bitmaps.counts.zero++;
      continue;
    }
    writePageDesc(descView, n * PAGE_DESC_SIZE, dataAt + stored, s, s === c.pageSize ? 0 : c.codecFlag);
    n++;
    stored += s;
  }
  return { n, stored };
}

/**
 * Excluded runs shorter than this are kept as data so the header does not grow to one PT_LOAD
 * per hole; 256 pages is where makedumpfile -E starts a new PT_LOAD too (its PFN_EXCLUDED).
 */
const ELF_MIN_GAP = 256;

/** One source segment's PT_LOADs as they are found, and where its scan stands. */
interface ElfSegmentPlan {
  seg: { p_paddr: bigint; p_memsz: bigint; p_vaddr: bigint };
  /** Its page frames [first, end) (partial pages included). */
  first: number;
  end: number;
  /** Where the PT_LOAD being built starts. */
  runStart: number;
  /** One past its last dumpable page frame so far; -1 while it has none. */
  fileEnd: number;
  loads: Omit<OutputLoad, "p_offset">[];
}

/**
 * The PT_LOADs of an ELF dump, planned from the dumpable bitmap a window of page frames at a time
 * (pass 1), so that nothing but the segment list grows with the highest page frame. In each of
 * the source's segments: a run of dumped pages (excluded runs shorter than ELF_MIN_GAP inside it
 * kept as data), then the excluded tail up to the next dumped page (p_filesz < p_memsz); a
 * segment that starts excluded starts with a PT_LOAD of no data. The rules are those of the plan
 * once made from the whole bitmap; they depend only on the set bits, each segment's in pfn
 * order, so windows (and page frames without memory, never fed) change nothing. In the source's
 * order: the kernel text alias first, as /proc/vmcore and makedumpfile -E have it.
 */
export class ElfLoadPlanner {
  private readonly segments: ElfSegmentPlan[];
  private readonly P: bigint;

  constructor(segs: readonly { p_paddr: bigint; p_memsz: bigint; p_vaddr: bigint }[], pageSize: number) {
    const P = (this.P = BigInt(pageSize));
    this.segments = segs.map((seg) => {
      const first = Number(seg.p_paddr / P);
      return { seg, first, end: Number((seg.p_paddr + seg.p_memsz + P - 1n) / P), runStart: first, fileEnd: -1, loads: [] };
    });
  }

  /** The set bits of `bits` (bit 0 is page frame `first`, a multiple of 8), to every segment they fall in, in pfn order. */
  feed(bits: Uint8Array, first: number): void {
    const windowEnd = first + bits.length * 8;
    for (const s of this.segments) {
      if (s.end <= first || s.first >= windowEnd) continue;
      // Offsets inside the window (below 2^32 bits): `>>> 3` is safe on them, not on page frames.
      let bit = Math.max(s.first, first) - first;
      const endBit = Math.min(s.end, windowEnd) - first;
      while (bit < endBit) {
        if ((bit & 7) === 0 && bit + 8 <= endBit) {
          const b = bits[bit >>> 3]!;
          // Clear bits change nothing; a whole byte set right after the last dumped page extends the run.
          if (b === 0) { bit += 8; continue; }
          if (b === 0xff && s.fileEnd === first + bit) { s.fileEnd += 8; bit += 8; continue; }
        }
        if ((bits[bit >>> 3]! & (1 << (bit & 7))) !== 0) this.dumped(s, first + bit);
        bit++;
      }
    }
  }

  /** Page frame `q` of segment `s` is dumped: it ends the PT_LOAD before it if that has no data, or a long enough gap went before it. */
  private dumped(s: ElfSegmentPlan, q: number): void {
    if (s.fileEnd < 0) {
      if (q > s.runStart) { this.close(s, s.runStart, q); s.runStart = q; }
    } else if (q - s.fileEnd >= ELF_MIN_GAP) {
      this.close(s, s.fileEnd, q);
      s.runStart = q;
    }
    s.fileEnd = q + 1;
  }

  /** The PT_LOAD from s.runStart: data to page frame `fileEnd`, excluded tail to `tailEnd`, cut to the segment's bytes. */
  private close(s: ElfSegmentPlan, fileEnd: number, tailEnd: number): void {
    const P = this.P;
    const { p_paddr, p_memsz, p_vaddr } = s.seg;
    const start = BigInt(s.runStart) * P < p_paddr ? p_paddr : BigInt(s.runStart) * P;
    const stop = BigInt(tailEnd) * P > p_paddr + p_memsz ? p_paddr + p_memsz : BigInt(tailEnd) * P;
    const fileStop = BigInt(fileEnd) * P > stop ? stop : BigInt(fileEnd) * P;
    // A segment without a kernel mapping (0, or -1 as i386 kexec-tools writes for high memory) keeps none.
    const unmapped = p_vaddr === 0n || p_vaddr === 0xffffffffn || p_vaddr === 0xffffffffffffffffn;
    s.loads.push({ p_paddr: start, p_vaddr: unmapped ? 0n : p_vaddr + (start - p_paddr), p_filesz: fileStop > start ? fileStop - start : 0n, p_memsz: stop - start });
  }

  /** Every segment's PT_LOADs, in the source's order; each segment's last ends where the segment does. */
  finish(): Omit<OutputLoad, "p_offset">[] {
    for (const s of this.segments) {
      if (s.runStart < s.end) this.close(s, s.fileEnd < 0 ? s.runStart : s.fileEnd, s.end);
      s.runStart = s.end;
    }
    return this.segments.flatMap((s) => s.loads);
  }
}

/**
 * The window's page frames: a positive multiple of 8 (a window starts at a whole byte of a
 * bitmap), or the whole dump where it is smaller. The writers' and the report's (report/vmcore.ts).
 */
export function windowSpan(maxPfn: number, windowPages: number): number {
  if (!Number.isSafeInteger(windowPages) || windowPages <= 0 || windowPages % 8 !== 0) {
    throw new KexecError("internal", `window of ${windowPages} page frames: not a positive multiple of 8`, { field: "windowPages", expected: "a positive multiple of 8", actual: String(windowPages) }, "this is a bug in kexec-ts; please report it");
  }
  return maxPfn > windowPages ? windowPages : Math.ceil(maxPfn / 8) * 8;
}

/**
 * Clears from a window's bits (bit 0 is page frame `first`) the zero pages, and those the source
 * lacks, but for the log's; counts the zero ones. Reads every dumpable page: an ELF dump's
 * segment list, which comes before its data, must leave them out already.
 */
function excludeZeroPages(memory: Vmcore["memory"], bits: Uint8Array, first: number, maxPfn: number, logFrames: ReadonlySet<number>, counts: ExclusionCounts): void {
  const endBit = Math.min(bits.length * 8, maxPfn - first);
  for (let byte = 0; byte * 8 < endBit; byte++) {
    const b = bits[byte]!;
    if (b === 0) continue;
    for (let bit = 0; bit < 8; bit++) {
      const i = byte * 8 + bit;
      if ((b & (1 << bit)) === 0 || i >= endBit || logFrames.has(first + i)) continue;
      const page = memory.readPage(BigInt(first + i));
      if (page === undefined || isZeroPage(page)) { clearBit(bits, i); if (page) counts.zero++; }
    }
  }
}

/**
 * An ELF dump (what makedumpfile -E writes) of memory below 4 PiB. Its PT_LOADs come before the
 * data, so pass 1 runs the dump level's exclusion a window of page frames at a time, as the kdump
 * writer does, and plans the segments from each window (ElfLoadPlanner); then the headers go out,
 * and the data after them (pass 2). The data needs no bitmap: a PT_LOAD's file part is written
 * whole, the short excluded runs kept inside it too, so the segment list is all pass 2 reads, and
 * the exclusion runs once (the kdump writer makes a window again where it cannot read it back).
 */
export async function writeElfDump(core: Vmcore, opts: DumpOptions, sink: DumpSink, hooks: DumpHooks = {}, exclusion: DumpExclusion = {}): Promise<DumpResult> {
  const ps = core.memory.pageSize;
  // Page frames to 2^40: every bit index is relative to its window's first page frame.
  const present = new PresentPages(core.memory.ranges, ps, ELF_DUMP_LIMIT);
  const maxPfn = present.maxPfn;
  const span = windowSpan(maxPfn, opts.windowPages ?? WINDOW_PAGES);
  const buffer = (exclusion.allocate ?? ((n: number) => new Uint8Array(n)))(Math.ceil(Math.min(span, maxPfn) / 8));
  const bitmaps: DumpBitmaps = { present, dumpable: buffer, dumpableFirst: 0, maxPfn: BigInt(maxPfn), counts: emptyCounts(), presentPages: BigInt(present.count) };
  const prepare = exclusion.prepare ?? ((b: DumpBitmaps) => prepareDumpBitmaps(core, b, opts.dumpLevel, opts.what));
  // The log's pages stay in the file whatever the dump level, zero or not: makedumpfile (1.7.2)
  // cannot read a page that lies only in a PT_LOAD's excluded tail (p_filesz < p_memsz), and the
  // unwritten part of a fresh ring buffer is zero pages; `makedumpfile --dump-dmesg` then prints
  // an empty log. (The kdump format is not affected: its zero pages share one stored page.)
  const logFrames = new Set<number>();
  if (core.vmcoreinfo) {
    for (const f of printkPageFrames(vmcoreKernelMemory(core), core.vmcoreinfo, ps)) {
      const p = Number(f);
      if (p < maxPfn && present.has(p)) logFrames.add(p);
    }
  }
  const segs = core.elf ? core.elf.loads : core.memory.ranges.map((r) => ({ p_paddr: r.start, p_memsz: r.end - r.start, p_vaddr: 0n }));
  const planner = new ElfLoadPlanner(segs, ps);
  // Pass 1: each window that holds memory made from the present pages, the exclusion run on it,
  // the log's pages put back, the zero pages found (ELF needs the final segment list before the
  // data), and its set bits fed to the plan.
  for (let first = 0; first < maxPfn; first += span) {
    const bits = (bitmaps.dumpable = buffer.subarray(0, Math.ceil((Math.min(maxPfn, first + span) - first) / 8)));
    bitmaps.dumpableFirst = first;
    // A window without a present page (most of a machine with a node at 12 TiB) has no set bit: the plan needs nothing of it.
    if (!present.anyIn(first, bits.length * 8)) continue;
    if (first > 0) {
      await hooks.yield?.();
      // Stopped while scanning (a signal; a TiB's scan takes seconds): the windows left count as
      // excluded, and the data loop stops before its first chunk: the dump is incomplete.
      if (hooks.stopReason?.()) break;
    }
    present.bytesInto(bits, first / 8);
    await prepare(bitmaps);
    for (const p of logFrames) if (p >= first && p < first + bits.length * 8) setBit(bits, p - first);
    if (opts.dumpLevel & DL_EXCLUDE_ZERO) excludeZeroPages(core.memory, bits, first, maxPfn, logFrames, bitmaps.counts);
    planner.feed(bits, first);
  }
  bitmaps.scanBuffer = undefined;
  const loads = planner.finish();
  const mark = (type: number, text: string) => {
    const desc = new Uint8Array(KEXEC_TS_NOTE_DESC);
    for (let i = 0; i < Math.min(text.length, desc.length - 1); i++) desc[i] = text.charCodeAt(i) & 0xff;
    return encodeNote(KEXEC_TS_NOTE_NAME, type, desc);
  };
  const notesWith = (type: number, text: string) => {
    const m = mark(type, text);
    const out = new Uint8Array(core.noteBytes.length + m.length);
    out.set(core.noteBytes);
    out.set(m, core.noteBytes.length);
    return out;
  };
  const notesLength = notesWith(0, "").length;
  let offset = BigInt(Math.ceil((elfHeaderSize(loads.length) + notesLength) / ps) * ps);
  const placed: OutputLoad[] = loads.map((l) => {
    const o = { ...l, p_offset: l.p_filesz > 0n ? offset : 0n };
    offset += l.p_filesz;
    return o;
  });
  sink.write(0n, encodeElfCoreHeader(core.machine, placed, notesWith(NT_KEXEC_TS_INCOMPLETE, "kexec-ts vmcore save: in progress")));
  const total = placed.reduce((n, l) => n + l.p_filesz, 0n);
  hooks.start?.(total);
  let written = 0n;
  let fault: string | undefined;
  /** The physical address where the data stops being complete, when it stops early. */
  let stopsAt: bigint | undefined;
  const CHUNK = 256;
  // One buffer for every chunk: each write is awaited before the next chunk is read into it.
  const chunk = new Uint8Array(CHUNK * ps);
  outer: for (const [i, l] of placed.entries()) {
    let at = 0n;
    while (at < l.p_filesz) {
      if (hooks.stopReason?.()) { stopsAt = l.p_paddr + at; break outer; }
      const n = Number((l.p_filesz - at) / BigInt(ps) < BigInt(CHUNK) ? (l.p_filesz - at + BigInt(ps) - 1n) / BigInt(ps) : BigInt(CHUNK));
      const buf = chunk.subarray(0, Math.min(n * ps, Number(l.p_filesz - at)));
      try {
        for (let k = 0; k * ps < buf.length; k++) {
          const paddr = l.p_paddr + at + BigInt(k * ps);
          const page = core.memory.readPage(paddr / BigInt(ps));
          const from = Number(paddr % BigInt(ps));
          const length = Math.min(ps, buf.length - k * ps);
          if (page) buf.set(page.subarray(from, from + length), k * ps);
          else buf.fill(0, k * ps, k * ps + length);
        }
        if (opts.faultAfterPages !== undefined && written / BigInt(ps) >= BigInt(opts.faultAfterPages)) throw new KexecError("io", `simulated fault after ${opts.faultAfterPages} pages`, { field: "faultAfterPages" }, "a test asked for this fault");
        // Awaited: into a pipe (a flattened stream to ssh) the next chunk waits for the reader,
        // where sink.write queued the whole dump in memory when the reader was slower.
        await sink.writeAsync(l.p_offset + at, buf);
      } catch (e) {
        fault = `${describeFault(e)} while writing PT_LOAD ${i + 1}`;
        stopsAt = l.p_paddr + at;
        // Shrink this segment to what is in the file and drop the data of the ones after it.
        l.p_filesz = at;
        for (const later of placed.slice(i + 1)) later.p_filesz = 0n;
        break outer;
      }
      at += BigInt(buf.length);
      written += BigInt(buf.length);
      hooks.progress?.(BigInt(buf.length), written);
      if ((written / BigInt(ps)) % 4096n === 0n) await hooks.yield?.();
    }
  }
  const stopped = hooks.stopReason?.();
  const missing = stopped ?? fault;
  if (missing) {
    if (stopped) {
      // Cut the data that was never written from the segments, so readers see it as excluded.
      let left = written;
      for (const l of placed) { const keep = left < l.p_filesz ? left : l.p_filesz; l.p_filesz = keep; left -= keep; }
    }
    // Where, as the kdump writer says it: the page frame from which on pages are missing. The
    // note says it before the reason, which its 128 bytes may cut.
    const from = stopsAt === undefined ? undefined : hex(stopsAt / BigInt(ps));
    const text = `incomplete; dump level ${opts.dumpLevel}; ${from === undefined ? "" : `pages missing from page frame ${from}; `}${missing}`;
    try { sink.write(0n, encodeElfCoreHeader(core.machine, placed, notesWith(NT_KEXEC_TS_INCOMPLETE, text))); } catch { /* header stays marked in progress */ }
    const lost = from === undefined ? `${size(total - written)} of page data is missing` : `pages from page frame ${from} on (${size(total - written)} of page data) are missing`;
    return { complete: false, pagesWritten: written / BigInt(ps), bytesWritten: written, counts: bitmaps.counts, missing: `${missing}; ${lost}` };
  }
  sink.write(0n, encodeElfCoreHeader(core.machine, placed, notesWith(NT_KEXEC_TS_COMPLETE, `complete; dump level ${opts.dumpLevel}`)));
  return { complete: true, pagesWritten: written / BigInt(ps), bytesWritten: written, counts: bitmaps.counts };
}

