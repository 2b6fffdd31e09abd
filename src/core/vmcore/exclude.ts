/**
 * Dump levels (makedumpfile's -d bitmask) and the page classification behind
 * them, read from the crashed kernel's struct page array. The sparse memory
 * model is walked as mm/sparse.c lays it out: mem_section (SPARSEMEM_EXTREME:
 * an array of root pointers), section_mem_map encoding mem_map - section start;
 * the flat model (i386) is one mem_map array. SIZE(page)/OFFSET(page.*) and the
 * PG_* bit numbers come from VMCOREINFO, word sizes from the dump's arch.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { POP8 } from "./kdump.js";
import type { KernelMemory } from "./kernel-memory.js";
import type { Field, PhysRange } from "./memory.js";
import { MAX_WHOLE_BITMAP_PFN, WHOLE_BITMAP_LIMIT, checkPageFrameLimit, type PageFrameLimit } from "./page-frame-limits.js";
import { VmcoreInfoView, type VmcoreInfo } from "./vmcoreinfo.js";

export const DL_EXCLUDE_ZERO = 1;
export const DL_EXCLUDE_CACHE = 2;
export const DL_EXCLUDE_CACHE_PRI = 4;
export const DL_EXCLUDE_USER_DATA = 8;
export const DL_EXCLUDE_FREE = 16;

export function describeDumpLevel(level: number): string[] {
  const out: string[] = [];
  if (level & DL_EXCLUDE_ZERO) out.push("1: pages filled with zeros");
  if (level & DL_EXCLUDE_CACHE) out.push("2: page cache pages without private data (on the LRU or in the swap cache, not anonymous)");
  if (level & DL_EXCLUDE_CACHE_PRI) out.push("4: page cache pages with private data (PG_private)");
  if (level & DL_EXCLUDE_USER_DATA) out.push("8: user process data (anonymous pages, hugetlbfs pages)");
  if (level & DL_EXCLUDE_FREE) out.push("16: free pages (in the buddy allocator)");
  return out;
}

export interface ExclusionCounts {
  zero: bigint;
  cache: bigint;
  cachePrivate: bigint;
  user: bigint;
  free: bigint;
  hwpoison: bigint;
}

export function emptyCounts(): ExclusionCounts {
  return { zero: 0n, cache: 0n, cachePrivate: 0n, user: 0n, free: 0n, hwpoison: 0n };
}

export interface DumpBitmaps {
  /** 1st bitmap: pages that exist (in a memory range), kept as the runs it is made of. */
  present: PresentPages;
  /**
   * 2nd bitmap: pages to dump; zero pages are cleared later, while the data is read. Bit 0 is
   * page frame `dumpableFirst`: a kdump file's writer holds it a window at a time (dump-writer.ts).
   */
  dumpable: Uint8Array;
  /** The page frame of `dumpable`'s bit 0: 0 when it is whole; a multiple of 8. */
  dumpableFirst?: number;
  /**
   * The struct pages of one chunk, as the exclusion scan read them last: kept for the next
   * window's scan (a fresh 2 MiB per window, 16 per TiB, piled up as garbage), and dropped after.
   */
  scanBuffer?: Uint8Array;
  maxPfn: bigint;
  counts: ExclusionCounts;
  presentPages: bigint;
}

/*
 * Bit p of a bitmap array: p is an offset into the array (a window's first page frame taken off),
 * below 2^32 bits; an absolute page frame above 2^31 is not one (`>>> 3` wraps it).
 */
export function setBit(bitmap: Uint8Array, p: number): void {
  bitmap[p >>> 3]! |= 1 << (p & 7);
}
export function clearBit(bitmap: Uint8Array, p: number): void {
  bitmap[p >>> 3]! &= ~(1 << (p & 7));
}
export function testBit(bitmap: Uint8Array, p: number): boolean {
  return (bitmap[p >>> 3]! & (1 << (p & 7))) !== 0;
}

