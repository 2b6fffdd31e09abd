/**
 * The compression pool's threads and V8's young generation: starting a worker thread must not
 * leave the main thread's young generation free to double again (jit.ts youngGenerationKeptAgain).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

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
  assert.equal(withWorker, alone, `with a worker started first the new space is ${withWorker} KiB, where without one it is ${alone} KiB`);
});
