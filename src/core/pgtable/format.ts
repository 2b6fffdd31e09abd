/**
 * The x86 page-table formats as data: per level, the address bit where its index starts, how
 * many index bits it has, and whether a present entry with PS set there maps a large page
 * (Intel SDM vol. 3, 4.3 "32-bit paging", 4.4 "PAE paging", 4.5 "4-level and 5-level paging").
 * The builder and the walker both read these tables, so they cannot disagree about a layout.
 */

export type PagingFormat = "x86_64-5level" | "x86_64-4level" | "i386-pae" | "i386-2level";

export interface PagingLevel {
  /** The kernel's name for the table at this level. */
  name: "pgd" | "p4d" | "pud" | "pmd" | "pte";
  shift: bigint;
  indexBits: bigint;
  /** A present entry with PS (bit 7) set maps a page of 1 << shift bytes here. */
  large: boolean;
}

export interface PagingFormatSpec {
  format: PagingFormat;
  levels: readonly PagingLevel[];
  entrySize: 4 | 8;
  /** Physical-address bits of an entry (12..51 with 8-byte entries, 12..31 without PAE). */
  addrMask: bigint;
  /** Virtual addresses the format translates: 2^vaBits (the lower canonical half counts for identity maps). */
  vaBits: number;
  /** Physical addresses an entry can hold. */
  paBits: number;
  /** What CR4 says for it, for the page. */
  cr4: string;
}

export const PTE_PRESENT = 1n;
export const PTE_RW = 1n << 1n;
export const PTE_USER = 1n << 2n;
export const PTE_ACCESSED = 1n << 5n;
export const PTE_DIRTY = 1n << 6n;
export const PTE_PSE = 1n << 7n;
export const PTE_GLOBAL = 1n << 8n;
export const PTE_NX = 1n << 63n;
/** _KERNPG_TABLE: the flags of an entry that points to the next table. */
export const KERNPG_TABLE = PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY;
/** __PAGE_KERNEL_EXEC (+ PSE for a large leaf): what kexec's identity map uses. */
export const PAGE_KERNEL_EXEC = PTE_PRESENT | PTE_RW | PTE_ACCESSED | PTE_DIRTY | PTE_GLOBAL;

const ADDR_52 = 0x000ffffffffff000n;
const level = (name: PagingLevel["name"], shift: bigint, indexBits: bigint, large: boolean): PagingLevel => ({ name, shift, indexBits, large });

export const PAGING_FORMATS: Record<PagingFormat, PagingFormatSpec> = {
  // 9 index bits per level; 1 GiB pages at the pud, 2 MiB at the pmd.
  "x86_64-5level": { format: "x86_64-5level", levels: [level("pgd", 48n, 9n, false), level("p4d", 39n, 9n, false), level("pud", 30n, 9n, true), level("pmd", 21n, 9n, true), level("pte", 12n, 9n, false)], entrySize: 8, addrMask: ADDR_52, vaBits: 57, paBits: 52, cr4: "CR4.PAE=1 CR4.LA57=1, EFER.LMA=1" },
  "x86_64-4level": { format: "x86_64-4level", levels: [level("pgd", 39n, 9n, false), level("pud", 30n, 9n, true), level("pmd", 21n, 9n, true), level("pte", 12n, 9n, false)], entrySize: 8, addrMask: ADDR_52, vaBits: 48, paBits: 52, cr4: "CR4.PAE=1 CR4.LA57=0, EFER.LMA=1" },
  // PAE: a pgd of 4 entries (bits 31-30), pmd (2 MiB pages), pte.
  "i386-pae": { format: "i386-pae", levels: [level("pgd", 30n, 2n, false), level("pmd", 21n, 9n, true), level("pte", 12n, 9n, false)], entrySize: 8, addrMask: ADDR_52, vaBits: 32, paBits: 52, cr4: "CR4.PAE=1" },
  // 2-level: pgd (bits 31-22, 4 MiB pages with PSE), pte; 4-byte entries.
  "i386-2level": { format: "i386-2level", levels: [level("pgd", 22n, 10n, true), level("pte", 12n, 10n, false)], entrySize: 4, addrMask: 0xfffff000n, vaBits: 32, paBits: 32, cr4: "CR4.PAE=0 CR4.PSE=1" },
};

/** The format a running kernel uses, from its arch and paging levels (machine.pagingLevels). */
export function pagingFormat(arch: "x86_64" | "i386", levels: number | null): PagingFormat {
  if (arch === "x86_64") return levels === 5 ? "x86_64-5level" : "x86_64-4level";
  return levels === 2 ? "i386-2level" : "i386-pae";
}

/** Page sizes a format can map, largest first (1 GiB, 2 MiB or 4 MiB, 4 KiB). */
export function pageSizes(spec: PagingFormatSpec): bigint[] {
  return spec.levels.filter((l) => l.large || l.shift === 12n).map((l) => 1n << l.shift);
}