/**
 * The 1st bitmap (the page frames that exist) as the runs of page frames it is made of: the
 * memory ranges are a handful to a few thousand, and the bitmap itself 32 MiB per TiB, which
 * only the dump file needs (its bytes are made a piece at a time as they are written). The 2nd
 * bitmap, which the scan clears bit by bit, is an array: in a kdump file's writer, a window of it
 * at a time (dump-writer.ts).
 */
export class PresentPages {
  /** Sorted page frame runs [first, end), neither overlapping nor touching. */
  readonly runs: readonly (readonly [first: number, end: number])[];
  /** One past the highest page frame of any range: the bitmaps' length in bits. */
  readonly maxPfn: number;
  /** Present page frames. */
  readonly count: number;
  /** Bytes of the bitmap. */
  readonly byteLength: number;

  /**
   * Pages a byte range covers, partial pages included (the kernel exports unaligned RAM ranges).
   * `limit`: how high the caller can follow page frames (page-frame-limits.ts): a bitmap of them
   * all held whole by default; the kdump writer, which holds a window at a time, goes higher.
   */
  constructor(ranges: readonly PhysRange[], pageSize: number, limit: PageFrameLimit = WHOLE_BITMAP_LIMIT) {
    const ps = BigInt(pageSize);
    const highest = ranges.reduce<PhysRange | undefined>((h, r) => (h === undefined || r.end > h.end ? r : h), undefined);
    if (highest !== undefined) checkPageFrameLimit(highest, pageSize, limit);
    const spans = ranges.map((r) => [Number(r.start / ps), Number((r.end + ps - 1n) / ps)] as [number, number]);
    this.maxPfn = spans.reduce((m, [, end]) => Math.max(m, end), 0);
    const runs: [number, number][] = [];
    for (const [first, end] of spans.filter(([first, end]) => end > first).sort((a, b) => a[0] - b[0])) {
      const last = runs[runs.length - 1];
      if (last && first <= last[1]) last[1] = Math.max(last[1], end);
      else runs.push([first, end]);
    }
    this.runs = runs;
    this.count = runs.reduce((n, [first, end]) => n + end - first, 0);
    this.byteLength = Math.ceil(this.maxPfn / 8);
  }

  /** The index of the last run starting at or below pfn, or -1. */
  private runAtOrBelow(pfn: number): number {
    let lo = 0;
    let hi = this.runs.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.runs[mid]![0] <= pfn) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  has(pfn: number): boolean {
    const i = this.runAtOrBelow(pfn);
    return i >= 0 && pfn < this.runs[i]![1];
  }

  /** Whether any of the page frames [first, first + n) is present. */
  anyIn(first: number, n: number): boolean {
    const i = this.runAtOrBelow(first + n - 1);
    return n > 0 && i >= 0 && this.runs[i]![1] > first;
  }

  /** The bitmap's bytes from byte `from` on, as many as `out` holds (zeros past maxPfn: a file's padding). */
  bytesInto(out: Uint8Array, from: number): void {
    out.fill(0);
    const lo = from * 8;
    const hi = (from + out.length) * 8;
    for (let r = Math.max(0, this.runAtOrBelow(lo)); r < this.runs.length; r++) {
      const [runFirst, runEnd] = this.runs[r]!;
      if (runFirst >= hi) break;
      const first = Math.max(runFirst, lo) - lo;
      const end = Math.min(runEnd, hi) - lo;
      if (end <= first) continue;
      // Whole bytes inside the run at once (a million pages per 4 GiB); bits at its ragged ends.
      const fullFrom = (first + 7) >>> 3;
      const fullTo = end >>> 3;
      if (fullFrom < fullTo) {
        out.fill(0xff, fullFrom, fullTo);
        for (let p = first; p < fullFrom * 8; p++) setBit(out, p);
        for (let p = fullTo * 8; p < end; p++) setBit(out, p);
      } else for (let p = first; p < end; p++) setBit(out, p);
    }
  }
}

