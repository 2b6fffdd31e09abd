/**
 * Dump levels (makedumpfile's -d bitmask) and the page classification behind
 * them, read from the crashed kernel's struct page array. The sparse memory
 * model is walked as mm/sparse.c lays it out: mem_section (SPARSEMEM_EXTREME:
 * an array of root pointers), section_mem_map encoding mem_map - section start;
 * the flat model (i386) is one mem_map array. SIZE(page)/OFFSET(page.*) and the
 * PG_* bit numbers come from VMCOREINFO, word sizes from the dump's arch.
 */
import { KexecError } from "../errors.js";
import { POP8 } from "./kdump.js";
import type { KernelMemory } from "./kernel-memory.js";
import type { PhysRange } from "./memory.js";
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
  /** 1st bitmap: pages that exist (in a memory range). */
  present: Uint8Array;
  /** 2nd bitmap: pages to dump; zero pages are cleared later, while the data is read. */
  dumpable: Uint8Array;
  maxPfn: bigint;
  counts: ExclusionCounts;
  presentPages: bigint;
}

export function setBit(bitmap: Uint8Array, p: number): void {
  bitmap[p >>> 3]! |= 1 << (p & 7);
}
export function clearBit(bitmap: Uint8Array, p: number): void {
  bitmap[p >>> 3]! &= ~(1 << (p & 7));
}
export function testBit(bitmap: Uint8Array, p: number): boolean {
  return (bitmap[p >>> 3]! & (1 << (p & 7))) !== 0;
}

