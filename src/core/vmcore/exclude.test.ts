/** The present pages kept as runs, and the exclusion scan shared between threads (exclude.ts: groups taken from a common counter). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { PresentPages, excludeByPageFlags, presentBitmaps, setBit, testBit, type DumpBitmaps } from "./exclude.js";
import type { PhysRange, RandomAccess } from "./memory.js";
import { spoilingViews } from "./testing.js";
import { KDUMP_WRITER_LIMIT } from "./page-frame-limits.js";
import { openVmcore, vmcoreKernelMemory } from "./vmcore.js";
import { cachedVmcorePath } from "../../node/kernel-cache.js";
import { missingInput } from "../../node/test-inputs.js";
import { openRandomAccess } from "../../node/vmcore/file.js";
import { openViewedFile } from "../../node/vmcore/mapped-file.js";

const REAL = cachedVmcorePath("amd64-6.1");

/** The 1st bitmap page by page, as it was made before it was kept as runs. */
function naiveBitmap(ranges: readonly PhysRange[], pageSize: number): { bits: Uint8Array; maxPfn: number; count: number } {
  const ps = BigInt(pageSize);
  const maxPfn = ranges.reduce((m, r) => Math.max(m, Number((r.end + ps - 1n) / ps)), 0);
  const bits = new Uint8Array(Math.ceil(maxPfn / 8));
  let count = 0;
  for (const r of ranges) {
    for (let p = Number(r.start / ps); p < Number((r.end + ps - 1n) / ps); p++) if (!testBit(bits, p)) { setBit(bits, p); count++; }
  }
  return { bits, maxPfn, count };
}

test("present pages as runs: the same bits, counts and answers as the page-by-page bitmap, for unaligned, overlapping, touching and empty ranges", () => {
  // A fixed generator: the same cases every run.
  let seed = 0x2545f491;
  const next = (n: number) => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) % n; };
  for (let round = 0; round < 200; round++) {
    const ps = round % 2 ? 4096 : 512;
    const ranges: PhysRange[] = [];
    for (let k = next(12); k >= 0; k--) {
      const start = BigInt(next(5000)) * BigInt(ps) + BigInt(next(3) === 0 ? next(ps) : 0);
      // Empty, a part of a page, or up to a few hundred pages; some touch or overlap the previous one.
      const len = next(6) === 0 ? 0n : BigInt(next(300 * ps) + 1);
      const at = ranges.length && next(4) === 0 ? ranges[ranges.length - 1]!.end - BigInt(next(2) * next(ps)) : start;
      ranges.push({ start: at, end: at + len });
    }
    const naive = naiveBitmap(ranges, ps);
    const present = new PresentPages(ranges, ps);
    assert.equal(present.maxPfn, naive.maxPfn, `round ${round}: maxPfn`);
    assert.equal(present.count, naive.count, `round ${round}: count`);
    assert.equal(present.byteLength, naive.bits.length, `round ${round}: bytes`);
    for (let i = 1; i < present.runs.length; i++) assert.ok(present.runs[i - 1]![1] < present.runs[i]![0], `round ${round}: runs sorted, apart`);
    const whole = new Uint8Array(naive.bits.length + 3);
    present.bytesInto(whole, 0);
    assert.deepEqual(whole.subarray(0, naive.bits.length), naive.bits, `round ${round}: every byte`);
    assert.deepEqual([...whole.subarray(naive.bits.length)], [0, 0, 0], `round ${round}: zeros past maxPfn`);
    for (let k = 0; k < 20; k++) {
      const from = next(naive.bits.length + 2);
      const piece = new Uint8Array(1 + next(40)).fill(0xaa);
      present.bytesInto(piece, from);
      for (let b = 0; b < piece.length; b++) assert.equal(piece[b], naive.bits[from + b] ?? 0, `round ${round}: byte ${from + b} of a piece from ${from}`);
      const first = next(naive.maxPfn + 10);
      const n = next(70);
      let any = false;
      for (let p = first; p < first + n; p++) any ||= p < naive.maxPfn && testBit(naive.bits, p);
      assert.equal(present.anyIn(first, n), any, `round ${round}: anyIn(${first}, ${n})`);
      assert.equal(present.has(first), first < naive.maxPfn && testBit(naive.bits, first), `round ${round}: has(${first})`);
    }
  }
});

test("present pages past 2^32 page frames (17 TiB), as the kdump writer follows them: runs, anyIn, has and the bitmap's bytes from far up; 4 PiB is its end", () => {
  const TiB = 1n << 40n;
  const ranges = [{ start: 0n, end: 1n << 30n }, { start: 17n * TiB + 3n * 4096n, end: 17n * TiB + 20n * 4096n }];
  // Held whole, a bitmap stops at 8 TiB; the kdump writer holds a window of it at a time.
  assert.throws(() => new PresentPages(ranges, 4096), /below 0x80000000000 \(8 TiB of 4 KiB pages\)/);
  const present = new PresentPages(ranges, 4096, KDUMP_WRITER_LIMIT);
  const first = 17 * 2 ** 28; // 2^32 + 2^28: wrapped to 32 bits it is 1 TiB, where nothing is
  assert.equal(present.maxPfn, first + 20);
  assert.equal(present.count, 2 ** 18 + 17);
  assert.deepEqual(present.runs, [[0, 2 ** 18], [first + 3, first + 20]]);
  assert.equal(present.anyIn(first, 3), false);
  assert.equal(present.anyIn(first, 4), true);
  assert.equal(present.anyIn(2 ** 28, 64), false);
  assert.equal(present.has(first + 19), true);
  assert.equal(present.has(first + 20), false);
  const piece = new Uint8Array(4).fill(0xaa);
  present.bytesInto(piece, first / 8);
  assert.deepEqual([...piece], [0xf8, 0xff, 0x0f, 0], "page frames first + 3 .. first + 19");
  assert.throws(() => new PresentPages([{ start: 0n, end: (1n << 52n) + 1n }], 4096, KDUMP_WRITER_LIMIT), /saves kdump-compressed dumps of memory below 0x10000000000000 \(4 PiB of 4 KiB pages\)/);
});