/** Both bitmaps before any exclusion: every present page is dumpable. */
export function presentBitmaps(ranges: readonly PhysRange[], pageSize: number,
  /** Where the dumpable bitmap is made (shared memory, for a scan split between threads). */
  allocDumpable: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes),
  /** Who holds it whole, for the error beyond it (at most MAX_WHOLE_BITMAP_PFN). */
  limit: PageFrameLimit = WHOLE_BITMAP_LIMIT): DumpBitmaps {
  if (limit.end > MAX_WHOLE_BITMAP_PFN) throw new KexecError("internal", `a bitmap of every page frame held whole, up to page frame ${hex(limit.end)}: above MAX_WHOLE_BITMAP_PFN`, { field: "limit" }, "this is a bug in kexec-ts; please report it");
  const present = new PresentPages(ranges, pageSize, limit);
  const dumpable = allocDumpable(present.byteLength);
  present.bytesInto(dumpable, 0);
  return { present, dumpable, maxPfn: BigInt(present.maxPfn), counts: emptyCounts(), presentPages: BigInt(present.count) };
}

const MAX_ORDER = 11;

/**
 * The scan can be shared between threads (one dumpable bitmap in shared memory): each takes
 * whole groups of page frames, in order, from a common counter. A group is 2^18 pages (1 GiB of
 * 4 KiB pages: the largest compound page the scan follows, order 18, and every buddy block fit
 * inside one, as the kernel aligns them to their size) or a memory section or mem_map chunk if
 * that is larger, so no chunk is split. Threads clear bits of their own groups only: groups are
 * whole bitmap bytes apart.
 */
export const EXCLUSION_GROUP_PAGES = 1 << 18;

/** A thread's part in a shared scan. */
export interface ScanShare {
  /** Hands this thread the next unclaimed group number (0, 1, 2, ... across all threads). */
  claim: () => number;
  /** Smaller groups (tests: a small dump in several groups); never below a section. */
  groupPages?: number;
}

/**
 * Clears from `bitmaps.dumpable` the pages that dump level `level` drops, by their struct page.
 * Zero pages (level bit 1) are not decided here: that needs the page data.
 */
