/**
 * Page tables as real bytes: 4 KiB table pages at physical addresses handed out by an allocator,
 * entries written as the MMU reads them. `map` picks the largest page the format allows where
 * both addresses are aligned (1 GiB, 2 or 4 MiB, else 4 KiB), as the kernel's ident_map.c and
 * kexec's transition mappings do. Mapping a virtual page that already maps elsewhere is a
 * conflict, recorded rather than overwritten: the hand-over model turns it into a check.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { KERNPG_TABLE, PAGE_KERNEL_EXEC, PAGING_FORMATS, PTE_PRESENT, PTE_PSE, type PagingFormat, type PagingFormatSpec } from "./format.js";
import { walkPageTable, type Translation } from "./walk.js";

const PAGE = 4096n;

export interface LeafMapping {
  vaddr: bigint;
  paddr: bigint;
  size: bigint;
}

export interface MappingConflict {
  vaddr: bigint;
  /** Where the page already maps, and where it was asked to map. */
  existing: bigint;
  wanted: bigint;
  /** Who asked for the second mapping. */
  what: string;
}

export interface MapOptions {
  /** The largest page to use (default: the largest the format has). */
  maxPageSize?: bigint;
  /** Leaf flags (default __PAGE_KERNEL_EXEC). */
  flags?: bigint;
  /** For messages: "System RAM 0x100000-0x7ffdf000". */
  what?: string;
}

export class PageTableBuilder {
  readonly spec: PagingFormatSpec;
  /** Table pages by physical address. */
  readonly pages = new Map<bigint, Uint8Array>();
  readonly top: bigint;
  readonly conflicts: MappingConflict[] = [];
  private readonly allocate: () => bigint;
  /** A DataView per table page: entries are read millions of times for a large machine. */
  private readonly views = new Map<bigint, DataView>();

  constructor(readonly format: PagingFormat, allocate: () => bigint) {
    this.spec = PAGING_FORMATS[format];
    this.allocate = allocate;
    this.top = this.newTable();
  }

  private newTable(): bigint {
    const at = this.allocate();
    if (at % PAGE !== 0n) throw new KexecError("plan", `page-table page at ${hex(at)} is not 4 KiB aligned`, { offset: at }, "this is a bug in kexec-ts' page-table builder; please report it");
    if (this.pages.has(at)) throw new KexecError("plan", `page-table page at ${hex(at)} handed out twice`, { offset: at }, "this is a bug in kexec-ts' page-table builder; please report it");
    const page = new Uint8Array(4096);
    this.pages.set(at, page);
    this.views.set(at, new DataView(page.buffer));
    return at;
  }

  readEntry = (paddr: bigint, size: 4 | 8): bigint => {
    const dv = this.views.get(paddr & ~(PAGE - 1n));
    if (!dv) throw new KexecError("parse", `page-table read at ${hex(paddr)}: not a page of this table`, { offset: paddr }, "the walk left the tables that were built; this is a bug in kexec-ts, please report it");
    const at = Number(paddr & (PAGE - 1n));
    return size === 8 ? dv.getBigUint64(at, true) : BigInt(dv.getUint32(at, true));
  };

  private writeEntry(table: bigint, index: bigint, value: bigint): void {
    const dv = this.views.get(table)!;
    const at = Number(index) * this.spec.entrySize;
    if (this.spec.entrySize === 8) dv.setBigUint64(at, value, true);
    else dv.setUint32(at, Number(value), true);
  }

