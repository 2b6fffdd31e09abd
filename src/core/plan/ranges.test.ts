import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { alignDown, alignUp, clip, contains, end, findHole, intersect, minus, normalize, overlaps, subtract, totalSize, type Range } from "./ranges.js";

const arbRange = fc.record({ start: fc.bigInt({ min: 0n, max: 1n << 40n }), size: fc.bigInt({ min: 0n, max: 1n << 32n }) });
const arbAlign = fc.constantFrom(1n, 0x1000n, 0x200000n, 0x1000000n);

/** Bytes covered, by brute force over a coarse grid, to check algebra without trusting it. */
function covers(ranges: readonly Range[], address: bigint): boolean {
  return ranges.some((r) => address >= r.start && address < end(r));
}

test("minus removes exactly the overlap", () => {
  fc.assert(fc.property(arbRange, arbRange, fc.array(fc.bigInt({ min: 0n, max: (1n << 40n) + (1n << 32n) }), { maxLength: 40 }), (a, b, probes) => {
    const pieces = minus(a, b);
    for (const p of [...probes, a.start, end(a) - 1n, b.start, end(b) - 1n, end(b)]) {
      assert.equal(covers(pieces, p), covers([a], p) && !covers([b], p));
    }
    for (const piece of pieces) assert.ok(piece.size > 0n);
  }));
});

test("normalize: sorted, disjoint, non-adjacent, same coverage", () => {
  fc.assert(fc.property(fc.array(arbRange, { maxLength: 12 }), fc.array(fc.bigInt({ min: 0n, max: 1n << 41n }), { maxLength: 40 }), (rs, probes) => {
    const n = normalize(rs);
    for (let i = 1; i < n.length; i++) assert.ok(n[i]!.start > end(n[i - 1]!));
    for (const p of [...probes, ...rs.map((r) => r.start)]) assert.equal(covers(n, p), covers(rs.filter((r) => r.size > 0n), p));
  }));
});

test("normalize: a list already normal comes back as it is, and one short of it (touching, empty, out of order) is sorted and merged", () => {
  // Normal lists take a path without the sort: the same ranges as sorting and merging them would give.
  const sortedAndMerged = (rs: readonly Range[]) => {
    const out: Range[] = [];
    for (const r of rs.filter((x) => x.size > 0n).sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0))) {
      const last = out[out.length - 1];
      if (last && r.start <= end(last)) out[out.length - 1] = { start: last.start, size: (end(r) > end(last) ? end(r) : end(last)) - last.start };
      else out.push(r);
    }
    return out;
  };
  const small = fc.record({ start: fc.bigInt({ min: 0n, max: 64n }), size: fc.bigInt({ min: -2n, max: 24n }) });
  fc.assert(fc.property(fc.array(fc.oneof(arbRange, small), { maxLength: 12 }), (rs) => {
    assert.deepEqual(normalize(rs), sortedAndMerged(rs));
    const n = normalize(rs);
    assert.deepEqual(normalize(n), n);
  }), { numRuns: 2000 });
  const map = [{ start: 0x1000n, size: 0x9f000n }, { start: 0x100000n, size: 0x1000n }];
  assert.deepEqual(normalize(map), map);
  assert.deepEqual(normalize([{ start: 0x1000n, size: 0x1000n }, { start: 0x2000n, size: 0x1000n }]), [{ start: 0x1000n, size: 0x2000n }]);
});

test("clip: each range's part inside the window, in order", () => {
  fc.assert(fc.property(fc.array(arbRange, { maxLength: 12 }), arbRange, (rs, window) => {
    assert.deepEqual(clip(rs, window), rs.flatMap((r) => intersect(r, window) ?? []));
  }));
});

test("subtract never leaves anything overlapping a hole", () => {
  fc.assert(fc.property(fc.array(arbRange, { maxLength: 8 }), fc.array(arbRange, { maxLength: 8 }), (rs, holes) => {
    const left = subtract(rs, holes);
    for (const l of left) for (const h of holes) assert.ok(!overlaps(l, h));
    assert.ok(totalSize(left) <= totalSize(normalize(rs)));
  }));
});

test("subtract: the same pieces as removing each hole from every piece in turn (the sweep against its definition)", () => {
  const byMinus = (rs: readonly Range[], holes: readonly Range[]) => {
    let pieces = normalize(rs);
    for (const h of normalize(holes)) pieces = pieces.flatMap((p) => minus(p, h));
    return pieces;
  };
  const small = fc.record({ start: fc.bigInt({ min: 0n, max: 64n }), size: fc.bigInt({ min: 0n, max: 24n }) });
  fc.assert(fc.property(fc.array(fc.oneof(arbRange, small), { maxLength: 12 }), fc.array(fc.oneof(arbRange, small), { maxLength: 12 }), (rs, holes) => {
    assert.deepEqual(subtract(rs, holes), byMinus(rs, holes));
  }), { numRuns: 2000 });
});

test("findHole: result is aligned, inside the window and inside one free range; none means none", () => {
  fc.assert(fc.property(
    fc.array(arbRange, { maxLength: 6 }), fc.bigInt({ min: 1n, max: 1n << 30n }), arbAlign,
    fc.bigInt({ min: 0n, max: 1n << 40n }), fc.bigInt({ min: 0n, max: 1n << 41n }), fc.boolean(),
    (rs, size, align, min, limit, topDown) => {
      const free = normalize(rs);
      const at = findHole(free, { size, align, min, limit, topDown });
      if (at !== undefined) {
        assert.equal(at % align, 0n);
        assert.ok(at >= min && at + size <= limit);
        assert.ok(free.some((f) => contains(f, { start: at, size })));
        return;
      }
      // Nothing found: no aligned position in any clipped free range fits.
      for (const f of free) {
        const w = intersect(f, { start: min, size: limit > min ? limit - min : 0n });
        if (!w) continue;
        const s = alignUp(w.start, align);
        assert.ok(s + size > end(w), `missed a fit at ${s.toString(16)} in ${w.start.toString(16)}+${w.size.toString(16)}`);
      }
    }));
});

test("findHole picks the highest fit top-down and the lowest bottom-up", () => {
  const free = normalize([{ start: 0x100000n, size: 0x1000000n }, { start: 0x10000000n, size: 0x4000000n }]);
  const req = { size: 0x200000n, align: 0x200000n, min: 0n, limit: 1n << 32n };
  assert.equal(findHole(free, { ...req, topDown: true }), 0x13e00000n);
  assert.equal(findHole(free, { ...req, topDown: false }), 0x200000n);
  assert.equal(findHole(free, { ...req, limit: 0x10000000n, topDown: true }), 0xe00000n);
  assert.equal(findHole(free, { ...req, size: 0x8000000n, topDown: true }), undefined);
});

test("alignment helpers", () => {
  assert.equal(alignUp(0x1001n, 0x1000n), 0x2000n);
  assert.equal(alignUp(0x1000n, 0x1000n), 0x1000n);
  assert.equal(alignDown(0x1fffn, 0x1000n), 0x1000n);
});
