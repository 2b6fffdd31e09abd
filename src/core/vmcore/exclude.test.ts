/** The exclusion scan shared between threads (exclude.ts: groups taken from a common counter). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { excludeByPageFlags, presentBitmaps, type DumpBitmaps } from "./exclude.js";
import { openVmcore, vmcoreKernelMemory } from "./vmcore.js";
import { cachedVmcorePath } from "../../node/kernel-cache.js";
import { missingInput } from "../../node/test-inputs.js";
import { openRandomAccess } from "../../node/vmcore/file.js";

const REAL = cachedVmcorePath("amd64-6.1");

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