  /**
   * Throws what `map` would throw for a range this format cannot translate (KexecError with
   * data.notTranslatable), without writing anything: a model that leaves a range out can still
   * say it could not have been mapped.
   */
  assertMappable(vaddr: bigint, paddr: bigint, size: bigint, options: MapOptions = {}): void {
    const vaLimit = this.spec.vaBits === 32 ? 1n << 32n : 1n << BigInt(this.spec.vaBits - 1);
    const start = vaddr & ~(PAGE - 1n);
    const endVa = (vaddr + size + PAGE - 1n) & ~(PAGE - 1n);
    const lowerHalf = this.spec.vaBits === 32 || endVa <= vaLimit;
    const upperHalf = this.spec.vaBits !== 32 && start >= (1n << 64n) - vaLimit;
    const paOk = paddr + size <= 1n << BigInt(this.spec.paBits);
    if ((lowerHalf || upperHalf) && paOk) return;
    // Named only when it fails: a large machine asks this for thousands of ranges.
    const what = options.what ?? `${hex(vaddr)} -> ${hex(paddr)}`;
    if (!lowerHalf && !upperHalf) {
      throw new KexecError("plan", `${what}: virtual ${hex(start)}-${hex(endVa)} is outside what ${this.format} paging translates (canonical addresses below ${hex(vaLimit)} or from ${hex((1n << 64n) - vaLimit)})`,
        { field: what, offset: start, expected: `< ${hex(vaLimit)}`, notTranslatable: true }, "map only canonical virtual addresses of this paging mode");
    }
    if (!paOk) {
      throw new KexecError("plan", `${what}: physical ${hex(paddr)}+${hex(size)} is beyond the ${this.spec.paBits}-bit physical addresses of ${this.format} entries`, { field: what, offset: paddr, notTranslatable: true }, "this paging mode cannot map memory that high");
    }
  }

  /**
   * True when assertMappable would pass for every range whose virtual addresses lie within
   * [lowestVa, highestVaEnd) and whose physical addresses end at or below highestPaEnd: one test
   * for a machine's thousands of ranges, each of which is asked on its own only when this fails.
   */
  allMappable(lowestVa: bigint, highestVaEnd: bigint, highestPaEnd: bigint): boolean {
    const vaLimit = this.spec.vaBits === 32 ? 1n << 32n : 1n << BigInt(this.spec.vaBits - 1);
    const start = lowestVa & ~(PAGE - 1n);
    const endVa = (highestVaEnd + PAGE - 1n) & ~(PAGE - 1n);
    const lowerHalf = this.spec.vaBits === 32 || endVa <= vaLimit;
    const upperHalf = this.spec.vaBits !== 32 && start >= (1n << 64n) - vaLimit;
    return (lowerHalf || upperHalf) && highestPaEnd <= 1n << BigInt(this.spec.paBits);
  }

  /** Map [vaddr, vaddr + size) to [paddr, ...), page-aligned outward. */
  map(vaddr: bigint, paddr: bigint, size: bigint, options: MapOptions = {}): void {
    this.assertMappable(vaddr, paddr, size, options);
    const what = options.what ?? `${hex(vaddr)} -> ${hex(paddr)}`;
    const start = vaddr & ~(PAGE - 1n);
    const delta = start - vaddr;
    const endVa = (vaddr + size + PAGE - 1n) & ~(PAGE - 1n);
    const sizes = this.spec.levels.filter((l) => l.large || l.shift === 12n).map((l) => 1n << l.shift).filter((s) => options.maxPageSize === undefined || s <= options.maxPageSize);
    let va = start;
    let pa = paddr + delta;
    while (va < endVa) {
      const pageSize = sizes.find((s) => va % s === 0n && pa % s === 0n && va + s <= endVa) ?? PAGE;
      this.mapOne(va, pa, pageSize, options.flags ?? PAGE_KERNEL_EXEC, what);
      va += pageSize;
      pa += pageSize;
    }
  }

  /** Identity-map [start, start + size) rounded out to `round` (the kernel rounds RAM to 2 MiB or 1 GiB). */
  identity(start: bigint, size: bigint, options: MapOptions & { round?: bigint } = {}): void {
    const round = options.round ?? PAGE;
    const s = start - (start % round);
    const e = ((start + size + round - 1n) / round) * round;
    this.map(s, s, e - s, options);
  }