export function excludeByPageFlags(mem: KernelMemory, info: VmcoreInfo, bitmaps: DumpBitmaps, level: number, pageSize: number,
  /** Told of every run of pages cleared, with why (the report draws them). */
  onExclude?: (pfn: number, count: number, key: keyof ExclusionCounts) => void,
  /** With threads sharing the scan: which groups this one scans. */
  share?: ScanShare): void {
  if ((level & (DL_EXCLUDE_CACHE | DL_EXCLUDE_CACHE_PRI | DL_EXCLUDE_USER_DATA | DL_EXCLUDE_FREE)) === 0) return;
  const v = new VmcoreInfoView(info, `dump level ${level} (page flags from mem_map)`);
  // Every field is read from a buffer of SIZE(page)-byte structs: member() checks each fits.
  const pageStruct = v.size("page");
  const word = mem.pointerSize;
  const flagsAt = v.member("page", "flags", word);
  const mappingAt = v.member("page", "mapping", word);
  const mapcountAt = v.member("page", "_mapcount", 4);
  const privateAt = v.member("page", "private", word);
  const compoundHeadAt = v.optionalMember("page", "compound_head", word);
  const compoundOrderAt = v.optionalMember("page", "compound_order", 1);
  const compoundDtorAt = v.optionalMember("page", "compound_dtor", 1);
  // Page flags are tested as two 32-bit halves (a million struct pages per 4 GiB: BigInt
  // arithmetic per page was most of the scan's time).
  type Mask = readonly [lo: number, hi: number];
  const maskOf = (m: bigint): Mask => [Number(m & 0xffffffffn), Number((m >> 32n) & 0xffffffffn)];
  const bit = (name: string): Mask => (info.numbers.has(name) ? maskOf(1n << v.numberIn(name, 0n, BigInt(word * 8 - 1))) : [0, 0]);
  const PG_lru = bit("PG_lru");
  const PG_private = bit("PG_private");
  const PG_swapcache = bit("PG_swapcache");
  const PG_swapbacked = bit("PG_swapbacked");
  const PG_hwpoison = bit("PG_hwpoison");
  const PG_head = maskOf(info.numbers.get("PG_head_mask") ?? 0n);
  const buddyValue = info.numbers.get("PAGE_BUDDY_MAPCOUNT_VALUE");
  const hugetlbDtor = info.numbers.get("HUGETLB_PAGE_DTOR");
  const buddyBit = buddyValue === undefined ? 0 : Number(~buddyValue & 0xffffffffn);
  // The struct pages are read as 32-bit words: the scan runs once per save, before V8 has
  // optimised it, and an indexed load is a few bytecodes where a DataView call and the helper
  // closures it had were many (90 of a 1 GiB save's 300 ms went to this loop and its reads).
  // unsigned long, pointers and atomic_t are naturally aligned in the kernel's struct page.
  for (const [key, at] of [["SIZE(page)", pageStruct], ["OFFSET(page.flags)", flagsAt], ["OFFSET(page.mapping)", mappingAt], ["OFFSET(page._mapcount)", mapcountAt], ["OFFSET(page.private)", privateAt], ["OFFSET(page.compound_head)", compoundHeadAt ?? 0]] as const) {
    if (at % 4 !== 0) throw v.impossible(key, at, "a multiple of 4 (the kernel aligns these fields)");
  }
  // flags and private are unsigned longs: 4 bytes on i386, where the high half reads as 0.
  // Little-endian: the low half is at the field's offset.
  const scan: StructPageScan = {
    pageStruct,
    flagsWord: flagsAt >>> 2,
    mappingWord: mappingAt >>> 2,
    mapcountWord: mapcountAt >>> 2,
    privateWord: privateAt >>> 2,
    compoundHeadWord: compoundHeadAt === undefined ? -1 : compoundHeadAt >>> 2,
    compoundOrderAt: compoundOrderAt ?? -1,
    compoundDtorAt: compoundDtorAt ?? -1,
    wide: mem.pointerSize === 8 ? 1 : 0,
    lruLo: PG_lru[0], lruHi: PG_lru[1],
    privateLo: PG_private[0], privateHi: PG_private[1],
    swapcacheLo: PG_swapcache[0], swapcacheHi: PG_swapcache[1],
    swapbackedLo: PG_swapbacked[0], swapbackedHi: PG_swapbacked[1],
    hwpoisonLo: PG_hwpoison[0], hwpoisonHi: PG_hwpoison[1],
    headLo: PG_head[0], headHi: PG_head[1],
    buddyMask: (PAGE_TYPE_BASE | buddyBit) >>> 0,
    hasBuddy: buddyValue !== undefined,
    hugetlbDtor: compoundDtorAt !== undefined && hugetlbDtor !== undefined ? Number(hugetlbDtor) : -1,
    excludeFree: (level & DL_EXCLUDE_FREE) !== 0,
    excludeCache: (level & DL_EXCLUDE_CACHE) !== 0,
    excludeCachePrivate: (level & DL_EXCLUDE_CACHE_PRI) !== 0,
    excludeUser: (level & DL_EXCLUDE_USER_DATA) !== 0,
  };

  const { dumpable, counts } = bitmaps;
  // The page frames the bitmap holds: all of them, or the writer's window.
  const base = bitmaps.dumpableFirst ?? 0;
  const windowEnd = Math.min(Number(bitmaps.maxPfn), base + dumpable.length * 8);
  // By kind (SCAN_KINDS): one keyed store for every kind. A store per kind (a switch over the
  // names) had no type feedback for a kind the first pages lacked, and its first page threw the
  // optimised scan away; a store through the names themselves was megamorphic (1.7% of a 16 GiB
  // -d 31 save's CPU samples).
  const excluded = new Float64Array(SCAN_KINDS.length);
  const { groupPages, chunks } = memMapChunks(mem, info, v, bitmaps, pageSize, share?.groupPages ?? EXCLUSION_GROUP_PAGES, base, windowEnd);
  // A run never reaches past its group (where another thread may be scanning) or the window:
  // only a damaged struct page says a compound page or buddy block crosses one (the kernel aligns
  // both to their size, and windows are whole groups), and the whole scan clamps it the same way,
  // so a shared or windowed scan clears exactly the bits a lone one does.
  const exclude = (from: number, n: number, kind: number) => {
    const end = Math.min(from + n, windowEnd, base + (Math.floor((from - base) / groupPages) + 1) * groupPages);
    onExclude?.(from, end - from, SCAN_KINDS[kind]!);
    let cleared = 0;
    // A bitmap byte at a time, its bits [lo, hi) in the run (free blocks are up to 1024 pages), and
    // the same steps for a whole byte as for one page: a step only single pages took was reached
    // after the scan's loop was compiled, and threw it away.
    for (let p = from - base; p < end - base; ) {
      const lo = p & 7;
      const hi = Math.min(8, lo + (end - base - p));
      const mask = ((1 << hi) - 1) & ~((1 << lo) - 1);
      const old = dumpable[p >>> 3]!;
      cleared += POP8[old & mask]!;
      dumpable[p >>> 3] = old & ~mask;
      p += hi - lo;
    }
    excluded[kind]! += cleared;
  };
  // One buffer for every chunk (a section's struct pages: 2 MiB for 128 MiB of memory): fresh
  // memory per chunk cost a page fault per 4 KiB, twice, as much as reading it.
  let buffer = bitmaps.scanBuffer ?? new Uint8Array(0);
  let claimed = -1;
  const at: ScanPosition = { pages: buffer, words: new Uint32Array(0), first: 0, count: 0, from: 0 };
  const remaining = chunks[Symbol.iterator]();
  // Leaves `at` at a chunk with pages still to scan, reading the next one (this thread's) when
  // the last is done; false when no chunk is left.
  const advance = (): boolean => {
    for (;;) {
      if (at.from < at.count) return true;
      const r = remaining.next();
      if (r.done === true) return false;
      const { first, count, memMap, what } = r.value;
      if (share) {
        // Claims only grow, and chunks come in pfn order: a group passed over is another thread's.
        // Groups count from the window's first page frame (a multiple of the group's size but in tests).
        const group = Math.floor((first - base) / groupPages);
        while (claimed < group) claimed = share.claim();
        if (claimed !== group) continue;
      }
      const bytes = count * pageStruct;
      const vaddr = memMap + BigInt(first) * BigInt(pageStruct);
      // In place where the source is mapped (a section's struct pages lie together physically:
      // vmemmap maps them with 2 MiB pages), not copied into the buffer first: at 16 GiB the
      // copies were 256 MiB. The words need a 4-byte aligned place.
      const seen = mem.view(vaddr, bytes, what);
      if (seen !== undefined && ((seen.bytes.byteOffset + seen.from) & 3) === 0) {
        at.pages = seen.bytes.subarray(seen.from, seen.from + bytes);
        at.words = new Uint32Array(seen.bytes.buffer, seen.bytes.byteOffset + seen.from, bytes >>> 2);
      } else {
        if (buffer.length < bytes) buffer = bitmaps.scanBuffer = new Uint8Array(bytes);
        mem.readInto(vaddr, buffer, 0, bytes, what);
        at.pages = buffer;
        at.words = new Uint32Array(buffer.buffer, 0, bytes >>> 2);
      }
      at.first = first;
      at.count = count;
      at.from = 0;
    }
  };
  scanStructPages(at, advance, dumpable, base, scan, exclude);
  for (let kind = 0; kind < SCAN_KINDS.length; kind++) counts[SCAN_KINDS[kind]!] += BigInt(excluded[kind]!);
}

