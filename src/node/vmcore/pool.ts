/** Compression across worker threads, results handed back in submission order. */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { compressBatch, readExtents, type CompressedBatch, type FileExtents, type PageCompressInto, type ZeroPageTest } from "../../core/vmcore/batch.js";
import { BatchReadError, type BatchCompressor } from "../../core/vmcore/dump-writer.js";
import { pageCompressor, zeroPageTest, type Codec } from "./compress.js";
import { youngGenerationKeptAgain } from "../jit.js";
import type { ExclusionReply, ExclusionRequest, WorkReply, WorkRequest } from "./worker.js";

export { BatchReadError };

/** The core's batch compressor, with threads to stop at the end. */
export interface Compressor extends BatchCompressor {
  close(): Promise<void>;
  /**
   * Worker threads take part in the exclusion scan (ExclusionRequest) while the caller does its
   * own part; settles with each thread's reply once all are done. Absent without workers.
   */
  shareExclusion?(job: ExclusionRequest["exclusion"]): Promise<ExclusionReply["exclusion"][]>;
}

/** The source file, for compressors that read extents themselves. */
export interface SourceFile { path: string; readInto(offset: bigint, out: Uint8Array, at: number, length: number): void }

export function inlineCompressor(codec: Codec, pageSize: number, source?: SourceFile): Compressor {
  const compress = pageCompressor(codec, pageSize);
  const isZero = zeroPageTest(pageSize);
  return {
    compressOne: compress,
    submit: (pages, count, skip, out, extents) => compressHere(compress, isZero, pageSize, source, pages, count, skip, out, extents),
    async close() {},
  };
}

/** A batch read (when `extents` says where) and compressed in the calling thread. */
async function compressHere(compress: PageCompressInto, isZero: ZeroPageTest, pageSize: number, source: SourceFile | undefined, pages: Uint8Array, count: number, skip: Uint8Array, out: Uint8Array, extents?: FileExtents): Promise<CompressedBatch> {
  try {
    if (extents && extents.length > 0) readExtents(source!.readInto, extents, pages, pageSize);
  } catch (e) {
    throw new BatchReadError((e as Error).message, pages, out);
  }
  const batch = compressBatch(compress, pages, count, pageSize, skip, out, isZero);
  // Let signals, the progress timer and the workers' replies run between batches.
  await new Promise((r) => setImmediate(r));
  return batch;
}

/** The worker as one bundled file where the build made it (scripts/bundle.mjs), else its module. */
function workerUrl(): URL {
  const bundled = new URL("./worker.bundle.cjs", import.meta.url);
  return existsSync(bundled) ? bundled : new URL("./worker.js", import.meta.url);
}

/**
 * `threads` worker threads, and the calling thread compresses every (threads + 1)th batch
 * itself: it would otherwise only wait for them. On two cores that is one worker instead of
 * two: 60-70 ms less of starting an isolate and loading the codecs, ~20 MiB less peak RSS,
 * and no third thread competing for two cores.
 *
 * The calling thread also reads, describes and writes every batch, so the worker waits for it
 * now and then. Handing the worker each batch while it had fewer than two (its count in shared
 * memory, lowered as it finished one), and compressing here only otherwise, was faster: 1 GiB
 * -d 1 zlib 2.389 against 2.466 s (9 alternating runs), 4 GiB 6.696 against 7.013 s. But a
 * 16 GiB -d 1 save then peaked at 87-100 MiB (six runs) against 86-91: near its end one scavenge
 * took this thread's V8 heap from 16 to 24 MB (--trace-gc). The memory goal is missed already;
 * not kept (stop 39).
 */
export function workerCompressor(codec: Codec, pageSize: number, threads: number, source?: SourceFile): Compressor {
  // Made here first: a codec that cannot work (zstd without libzstd) fails now, with the usage error.
  const compressOne = pageCompressor(codec, pageSize);
  const isZero = zeroPageTest(pageSize);
  const url = workerUrl();
  // Required here, not imported: in the bundle, where fflate does not load it either
  // (scripts/bundle.mjs), a save without threads (--threads 0, a small dump, one core) never loads
  // node:worker_threads, 2 ms of its start.
  const { Worker } = createRequire(import.meta.url)("node:worker_threads") as typeof import("node:worker_threads");
  const workers = Array.from({ length: threads }, () => new Worker(url, { workerData: { codec, pageSize, source: source?.path } }));
  const waiting = new Map<number, { resolve: (r: CompressedBatch) => void; reject: (e: Error) => void }>();
  let failure: Error | undefined;
  // Each thread says when it has loaded its modules; close() waits for that (see worker.ts).
  const ready = workers.map((w) => new Promise<void>((resolve) => {
    w.once("exit", () => resolve());
    w.on("message", (m: { ready?: boolean }) => { if (m.ready) resolve(); });
  }));
  void Promise.all(ready).then(youngGenerationKeptAgain);
  // The exclusion scan's replies, by worker: its own, or its failure, whichever comes first.
  let exclusionReply: ((worker: number, r: ExclusionReply["exclusion"]) => void) | undefined;
  for (const [index, w] of workers.entries()) {
    w.on("message", (reply: WorkReply | ExclusionReply | { ready: true }) => {
      if ("ready" in reply) return;
      if ("exclusion" in reply) { exclusionReply?.(index, reply.exclusion); return; }
      const done = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (reply.error !== undefined) done?.reject(new BatchReadError(reply.error, reply.pages, reply.out));
      else done?.resolve({ sizes: reply.sizes, data: reply.data, pages: reply.pages });
    });
    w.on("error", (e) => {
      failure = e;
      for (const r of waiting.values()) r.reject(e);
      waiting.clear();
      exclusionReply?.(index, { error: e.message });
    });
  }
  let next = 0;
  return {
    compressOne,
    parallel: threads + 1,
    submit(pages, count, skip, out, extents) {
      if (failure) return Promise.reject(failure);
      const id = next++;
      if (id % (threads + 1) === threads) return compressHere(compressOne, isZero, pageSize, source, pages, count, skip, out, extents);
      const req: WorkRequest = { id, pages, out, count, skip, extents };
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        // Transferred, not copied: the buffers move to the worker and back.
        workers[id % (threads + 1)]!.postMessage(req, [pages.buffer as ArrayBuffer, out.buffer as ArrayBuffer]);
      });
    },
    async close() {
      await Promise.all(ready);
      await Promise.all(workers.map((w) => w.terminate()));
    },
    ...(source === undefined ? {} : {
      shareExclusion: (job) => new Promise((resolve) => {
        // A thread that failed already would never answer.
        if (failure) { resolve([{ error: failure.message }]); return; }
        const got: (ExclusionReply["exclusion"] | undefined)[] = workers.map(() => undefined);
        let pending = workers.length;
        exclusionReply = (worker, r) => {
          if (got[worker] !== undefined) return;
          got[worker] = r;
          if (--pending === 0) { exclusionReply = undefined; resolve(got as ExclusionReply["exclusion"][]); }
        };
        for (const w of workers) w.postMessage({ exclusion: job } satisfies ExclusionRequest);
      }),
    }),
  };
}
