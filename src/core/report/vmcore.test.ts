import { test } from "node:test";
import assert from "node:assert/strict";
import { syntheticVmcore } from "../vmcore/testing.js";
import { bytesAccess } from "../vmcore/memory.js";
import { openVmcore } from "../vmcore/vmcore.js";
import fc from "fast-check";
import { storedElfRuns, vmcoreReport } from "./vmcore.js";

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
  const PS = 4096;
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