/** Pages a byte range covers, partial pages included (the kernel exports unaligned RAM ranges). */
export function presentBitmaps(ranges: readonly PhysRange[], pageSize: number,
  /** Where the dumpable bitmap is made (shared memory, for a scan split between threads). */
  allocDumpable: (bytes: number) => Uint8Array = (bytes) => new Uint8Array(bytes)): DumpBitmaps {
  const ps = BigInt(pageSize);
  const maxPfn = ranges.reduce((m, r) => ((r.end + ps - 1n) / ps > m ? (r.end + ps - 1n) / ps : m), 0n);
  const bytes = Number((maxPfn + 7n) / 8n);
  const present = new Uint8Array(bytes);
  let presentPages = 0n;
  let presentCount = 0;
  for (const r of ranges) {
    const end = Number((r.end + ps - 1n) / ps);
    for (let p = Number(r.start / ps); p < end; p++) {
      // Whole bytes at a time inside the range (a million pages per 4 GiB).
      if ((p & 7) === 0 && p + 8 <= end) {
        presentCount += 8 - POP8[present[p >>> 3]!]!;
        present[p >>> 3] = 0xff;
        p += 7;
        continue;
      }
      if (!testBit(present, p)) presentCount++;
      setBit(present, p);
    }
  }
  presentPages += BigInt(presentCount);
  const dumpable = allocDumpable(bytes);
  dumpable.set(present);
  return { present, dumpable, maxPfn, counts: emptyCounts(), presentPages };
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
  // page_type shares _mapcount: a type is set when the top nibble is PAGE_TYPE_BASE and its bit is clear.
  const PAGE_TYPE_BASE = 0xf0000000;
  const buddyBit = buddyValue === undefined ? 0 : Number(~buddyValue & 0xffffffffn);
  // The struct pages are read as 32-bit words: the scan runs once per save, before V8 has
  // optimised it, and an indexed load is a few bytecodes where a DataView call and the helper
  // closures it had were many (90 of a 1 GiB save's 300 ms went to this loop and its reads).
  // unsigned long, pointers and atomic_t are naturally aligned in the kernel's struct page.
  for (const [key, at] of [["SIZE(page)", pageStruct], ["OFFSET(page.flags)", flagsAt], ["OFFSET(page.mapping)", mappingAt], ["OFFSET(page._mapcount)", mapcountAt], ["OFFSET(page.private)", privateAt], ["OFFSET(page.compound_head)", compoundHeadAt ?? 0]] as const) {
    if (at % 4 !== 0) throw v.impossible(key, at, "a multiple of 4 (the kernel aligns these fields)");
  }
  const structWords = pageStruct >>> 2;
  const flagsWord = flagsAt >>> 2;
  const mappingWord = mappingAt >>> 2;
  const mapcountWord = mapcountAt >>> 2;
  const privateWord = privateAt >>> 2;
  const compoundHeadWord = compoundHeadAt === undefined ? -1 : compoundHeadAt >>> 2;
  // flags and private are unsigned longs: 4 bytes on i386, where the high half reads as 0.
  // Little-endian: the low half is at the field's offset.
  const wide = mem.pointerSize === 8 ? 1 : 0;
  const [lruLo, lruHi] = PG_lru;
  const [privateLo, privateHi] = PG_private;
  const [swapcacheLo, swapcacheHi] = PG_swapcache;
  const [swapbackedLo, swapbackedHi] = PG_swapbacked;
  const [hwpoisonLo, hwpoisonHi] = PG_hwpoison;
  const [headLo, headHi] = PG_head;
  const buddyMask = (PAGE_TYPE_BASE | buddyBit) >>> 0;
  const hasBuddy = buddyValue !== undefined;
  const checkHugetlb = compoundDtorAt !== undefined && hugetlbDtor !== undefined;
  const excludeFree = (level & DL_EXCLUDE_FREE) !== 0;
  const excludeCache = (level & DL_EXCLUDE_CACHE) !== 0;
  const excludeCachePrivate = (level & DL_EXCLUDE_CACHE_PRI) !== 0;
  const excludeUser = (level & DL_EXCLUDE_USER_DATA) !== 0;

  const { dumpable, counts } = bitmaps;
  const maxPfn = Number(bitmaps.maxPfn);
  const excluded = { zero: 0, cache: 0, cachePrivate: 0, user: 0, free: 0, hwpoison: 0 };
  const { groupPages, chunks } = memMapChunks(mem, info, v, bitmaps, pageSize, share?.groupPages ?? EXCLUSION_GROUP_PAGES);
  // A run never reaches past its group (where another thread may be scanning): only a damaged
  // struct page says a compound page or buddy block crosses one, and the whole scan clamps
  // it the same way, so a shared scan clears exactly the bits a lone one does.
  const exclude = (from: number, n: number, key: keyof ExclusionCounts) => {
    const end = Math.min(from + n, maxPfn, (Math.floor(from / groupPages) + 1) * groupPages);
    onExclude?.(from, end - from, key);
    for (let p = from; p < end; p++) {
      // Free blocks are up to 1024 pages: whole bitmap bytes at a time inside them.
      if ((p & 7) === 0 && p + 8 <= end) {
        excluded[key] += POP8[dumpable[p >>> 3]!]!;
        dumpable[p >>> 3] = 0;
        p += 7;
        continue;
      }
      if (testBit(dumpable, p)) {
        clearBit(dumpable, p);
        excluded[key]++;
      }
    }
  };
  // One buffer for every chunk (a section's struct pages: 2 MiB for 128 MiB of memory): fresh
  // memory per chunk cost a page fault per 4 KiB, twice, as much as reading it.
  let buffer = new Uint8Array(0);
  let claimed = -1;
  for (const { first, count, memMap, what } of chunks) {
    if (share) {
      // Claims only grow, and chunks come in pfn order: a group passed over is another thread's.
      const group = Math.floor(first / groupPages);
      while (claimed < group) claimed = share.claim();
      if (claimed !== group) continue;
    }
    const bytes = count * pageStruct;
    if (buffer.length < bytes) buffer = new Uint8Array(bytes);
    mem.readInto(memMap + BigInt(first) * BigInt(pageStruct), buffer, 0, bytes, what);
    const pages = buffer;
    const words = new Uint32Array(buffer.buffer, 0, bytes >>> 2);
    for (let i = 0; i < count; ) {
      const p = first + i;
      if ((dumpable[p >>> 3]! & (1 << (p & 7))) === 0) { i++; continue; }
      const w = i * structWords;
      const flagsLo = words[w + flagsWord]!;
      const flagsHi = wide ? words[w + flagsWord + 1]! : 0;
      const pageType = words[w + mapcountWord]!;
      // A tail page of a compound page (compound_head has bit 0 set): its head decides.
      if (compoundHeadWord >= 0 && (words[w + compoundHeadWord]! & 1) === 1) { i++; continue; }
      // page_type shares _mapcount: a type is set when the top nibble is PAGE_TYPE_BASE and its bit is clear.
      if (excludeFree && hasBuddy && ((pageType & buddyMask) >>> 0) === PAGE_TYPE_BASE >>> 0) {
        const orderLo = words[w + privateWord]!;
        const n = (wide ? words[w + privateWord + 1]! : 0) === 0 && orderLo < MAX_ORDER ? 1 << orderLo : 1;
        exclude(p, n, "free");
        i += n;
        continue;
      }
      if (((flagsLo & hwpoisonLo) | (flagsHi & hwpoisonHi)) !== 0) { exclude(p, 1, "hwpoison"); i++; continue; }
      let n = 1;
      let hugetlb = false;
      if (((flagsLo & headLo) | (flagsHi & headHi)) !== 0 && i + 1 < count) {
        const order = compoundOrderAt === undefined ? 0 : pages[(i + 1) * pageStruct + compoundOrderAt]!;
        if (order > 0 && order < 19) n = 1 << order;
        if (checkHugetlb) hugetlb = BigInt(pages[(i + 1) * pageStruct + compoundDtorAt!]!) === hugetlbDtor;
      }
      // PAGE_MAPPING_ANON is bit 0 of page->mapping.
      const anon = (words[w + mappingWord]! & 1) === 1;
      const cache = ((flagsLo & lruLo) | (flagsHi & lruHi)) !== 0
        || (((flagsLo & swapbackedLo) | (flagsHi & swapbackedHi)) !== 0 && ((flagsLo & swapcacheLo) | (flagsHi & swapcacheHi)) !== 0);
      const priv = ((flagsLo & privateLo) | (flagsHi & privateHi)) !== 0;
      if (excludeCache && cache && !priv && !anon) exclude(p, n, "cache");
      else if (excludeCachePrivate && cache && !anon) exclude(p, n, "cachePrivate");
      else if (excludeUser && (anon || hugetlb)) exclude(p, n, "user");
      i += n;
    }
  }
  for (const key of Object.keys(excluded) as (keyof ExclusionCounts)[]) counts[key] += BigInt(excluded[key]);
}

