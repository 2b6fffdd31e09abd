/** Compression across worker threads, results handed back in submission order. */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { BatchReadError, compressBatch, type CompressedBatch, type ExtentSource, type FileExtents, type PageCompressInto, type ZeroPageTest } from "../../core/vmcore/batch.js";
import type { BatchCompressor } from "../../core/vmcore/dump-writer.js";
import { pageCompressor, zeroPageTest, type Codec } from "./compress.js";
import { youngGenerationKeptAgain } from "../jit.js";
import { emptyCounts } from "../../core/vmcore/exclude.js";
import type { ExclusionReply, ExclusionRequest, WorkReply, WorkRequest, WorkerSetup } from "./worker.js";
import { CLAIM_DONE, CLAIM_MAIN, CLAIM_OPEN, CLAIM_SLOTS, claimSlot } from "./claims.js";

/** The exclusion scan's share as the caller gives it; the pool adds who has joined. */
export type ExclusionJob = Omit<ExclusionRequest["exclusion"], "joined">;

export { BatchReadError };

/** The core's batch compressor, with threads to stop at the end. */
export interface Compressor extends BatchCompressor {
  close(): Promise<void>;
  /**
   * Worker threads take part in the exclusion scan (ExclusionRequest) while the caller does its
   * own part. The function returned is called when the caller's part is done: it settles with
   * each thread's reply once all that joined are done. A thread still starting then is left out:
   * it has taken nothing, and its reply is empty counts. Absent without workers.
   */
  shareExclusion?(job: ExclusionJob): () => Promise<ExclusionReply["exclusion"][]>;
  /** Settles once every worker has loaded (or ended); batches go to a worker only from then on. Absent without workers. */
  loaded?: Promise<void>;
}

/** A batch handed to a worker, until its reply comes or this thread takes it back. */
interface HandedOut {
  req: WorkRequest;
  /** The worker's index. */
  to: number;
  /** What submit returned for it. */
  promise: Promise<CompressedBatch>;
  resolve(batch: CompressedBatch): void;
  reject(e: Error): void;
}

function isShared(bytes: Uint8Array | Int32Array): boolean {
  return bytes.buffer instanceof SharedArrayBuffer;
}

/** The source file, for compressors that read extents themselves: workers open it again by its path. */
export interface SourceFile extends ExtentSource { path: string }

export function inlineCompressor(codec: Codec, pageSize: number, source?: SourceFile): Compressor {
  const compress = pageCompressor(codec, pageSize);
  const isZero = zeroPageTest(pageSize);
  return {
    compressOne: compress,
    submit: (pages, count, skip, out, extents, sizes) => compressHere(compress, isZero, pageSize, source, pages, count, skip, out, extents, sizes),
    async close() {},
  };
}

