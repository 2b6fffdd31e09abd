/** A compression worker: a batch of pages (or where to read them) in, the bytes to store (and the buffers, for reuse) out. */
import { parentPort, workerData } from "node:worker_threads";
import { compressBatch, readExtents, type FileExtents } from "../../core/vmcore/batch.js";
import { PresentPages, emptyCounts, excludeByPageFlags, type DumpBitmaps, type ExclusionCounts } from "../../core/vmcore/exclude.js";
import { KDUMP_WRITER_LIMIT } from "../../core/vmcore/page-frame-limits.js";
import { vmcoreKernelMemory, type Vmcore } from "../../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "./open.js";
import { pageCompressor, zeroPageTest, type Codec } from "./compress.js";
import type { OpenFile } from "./file.js";
import { openVmcoreSource } from "./mapped-file.js";

export interface WorkRequest { id: number; pages: Uint8Array; out: Uint8Array; count: number; skip: Uint8Array; extents?: FileExtents }
/**
 * A share of the exclusion scan: the dumpable bitmap and the group counter live in shared
 * memory, and this thread takes groups from the counter until none is left (exclude.ts).
 */
export interface ExclusionRequest { exclusion: { dumpable: Uint8Array; first: number; level: number; counter: Int32Array } }
/** What a thread's share excluded, or why it could not scan (the main thread then scans alone). */
export type ExclusionReply = { exclusion: { counts: ExclusionCounts; error?: undefined } } | { exclusion: { error: string } };
export type WorkReply =
  | { id: number; sizes: Int32Array; data: Uint8Array; pages: Uint8Array; error?: undefined }
  | { id: number; error: string; pages: Uint8Array; out: Uint8Array };

const { codec, pageSize, source } = workerData as { codec: Codec; pageSize: number; source?: string };
const compress = pageCompressor(codec, pageSize);
const isZero = zeroPageTest(pageSize);
// Loaded (koffi and the codec library included): only now may the pool terminate this thread.
// Terminating a thread while koffi registers itself aborts the whole process.
parentPort!.postMessage({ ready: true });
// Each thread opens the source itself: its own descriptor, positioned reads.
let file: OpenFile | undefined;
/** What this thread's shares of the exclusion scan keep between windows (a request per window). */
let scanning: { core: Vmcore; present: PresentPages; scanBuffer?: Uint8Array } | undefined;

parentPort!.on("message", (req: WorkRequest | ExclusionRequest) => {
  if ("exclusion" in req) { scanShare(req); return; }
  // Batches come once the scan is over: what it kept goes.
  scanning = undefined;
  try {
    if (req.extents && req.extents.length > 0) {
      file ??= openVmcoreSource(source!);
      readExtents(file.readInto, req.extents, req.pages, pageSize);
    }
  } catch (e) {
    const reply: WorkReply = { id: req.id, error: (e as Error).message, pages: req.pages, out: req.out };
    parentPort!.postMessage(reply, [req.pages.buffer as ArrayBuffer, req.out.buffer as ArrayBuffer]);
    return;
  }
  const { sizes, data, pages } = compressBatch(compress, req.pages, req.count, pageSize, req.skip, req.out, isZero);
  const reply: WorkReply = { id: req.id, sizes, data, pages };
  parentPort!.postMessage(reply, [sizes.buffer as ArrayBuffer, data.buffer as ArrayBuffer, pages.buffer as ArrayBuffer]);
});

function scanShare({ exclusion: job }: ExclusionRequest): void {
  let reply: ExclusionReply;
  try {
    file ??= openVmcoreSource(source!);
    // The present pages (and so the bitmap's length) from this thread's own reading of the same
    // file, once: a kdump file's bitmap comes a window at a time, a request each.
    scanning ??= (() => {
      const core = openVmcoreWithSystemCodecs(file, source);
      // Shares are asked for by the kdump writer only, which follows page frames past a whole bitmap's limit.
      return { core, present: new PresentPages(core.memory.ranges, pageSize, KDUMP_WRITER_LIMIT) };
    })();
    const { core, present } = scanning;
    const bitmaps: DumpBitmaps = { present, dumpable: job.dumpable, dumpableFirst: job.first, maxPfn: BigInt(present.maxPfn), counts: emptyCounts(), presentPages: BigInt(present.count), scanBuffer: scanning.scanBuffer };
    excludeByPageFlags(vmcoreKernelMemory(core), core.vmcoreinfo!, bitmaps, job.level, pageSize, undefined, { claim: () => Atomics.add(job.counter, 0, 1) });
    scanning.scanBuffer = bitmaps.scanBuffer;
    reply = { exclusion: { counts: bitmaps.counts } };
  } catch (e) {
    reply = { exclusion: { error: (e as Error).message } };
  }
  parentPort!.postMessage(reply);
}
