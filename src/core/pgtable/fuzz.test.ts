/**
 * The page-table walker fuzzed on real tables (src/core/testing/fuzz.ts says the rule): the
 * builder's tables for every format, with entries damaged as a corrupt dump would have them
 * (not present, large-page bit flipped, pointing into the wrong page or outside the tables),
 * walked at mapped and random addresses. kernel-memory reads a crashed kernel's tables through
 * this walker; src/core/vmcore/fuzz.test.ts damages the tables of a real dump.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { applyEdits, onlyKexecErrors, refusals, type Edit } from "../testing/fuzz.js";
import { PageTableBuilder, pageAllocator } from "./build.js";
import { PAGING_FORMATS, type PagingFormat } from "./format.js";
import { walkPageTable } from "./walk.js";

const FORMATS: PagingFormat[] = ["x86_64-5level", "x86_64-4level", "i386-pae", "i386-2level"];

for (const format of FORMATS) {
  test(`fuzz: ${format} walks over damaged tables: the mapping, or a KexecError`, (t) => {
    const spec = PAGING_FORMATS[format];
    const b = new PageTableBuilder(format, pageAllocator([{ start: 0x7f000000n, size: 0x800000n }], "fuzz tables"));
    const maps: [bigint, bigint, bigint][] = format.startsWith("x86_64")
      ? [[0xffffffff81000000n, 0x1000000n, 0x800000n], [0xffff888000000000n, 0n, 0x80000000n], [0x1000n, 0x1000n, 0x30000n]]
      : [[0xc0000000n, 0n, 0x20000000n], [0x1000n, 0x1000n, 0x30000n], [0xf7800000n, 0x38000000n, 0x13000n]];
    for (const [v, p, size] of maps) b.map(v, p, size);
    const pages = [...b.pages.keys()];
    const entry = fc.record({ page: fc.constantFrom(...pages), slot: fc.nat(4096 / spec.entrySize - 1) });
    const damage = fc.array(fc.tuple(entry, fc.oneof(
      fc.constantFrom(0n, 1n, 0x83n, 0x80n, 0xffffffffffffffffn, 0x7f000003n, 0x7f000083n, 0x7f7ff003n), fc.bigUintN(spec.entrySize * 8))), { minLength: 1, maxLength: 8 });
    const addresses = fc.array(fc.oneof(fc.constantFrom(...maps.map(([v]) => v), ...maps.map(([v, , s]) => v + s - 1n)), fc.bigUintN(spec.vaBits === 32 ? 32 : 64)), { minLength: 1, maxLength: 8 });
    refusals(t, fc.tuple(damage, addresses), 400, ([list, vaddrs]) => {
      const undo: (() => void)[] = [];
      for (const [{ page, slot }, value] of list) {
        const edit: Edit = { at: slot * spec.entrySize, size: spec.entrySize, value };
        undo.push(applyEdits(b.pages.get(page)!, [edit]));
      }
      try {
        let refused = false;
        for (const v of vaddrs) {
          refused = onlyKexecErrors(() => {
            const w = walkPageTable(format, b.top, v, b.readEntry);
            assert.ok(w.steps.length <= spec.levels.length, "a walk reads at most one entry per level");
            assert.ok([4096n, 1n << 21n, 1n << 22n, 1n << 30n].includes(w.pageSize), `page size ${w.pageSize}`);
          }, `${format} walk`) || refused;
        }
        return refused;
      } finally {
        for (const u of undo.reverse()) u();
      }
    });
    // Every edit was undone: the tables map what they did.
    for (const [v, p] of maps) assert.equal(b.walk(v).paddr, p);
  });
}
