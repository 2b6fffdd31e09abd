/** A compression worker: a batch of pages (or where to read them) in, the bytes to store (and the buffers, for reuse) out. */
import { parentPort, workerData } from "node:worker_threads";
import { compressBatch, readExtents, type FileExtents } from "../../core/vmcore/batch.js";
import { pageCompressor, zeroPageTest, type Codec } from "./compress.js";
import type { OpenFile } from "./file.js";
import { openVmcoreSource } from "./mapped-file.js";

export interface WorkRequest { id: number; pages: Uint8Array; out: Uint8Array; count: number; skip: Uint8Array; extents?: FileExtents }
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

parentPort!.on("message", (req: WorkRequest) => {
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
