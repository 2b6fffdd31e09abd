/**
 * Physical address ranges, always half-open [start, start + size). Memory maps
 * from the kernel use inclusive ends; they are converted once, where they are
 * parsed, and never here.
 */

export interface Range {
  readonly start: bigint;
  readonly size: bigint;
}

export const PAGE_SIZE = 0x1000n;

export function range(start: bigint, size: bigint): Range {
  return { start, size };
}

export function rangeFromEnd(start: bigint, end: bigint): Range {
  return { start, size: end - start };
}

export function end(r: Range): bigint {
  return r.start + r.size;
}

export function isEmpty(r: Range): boolean {
  return r.size <= 0n;
}

export function overlaps(a: Range, b: Range): boolean {
  return a.size > 0n && b.size > 0n && a.start < end(b) && b.start < end(a);
}

export function contains(outer: Range, inner: Range): boolean {
  return inner.start >= outer.start && end(inner) <= end(outer);
}

export function containsAddress(r: Range, address: bigint): boolean {
  return address >= r.start && address < end(r);
}

export function intersect(a: Range, b: Range): Range | undefined {
  const s = a.start > b.start ? a.start : b.start;
  const e = end(a) < end(b) ? end(a) : end(b);
  return e > s ? { start: s, size: e - s } : undefined;
}

/** a minus b: zero, one or two pieces. */
export function minus(a: Range, b: Range): Range[] {
  if (!overlaps(a, b)) return a.size > 0n ? [a] : [];
  const out: Range[] = [];
  if (b.start > a.start) out.push({ start: a.start, size: b.start - a.start });
  if (end(b) < end(a)) out.push({ start: end(b), size: end(a) - end(b) });
  return out;
}

/** Sorted by start, adjacent or overlapping ranges merged, empty ones dropped. */
export function normalize(ranges: readonly Range[]): Range[] {
  // A memory map is already so (the 64 TiB model's 4,096 RAM ranges): the same ranges, unsorted.
  // Sorting them with a comparator, as below, took 1-2 ms of `plan -p` in V8's interpreter.
  if (isNormal(ranges)) return ranges.slice();
  const sorted = ranges.filter((r) => r.size > 0n).slice().sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= end(last)) {
      const e = end(r) > end(last) ? end(r) : end(last);
      out[out.length - 1] = { start: last.start, size: e - last.start };
    } else out.push(r);
  }
  return out;
}

/** Whether every range is non-empty and starts past the end of the one before: what normalize makes. */
function isNormal(ranges: readonly Range[]): boolean {
  let previousEnd: bigint | undefined;
  for (const r of ranges) {
    if (r.size <= 0n || (previousEnd !== undefined && r.start <= previousEnd)) return false;
    previousEnd = r.start + r.size;
  }
  return true;
}

/**
 * Every part of `ranges` not covered by any of `holes`, normalized. One sweep over both sorted
 * lists: a machine's thousands of RAM ranges minus a few holes, not every range once per hole.
 */
export function subtract(ranges: readonly Range[], holes: readonly Range[]): Range[] {
  const pieces = normalize(ranges);
  const cuts = normalize(holes);
  const out: Range[] = [];
  let h = 0;
  for (const p of pieces) {
    let start = p.start;
    const stop = end(p);
    // Holes wholly before this piece cannot touch it or any later one.
    while (h < cuts.length && end(cuts[h]!) <= start) h++;
    for (let i = h; i < cuts.length && cuts[i]!.start < stop; i++) {
      const cut = cuts[i]!;
      if (cut.start > start) out.push({ start, size: cut.start - start });
      const after = end(cut);
      if (after > start) start = after;
      if (start >= stop) break;
    }
    if (start < stop) out.push(start === p.start ? p : { start, size: stop - start });
  }
  return out;
}

/** Clip every range to the window, dropping what falls outside. */
export function clip(ranges: readonly Range[], window: Range): Range[] {
  const out: Range[] = [];
  const stop = end(window);
  for (const r of ranges) {
    // Past the window: nothing of it is inside (the capture kernel's low 1 MiB of 4,096 RAM ranges), and no sums to make.
    if (r.start >= stop) continue;
    const i = intersect(r, window);
    if (i) out.push(i);
  }
  return out;
}

export function alignUp(value: bigint, align: bigint): bigint {
  if (align <= 1n) return value;
  return ((value + align - 1n) / align) * align;
}

export function alignDown(value: bigint, align: bigint): bigint {
  if (align <= 1n) return value;
  return (value / align) * align;
}

export function isAligned(value: bigint, align: bigint): boolean {
  return align <= 1n || value % align === 0n;
}

export interface HoleRequest {
  size: bigint;
  align: bigint;
  /** Lowest allowed start address. */
  min: bigint;
  /** The segment must end at or below this address (exclusive limit). */
  limit: bigint;
  /** Highest fit (like kexec-tools' last fit and the kernel's top_down) or lowest. */
  topDown: boolean;
}

/**
 * Find the start of a hole for `request` among `free` ranges (which must be
 * normalized). Returns undefined when nothing fits; the caller explains why.
 */
export function findHole(free: readonly Range[], request: HoleRequest): bigint | undefined {
  const window = rangeFromEnd(request.min, request.limit);
  if (window.size < request.size || request.size <= 0n) return undefined;
  const candidates = clip(free, window);
  const order = request.topDown ? candidates.slice().reverse() : candidates;
  for (const r of order) {
    if (request.topDown) {
      const start = alignDown(end(r) - request.size, request.align);
      if (start >= r.start && end(r) >= request.size) return start;
    } else {
      const start = alignUp(r.start, request.align);
      if (start + request.size <= end(r)) return start;
    }
  }
  return undefined;
}

/** Sum of sizes. */
export function totalSize(ranges: readonly Range[]): bigint {
  return ranges.reduce((n, r) => n + r.size, 0n);
}
