/**
 * Reading the crashed kernel's virtual addresses. x86_64 kernel text lives at
 * __START_KERNEL_map + (paddr - phys_base) (arch/x86/include/asm/page_64.h);
 * everything else (the direct map, vmalloc, vmemmap) goes through the kernel's
 * own page tables, rooted at init_top_pgt, 4- or 5-level as pgtable_l5_enabled
 * says. ELF cores also carry p_vaddr for each PT_LOAD, which is tried first.
 *
 * i386 has no separate text mapping: the kernel image sits in the direct map at
 * PAGE_OFFSET + paddr, and so does swapper_pg_dir, where every walk starts: 3 levels
 * of 8-byte entries with PAE (VMCOREINFO says CONFIG_X86_PAE=y), 2 levels of 4-byte
 * entries without. PT_LOAD p_vaddr is not trusted there: loaders give highmem a
 * made-up address (kexec-tools writes 0xffffffff) and a lowmem segment can reach
 * into vmalloc space, so every address is walked.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { fieldName, readPhysical, u32At, u64At, type Field, type PhysicalMemory, type SourceView } from "./memory.js";
import type { VmcoreInfo } from "./vmcoreinfo.js";
import type { PagingFormat } from "../pgtable/format.js";
import { walkPageTable } from "../pgtable/walk.js";
import { spanFinder } from "./elf-core.js";

export const START_KERNEL_MAP = 0xffffffff80000000n;
/** x86_64 KERNEL_IMAGE_SIZE default (1 GiB with KASLR); vmcoreinfo gives the real one. */
const DEFAULT_KERNEL_IMAGE_SIZE = 1n << 30n;
/** i386 with the default 3G/1G split (CONFIG_PAGE_OFFSET in Debian's 686 and 686-pae). */
export const I386_PAGE_OFFSET = 0xc0000000n;

export interface VirtualAlias {
  vaddr: bigint;
  paddr: bigint;
  size: bigint;
}

/**
 * Every read names what it reads (`field`: a symbol, a VMCOREINFO key, a struct field), and an
 * address that is not mapped or not in the dump is an error that says it. A name that would be
 * formatted per read is a function, called only to throw.
 */
export interface KernelMemory {
  phys: PhysicalMemory;
  /** `field`, when given, names what the address is read for in the error when it is not mapped. */
  translate(vaddr: bigint, field?: Field): bigint;
  read(vaddr: bigint, length: number, field: Field): Uint8Array;
  /** The same bytes into dst at `at` (a scan of the struct page array reuses one buffer). */
  readInto(vaddr: bigint, dst: Uint8Array, at: number, length: number, field: Field): void;
  /**
   * The same bytes in place (PhysicalMemory.view: valid until the next view), when they lie
   * together physically and the source shows them so; else undefined, and the caller reads them.
   */
  view(vaddr: bigint, length: number, field: Field): SourceView | undefined;
  u64(vaddr: bigint, field: Field): bigint;
  /** sizeof(long) and of a pointer in the crashed kernel: 8 on x86_64, 4 on i386. */
  pointerSize: 4 | 8;
  /** An unsigned long or a pointer. */
  ulong(vaddr: bigint, field: Field): bigint;
  /** The physical addresses of the page-table pages a walk for `vaddr` reads (readers that walk need them). */
  pageTablePages(vaddr: bigint): bigint[];
}

/** The alias that maps a virtual address, or undefined (aliasFinder). */
export type AliasLookup = (vaddr: bigint) => VirtualAlias | undefined;

export interface KernelMemoryOptions {
  machine: "x86_64" | "i386";
  vmcoreinfo: VmcoreInfo;
  /** PT_LOAD vaddr → paddr pairs from an ELF core. */
  aliases?: readonly VirtualAlias[];
  /**
   * aliasFinder(aliases), when the caller keeps it: the dump writers make a KernelMemory for each
   * window of page frames, and the lookup over 70,000 aliases takes 10-30 ms to make.
   */
  aliasLookup?: AliasLookup;
}