/** The kinds of page the struct page scan excludes, by the number it passes to its `exclude`. */
const SCAN_KINDS = ["free", "hwpoison", "cache", "cachePrivate", "user"] as const satisfies readonly (keyof ExclusionCounts)[];
const FREE = 0, HWPOISON = 1, CACHE = 2, CACHE_PRIVATE = 3, USER = 4;

/** page_type shares _mapcount: a type is set when the top nibble is PAGE_TYPE_BASE and its bit is clear. */
const PAGE_TYPE_BASE = 0xf0000000;

/** What the struct page scan tests, worked out once per save: word indexes into SIZE(page) structs and 32-bit halves of the flag masks. */
interface StructPageScan {
  pageStruct: number;
  flagsWord: number;
  mappingWord: number;
  mapcountWord: number;
  privateWord: number;
  /** These three are -1 where the kernel's struct page has no such member. */
  compoundHeadWord: number;
  /** Byte offsets, read in the tail page after a head. */
  compoundOrderAt: number;
  compoundDtorAt: number;
  /** 1 where unsigned long is 8 bytes (its high half is the next word), 0 on i386. */
  wide: number;
  lruLo: number; lruHi: number;
  privateLo: number; privateHi: number;
  swapcacheLo: number; swapcacheHi: number;
  swapbackedLo: number; swapbackedHi: number;
  hwpoisonLo: number; hwpoisonHi: number;
  headLo: number; headHi: number;
  buddyMask: number;
  hasBuddy: boolean;
  /** HUGETLB_PAGE_DTOR where compound_dtor can be read, -1 otherwise. */
  hugetlbDtor: number;
  excludeFree: boolean;
  excludeCache: boolean;
  excludeCachePrivate: boolean;
  excludeUser: boolean;
}

