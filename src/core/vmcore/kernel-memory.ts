/**
 * Reading the crashed kernel's virtual addresses. x86_64 kernel text lives at
 * __START_KERNEL_map + (paddr - phys_base) (arch/x86/include/asm/page_64.h);
 * everything else (the direct map, vmalloc, vmemmap) goes through the kernel's
 * own page tables, rooted at init_top_pgt, 4- or 5-level as pgtable_l5_enabled
 * says. ELF cores also carry p_vaddr for each PT_LOAD, which is tried first.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { readPhysical, u64At, type PhysicalMemory } from "./memory.js";
import type { VmcoreInfo } from "./vmcoreinfo.js";

export const START_KERNEL_MAP = 0xffffffff80000000n;
/** x86_64 KERNEL_IMAGE_SIZE default (1 GiB with KASLR); vmcoreinfo gives the real one. */
const DEFAULT_KERNEL_IMAGE_SIZE = 1n << 30n;
const PTE_PRESENT = 1n;
const PTE_PSE = 1n << 7n;
/** Physical address bits of a page table entry: 12..51 (Intel SDM vol. 3, 4.5). */
const PTE_ADDR_MASK = 0x000ffffffffff000n;

export interface VirtualAlias {
  vaddr: bigint;
  paddr: bigint;
  size: bigint;
}

export interface KernelMemory {
  phys: PhysicalMemory;
  translate(vaddr: bigint): bigint;
  read(vaddr: bigint, length: number, field: string): Uint8Array;
  u64(vaddr: bigint, field: string): bigint;
  /** The physical addresses of the page-table pages a walk for `vaddr` reads (readers that walk need them). */
  pageTablePages(vaddr: bigint): bigint[];
}

export interface KernelMemoryOptions {
  machine: "x86_64" | "i386";
  vmcoreinfo: VmcoreInfo;
  /** PT_LOAD vaddr → paddr pairs from an ELF core. */
  aliases?: readonly VirtualAlias[];
}

export function kernelMemory(phys: PhysicalMemory, options: KernelMemoryOptions): KernelMemory {
  const info = options.vmcoreinfo;
  const aliases = (options.aliases ?? []).filter((a) => a.vaddr !== 0n);
  const physBase = BigInt.asUintN(64, info.numbers.get("phys_base") ?? 0n);
  const imageSize = info.numbers.get("KERNEL_IMAGE_SIZE") ?? DEFAULT_KERNEL_IMAGE_SIZE;
  const levels = info.numbers.get("pgtable_l5_enabled") === 1n ? 5 : 4;
  const smeMask = BigInt.asUintN(64, info.numbers.get("sme_mask") ?? 0n);
  const topSymbol = info.symbols.get("init_top_pgt") ?? info.symbols.get("swapper_pg_dir");
  const cache = new Map<bigint, bigint>();

  const textToPhys = (vaddr: bigint): bigint | undefined =>
    options.machine === "x86_64" && vaddr >= START_KERNEL_MAP && vaddr < START_KERNEL_MAP + imageSize ? BigInt.asUintN(64, vaddr - START_KERNEL_MAP + physBase) : undefined;

  const walk = (vaddr: bigint, visited?: bigint[]): bigint => {
    if (options.machine !== "x86_64") {
      throw new KexecError("parse", `virtual address ${hex(vaddr)} is not in any PT_LOAD, and page-table walks are implemented for x86_64 only`, { offset: vaddr });
    }
    if (topSymbol === undefined) throw new KexecError("parse", "VMCOREINFO has no SYMBOL(init_top_pgt), needed to translate kernel virtual addresses", { field: "SYMBOL(init_top_pgt)" });
    const top = textToPhys(topSymbol);
    if (top === undefined) throw new KexecError("parse", `SYMBOL(init_top_pgt) ${hex(topSymbol)} is outside the kernel text mapping`, { field: "SYMBOL(init_top_pgt)", actual: hex(topSymbol) });
    let table = top;
    const shifts = levels === 5 ? [48n, 39n, 30n, 21n, 12n] : [39n, 30n, 21n, 12n];
    for (const [level, shift] of shifts.entries()) {
      const index = (vaddr >> shift) & 0x1ffn;
      visited?.push(table);
      const entry = u64At(readPhysical(phys, table + index * 8n, 8, "page table entry"), 0) & ~smeMask;
      if ((entry & PTE_PRESENT) === 0n) {
        throw new KexecError("parse", `virtual address ${hex(vaddr)} is not mapped (level-${shifts.length - level} entry ${hex(entry)} at ${hex(table + index * 8n)} is not present)`, { offset: vaddr });
      }
      const base = entry & PTE_ADDR_MASK;
      const isLeaf = shift === 12n || ((shift === 30n || shift === 21n) && (entry & PTE_PSE) !== 0n);
      if (isLeaf) {
        const mask = (1n << shift) - 1n;
        return (base & ~mask) | (vaddr & mask);
      }
      table = base;
    }
    throw new KexecError("parse", `page-table walk for ${hex(vaddr)} ended without a leaf`, { offset: vaddr });
  };

  const translate = (vaddr: bigint): bigint => {
    for (const a of aliases) if (vaddr >= a.vaddr && vaddr < a.vaddr + a.size) return a.paddr + (vaddr - a.vaddr);
    const text = textToPhys(vaddr);
    if (text !== undefined) return text;
    const page = vaddr & ~0xfffn;
    let p = cache.get(page);
    if (p === undefined) {
      p = walk(page) & ~0xfffn;
      cache.set(page, p);
    }
    return p | (vaddr & 0xfffn);
  };

  const read = (vaddr: bigint, length: number, field: string): Uint8Array => {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const at = vaddr + BigInt(done);
      const n = Math.min(length - done, 4096 - Number(at & 0xfffn));
      out.set(readPhysical(phys, translate(at), n, field), done);
      done += n;
    }
    return out;
  };
  const pageTablePages = (vaddr: bigint): bigint[] => {
    const visited: bigint[] = [];
    try {
      walk(vaddr, visited);
    } catch { /* the pages visited before the failure are still the ones a reader needs */ }
    return visited;
  };
  return { phys, translate, read, u64: (vaddr, field) => u64At(read(vaddr, 8, field), 0), pageTablePages };
}
