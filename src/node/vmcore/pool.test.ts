/**
 * The compression pool's threads: which thread a batch goes to, which takes it back, and V8's young generation:
 * starting a worker thread must not leave the main thread's young generation free to double
 * again (jit.ts youngGenerationKeptAgain).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { batchOutBytes } from "../../core/vmcore/batch.js";
import { BatchReadError, inlineCompressor, workerCompressor } from "./pool.js";

/** Pages that compress (text), one that does not (noise) and a zero page, in a file of their own. */
function pagesFile(dir: string, pages: number, PS: number): { path: string; bytes: Buffer } {
  const bytes = Buffer.alloc(pages * PS);
  for (let i = 0; i < pages - 2; i++) bytes.write(`page ${i} `.repeat(PS / 8), i * PS, PS, "latin1");
  for (let k = 0; k < PS; k++) bytes[(pages - 2) * PS + k] = (k * 2654435761) >>> 24;
  const path = join(dir, "pages");
  writeFileSync(path, bytes);
  return { path, bytes };
}

test("a batch goes to a worker once it has loaded, in buffers from batchBuffer; a read error there comes back with the batch's buffers", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-pool-"));
  const PS = 4096;
  const PAGES = 8;
  try {
    const { path, bytes } = pagesFile(dir, PAGES, PS);
    // This thread's reads fail, naming it; a worker reads the file by its path. So a batch's
    // outcome says which thread read it.
    const here = { path, readInto: () => { throw new Error("read in the calling thread"); } };
    const compressor = workerCompressor("lzo", PS, 1, here);
    const shared = () => ({ pages: compressor.batchBuffer!(PAGES * PS), out: compressor.batchBuffer!(batchOutBytes(PAGES, PS)) });
    const batch = (extents: number[], buffers = shared()) => compressor.submit(buffers.pages, PAGES, new Uint8Array(PAGES), buffers.out, Float64Array.from(extents));
    const calledHere = (e: unknown) => e instanceof BatchReadError && e.message === "read in the calling thread" && e.pages.length === PAGES * PS;
    try {
      // The worker cannot have loaded yet (an isolate and the codecs: tens of milliseconds).
      await assert.rejects(batch([0, 0, PAGES]), calledHere);
      await compressor.loaded;
      // Four at once: all to the worker, which reads them itself.
      const got = await Promise.all([0, 1, 2, 3].map(() => batch([0, 0, PAGES])));
      const expected = await inlineCompressor("lzo", PS).submit(Uint8Array.from(bytes), PAGES, new Uint8Array(PAGES), new Uint8Array(batchOutBytes(PAGES, PS)));
      for (const g of got) {
        assert.deepEqual([...g.sizes], [...expected.sizes]);
        assert.ok(Buffer.from(g.data).equals(Buffer.from(expected.data)), "the worker stored the same bytes as this thread would");
      }
      // Buffers a worker cannot see (not shared memory) are compressed here, not copied to it.
      await assert.rejects(batch([0, 0, PAGES], { pages: new Uint8Array(PAGES * PS), out: new Uint8Array(batchOutBytes(PAGES, PS)) }), calledHere);
      // Past the end of the file, read in the worker: its error, and the buffers back for reuse.
      const buffers = shared();
      await assert.rejects(batch([0, PAGES * PS, 1], buffers), (e: unknown) =>
        e instanceof BatchReadError && e.message !== "read in the calling thread" && /past the end|end of file|offset/i.test(e.message) && e.pages === buffers.pages && e.out === buffers.out);
    } finally {
      await compressor.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("takeBack: while a worker compresses the batch waited for, this thread compresses the oldest batch no worker has begun; each batch is compressed once, to the same bytes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-pool-"));
  const PS = 4096;
  const PAGES = 256;
  try {
    const { path, bytes } = pagesFile(dir, PAGES, PS);
    // This thread reads only what it takes back: every batch goes to the loaded worker.
    let readHere = 0;
    const here = { path, readInto: (offset: bigint, into: Uint8Array, at: number, length: number) => { readHere++; into.set(bytes.subarray(Number(offset), Number(offset) + length), at); } };
    const compressor = workerCompressor("zlib", PS, 1, here);
    const expected = await inlineCompressor("zlib", PS).submit(Uint8Array.from(bytes), PAGES, new Uint8Array(PAGES), new Uint8Array(batchOutBytes(PAGES, PS)));
    try {
      await compressor.loaded;
      assert.equal(compressor.takeBack!(Promise.resolve(expected)), false, "nothing to take back for a batch no worker has");
      let taken = 0;
      // Whether the worker has begun a batch is a race; over a few rounds of four it has not begun some.
      for (let round = 0; round < 50 && taken === 0; round++) {
        const batches = [0, 1, 2, 3].map(() => compressor.submit(compressor.batchBuffer!(PAGES * PS), PAGES, new Uint8Array(PAGES), compressor.batchBuffer!(batchOutBytes(PAGES, PS)), Float64Array.from([0, 0, PAGES])));
        while (compressor.takeBack!(batches[0]!)) taken++;
        // At most this round's four (the worker may not have begun even the first); the loop ends
        // at the first round that takes any.
        assert.ok(taken <= 4);
        for (const got of await Promise.all(batches)) {
          assert.deepEqual([...got.sizes], [...expected.sizes]);
          assert.ok(Buffer.from(got.data).equals(Buffer.from(expected.data)), "the same bytes, whichever thread compressed it");
        }
        // Once the batch waited for is compressed, nothing more is taken back for it.
        assert.equal(compressor.takeBack!(batches[0]!), false);
      }
      assert.ok(taken > 0, "this thread took a batch back while the worker compressed");
      assert.ok(readHere > 0, "what was taken back was read and compressed here");
    } finally {
      await compressor.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const pool = new URL("./pool.js", import.meta.url).href;

/**
 * In a Node of its own, as bin/kexec-ts.cjs leaves it (the growth factor set to 1 after start,
 * and recorded), with or without a compression worker started first: the size of the main
 * thread's new space after allocating with many survivors, in KiB.
 */
function newSpaceAfterSurvivors(withWorker: boolean): number {
  const script = `
    const v8 = await import("node:v8");
    v8.setFlagsFromString("--semi-space-growth-factor=1");
    globalThis[Symbol.for("kexec-ts.semi-space-growth")] = 1;
    if (${withWorker}) {
      const { workerCompressor } = await import(${JSON.stringify(pool)});
      const compressor = workerCompressor("zlib", 4096, 1);
      // close() waits for the worker to be ready, as a save's end does.
      await compressor.close();
    }
    // A sliding window of live objects: most of each scavenge survives, what makes V8 grow it.
    const keep = [];
    for (let i = 0; i < 400000; i++) { keep.push(new Array(16).fill(i)); if (keep.length > 8000) keep.shift(); }
    const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
    process.stdout.write(String(space.space_size / 1024));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

test("a compression worker's start does not let the main thread's young generation grow again", () => {
  const alone = newSpaceAfterSurvivors(false);
  const withWorker = newSpaceAfterSurvivors(true);
  // V8 grows it 2x at a time towards 2 x 16 MiB when the factor is 2 (32 MiB with this much surviving).
  assert.ok(alone <= 4096, `without a worker the new space stays at its first size, not ${alone} KiB`);
  // One doubling at most: the worker's isolate raises the factor as it is made, and the pool sets
  // it back only once the worker has loaded. A collection in between, with much surviving, grows
  // it once (4096 against 2048 KiB in about 1 run of 15-30 here); after that it must stay.
  assert.ok(withWorker <= 2 * alone, `with a worker started first the new space is ${withWorker} KiB, where without one it is ${alone} KiB`);
});