/**
 * The struct pages of every chunk, SCAN_PIECE at a time, each piece after a call of `advance`
 * (which reads the next chunk when one is done): each dumpable page's flags decide whether
 * `exclude` clears it. A function of its own, apart from excludeByPageFlags' setup, so V8's
 * optimising compiler compiles this loop alone: with the setup around it, it compiled the whole
 * function (30 ms on a 1 GiB save), then again after the first rare branch.
 *
 * One call for the whole scan, not one per chunk: V8 compiled a call per chunk twice, on stack
 * replacement in the first chunk and again when the next call came (8-13 ms more TurboFan on a
 * 1 GiB -d 31 save, on the save's own CPU where a capture kernel has one). In one call, a call
 * site first reached after that compile throws its code away (insufficient type feedback): so
 * `advance` is called every SCAN_PIECE pages, and has been reached before V8 compiles the loop.
 * A run that ends past its piece (a free block, a compound page) moves the next piece's start.
 */
function scanStructPages(at: ScanPosition, advance: () => boolean, dumpable: Uint8Array, dumpableFirst: number, s: StructPageScan,
  exclude: (from: number, n: number, kind: number) => void): void {
  const { pageStruct, flagsWord, mappingWord, mapcountWord, privateWord, compoundHeadWord, compoundOrderAt, compoundDtorAt, wide } = s;
  const { lruLo, lruHi, privateLo, privateHi, swapcacheLo, swapcacheHi, swapbackedLo, swapbackedHi, hwpoisonLo, hwpoisonHi, headLo, headHi } = s;
  const { buddyMask, hasBuddy, hugetlbDtor, excludeFree, excludeCache, excludeCachePrivate, excludeUser } = s;
  const structWords = pageStruct >>> 2;
  // One call of `exclude` for every kind of page: a call site the first pages never reached has
  // no type feedback, and reaching it threw the optimised loop away.
  while (advance()) {
    const { pages, words, first, count } = at;
    const bitFirst = first - dumpableFirst;
    let i = at.from;
    const to = Math.min(count, i + SCAN_PIECE);
    while (i < to) {
      const b = bitFirst + i;
      if ((dumpable[b >>> 3]! & (1 << (b & 7))) === 0) { i++; continue; }
      const w = i * structWords;
      const flagsLo = words[w + flagsWord]!;
      const flagsHi = wide ? words[w + flagsWord + 1]! : 0;
      const pageType = words[w + mapcountWord]!;
      // A tail page of a compound page (compound_head has bit 0 set): its head decides.
      if (compoundHeadWord >= 0 && (words[w + compoundHeadWord]! & 1) === 1) { i++; continue; }
      let n = 1;
      let kind = -1;
      if (excludeFree && hasBuddy && ((pageType & buddyMask) >>> 0) === PAGE_TYPE_BASE >>> 0) {
        const orderLo = words[w + privateWord]!;
        n = (wide ? words[w + privateWord + 1]! : 0) === 0 && orderLo < MAX_ORDER ? 1 << orderLo : 1;
        kind = FREE;
      } else if (((flagsLo & hwpoisonLo) | (flagsHi & hwpoisonHi)) !== 0) kind = HWPOISON;
      else {
        let hugetlb = false;
        if (((flagsLo & headLo) | (flagsHi & headHi)) !== 0 && i + 1 < count) {
          const order = compoundOrderAt < 0 ? 0 : pages[(i + 1) * pageStruct + compoundOrderAt]!;
          if (order > 0 && order < 19) n = 1 << order;
          if (hugetlbDtor >= 0) hugetlb = pages[(i + 1) * pageStruct + compoundDtorAt]! === hugetlbDtor;
        }
        // PAGE_MAPPING_ANON is bit 0 of page->mapping.
        const anon = (words[w + mappingWord]! & 1) === 1;
        // On the LRU, or swap-backed and in the swap cache. Without || and &&: the swap cache's test,
        // reached only by pages off the LRU, came after the loop was compiled and threw it away.
        const swapbacked = (flagsLo & swapbackedLo) | (flagsHi & swapbackedHi);
        const swapcache = (flagsLo & swapcacheLo) | (flagsHi & swapcacheHi);
        const cache = ((flagsLo & lruLo) | (flagsHi & lruHi) | (swapbacked !== 0 ? swapcache : 0)) !== 0;
        const priv = ((flagsLo & privateLo) | (flagsHi & privateHi)) !== 0;
        if (excludeCache && cache && !priv && !anon) kind = CACHE;
        else if (excludeCachePrivate && cache && !anon) kind = CACHE_PRIVATE;
        else if (excludeUser && (anon || hugetlb)) kind = USER;
      }
      if (kind >= 0) exclude(first + i, n, kind);
      i += n;
    }
    at.from = i;
  }
}

