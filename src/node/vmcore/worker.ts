/** A compression worker: a batch of pages in, the bytes to store (and the buffers, for reuse) out. */
import { parentPort, workerData } from "node:worker_threads";
import { compressBatch, pageCompressor, type Codec } from "./compress.js";

export interface WorkRequest { id: number; pages: Uint8Array; out: Uint8Array; count: number; skip: Uint8Array }
export interface WorkReply { id: number; sizes: Int32Array; data: Uint8Array; pages: Uint8Array }

const { codec, pageSize } = workerData as { codec: Codec; pageSize: number };
const compress = pageCompressor(codec, pageSize);

parentPort!.on("message", (req: WorkRequest) => {
  const { sizes, data, pages } = compressBatch(compress, req.pages, req.count, pageSize, req.skip, req.out);
  const reply: WorkReply = { id: req.id, sizes, data, pages };
  parentPort!.postMessage(reply, [sizes.buffer as ArrayBuffer, data.buffer as ArrayBuffer, pages.buffer as ArrayBuffer]);
});
