import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { makeScale, pieceHeight, MIN_PIECE } from "./scale.js";
import { readTar, writeTar } from "../archive/tar.js";

test("piecewise scale: a 4 KiB range stays visible next to a 64 TiB gap, and y grows with the address", () => {
  const s = makeScale("piecewise", 0n, (1n << 46n) + 0x2000n, [0x1000n, 0x2000n, 1n << 46n]);
  assert.equal(s.y(0x2000n) - s.y(0x1000n), MIN_PIECE);
  assert.equal(s.y(1n << 46n) - s.y(0x2000n), pieceHeight((1n << 46n) - 0x2000n));
  assert.ok(pieceHeight(1n << 46n) < 10 * MIN_PIECE, "64 TiB is not more than ten 4 KiB pieces tall");
  assert.match(s.describe, /^piecewise: .*4 KiB is 16 px/);
  fc.assert(fc.property(fc.array(fc.bigInt({ min: 0n, max: 1n << 52n }), { minLength: 1, maxLength: 40 }), fc.bigInt({ min: 0n, max: 1n << 52n }), fc.bigInt({ min: 0n, max: 1n << 52n }), (cuts, a, b) => {
    const sc = makeScale("piecewise", 0n, 1n << 52n, cuts);
    const [lo, hi] = a < b ? [a, b] : [b, a];
    assert.ok(sc.y(lo) <= sc.y(hi) + 1e-9);
    for (const t of sc.ticks) assert.ok(Math.abs(sc.y(t.address) - t.y) < 1e-6);
  }));
});

test("linear scale is proportional", () => {
  const s = makeScale("linear", 0x1000n, 0x3000n, [0x2000n]);
  assert.equal(s.y(0x2000n), s.height / 2);
});

test("tar: what writeTar writes, readTar reads back (long names split into prefix and name)", () => {
  const long = `sys/devices/system/cpu/${"cpu0/".repeat(20)}crash_notes`;
  const entries = [
    { name: "SNAPSHOT.json", type: "file" as const, data: new TextEncoder().encode("{}\n") },
    { name: "sys/firmware/efi", type: "dir" as const },
    { name: long, type: "file" as const, data: new Uint8Array(1000).fill(7) },
    { name: "proc/iomem", type: "file" as const, data: new Uint8Array(0) },
  ];
  const back = readTar(writeTar(entries));
  assert.deepEqual(back.map((e) => [e.name, e.type, e.data.length]), [["SNAPSHOT.json", "file", 3], ["sys/firmware/efi/", "dir", 0], [long, "file", 1000], ["proc/iomem", "file", 0]]);
  assert.deepEqual([...back[2]!.data.subarray(0, 3)], [7, 7, 7]);
});

test("the report's plan: each segment's window and the bounds that set it; a window that could not hold a segment says which bounds closed it", async () => {
  const { readMachine } = await import("../../node/machine.js");
  const { buildReport } = await import("./model.js");
  const { readKernelImage } = await import("../image/index.js");
  const { buildBzImage } = await import("../image/testing/synthetic.js");
  const machine = await readMachine(new URL("../../../testdata/snapshots/qemu-amd64-6.1-5level-crash1968M", import.meta.url).pathname);
  const image = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 }));
  const base = { crash: true, syscall: "kexec_load" as const, cmdline: "console=ttyS0", userArch: "i386" as const, initrdSize: 0x800000 };
  const ok = buildReport({ machine, source: "test", image: { image, name: "vmlinuz" }, request: base });
  const kernel = ok.plan!.segments.find((s) => s.kind === "kernel")!;
  assert.equal(kernel.window!.limit.value, "0x100000000");
  assert.match(kernel.window!.limit.reason, /32-bit kexec_load/);
  assert.ok(ok.plan!.limits.some((l) => l.value === "0x100000000"));
  assert.ok(ok.handover && ok.handover.invariants.every((i) => i.holds));
  assert.ok(ok.checks.find((c) => c.id === "crash-region")!.links.some((l) => l.anchor === "map-crash-0"));
  const failed = buildReport({ machine, source: "test", image: { image, name: "vmlinuz" }, request: { ...base, memMax: 0x7c000000n } });
  assert.equal(failed.plan!.segments.length, 0);
  assert.equal(failed.handover, undefined);
  const w = failed.plan!.error!.window!;
  assert.equal(w.limit.reason, "--mem-max");
  assert.equal(w.limit.value, "0x7c000001");
  assert.ok(failed.checks.find((c) => c.id === "placement-hole" && c.verdict === "fail")!.links.some((l) => l.anchor === "segment-failed"));
});
