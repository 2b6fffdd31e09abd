import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { KexecError } from "../errors.js";
import { findIomem, formatIomem, parseIomem, type IomemEntry } from "./iomem.js";

const SAMPLE = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-000fffff : Reserved
  000f0000-000fffff : System ROM
00100000-bfffffff : System RAM
  01000000-0220bb07 : Kernel code
  03b34000-03c57fff : Kernel bss
  2f000000-3effffff : Crash kernel
c0001000-eebfffff : PCI Bus 0000:00
eec00000-febfffff : Reserved
  eec00000-eecfffff : PCI ECAM 0000 [bus 00-00]
    eec00000-eecfffff : PCI Bus 0000:00
100000000-63fffffff : System RAM
  5f0000000-63fffffff : Crash kernel
`;

test("iomem: inclusive ends become half-open sizes, nesting follows indentation", () => {
  const m = parseIomem(SAMPLE);
  assert.equal(m.addressesHidden, false);
  assert.equal(m.roots.length, 7);
  assert.deepEqual(
    m.roots.map((r) => [r.start, r.size, r.name]),
    [
      [0x0n, 0x1000n, "Reserved"],
      [0x1000n, 0x9ec00n, "System RAM"],
      [0x9fc00n, 0x60400n, "Reserved"],
      [0x100000n, 0xbff00000n, "System RAM"],
      [0xc0001000n, 0x2ebff000n, "PCI Bus 0000:00"],
      [0xeec00000n, 0x10000000n, "Reserved"],
      [0x100000000n, 0x540000000n, "System RAM"],
    ],
  );
  const ram = m.roots[3]!;
  assert.deepEqual(ram.children.map((c) => c.name), ["Kernel code", "Kernel bss", "Crash kernel"]);
  assert.equal(m.roots[5]!.children[0]!.children[0]!.depth, 2);
  assert.equal(m.flat.length, 14);
  assert.equal(m.flat[13]!.line, 14);
  // Both crash regions are found, nested anywhere.
  assert.deepEqual(findIomem(m, "Crash kernel").map((e) => [e.start, e.size]), [
    [0x2f000000n, 0x10000000n],
    [0x5f0000000n, 0x50000000n],
  ]);
});

test("iomem: a non-root reader sees zeros and is told so", () => {
  const hidden = "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n";
  const m = parseIomem(hidden);
  assert.equal(m.addressesHidden, true);
  assert.equal(m.lineCount, 3);
  assert.deepEqual(m.roots, []);
});

test("iomem: formatIomem prints what parseIomem reads", () => {
  assert.equal(formatIomem(parseIomem(SAMPLE).roots), SAMPLE);
});

function expectLineError(text: string, line: number, expected: RegExp): void {
  assert.throws(
    () => parseIomem(text),
    (e: unknown) => e instanceof KexecError && e.code === "parse" && e.data["line"] === line && expected.test(e.message) && e.hint !== undefined,
  );
}

test("iomem: malformed lines name the line and what was expected", () => {
  expectLineError("00000000-00000fff : Reserved\nzzzz\n", 2, /does not start with a hex address/);
  expectLineError("00000000-00000fff : Reserved\n00001000 : RAM\n", 2, /no '-'/);
  expectLineError("00001000-00000fff : Backwards\n", 1, /expected end >= start/);
  expectLineError("00000000-0fffffff : RAM\n   00001000-00001fff : Odd\n", 2, /multiple of 2/);
  expectLineError("00000000-0fffffff : RAM\n    00001000-00001fff : Too deep\n", 2, /nesting depth/);
  expectLineError("00000000-00000fff : RAM\n  00000000-00001fff : Outside\n", 2, /inside its parent/);
  expectLineError("00000000-00000fff : A\n00000800-00001fff : B\n", 2, /previous sibling/);
  expectLineError("00000000-00000fff:A\n", 1, /" : "/);
  expectLineError("00000000-0fffffff : RAM\n100000000-1ffffffffffffffff : Beyond\n", 2, /expected addresses of 64 bits at most, found 17 hex digits/);
  expectLineError("0000000000000000-ffffffffffffffff : Everything\n", 1, /expected a range whose size fits 64 bits/);
});

/** Well-formed trees: sorted, non-overlapping siblings, children inside parents. */
function arbTree(lo: bigint, hi: bigint, depth: number): fc.Arbitrary<IomemEntry[]> {
  return fc.array(fc.tuple(fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 1n, max: 1000n })), { maxLength: depth === 0 ? 6 : 3 }).chain((cuts) => {
    const entries: { start: bigint; size: bigint }[] = [];
    let at = lo;
    for (const [gap, len] of cuts) {
      const start = at + gap * 0x1000n;
      const size = len * 0x1000n;
      if (start + size > hi) break;
      entries.push({ start, size });
      at = start + size;
    }
    if (depth >= 2 || entries.length === 0) {
      return fc.constant(entries.map((e) => ({ ...e, name: "leaf", depth, line: 0, children: [] })));
    }
    return fc.tuple(...entries.map((e) => arbTree(e.start, e.start + e.size, depth + 1))).map((kids) =>
      entries.map((e, i) => ({ ...e, name: `r${depth}`, depth, line: 0, children: kids[i]! })),
    );
  });
}

test("iomem property: parsing printed trees never gives size 0 or overlapping siblings, and keeps every range", () => {
  fc.assert(
    fc.property(arbTree(0n, 1n << 48n, 0), (roots) => {
      const m = parseIomem(formatIomem(roots));
      const check = (entries: IomemEntry[], parent: IomemEntry | null): void => {
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]!;
          assert.ok(e.size > 0n);
          if (i > 0) assert.ok(entries[i - 1]!.start + entries[i - 1]!.size <= e.start);
          if (parent) assert.ok(e.start >= parent.start && e.start + e.size <= parent.start + parent.size);
          check(e.children, e);
        }
      };
      check(m.roots, null);
      const strip = (es: IomemEntry[]): unknown => es.map((e) => [e.start, e.size, strip(e.children)]);
      assert.deepEqual(strip(m.roots), strip(roots));
    }),
    { numRuns: 200 },
  );
});