  private mapOne(va: bigint, pa: bigint, pageSize: bigint, flags: bigint, what: string): void {
    let table = this.top;
    const levels = this.spec.levels;
    for (const [depth, level] of levels.entries()) {
      const index = (BigInt.asUintN(this.spec.vaBits === 32 ? 32 : 64, va) >> level.shift) & ((1n << level.indexBits) - 1n);
      const entry = this.readEntry(table + index * BigInt(this.spec.entrySize), this.spec.entrySize);
      const leafHere = 1n << level.shift === pageSize;
      const present = (entry & PTE_PRESENT) !== 0n;
      if (leafHere) {
        if (present) {
          const existing = entry & this.spec.addrMask & ~(pageSize - 1n);
          if (existing !== pa || (level.shift !== 12n && (entry & PTE_PSE) === 0n)) this.conflicts.push({ vaddr: va, existing, wanted: pa, what });
          return;
        }
        this.writeEntry(table, index, pa | flags | (level.shift !== 12n ? PTE_PSE : 0n));
        return;
      }
      if (present && level.large && (entry & PTE_PSE) !== 0n) {
        // A larger page already covers this one: ident_map.c leaves it; a different target is a conflict.
        const base = entry & this.spec.addrMask & ~((1n << level.shift) - 1n);
        const existing = base + (va & ((1n << level.shift) - 1n));
        if (existing !== pa) this.conflicts.push({ vaddr: va, existing, wanted: pa, what });
        return;
      }
      if (!present) {
        const next = this.newTable();
        // A PAE pgd entry (PDPTE) may have only P set: RW/US there are reserved bits (SDM 4.4.1).
        const tableFlags = this.format === "i386-pae" && depth === 0 ? PTE_PRESENT : KERNPG_TABLE;
        this.writeEntry(table, index, next | tableFlags);
        table = next;
      } else table = entry & this.spec.addrMask;
    }
  }

  walk(vaddr: bigint): Translation {
    return walkPageTable(this.format, this.top, vaddr, this.readEntry);
  }

  /** Every leaf, in virtual-address order, with neighbours that continue each other merged. */
  leaves(): (LeafMapping & { pageSize: bigint })[] {
    const out: (LeafMapping & { pageSize: bigint })[] = [];
    const visit = (table: bigint, depth: number, vbase: bigint) => {
      const level = this.spec.levels[depth]!;
      const count = 1 << Number(level.indexBits);
      const dv = this.views.get(table)!;
      for (let i = 0; i < count; i++) {
        // The present bit is in the low byte: most entries are skipped without a BigInt.
        if ((dv.getUint8(i * this.spec.entrySize) & 1) === 0) continue;
        const entry = this.readEntry(table + BigInt(i * this.spec.entrySize), this.spec.entrySize);
        let va = vbase + (BigInt(i) << level.shift);
        // Sign-extend the upper half of a 64-bit address space.
        if (this.spec.vaBits !== 32 && va >= 1n << BigInt(this.spec.vaBits - 1)) va |= ((1n << 64n) - 1n) ^ ((1n << BigInt(this.spec.vaBits)) - 1n);
        if (level.shift === 12n || (level.large && (entry & PTE_PSE) !== 0n)) {
          const pageSize = 1n << level.shift;
          const pa = entry & this.spec.addrMask & ~(pageSize - 1n);
          const last = out[out.length - 1];
          if (last && last.pageSize === pageSize && last.vaddr + last.size === va && last.paddr + last.size === pa) last.size += pageSize;
          else out.push({ vaddr: va, paddr: pa, size: pageSize, pageSize });
        } else visit(entry & this.spec.addrMask, depth + 1, vbase + (BigInt(i) << level.shift));
      }
    };
    visit(this.top, 0, 0n);
    return out;
  }
}

/** Hands out 4 KiB pages from `ranges` in order, for table pages. */
export function pageAllocator(ranges: readonly { start: bigint; size: bigint }[], what: string): () => bigint {
  let i = 0;
  let next = ranges[0] ? (ranges[0].start + PAGE - 1n) & ~(PAGE - 1n) : 0n;
  return () => {
    for (;;) {
      const r = ranges[i];
      if (!r) throw new KexecError("plan", `no free page left for ${what}`, { field: what }, "the crash region is full: reserve a larger one (crashkernel=)");
      if (next + PAGE <= r.start + r.size) {
        const at = next;
        next += PAGE;
        return at;
      }
      i++;
      const n = ranges[i];
      if (n) next = (n.start + PAGE - 1n) & ~(PAGE - 1n);
    }
  };
}
