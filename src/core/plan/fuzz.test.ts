/**
 * The purgatory parameter reader fuzzed (src/core/testing/fuzz.ts says the rule): patched blobs
 * of both arches with their kxts_params block damaged, cut short, or read at the wrong offset.
 * What it reads must be what is there: at most KXTS_MAX_REGIONS regions, whatever the count says.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { damaged, onlyKexecErrors, refusals } from "../testing/fuzz.js";
import { buildPurgatory, KXTS_MAX_REGIONS, KXTS_PARAMS_SIZE, readPurgatoryParams, sha256 } from "./purgatory.js";

const seeds = [
  buildPurgatory("x86_64", { mode: "entry64", entry: 0x1000200n, bootParams: 0x12345000n, regions: [{ start: 0x1000000n, bytes: new Uint8Array(100), memsz: 0x3000n }] }, sha256),
  buildPurgatory("x86_64", { mode: "entry32", entry: 0x100000n, bootParams: 0x90000n, regions: Array.from({ length: 16 }, (_, i) => ({ start: BigInt(i) << 24n, bytes: new Uint8Array(i) })), serialDebug: true }, sha256),
  buildPurgatory("i386", { mode: "entry32", entry: 0x100000n, bootParams: 0x90000n, regions: [] }, sha256),
].map((p) => p.bytes);

test("fuzz: the purgatory parameter reader on damaged, cut and misplaced parameter blocks", (t) => {
  for (const seed of seeds) {
    const clean = readPurgatoryParams(seed);
    assert.equal(clean.magic, "KXTSPURG", "the seed is a patched blob");
    refusals(t, fc.tuple(damaged(seed, 0, KXTS_PARAMS_SIZE), fc.oneof(fc.constant(0), fc.integer({ min: -16, max: seed.length + 16 }))), 500, ([bytes, offset]) =>
      onlyKexecErrors(() => {
        const p = readPurgatoryParams(bytes, offset);
        assert.equal(p.regions.length, Math.min(p.regionCount, KXTS_MAX_REGIONS), "regions read = the count, at most the block's 16");
        assert.equal(p.sha256.length, 32);
      }, "purgatory parameter block"), 0.02);
  }
});
