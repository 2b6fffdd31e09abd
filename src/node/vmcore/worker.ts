/** A compression worker: a batch of pages (or where to read them) in, the bytes to store (and the buffers, for reuse) out. */
import { parentPort, workerData } from "node:worker_threads";
import { BatchReadError, compressBatch, type CompressedBatch, type FileExtents } from "../../core/vmcore/batch.js";
import { PresentPages, emptyCounts, excludeByPageFlags, type DumpBitmaps, type ExclusionCounts } from "../../core/vmcore/exclude.js";
import { KDUMP_WRITER_LIMIT } from "../../core/vmcore/page-frame-limits.js";
import { vmcoreKernelMemory, type Vmcore } from "../../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "./open.js";
import { pageCompressor, zeroPageTest, type Codec } from "./compress.js";
import type { OpenFile } from "./file.js";
import { openVmcoreSource } from "./mapped-file.js";
import { CLAIM_DONE, CLAIM_OPEN, CLAIM_WORKER, claimSlot } from "./claims.js";

/** A batch to compress, in buffers shared with the main thread (which may take it back: claims.ts). */
export interface WorkRequest { id: number; pages: Uint8Array; out: Uint8Array; count: number; skip: Uint8Array; extents?: FileExtents; sizes?: Int32Array }
/**
 * A share of the exclusion scan: the dumpable bitmap and the group counter live in shared
 * memory, and this thread takes groups from the counter until none is left (exclude.ts).
 * `joined[index]` (this thread's index, WorkerSetup): 0 until it joins (1) or the main thread has left it out (2).
 */
export interface ExclusionRequest { exclusion: { dumpable: Uint8Array; first: number; level: number; counter: Int32Array; joined: Int32Array } }
/**
 * What a worker starts from. In shared memory: `loaded[index]`, set to 1 once it can take
 * batches; `queued[index]`, the batches handed to it not yet compressed (the pool adds, and
 * subtracts those it takes back; the worker subtracts those it compresses); `claims`, who
 * compresses each batch (claims.ts).
 */
export interface WorkerSetup { codec: Codec; pageSize: number; source?: string; loaded: Int32Array; queued: Int32Array; claims: Int32Array; index: number }
/** What a thread's share excluded, or why it could not scan (the main thread then scans alone). */
export type ExclusionReply = { exclusion: { counts: ExclusionCounts; error?: undefined } } | { exclusion: { error: string } };
/**
 * The batch's stored length (the bytes are in its shared `out`) and its page sizes where the
 * request had no shared `sizes` to put them in, or why its pages could not be read.
 */
export type WorkReply =
  | { id: number; sizes?: Int32Array; stored: number; error?: undefined }
  | { id: number; error: string };

const { codec, pageSize, source, loaded, queued, claims, index } = workerData as WorkerSetup;
const compress = pageCompressor(codec, pageSize);
const isZero = zeroPageTest(pageSize);
// Loaded (koffi and the codec library included): the pool hands this thread batches from now on
// (until then the main thread compresses them), and only now may it terminate this thread:
// terminating a thread while koffi registers itself aborts the whole process.
Atomics.store(loaded, index, 1);
parentPort!.postMessage({ ready: true });
// Each thread opens the source itself: its own descriptor and mapping windows.
let file: OpenFile | undefined;
/** What this thread's shares of the exclusion scan keep between windows (a request per window). */
interface ScanState { core: Vmcore; present: PresentPages; scanBuffer?: Uint8Array }
let scanning: ScanState | undefined;

parentPort!.on("message", (req: WorkRequest | ExclusionRequest) => {
  if ("exclusion" in req) { scanShare(req); return; }
  // Batches come once the scan is over: what it kept goes.
  scanning = undefined;
  // Begun here unless the main thread took it back while it sat in this queue (it lowered
  // `queued` then, and settled the batch): nothing to say about it.
  if (Atomics.compareExchange(claims, claimSlot(req.id), CLAIM_OPEN, CLAIM_WORKER) !== CLAIM_OPEN) return;
  const batch = compressRequest(req);
  Atomics.store(claims, claimSlot(req.id), CLAIM_DONE);
  Atomics.sub(queued, index, 1);
  if (batch instanceof BatchReadError) {
    parentPort!.postMessage({ id: req.id, error: batch.message } satisfies WorkReply);
    return;
  }
  const { sizes, data } = batch;
  if (req.sizes) parentPort!.postMessage({ id: req.id, stored: data.length } satisfies WorkReply);
  else parentPort!.postMessage({ id: req.id, sizes, stored: data.length } satisfies WorkReply, [sizes.buffer as ArrayBuffer]);
});

/** The batch, or why its pages could not be read. Any other error (a bug) is the thread's error event, which fails the save. */
function compressRequest(req: WorkRequest): CompressedBatch | BatchReadError {
  if (req.extents && req.extents.length > 0) {
    try {
      file ??= openVmcoreSource(source!);
    } catch (e) {
      return new BatchReadError((e as Error).message, req.pages, req.out);
    }
  }
  try {
    return compressBatch(compress, req.pages, req.count, pageSize, req.skip, req.out, isZero, req.extents, file, req.sizes);
  } catch (e) {
    if (e instanceof BatchReadError) return e;
    throw e;
  }
}

function scanShare({ exclusion: job }: ExclusionRequest): void {
  // Left out already (this thread was loading while the main thread scanned): nothing to open.
  if (Atomics.load(job.joined, index) !== 0) return;
  let opened: ScanState | Error;
  try {
    opened = openForScan();
  } catch (e) {
    opened = e as Error;
  }
  // Joined only while the main thread's part is not over: it does not wait for a thread that has
  // not joined by then (one still loading), and such a thread takes nothing and says nothing.
  // Opened before joining, so that the main thread never waits for that either.
  if (Atomics.compareExchange(job.joined, index, 0, 1) !== 0) return;
  const reply: ExclusionReply = opened instanceof Error ? { exclusion: { error: opened.message } } : scanPart(opened, job);
  parentPort!.postMessage(reply);
}

/**
 * The source, opened by this thread once for every window's share: a kdump file's bitmap comes a
 * window at a time, a request each. Its present pages (and so the bitmap's length) come from this
 * thread's own reading of the same file.
 */
function openForScan(): ScanState {
  file ??= openVmcoreSource(source!);
  const opened = file;
  return scanning ??= (() => {
    const core = openVmcoreWithSystemCodecs(opened, source);
    // Shares are asked for by the kdump writer only, which follows page frames past a whole bitmap's limit.
    return { core, present: new PresentPages(core.memory.ranges, pageSize, KDUMP_WRITER_LIMIT) };
  })();
}

function scanPart(state: ScanState, job: ExclusionRequest["exclusion"]): ExclusionReply {
  try {
    const { core, present } = state;
    const bitmaps: DumpBitmaps = { present, dumpable: job.dumpable, dumpableFirst: job.first, maxPfn: BigInt(present.maxPfn), counts: emptyCounts(), presentPages: BigInt(present.count), scanBuffer: state.scanBuffer };
    excludeByPageFlags(vmcoreKernelMemory(core), core.vmcoreinfo!, bitmaps, job.level, pageSize, undefined, { claim: () => Atomics.add(job.counter, 0, 1) });
    state.scanBuffer = bitmaps.scanBuffer;
    return { exclusion: { counts: bitmaps.counts } };
  } catch (e) {
    return { exclusion: { error: (e as Error).message } };
  }
}
