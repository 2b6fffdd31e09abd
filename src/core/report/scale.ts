/**
 * The memory map's vertical scale. Physical memory spans 4 KiB pages and 64 TiB gaps, a ratio of
 * 2^34: no linear scale shows both. The piecewise scale cuts the address space at every boundary
 * the page draws (a range's start or end, a segment, a limit) and gives each piece a height that
 * grows with log2 of its size — 4 KiB gets MIN_PIECE pixels, each doubling PER_DOUBLING more —
 * and is linear inside a piece. The linear scale is there for a zoomed-in window, where it is
 * honest about proportions.
 */

export type ScaleKind = "piecewise" | "linear";

export const MIN_PIECE = 16;
export const PER_DOUBLING = 3;
const LINEAR_HEIGHT = 2400;

export interface Scale {
  kind: ScaleKind;
  lo: bigint;
  hi: bigint;
  /** Total height in pixels. */
  height: number;
  /** y of an address (clamped to the window). */
  y(address: bigint): number;
  /** The boundaries, with their y (the axis labels). */
  ticks: { address: bigint; y: number }[];
  /** How the page describes the scale to the reader. */
  describe: string;
}

function log2(v: bigint): number {
  return v <= 0n ? 0 : v.toString(2).length - 1;
}

export function pieceHeight(size: bigint): number {
  const doublings = Math.max(0, log2(size) - 12);
  return MIN_PIECE + PER_DOUBLING * doublings;
}

/** A scale over [lo, hi) cut at `boundaries` (any order, duplicates and outsiders ignored). */
export function makeScale(kind: ScaleKind, lo: bigint, hi: bigint, boundaries: Iterable<bigint>): Scale {
  const cuts = [...new Set([lo, hi, ...[...boundaries].filter((b) => b > lo && b < hi)])].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (kind === "linear") {
    const span = hi - lo;
    const y = (a: bigint) => (a <= lo ? 0 : a >= hi ? LINEAR_HEIGHT : Number(((a - lo) * 1000000n) / span) / 1000000 * LINEAR_HEIGHT);
    return { kind, lo, hi, height: LINEAR_HEIGHT, y, ticks: cuts.map((address) => ({ address, y: y(address) })), describe: `linear: ${LINEAR_HEIGHT} px for the whole window; small ranges may be thinner than a line` };
  }
  const ys: number[] = [0];
  for (let i = 1; i < cuts.length; i++) ys.push(ys[i - 1]! + pieceHeight(cuts[i]! - cuts[i - 1]!));
  const y = (a: bigint): number => {
    if (a <= lo) return 0;
    if (a >= hi) return ys[ys.length - 1]!;
    // Binary search for the piece [cuts[i], cuts[i+1]) holding a.
    let l = 0;
    let r = cuts.length - 1;
    while (r - l > 1) {
      const m = (l + r) >> 1;
      if (cuts[m]! <= a) l = m;
      else r = m;
    }
    const a0 = cuts[l]!;
    const a1 = cuts[l + 1]!;
    return ys[l]! + (Number(((a - a0) * 1000000n) / (a1 - a0)) / 1000000) * (ys[l + 1]! - ys[l]!);
  };
  return {
    kind, lo, hi, height: ys[ys.length - 1]!, y,
    ticks: cuts.map((address, i) => ({ address, y: ys[i]! })),
    describe: `piecewise: cut at every boundary drawn; a piece of 4 KiB is ${MIN_PIECE} px and each doubling adds ${PER_DOUBLING} px (64 TiB: ${pieceHeight(1n << 46n)} px), linear within a piece — heights are not proportional across pieces`,
  };
}