/** A run of struct pages: pfns [first, first + count) have theirs at memMap + pfn * SIZE(page). */
interface MemMapChunk {
  first: number;
  count: number;
  memMap: bigint;
  what: string;
}

/** Chunks of the flat model's mem_map, small enough to read at once. */
const FLAT_CHUNK_PAGES = 1 << 15;

/**
 * Where the struct pages of the present pages are. SPARSEMEM (x86_64; VMCOREINFO has
 * SYMBOL(mem_section)): one chunk per section. FLATMEM (Debian's i386 kernels; only
 * SYMBOL(mem_map), a pointer to one array indexed by pfn): fixed-size chunks of it.
 */
function memMapChunks(mem: KernelMemory, info: VmcoreInfo, v: VmcoreInfoView, bitmaps: DumpBitmaps, pageSize: number, minGroupPages: number): { groupPages: number; chunks: Iterable<MemMapChunk> } {
  const flat = !info.symbols.has("mem_section") && info.symbols.has("mem_map");
  // Chunks are aligned to their own size, a power of two: a group of the larger size holds each whole.
  const chunkPages = flat ? FLAT_CHUNK_PAGES : sectionPages(v, pageSize);
  return { groupPages: Math.max(minGroupPages, chunkPages), chunks: memMapChunksOf(mem, info, v, bitmaps, pageSize, flat) };
}

/** Pages per memory section (SECTION_SIZE_BITS): at least one and at most 2^30 (x86_64 has 2^15). */
function sectionPages(v: VmcoreInfoView, pageSize: number): number {
  const pageShift = Math.log2(pageSize);
  return 2 ** (Number(v.numberIn("SECTION_SIZE_BITS", BigInt(pageShift), BigInt(pageShift + 30))) - pageShift);
}

function* memMapChunksOf(mem: KernelMemory, info: VmcoreInfo, v: VmcoreInfoView, bitmaps: DumpBitmaps, pageSize: number, flat: boolean): Generator<MemMapChunk> {
  const maxPfn = Number(bitmaps.maxPfn);
  const anyPresent = (first: number, n: number): boolean => {
    for (let b = first >>> 3; b < Math.min(bitmaps.present.length, (first + n + 7) >>> 3); b++) if (bitmaps.present[b]) return true;
    return false;
  };
  const ptr = mem.pointerSize;
  if (flat) {
    const memMap = mem.ulong(v.symbol("mem_map"), "mem_map");
    if (memMap === 0n) throw new KexecError("parse", "mem_map is NULL in the dump, so page flags cannot be read", { field: "SYMBOL(mem_map)", actual: "0" }, "use --dump-level 1 (zero pages only)");
    for (let first = 0; first < maxPfn; first += FLAT_CHUNK_PAGES) {
      const count = Math.min(FLAT_CHUNK_PAGES, maxPfn - first);
      if (anyPresent(first, count)) yield { first, count, memMap, what: `struct page array (mem_map) at pfn ${first}` };
    }
    return;
  }
  const pagesPerSection = sectionPages(v, pageSize);
  const memSection = v.symbol("mem_section");
  const sectionSize = v.size("mem_section");
  if (pageSize % sectionSize !== 0) throw v.impossible("SIZE(mem_section)", sectionSize, `a divisor of the ${pageSize}-byte page that holds a root's sections`);
  const sectionsPerRoot = pageSize / sectionSize; // SPARSEMEM_EXTREME: one page of sections per root
  const sectionMemMapAt = v.member("mem_section", "section_mem_map", ptr);
  const sections = Math.ceil(maxPfn / pagesPerSection);
  const roots = new Map<number, bigint>();
  for (let nr = 0; nr < sections; nr++) {
    const first = nr * pagesPerSection;
    // Skip sections with no present page without touching kernel memory.
    if (!anyPresent(first, pagesPerSection)) continue;
    const rootNr = Math.floor(nr / sectionsPerRoot);
    let root = roots.get(rootNr);
    if (root === undefined) {
      root = mem.ulong(memSection + BigInt(rootNr * ptr), `mem_section root ${rootNr}`);
      roots.set(rootNr, root);
    }
    if (root === 0n) continue;
    const encoded = mem.ulong(root + BigInt((nr % sectionsPerRoot) * sectionSize + sectionMemMapAt), `mem_section[${nr}].section_mem_map`);
    // SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP; the pointer lives above the flag bits.
    if ((encoded & 3n) !== 3n) continue;
    yield { first, count: Math.min(pagesPerSection, maxPfn - first), memMap: encoded & ~0x3fn, what: `struct page array of section ${nr}` };
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
