import { test } from "node:test";
import { strict as assert } from "node:assert";
import { CONSTANTS, estimateCapture } from "./estimate.js";

const MiB = 1n << 20n;
const base = { mode: "default" as const, kernelInitSize: 64n * MiB, initrdCompressed: 2n * MiB, initrdUnpacked: 5n * MiB, moduleBytes: 3n * MiB, systemRam: 4n << 30n, threads: 0 };

const phase = (e: ReturnType<typeof estimateCapture>, p: string) => e.items.filter((i) => i.phase === p).reduce((n, i) => n + i.bytes, 0n);

test("the estimate adds what is always there to the larger moment (boot or save), each item with its source, rounded to 16 MiB", () => {
  const e = estimateCapture(base);
  const boot = phase(e, "boot");
  const save = phase(e, "save");
  assert.equal(e.total, phase(e, "always") + (boot > save ? boot : save));
  assert.equal(e.peak, "save", "a small default-mode initramfs: saving is the peak");
  for (const i of e.items) assert.ok(i.source.length > 10, i.what);
  assert.equal(e.suggested % (16n * MiB), 0n);
  assert.ok(e.suggested >= e.total && e.suggested - e.total < 16n * MiB);
  // struct pages: 1/64 of the reservation they describe.
  const memmap = e.items.find((i) => i.what.startsWith("struct pages"))!.bytes;
  assert.ok(memmap * 64n >= e.total - 4096n * 64n && memmap * 64n <= e.total + 4096n * 64n);
});

test("threads, RAM and the initramfs each move the estimate the way they should", () => {
  const e0 = estimateCapture(base).total;
  assert.ok(estimateCapture({ ...base, threads: 2 }).total >= e0 + 2n * CONSTANTS.perThread.bytes);
  const bitmaps = (ram: bigint) => estimateCapture({ ...base, systemRam: ram }).items.find((i) => i.what === "save bitmaps")!.bytes;
  assert.equal(bitmaps(4n << 30n), 256n << 10n, "4 GiB: two bitmaps of 128 KiB");
  assert.ok(estimateCapture({ ...base, systemRam: 32n << 30n }).total > e0, "bitmaps grow with the crashed machine's RAM");
  assert.equal(bitmaps(64n << 30n), 3n * MiB, "64 GiB: a window of 2 MiB of the dumpable bitmap, a piece of 1 MiB of the present one");
  assert.equal(bitmaps(1n << 40n), 3n * MiB, "1 TiB: the same window and piece (bench/RESULTS.md: 103 MiB peak held whole, 72 MiB in windows)");
  const self = estimateCapture({ ...base, mode: "self-contained", initrdUnpacked: 40n * MiB, initrdCompressed: 40n * MiB });
  assert.ok(self.total > e0 + 30n * MiB, "a self-contained initramfs holds Node's squashfs image");
  assert.equal(estimateCapture({ ...base, initrdCompressed: 300n * MiB }).peak, "boot", "a big compressed initramfs makes boot the peak");
});
