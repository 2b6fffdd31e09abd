/** Compression across worker threads, results handed back in submission order. */
import { Worker } from "node:worker_threads";
import { compressBatch, pageCompressor, type Codec, type CompressedBatch } from "./compress.js";
import type { WorkReply, WorkRequest } from "./worker.js";

export interface Compressor {
  /** `pages` and `out` (each as big as the batch) belong to the compressor until the promise settles; they come back in the result. */
  submit(pages: Uint8Array, count: number, skip: Uint8Array, out: Uint8Array): Promise<CompressedBatch>;
  close(): Promise<void>;
}

export function inlineCompressor(codec: Codec, pageSize: number): Compressor {
  const compress = pageCompressor(codec, pageSize);
  return {
    async submit(pages, count, skip, out) {
      const batch = compressBatch(compress, pages, count, pageSize, skip, out);
      // Let signals and the progress timer run between batches.
      await new Promise((r) => setImmediate(r));
      return batch;
    },
    async close() {},
  };
}

export function workerCompressor(codec: Codec, pageSize: number, threads: number): Compressor {
  pageCompressor(codec, pageSize); // fail early (zstd) in the main thread, with the usage error
  const url = new URL("./worker.js", import.meta.url);
  const workers = Array.from({ length: threads }, () => new Worker(url, { workerData: { codec, pageSize } }));
  const waiting = new Map<number, { resolve: (r: CompressedBatch) => void; reject: (e: Error) => void }>();
  let failure: Error | undefined;
  for (const w of workers) {
    w.on("message", (reply: WorkReply) => {
      const done = waiting.get(reply.id);
      waiting.delete(reply.id);
      done?.resolve({ sizes: reply.sizes, data: reply.data, pages: reply.pages });
    });
    w.on("error", (e) => {
      failure = e;
      for (const r of waiting.values()) r.reject(e);
      waiting.clear();
    });
  }
  let next = 0;
  return {
    submit(pages, count, skip, out) {
      if (failure) return Promise.reject(failure);
      const id = next++;
      const req: WorkRequest = { id, pages, out, count, skip };
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        // Transferred, not copied: the buffers move to the worker and back.
        workers[id % workers.length]!.postMessage(req, [pages.buffer as ArrayBuffer, out.buffer as ArrayBuffer]);
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