const compareBigints = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The alias that maps vaddr, the first in the given order that holds it (those at 0 map nothing),
 * as a search of every alias finds it, in O(log n) a lookup: a core with 70,000 PT_LOADs (a large
 * fragmented machine at -d 31, PN_XNUM) made each translation a 70,000-step scan, 0.4-2 ms, for
 * every address the aliases do not map (vmemmap, vmalloc) or map late (a log buffer at the top of memory).
 *
 * Real cores have no two aliases that overlap: the kernel's elfcorehdr (crash_prepare_elf64_headers)
 * gives the kernel text PT_LOAD p_vaddr _text, in the __START_KERNEL_map mapping, and each System
 * RAM range __va(start) in the direct map, the ranges disjoint; kexec-tools does the same
 * (kern_vaddr_start, phys_to_virt: page_offset + paddr); makedumpfile -E and kexec-ts's ELF
 * writer (ElfLoadPlanner) cut a source PT_LOAD into pieces that keep their offset from its
 * p_vaddr. A damaged or hand-made core that has overlaps is searched alias by alias, as before:
 * correct, and only as slow as it always was.
 */
export function aliasFinder(aliases: readonly VirtualAlias[]): AliasLookup {
  // p_vaddr 0 is a PT_LOAD without a kernel mapping (kexec-ts's ELF dump of a kdump file has only those).
  const mapping = aliases.filter((a) => a.vaddr !== 0n && a.size > 0n);
  const ends = mapping.map((a) => a.vaddr + a.size);
  // Near linear on a real core's order: the text alias, then RAM upward.
  const byAddress = mapping.map((_, i) => i).sort((i, j) => compareBigints(mapping[i]!.vaddr, mapping[j]!.vaddr));
  // Each starting at or past the end of the one before: the ends rise too, no alias reaches into another.
  const disjoint = byAddress.every((i, n) => n === 0 || mapping[i]!.vaddr >= ends[byAddress[n - 1]!]!);
  if (!disjoint) return (vaddr) => mapping.find((a, i) => vaddr >= a.vaddr && vaddr < ends[i]!);
  const findPart = spanFinder(byAddress.map((i) => mapping[i]!.vaddr), byAddress.map((i) => ends[i]!));
  return (vaddr) => {
    const part = findPart(vaddr, vaddr + 1n);
    return part < 0 ? undefined : mapping[byAddress[part]!];
  };
}

/** readPhysical into dst, in one read when the pages are one stored run of the source. */
function readPhysicalRunInto(phys: PhysicalMemory, paddr: bigint, dst: Uint8Array, at: number, length: number, field: Field): void {
  if (length > phys.pageSize) {
    const ps = BigInt(phys.pageSize);
    const pfn = paddr / ps;
    const within = Number(paddr % ps);
    const pages = Math.ceil((within + length) / phys.pageSize);
    // Straight into dst when the run starts on a page boundary and ends inside dst.
    if (within === 0 && phys.readRunInto && at + pages * phys.pageSize <= dst.length && length % phys.pageSize === 0) {
      if (phys.readRunInto(pfn, pages, dst, at)) return;
    }
    const run = phys.readRun?.(pfn, pages);
    if (run) { dst.set(run.subarray(within, within + length), at); return; }
  }
  dst.set(readPhysical(phys, paddr, length, field), at);
}

