/** A compression worker: pages in, compressed pages (or nothing when compression does not shrink one) out. */
import { parentPort, workerData } from "node:worker_threads";
import { pageCompressor, type Codec } from "./compress.js";

export interface WorkRequest { id: number; pages: Uint8Array; pageSize: number; skip: Uint8Array }
export interface WorkReply { id: number; sizes: Int32Array; data: Uint8Array }

const compress = pageCompressor((workerData as { codec: Codec }).codec);

parentPort!.on("message", (req: WorkRequest) => {
  const count = req.pages.length / req.pageSize;
  const sizes = new Int32Array(count);
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    if (req.skip[i]) { sizes[i] = -2; continue; }
    const page = req.pages.subarray(i * req.pageSize, (i + 1) * req.pageSize);
    const c = compress(page);
    if (c === undefined || c.length >= req.pageSize) { sizes[i] = -1; continue; }
    sizes[i] = c.length;
    parts.push(c);
    total += c.length;
  }
  const data = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { data.set(p, at); at += p.length; }
  const reply: WorkReply = { id: req.id, sizes, data };
  parentPort!.postMessage(reply, [sizes.buffer, data.buffer]);
});
