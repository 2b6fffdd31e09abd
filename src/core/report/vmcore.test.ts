import { test } from "node:test";
import assert from "node:assert/strict";
import { syntheticVmcore } from "../vmcore/testing.js";
import { bytesAccess } from "../vmcore/memory.js";
import { openVmcore } from "../vmcore/vmcore.js";
import { vmcoreReport } from "./vmcore.js";

test("vmcore report: a page-flag scan that cannot run (no SIZE(page)) does not hide the crashed kernel's log", () => {
  // The synthetic dump's VMCOREINFO has the printk ring buffer but no struct page layout.
  const s = syntheticVmcore(64);
  const report = vmcoreReport(openVmcore(bytesAccess(s.bytes), "synth.vmcore"), "synth.vmcore");
  assert.equal(report.problems.length, 1, report.problems.join("\n"));
  assert.match(report.problems[0]!, /^why pages are missing: .*SIZE\(page\)/);
  assert.deepEqual(report.log.map((l) => l.text), s.messages.map((m) => m.text));
  assert.ok(report.log.some((l) => l.panic && /Kernel panic/.test(l.text)));
});