export function kernelMemory(phys: PhysicalMemory, options: KernelMemoryOptions): KernelMemory {
  const info = options.vmcoreinfo;
  const i386 = options.machine === "i386";
  const aliasOf: AliasLookup = i386 ? () => undefined : options.aliasLookup ?? aliasFinder(options.aliases ?? []);
  const physBase = BigInt.asUintN(64, info.numbers.get("phys_base") ?? 0n);
  const imageSize = info.numbers.get("KERNEL_IMAGE_SIZE") ?? DEFAULT_KERNEL_IMAGE_SIZE;
  const levels = info.numbers.get("pgtable_l5_enabled") === 1n ? 5 : 4;
  const smeMask = BigInt.asUintN(64, info.numbers.get("sme_mask") ?? 0n);
  const topSymbol = info.symbols.get("init_top_pgt") ?? info.symbols.get("swapper_pg_dir");
  const cache = new Map<bigint, bigint>();

  const textToPhys = (vaddr: bigint): bigint | undefined =>
    options.machine === "x86_64" && vaddr >= START_KERNEL_MAP && vaddr < START_KERNEL_MAP + imageSize ? BigInt.asUintN(64, vaddr - START_KERNEL_MAP + physBase) : undefined;

  const pae = info.other.get("CONFIG_X86_PAE") === "y";
  // The PT_LOAD that holds the kernel text tells PAGE_OFFSET when the split is not 3G/1G.
  const stext = info.symbols.get("_stext");
  const textAlias = stext === undefined ? undefined : (options.aliases ?? []).find((a) => a.vaddr !== 0n && stext >= a.vaddr && stext < a.vaddr + a.size && a.vaddr >= a.paddr);
  const pageOffset = textAlias !== undefined ? textAlias.vaddr - textAlias.paddr : I386_PAGE_OFFSET;

  // Pages that small reads (page-table entries, mem_section entries, pointers) came from, whole.
  // A source reads a page at a time, so each small read was a fresh 4 KiB buffer: a TiB's
  // exclusion scan made 32 MiB of garbage buffers in mem_section entries alone, and the peak RSS
  // of a 1 TiB save rose by 20-30 MiB until the collector caught up. The reads of a scan come
  // from a handful of pages per 64 GiB (a PMD page maps 1 GiB of vmemmap, a page of mem_section entries 32 GiB).
  const recentPages = new Map<bigint, Uint8Array>();
  const RECENT_PAGES_KEPT = 16;
  /** Reads of at most this many bytes inside one page go through the recent pages. */
  const SMALL_READ = 64;
  /**
   * `length` bytes at paddr: from a recent page when they lie inside one, else (crossing a page,
   * or not in the dump: readPhysical's error names the address) read as they are.
   */
  const readSmall = (paddr: bigint, length: number, field: Field): Uint8Array => {
    const ps = BigInt(phys.pageSize);
    const within = Number(paddr % ps);
    if (within + length <= phys.pageSize) {
      const pfn = paddr / ps;
      let page = recentPages.get(pfn);
      if (page === undefined) {
        page = phys.readPage(pfn);
        if (page !== undefined) {
          if (recentPages.size >= RECENT_PAGES_KEPT) recentPages.clear();
          recentPages.set(pfn, page);
        }
      }
      if (page !== undefined) return page.subarray(within, within + length);
    }
    return readPhysical(phys, paddr, length, field);
  };
  // What the walk under way translates for, named when a page-table page is not in the dump:
  // set per walk, the name made only if one is missing.
  let walkingFor: Field | undefined;
  let walkingAt = 0n;
  const entryField = (): string => (walkingFor === undefined ? "page table entry" : `page-table entry mapping ${hex(walkingAt)} for ${fieldName(walkingFor)}`);
  /** Page-table entries are read from the dump's memory; SME's encryption bit is not part of an address. */
  const readEntry = (paddr: bigint, size: 4 | 8): bigint => {
    const bytes = readSmall(paddr, size, entryField);
    return size === 8 ? u64At(bytes, 0) : BigInt(u32At(bytes, 0));
  };

  /** The physical address of vaddr; `leaf.shift` tells the size of the page that maps it (12, 21, 22 or 30). */
  const walk = (vaddr: bigint, what: Field | undefined, visited?: bigint[], leaf?: { shift: bigint }): bigint => {
    let format: PagingFormat;
    let top: bigint;
    if (i386) {
      const pgd = info.symbols.get("swapper_pg_dir");
      if (pgd === undefined) throw new KexecError("parse", "VMCOREINFO has no SYMBOL(swapper_pg_dir), needed to translate kernel virtual addresses", { field: "SYMBOL(swapper_pg_dir)" }, "VMCOREINFO comes from the crashed kernel; without this symbol its virtual addresses cannot be translated");
      if (pgd < pageOffset) throw new KexecError("parse", `SYMBOL(swapper_pg_dir) ${hex(pgd)} is below PAGE_OFFSET ${hex(pageOffset)}`, { field: "SYMBOL(swapper_pg_dir)", actual: hex(pgd) }, "the dump's VMCOREINFO contradicts itself");
      format = pae ? "i386-pae" : "i386-2level";
      top = pgd - pageOffset;
    } else {
      if (topSymbol === undefined) throw new KexecError("parse", "VMCOREINFO has no SYMBOL(init_top_pgt), needed to translate kernel virtual addresses", { field: "SYMBOL(init_top_pgt)" }, "VMCOREINFO comes from the crashed kernel; without this symbol its virtual addresses cannot be translated");
      const at = textToPhys(topSymbol);
      if (at === undefined) throw new KexecError("parse", `SYMBOL(init_top_pgt) ${hex(topSymbol)} is outside the kernel text mapping`, { field: "SYMBOL(init_top_pgt)", actual: hex(topSymbol) }, "the dump's VMCOREINFO contradicts itself");
      format = levels === 5 ? "x86_64-5level" : "x86_64-4level";
      top = at;
    }
    walkingFor = what;
    walkingAt = vaddr;
    const t = walkPageTable(format, top, vaddr, readEntry, { entryMask: smeMask, visited, what });
    if (leaf) leaf.shift = BigInt(t.pageSize.toString(2).length - 1);
    return t.paddr;
  };

  // The last large page walked (vmemmap and the direct map use 2 MiB and 1 GiB pages): the
  // struct page array of a 4 GiB machine is then a few walks, not one per 4 KiB.
  let lastLeaf = { vstart: 1n, vend: 0n, pstart: 0n };
  const translate = (vaddr: bigint, field?: Field): bigint => {
    const alias = aliasOf(vaddr);
    if (alias !== undefined) return alias.paddr + (vaddr - alias.vaddr);
    const text = textToPhys(vaddr);
    if (text !== undefined) return text;
    if (vaddr >= lastLeaf.vstart && vaddr < lastLeaf.vend) return lastLeaf.pstart + (vaddr - lastLeaf.vstart);
    const page = vaddr & ~0xfffn;
    let p = cache.get(page);
    if (p === undefined) {
      const leaf = { shift: 12n };
      // The address itself, not its page, is walked: an error names the one that was read.
      p = walk(vaddr, field, undefined, leaf) & ~0xfffn;
      if (leaf.shift > 12n) {
        const mask = (1n << leaf.shift) - 1n;
        const vstart = page & ~mask;
        lastLeaf = { vstart, vend: vstart + mask + 1n, pstart: p - (page - vstart) };
      } else cache.set(page, p);
    }
    return p | (vaddr & 0xfffn);
  };

  /**
   * Bytes from vaddr (just translated) that are surely contiguous physically: up to the end of
   * its large page when a large page maps it, else of its 4 KiB page.
   */
  const contiguousFrom = (vaddr: bigint): number =>
    vaddr >= lastLeaf.vstart && vaddr < lastLeaf.vend ? Number(lastLeaf.vend - vaddr) : 4096 - Number(vaddr & 0xfffn);

  const readInto = (vaddr: bigint, out: Uint8Array, outAt: number, length: number, field: Field): void => {
    if (length <= SMALL_READ) {
      // Inside one physical page is inside one virtual page (both are 4 KiB, alike in their low bits).
      const paddr = translate(vaddr, field);
      if (Number(paddr % BigInt(phys.pageSize)) + length <= phys.pageSize) {
        out.set(readSmall(paddr, length, field), outAt);
        return;
      }
    }
    let done = 0;
    while (done < length) {
      const at = vaddr + BigInt(done);
      const start = translate(at, field);
      const n = physicallyTogether(at, start, length - done, field);
      readPhysicalRunInto(phys, start, out, outAt + done, n, field);
      done += n;
    }
  };
  /** Of `length` bytes from vaddr (at paddr `start`), how many follow each other physically: virtual pages in a run. */
  const physicallyTogether = (vaddr: bigint, start: bigint, length: number, field: Field): number => {
    let n = Math.min(length, contiguousFrom(vaddr));
    for (let next = vaddr + BigInt(n); n < length && translate(next, field) === start + BigInt(n); next = vaddr + BigInt(n)) {
      n += Math.min(length - n, contiguousFrom(next));
    }
    return n;
  };
  const view = (vaddr: bigint, length: number, field: Field): SourceView | undefined => {
    if (phys.view === undefined) return undefined;
    const start = translate(vaddr, field);
    return physicallyTogether(vaddr, start, length, field) === length ? phys.view(start, length) : undefined;
  };
  const read = (vaddr: bigint, length: number, field: Field): Uint8Array => {
    const out = new Uint8Array(length);
    readInto(vaddr, out, 0, length, field);
    return out;
  };
  const pageTablePages = (vaddr: bigint): bigint[] => {
    const visited: bigint[] = [];
    try {
      walk(vaddr, undefined, visited);
    } catch { /* the pages visited before the failure are still the ones a reader needs */ }
    return visited;
  };
  const pointerSize = i386 ? 4 : 8;
  return {
    phys, translate, read, readInto, view, u64: (vaddr, field) => u64At(read(vaddr, 8, field), 0), pageTablePages, pointerSize,
    ulong: (vaddr, field) => (i386 ? BigInt(u32At(read(vaddr, 4, field), 0)) : u64At(read(vaddr, 8, field), 0)),
  };
}