/** A batch read (when `extents` says where) and compressed in the calling thread. */
async function compressHere(compress: PageCompressInto, isZero: ZeroPageTest, pageSize: number, source: SourceFile | undefined, pages: Uint8Array, count: number, skip: Uint8Array, out: Uint8Array, extents?: FileExtents, sizes?: Int32Array): Promise<CompressedBatch> {
  const batch = compressBatch(compress, pages, count, pageSize, skip, out, isZero, extents, source, sizes);
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
 * `threads` worker threads, and the calling thread compresses too: it would otherwise only wait
 * for them. On two cores that is one worker instead of two: 60-70 ms less of starting an isolate
 * and loading the codecs, ~20 MiB less peak RSS, and no third thread competing for two cores.
 *
 * Every batch is handed to the loaded worker holding the fewest (a count in shared memory that it
 * lowers as it finishes one); while no worker has loaded yet, it is compressed here. This thread
 * also reads, describes and writes every batch, so how much compressing it has room for depends
 * on the codec and the machine. It takes that share itself, by taking
 * batches back: when it would wait for a batch a worker is still compressing, it compresses the
 * oldest batch handed out that no worker has begun (takeBack; claims.ts says who has a batch).
 * Batch buffers are shared memory for that (batchBuffer), and nothing moves between threads.
 *
 * A fixed share was too much for lzo and too little for zlib. Before (stop 45), a worker took a
 * batch only while it held fewer than two, and this thread compressed the others: with lzo the
 * worker then sat waiting for its next batch (strace: 117 ms in epoll_pwait on a 1 GiB -d 1 save)
 * while this thread, with its own work and a share of the compressing, was the one behind.
 * Against that (alternating runs, medians, stop 46): 1 GiB -d 1 lzo 0.451 against 0.480 s, zlib
 * 2.391 against 2.591 s; 4 GiB -d 1 lzo 1.196 against 1.331 s, -d 31 lzo 0.251 against 0.261 s;
 * 1 GiB -d 31 zlib 0.506 against 0.538 s. Every batch to the worker and none taken back: 0.691 s
 * against 0.542 on the 1 GiB lzo save, this thread waiting instead.
 *
 * The exclusion scan does not wait for a worker that had not joined it by its end: the worker's
 * start (40-60 ms, an isolate and the codecs) left this thread idle for as long there, and again
 * at the first batches handed to it. 1 GiB -d 31 lzo with a worker 0.192 against 0.199 s.
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
  // By worker, in shared memory, read here without waiting for a message: 1 once it has loaded,
  // and the batches handed to it that it has not compressed yet (it lowers that itself, and this
  // thread when it takes one back).
  const loaded = new Int32Array(new SharedArrayBuffer(4 * threads));
  const queued = new Int32Array(new SharedArrayBuffer(4 * threads));
  const claims = new Int32Array(new SharedArrayBuffer(4 * CLAIM_SLOTS));
  const workers = Array.from({ length: threads }, (_, index) => new Worker(url, { workerData: { codec, pageSize, source: source?.path, loaded, queued, claims, index } satisfies WorkerSetup }));
  // Batches handed to a worker and not settled, oldest first (a Map keeps insertion order).
  const waiting = new Map<number, HandedOut>();
  let failure: Error | undefined;
  // Each thread says when it has loaded its modules; close() waits for that (see worker.ts).
  const ready = workers.map((w) => new Promise<void>((resolve) => {
    w.once("exit", () => resolve());
    w.on("message", (m: { ready?: boolean }) => { if (m.ready) resolve(); });
  }));
  const allLoaded = Promise.all(ready).then(youngGenerationKeptAgain);
  // The exclusion scan's replies, by worker: its own, or its failure, whichever comes first.
  let exclusionReply: ((worker: number, r: ExclusionReply["exclusion"]) => void) | undefined;
  for (const [index, w] of workers.entries()) {
    w.on("message", (reply: WorkReply | ExclusionReply | { ready: true }) => {
      if ("ready" in reply) return;
      if ("exclusion" in reply) { exclusionReply?.(index, reply.exclusion); return; }
      const done = waiting.get(reply.id);
      if (done === undefined) return;
      waiting.delete(reply.id);
      const { pages, out } = done.req;
      if (reply.error !== undefined) done.reject(new BatchReadError(reply.error, pages, out));
      else done.resolve({ sizes: reply.sizes ?? done.req.sizes!.subarray(0, done.req.count), data: out.subarray(0, reply.stored), pages });
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
    submit(pages, count, skip, out, extents, sizes) {
      if (failure) return Promise.reject(failure);
      const id = next++;
      // The loaded worker holding the fewest batches; this thread while none has loaded, or for
      // buffers a worker cannot see (not from batchBuffer).
      let to = -1;
      let least = Infinity;
      for (let i = 0; i < threads; i++) {
        const held = Atomics.load(queued, i);
        if (held < least && Atomics.load(loaded, i) === 1) { to = i; least = held; }
      }
      if (to < 0 || !isShared(pages) || !isShared(out)) return compressHere(compressOne, isZero, pageSize, source, pages, count, skip, out, extents, sizes);
      Atomics.add(queued, to, 1);
      Atomics.store(claims, claimSlot(id), CLAIM_OPEN);
      // Sizes the worker cannot write where this thread sees them come back in its reply.
      const req: WorkRequest = { id, pages, out, count, skip, extents, ...(sizes && isShared(sizes) ? { sizes } : {}) };
      let settle!: Pick<HandedOut, "resolve" | "reject">;
      const promise = new Promise<CompressedBatch>((resolve, reject) => { settle = { resolve, reject }; });
      waiting.set(id, { req, to, promise, ...settle });
      // Shared memory: the worker sees the same buffers, nothing is copied or moved.
      workers[to]!.postMessage(req);
      return promise;
    },
    batchBuffer: (bytes) => new Uint8Array(new SharedArrayBuffer(bytes)),
    takeBack(waitingFor) {
      // Only while a worker is compressing the batch waited for (or has not begun it).
      let compressing = false;
      for (const [id, handed] of waiting) {
        if (handed.promise === waitingFor) { compressing = Atomics.load(claims, claimSlot(id)) !== CLAIM_DONE; break; }
      }
      if (!compressing) return false;
      for (const [id, handed] of waiting) {
        if (Atomics.compareExchange(claims, claimSlot(id), CLAIM_OPEN, CLAIM_MAIN) !== CLAIM_OPEN) continue;
        waiting.delete(id);
        Atomics.sub(queued, handed.to, 1);
        const { pages, count, skip, out, extents, sizes } = handed.req;
        try {
          handed.resolve(compressBatch(compressOne, pages, count, pageSize, skip, out, isZero, extents, source, sizes));
        } catch (e) {
          // A BatchReadError is the batch's outcome; anything else fails the save, as in a worker.
          handed.reject(e as Error);
        }
        return true;
      }
      return false;
    },
    loaded: allLoaded,
    async close() {
      await allLoaded;
      await Promise.all(workers.map((w) => w.terminate()));
    },
    ...(source === undefined ? {} : {
      shareExclusion: (job) => {
        // A thread that failed already would never answer.
        if (failure) {
          const failed = [{ error: failure.message }];
          return () => Promise.resolve(failed);
        }
        // By worker: 0 until it joins the scan (1), or 2 once the caller has left it out.
        const joined = new Int32Array(new SharedArrayBuffer(4 * threads));
        const got: (ExclusionReply["exclusion"] | undefined)[] = workers.map(() => undefined);
        let waitingFor = threads;
        let allIn: (replies: ExclusionReply["exclusion"][]) => void;
        const settled = new Promise<ExclusionReply["exclusion"][]>((resolve) => { allIn = resolve; });
        const take = (worker: number, r: ExclusionReply["exclusion"]) => {
          if (got[worker] !== undefined) return;
          got[worker] = r;
          if (--waitingFor === 0) { exclusionReply = undefined; allIn(got as ExclusionReply["exclusion"][]); }
        };
        exclusionReply = take;
        for (const w of workers) w.postMessage({ exclusion: { ...job, joined } } satisfies ExclusionRequest);
        return () => {
          // A worker that has not joined by now never will, and sends nothing: it took no group.
          for (let index = 0; index < threads; index++) {
            if (Atomics.compareExchange(joined, index, 0, 2) === 0) take(index, { counts: emptyCounts() });
          }
          return settled;
        };
      },
    }),
  };
}