/** Struct pages scanned between two calls of the scan's `advance`: few enough that the loop has called it before V8 optimises it. */
const SCAN_PIECE = 256;

/** Where the struct page scan is: its chunk's pfns [first, first + count), read into `pages` (`words` over the same bytes), and the first of them still to scan. */
interface ScanPosition {
  pages: Uint8Array;
  words: Uint32Array;
  first: number;
  count: number;
  from: number;
}

/** A run of struct pages: pfns [first, first + count) have theirs at memMap + pfn * SIZE(page). */
interface MemMapChunk {
  first: number;
  count: number;
  memMap: bigint;
  /** Named only when a read fails: a string per section would be made for nothing. */
  what: Field;
}

/** Chunks of the flat model's mem_map, small enough to read at once. */
const FLAT_CHUNK_PAGES = 1 << 15;

/**
 * Where the struct pages of the present pages in [from, to) are. SPARSEMEM (x86_64; VMCOREINFO
 * has SYMBOL(mem_section)): one chunk per section. FLATMEM (Debian's i386 kernels; only
 * SYMBOL(mem_map), a pointer to one array indexed by pfn): fixed-size chunks of it. A chunk
 * reaching past the window is cut to it.
 */
function memMapChunks(mem: KernelMemory, info: VmcoreInfo, v: VmcoreInfoView, bitmaps: DumpBitmaps, pageSize: number, minGroupPages: number, from: number, to: number): { groupPages: number; chunks: Iterable<MemMapChunk> } {
  const flat = !info.symbols.has("mem_section") && info.symbols.has("mem_map");
  // Chunks are aligned to their own size, a power of two: a group of the larger size holds each whole.
  const chunkPages = flat ? FLAT_CHUNK_PAGES : sectionPages(v, pageSize);
  return { groupPages: Math.max(minGroupPages, chunkPages), chunks: chunksIn(memMapChunksOf(mem, info, v, bitmaps, pageSize, flat, chunkPages, from, to), from, to) };
}

