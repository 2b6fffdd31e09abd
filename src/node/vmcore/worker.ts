/** A compression worker: pages in, compressed pages (or nothing when compression does not shrink one) out. */
import { parentPort, workerData } from "node:worker_threads";
import { compressBatch, pageCompressor, type Codec } from "./compress.js";

export interface WorkRequest { id: number; pages: Uint8Array; pageSize: number; skip: Uint8Array }
export interface WorkReply { id: number; sizes: Int32Array; data: Uint8Array }

const compress = pageCompressor((workerData as { codec: Codec }).codec);

parentPort!.on("message", (req: WorkRequest) => {
  const { sizes, data } = compressBatch(compress, req.pages, req.pageSize, req.skip);
  const reply: WorkReply = { id: req.id, sizes, data };
  parentPort!.postMessage(reply, [sizes.buffer as ArrayBuffer, data.buffer as ArrayBuffer]);
});
