import { test } from "node:test";
import assert from "node:assert/strict";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { compressBatch, type PageCompressInto } from "../vmcore/batch.js";
import { writeKdumpDump, type BatchCompressor } from "../vmcore/dump-writer.js";
import { exclusionLeavingOut, syntheticVmcore } from "../vmcore/testing.js";
import { bytesAccess, type PhysRange } from "../vmcore/memory.js";
import { openVmcore, type Vmcore } from "../vmcore/vmcore.js";
import fc from "fast-check";
import { storedElfRuns, vmcoreReport } from "./vmcore.js";
import { SparseSink } from "../../node/vmcore/sparse-sink.js";

const PS = 4096;

test("vmcore report: a page-flag scan that cannot run (no SIZE(page)) does not hide the crashed kernel's log", () => {
  // The synthetic dump's VMCOREINFO has the printk ring buffer but no struct page layout.
  const s = syntheticVmcore(64);
  const report = vmcoreReport(openVmcore(bytesAccess(s.bytes), "synth.vmcore"), "synth.vmcore");
  assert.equal(report.problems.length, 1, report.problems.join("\n"));
  assert.match(report.problems[0]!, /^why pages are missing: .*SIZE\(page\)/);
  assert.deepEqual(report.log.map((l) => l.text), s.messages.map((m) => m.text));
  assert.ok(report.log.some((l) => l.panic && /Kernel panic/.test(l.text)));
});

test("vmcore report: an ELF core's stored pages, worked out per PT_LOAD, are the pages that start inside a PT_LOAD's file part", () => {
  const load = fc.record({ p_paddr: fc.bigInt({ min: 0n, max: 1n << 22n }), p_filesz: fc.bigInt({ min: 0n, max: 1n << 20n }) });
  fc.assert(fc.property(fc.array(load, { maxLength: 6 }), fc.array(fc.tuple(fc.nat(1200), fc.nat(300)), { maxLength: 5 }), (loads, raw) => {
    // Present runs: sorted, neither overlapping nor touching, as PresentPages keeps them.
    const present: [number, number][] = [];
    let at = 0;
    for (const [gap, n] of raw) { const first = at + gap + 1; if (n > 0) present.push([first, first + n]); at = first + n; }
    const expected: number[] = [];
    for (const [first, end] of present) for (let p = first; p < end; p++) {
      const pa = BigInt(p * PS);
      if (loads.some((l) => pa >= l.p_paddr && pa < l.p_paddr + l.p_filesz)) expected.push(p);
    }
    const got = storedElfRuns(loads, present, PS).flatMap(([a, b]) => Array.from({ length: b - a }, (_, k) => a + k));
    assert.deepEqual(got, expected);
  }), { numRuns: 300 });
});

/** Stores every page as it is (codec "none"), reading the extents it is given from the source's bytes. */
function storingCompressor(source: Uint8Array): BatchCompressor {
  const compressOne: PageCompressInto = () => -1;
  return {
    compressOne,
    async submit(pages, count, skip, out, extents) {
      const file = { readInto: (offset: bigint, dst: Uint8Array, at: number, length: number) => dst.set(source.subarray(Number(offset), Number(offset) + length), at) };
      return compressBatch(compressOne, pages, count, PS, skip, out, undefined, extents, file);
    },
  };
}

/** Page frame runs [start, end) of sorted page frames, as the report gives them (byte addresses in hex). */
function rangesOf(pfns: readonly number[]): { start: string; end: string }[] {
  const runs: { start: number; end: number }[] = [];
  for (const p of pfns) {
    const last = runs.at(-1);
    if (last && last.end === p) last.end++;
    else runs.push({ start: p, end: p + 1 });
  }
  return runs.map((r) => ({ start: hex(BigInt(r.start) * BigInt(PS)), end: hex(BigInt(r.end) * BigInt(PS)) }));
}