function* chunksIn(chunks: Iterable<MemMapChunk>, from: number, to: number): Generator<MemMapChunk> {
  for (const c of chunks) {
    const first = Math.max(c.first, from);
    const end = Math.min(c.first + c.count, to);
    if (end > first) yield first === c.first && end === c.first + c.count ? c : { ...c, first, count: end - first };
  }
}

/** Pages per memory section (SECTION_SIZE_BITS): at least one and at most 2^30 (x86_64 has 2^15). */
function sectionPages(v: VmcoreInfoView, pageSize: number): number {
  const pageShift = Math.log2(pageSize);
  return 2 ** (Number(v.numberIn("SECTION_SIZE_BITS", BigInt(pageShift), BigInt(pageShift + 30))) - pageShift);
}

/** `chunkPages`: a flat mem_map's chunk, or a section's pages (memMapChunks). */
function* memMapChunksOf(mem: KernelMemory, info: VmcoreInfo, v: VmcoreInfoView, bitmaps: DumpBitmaps, pageSize: number, flat: boolean, chunkPages: number, from: number, to: number): Generator<MemMapChunk> {
  const maxPfn = Number(bitmaps.maxPfn);
  const ptr = mem.pointerSize;
  // The chunks that hold [from, to): chunks are aligned to chunkPages.
  const firstChunk = Math.floor(from / chunkPages);
  const endChunk = Math.ceil(Math.min(to, maxPfn) / chunkPages);
  if (flat) {
    const memMap = mem.ulong(v.symbol("mem_map"), "mem_map (SYMBOL(mem_map))");
    if (memMap === 0n) throw new KexecError("parse", "mem_map is NULL in the dump, so page flags cannot be read", { field: "SYMBOL(mem_map)", actual: "0" }, "use --dump-level 1 (zero pages only)");
    for (let first = firstChunk * chunkPages; first < endChunk * chunkPages; first += chunkPages) {
      const count = Math.min(chunkPages, maxPfn - first);
      if (bitmaps.present.anyIn(first, count)) yield { first, count, memMap, what: () => `struct pages of mem_map from page frame ${hex(first)}` };
    }
    return;
  }
  const pagesPerSection = chunkPages;
  const memSection = v.symbol("mem_section");
  const sectionSize = v.size("mem_section");
  if (pageSize % sectionSize !== 0) throw v.impossible("SIZE(mem_section)", sectionSize, `a divisor of the ${pageSize}-byte page that holds a root's sections`);
  const sectionsPerRoot = pageSize / sectionSize; // SPARSEMEM_EXTREME: one page of sections per root
  const sectionMemMapAt = v.member("mem_section", "section_mem_map", ptr);
  const roots = new Map<number, bigint>();
  for (let nr = firstChunk; nr < endChunk; nr++) {
    const first = nr * pagesPerSection;
    // Skip sections with no present page without touching kernel memory.
    if (!bitmaps.present.anyIn(first, pagesPerSection)) continue;
    const rootNr = Math.floor(nr / sectionsPerRoot);
    let root = roots.get(rootNr);
    if (root === undefined) {
      root = mem.ulong(memSection + BigInt(rootNr * ptr), () => `mem_section root ${rootNr} (SYMBOL(mem_section))`);
      roots.set(rootNr, root);
    }
    if (root === 0n) continue;
    const encoded = mem.ulong(root + BigInt((nr % sectionsPerRoot) * sectionSize + sectionMemMapAt), () => `mem_section[${nr}].section_mem_map`);
    // SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP; the pointer lives above the flag bits.
    if ((encoded & 3n) !== 3n) continue;
    yield { first, count: Math.min(pagesPerSection, maxPfn - first), memMap: encoded & ~0x3fn, what: () => `struct pages of mem_section[${nr}] from page frame ${hex(first)}` };
  }
}

export function isZeroPage(page: Uint8Array): boolean {
  if ((page.byteOffset & 3) === 0 && (page.byteLength & 3) === 0) {
    const words = new Uint32Array(page.buffer, page.byteOffset, page.byteLength >>> 2);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false;
  return true;
}
