/**
 * One page-table walk over real bytes, as the MMU does it: from the physical address of the top
 * table (CR3), one entry per level, until a 4 KiB entry or a present large-page entry. The bytes
 * come through `readEntry`, so the same walker reads a crashed kernel's tables in a vmcore and
 * the tables the hand-over model builds.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { PAGING_FORMATS, PTE_PRESENT, PTE_PSE, type PagingFormat, type PagingLevel } from "./format.js";

/** The entry of `size` bytes at physical address `paddr`, little-endian. */
export type ReadEntry = (paddr: bigint, size: 4 | 8) => bigint;

export interface WalkStep {
  level: PagingLevel["name"];
  /** Physical address of the table. */
  table: bigint;
  index: number;
  entry: bigint;
}

export interface Translation {
  paddr: bigint;
  /** The size of the page that maps the address: 4 KiB, 2 or 4 MiB, 1 GiB. */
  pageSize: bigint;
  steps: WalkStep[];
}

export interface WalkOptions {
  /** Bits to clear from every entry before reading it (the SME encryption bit). */
  entryMask?: bigint;
  /** Tables read before a failure, for readers that must fetch them (kernel-memory's pageTablePages). */
  visited?: bigint[];
  /**
   * What the address is read for (a symbol, a struct field), named first when it is not mapped;
   * a function is called only then.
   */
  what?: string | (() => string);
}

export function walkPageTable(format: PagingFormat, top: bigint, vaddr: bigint, readEntry: ReadEntry, options: WalkOptions = {}): Translation {
  const spec = PAGING_FORMATS[format];
  const va = spec.vaBits === 32 ? BigInt.asUintN(32, vaddr) : vaddr;
  const keep = ~(options.entryMask ?? 0n);
  const steps: WalkStep[] = [];
  let table = top;
  for (const [depth, level] of spec.levels.entries()) {
    const index = (va >> level.shift) & ((1n << level.indexBits) - 1n);
    options.visited?.push(table);
    const entry = readEntry(table + index * BigInt(spec.entrySize), spec.entrySize) & keep;
    steps.push({ level: level.name, table, index: Number(index), entry });
    if ((entry & PTE_PRESENT) === 0n) {
      const slot = `${level.name}[${index}]`;
      const what = typeof options.what === "function" ? options.what() : options.what;
      const message = `virtual address ${hex(vaddr)} is not mapped (${level.name} entry ${hex(entry)} at ${hex(table + index * BigInt(spec.entrySize))} is not present)`;
      throw new KexecError("parse", what === undefined ? message : `${what}: ${message}`,
        { offset: vaddr, field: what ?? slot, ...(what === undefined ? {} : { entry: slot }), level: spec.levels.length - depth, notPresent: true },
        "in a dump, a filtered level (-d) may lack the page-table page this walk needs; a lower level keeps more");
    }
    const base = entry & spec.addrMask;
    if (level.shift === 12n || (level.large && (entry & PTE_PSE) !== 0n)) {
      const mask = (1n << level.shift) - 1n;
      return { paddr: (base & ~mask) | (va & mask), pageSize: 1n << level.shift, steps };
    }
    table = base;
  }
  throw new KexecError("parse", `page-table walk for ${hex(vaddr)} ended without a leaf`, { offset: vaddr }, "the page tables are inconsistent");
}

/** The translation, or undefined when the address is not mapped (other errors still throw). */
export function tryWalk(format: PagingFormat, top: bigint, vaddr: bigint, readEntry: ReadEntry): Translation | undefined {
  try {
    return walkPageTable(format, top, vaddr, readEntry);
  } catch (e) {
    if (e instanceof KexecError && e.data.notPresent === true) return undefined;
    throw e;
  }
}