test("vmcore report: a window of a few pages at a time is the report of one window, for an ELF core and a kdump file, with runs across the windows' edges", async () => {
  const s = syntheticVmcore(600);
  const core = openVmcore(bytesAccess(s.bytes), "synth.vmcore");
  // ELF: RAM's PT_LOAD stores only its first 300 pages (p_filesz < p_memsz), so its tail is missing.
  const loads = core.elf!.loads.map((l, i) => (i === 1 ? { ...l, p_filesz: 300n * BigInt(PS) } : l));
  const elf: Vmcore = { ...core, elf: { ...core.elf!, loads } };
  // kdump at dump level 1, cut short after its first batch (256 pages): its zero pages share one
  // stored page; the pages past the cut are missing, the rest (zero pages, at dump level 1).
  const sink = new SparseSink();
  const r = await writeKdumpDump(core, { codec: "none", dumpLevel: 1, what: "synth.vmcore", faultAfterPages: 500 }, sink, storingCompressor(s.bytes));
  assert.equal(r.complete, false);
  assert.equal(r.pagesWritten, 256n);
  const kdump = openVmcore(sink.access(), "synth.kdump");
  assert.ok(kdump.memory.hasPage, "a kdump file says which pages it holds");
  for (const [what, dump] of [["ELF", elf], ["kdump", kdump]] as const) {
    const whole = vmcoreReport(dump, what);
    assert.ok(whole.dumped.length > 0 && whole.leftOut.length > 0, `${what}: something dumped and something left out`);
    assert.match(whole.problems.join("\n"), /^why pages are missing: .*SIZE\(page\)/, `${what}: the scan could not run, once`);
    assert.equal(whole.problems.length, 1, what);
    for (const windowPages of [8, 16, 24, 64, 200]) {
      const windowed = vmcoreReport(dump, what, { windowPages });
      assert.deepEqual(windowed, whole, `${what}: windows of ${windowPages} pages`);
      // The page frame runs cross the windows' edges, and are one range each all the same.
      const edges = [...whole.dumped, ...whole.leftOut.flatMap((l) => l.ranges)].filter((g) => {
        const first = Number(BigInt(g.start) / BigInt(PS));
        const end = Number(BigInt(g.end) / BigInt(PS));
        return Math.floor(first / windowPages) !== Math.floor((end - 1) / windowPages);
      });
      assert.ok(edges.length > 0, `${what}: a run crosses an edge of windows of ${windowPages} pages`);
    }
  }
  assert.throws(() => vmcoreReport(elf, "ELF", { windowPages: 12 }), (e: Error) => e instanceof KexecError && e.data.field === "windowPages");
});

test("vmcore report: memory at 12 and 17 TiB (page frames past 2^31 and 2^32) in a kdump file: the pages it holds, those it lacks, and the log", async () => {
  const s = syntheticVmcore(600);
  const low = openVmcore(bytesAccess(s.bytes), "synthetic");
  const TiB = 1n << 40n;
  const pages = new Map<number, Uint8Array>(s.pages);
  const ranges: PhysRange[] = [...low.memory.ranges];
  // A few pages of each high run left out by the exclusion; one in five a zero page.
  const left = new Set<number>();
  for (const [start, n] of [[12n * TiB, 520], [17n * TiB, 700]] as const) {
    const first = Number(start / BigInt(PS));
    ranges.push({ start, end: start + BigInt(n * PS) });
    for (let i = 0; i < n; i++) {
      const page = new Uint8Array(PS);
      if (i % 5 !== 0) new DataView(page.buffer).setFloat64(0, first + i, true);
      pages.set(first + i, page);
      if (i % 7 === 3 || (i >= 100 && i < 300)) left.add(first + i);
    }
  }
  const { elf: _, ...notElf } = low;
  const core: Vmcore = { ...notElf, memory: { pageSize: PS, ranges, readPage: (pfn) => pages.get(Number(pfn)) } };
  const exclusion = exclusionLeavingOut(left);
  const sink = new SparseSink();
  const r = await writeKdumpDump(core, { codec: "none", dumpLevel: 1, what: "synthetic" }, sink, storingCompressor(s.bytes), {}, exclusion);
  assert.equal(r.complete, true);
  const sorted = (pfns: Iterable<number>) => [...pfns].sort((a, b) => a - b);
  const kept = sorted([...pages.keys()].filter((p) => !left.has(p)));
  assert.equal(r.pagesWritten, BigInt(kept.length));

  const dump = openVmcore(sink.access(), "high.kdump");
  const report = vmcoreReport(dump, "high.kdump");
  assert.deepEqual(report.dumped, rangesOf(kept), "the pages the writer wrote");
  assert.ok(report.dumped.some((g) => BigInt(g.start) >= 2n ** 31n * BigInt(PS)) && report.dumped.some((g) => BigInt(g.start) >= 2n ** 32n * BigInt(PS)), "ranges past page frames 2^31 and 2^32");
  // The scan cannot run (the synthetic VMCOREINFO has no struct page): what is missing is the rest, zero pages at dump level 1.
  assert.deepEqual(report.leftOut, [{ type: "zero", pages: left.size, ranges: rangesOf(sorted(left)) }]);
  assert.deepEqual(report.log.map((l) => l.text), s.messages.map((m) => m.text), "the log");
  assert.ok(report.log.some((l) => l.panic));

  // An ELF core reaching past page frame 2^40 (4 PiB) is refused by name.
  const tooHigh: Vmcore = { ...low, memory: { ...low.memory, ranges: [...low.memory.ranges, { start: 1n << 52n, end: (1n << 52n) + BigInt(PS) }] } };
  assert.throws(() => vmcoreReport(tooHigh, "high.elf"), (e: Error) => e instanceof KexecError && e.data.file === "high.elf" && e.data.expected === "<= 0x10000000000000" && e.data.actual === "0x10000000001000"
    && /^high\.elf: memory range .* reaches page frame 0x10000000001; kexec-ts reports dumps of memory below 0x10000000000000 \(4 PiB/.test(e.message) && /makedumpfile/.test(e.hint ?? ""));
});
