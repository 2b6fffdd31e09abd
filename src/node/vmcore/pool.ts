/** Compression across worker threads, results handed back in submission order. */
import { Worker } from "node:worker_threads";
import { compressBatch, pageCompressor, type Codec, type CompressedBatch } from "./compress.js";
import type { WorkReply, WorkRequest } from "./worker.js";

export interface Compressor {
  submit(pages: Uint8Array, skip: Uint8Array): Promise<CompressedBatch>;
  close(): Promise<void>;
}

export function inlineCompressor(codec: Codec, pageSize: number): Compressor {
  const compress = pageCompressor(codec);
  return {
    async submit(pages, skip) {
      const batch = compressBatch(compress, pages, pageSize, skip);
      // Let signals and the progress timer run between batches.
      await new Promise((r) => setImmediate(r));
      return batch;
    },
    async close() {},
  };
}

export function workerCompressor(codec: Codec, pageSize: number, threads: number): Compressor {
  pageCompressor(codec); // fail early (zstd) in the main thread, with the usage error
  const url = new URL("./worker.js", import.meta.url);
  const workers = Array.from({ length: threads }, () => new Worker(url, { workerData: { codec } }));
  const waiting = new Map<number, (r: CompressedBatch) => void>();
  let failure: Error | undefined;
  const rejects = new Map<number, (e: Error) => void>();
  for (const w of workers) {
    w.on("message", (reply: WorkReply) => {
      const done = waiting.get(reply.id);
      waiting.delete(reply.id);
      rejects.delete(reply.id);
      done?.({ sizes: reply.sizes, data: reply.data });
    });
    w.on("error", (e) => {
      failure = e;
      for (const r of rejects.values()) r(e);
    });
  }
  let next = 0;
  return {
    submit(pages, skip) {
      if (failure) return Promise.reject(failure);
      const id = next++;
      const req: WorkRequest = { id, pages, pageSize, skip };
      return new Promise((resolve, reject) => {
        waiting.set(id, resolve);
        rejects.set(id, reject);
        workers[id % workers.length]!.postMessage(req, [pages.buffer as ArrayBuffer]);
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