test("exclusion scan split between two threads' claims clears the same pages, and counts them once, as one scan alone (real 6.1 vmcore, -d 31)", (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (run: node dist/lab/capture-vmcore.js, or the e2e suite's vmcore-amd64-6.1)`);
  const file = openRandomAccess(REAL);
  try {
    const core = openVmcore(file, REAL);
    const mem = vmcoreKernelMemory(core);
    // Groups of a section (128 MiB), not the 1 GiB a save uses: this dump is 1 GiB, and would be
    // one group. The lone scan clamps runs to 1 GiB groups; no real run crosses either size.
    const groupPages = 1 << 15;
    const scan = (bitmaps: DumpBitmaps, claim?: () => number) => excludeByPageFlags(mem, core.vmcoreinfo!, bitmaps, 31, 4096, undefined, claim && { claim, groupPages });
    const alone = presentBitmaps(core.memory.ranges, 4096);
    scan(alone);
    const groups = Math.ceil(Number(alone.maxPfn) / groupPages);
    assert.ok(groups >= 3, `the vmcore spans ${groups} groups: enough to share`);
    // Two threads' views of one counter: the first takes the even groups, the second the odd ones.
    const shared = presentBitmaps(core.memory.ranges, 4096);
    const first = { ...shared, counts: { ...shared.counts } };
    const second = { ...shared, counts: { ...shared.counts } };
    let even = 0;
    let odd = 1;
    const scanned: number[] = [];
    scan(first, () => { scanned.push(even); return (even += 2) - 2; });
    scan(second, () => { scanned.push(odd); return (odd += 2) - 2; });
    assert.ok(scanned.filter((g) => g < groups).length === groups, "every group is claimed once");
    assert.deepEqual(Buffer.from(shared.dumpable), Buffer.from(alone.dumpable), "the same pages stay dumpable");
    for (const key of Object.keys(alone.counts) as (keyof typeof alone.counts)[]) {
      assert.equal(first.counts[key] + second.counts[key], alone.counts[key], `${key} pages are counted once`);
    }
    assert.ok(alone.counts.free > 0n && alone.counts.cache > 0n, "the scan excluded free and cache pages (it ran)");
    assert.ok(first.counts.free > 0n && second.counts.free > 0n, "both threads' shares excluded pages");
  } finally {
    file.close();
  }
});

test("exclusion scan with struct pages seen in place (a mapped file, or views spoiled at the next view) clears the same pages as reading them (real 6.1 vmcore, -d 31)", (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (run: node dist/lab/capture-vmcore.js, or the e2e suite's vmcore-amd64-6.1)`);
  const scanWith = (file: RandomAccess): DumpBitmaps => {
    const core = openVmcore(file, REAL);
    const bitmaps = presentBitmaps(core.memory.ranges, 4096);
    excludeByPageFlags(vmcoreKernelMemory(core), core.vmcoreinfo!, bitmaps, 31, 4096);
    return bitmaps;
  };
  const plain = openRandomAccess(REAL);
  const mapped = openViewedFile(REAL)!;
  try {
    assert.equal(plain.view, undefined);
    const read = scanWith(plain);
    assert.ok(read.counts.free > 0n && read.counts.cache > 0n, "the scan excluded free and cache pages (it ran)");
    // Views as copies of 4 MiB windows, each filled with garbage at the next view: a scan that
    // kept using one after asking for another would see it.
    const views = spoilingViews((offset, length) => plain.read(BigInt(offset), length), Number(plain.size), 4 << 20);
    const spoiled: RandomAccess = { size: plain.size, read: plain.read, ...views };
    let inPlace = 0;
    const counted: RandomAccess = { ...mapped, view: (offset, length) => { const v = mapped.view!(offset, length); if (v?.length === length) inPlace++; return v; } };
    for (const [name, file] of [["spoiled views", spoiled], ["a mapped file", counted]] as const) {
      const seen = scanWith(file);
      assert.deepEqual(Buffer.from(seen.dumpable), Buffer.from(read.dumpable), `${name}: the same pages stay dumpable`);
      assert.deepEqual(seen.counts, read.counts, name);
    }
    assert.ok(views.wholeViews >= 4 && inPlace >= 4, `sections' struct pages were seen whole in place (${views.wholeViews} and ${inPlace} times)`);
  } finally {
    plain.close();
    mapped.close();
  }
});
