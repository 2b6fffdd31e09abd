/**
 * How much of the crash reservation the capture needs, added up from what it consists of:
 * the capture kernel as loaded (init_size), the initramfs (compressed while it waits to be
 * unpacked, then unpacked in the root file system), the modules, the kernel's own running
 * memory (struct pages for the reservation, slab, page tables), Node's resident memory with
 * its heap cap, the save's bitmaps, and file-system and page-cache headroom for the writes.
 * Each figure says where it comes from; the constants were measured in the lab (bench/kdump/).
 * Pure: sizes in, an itemized estimate out.
 */
import type { CaptureMode } from "./config.js";

const MiB = 1n << 20n;

/** A constant of the estimate and how it was obtained. */
export interface MeasuredConstant {
  bytes: bigint;
  source: string;
}

/**
 * Measured constants (bench/kdump/RESULTS.md says how): the lab's capture kernels (Debian 6.1
 * and 6.12 amd64, nr_cpus=1) and the Node that ran `kdump save` there.
 */
export const CONSTANTS = {
  /** Slab, per-CPU areas, page tables, vmalloc and early allocations of a capture kernel at nr_cpus=1, beyond its image and struct pages. */
  kernelRuntime: { bytes: 36n * MiB, source: "measured: MemTotal - MemAvailable at the capture /init of Debian 6.1/6.12 amd64 at nr_cpus=1, less the unpacked initramfs" },
  /** Node's resident memory running `kdump save` with the heap capped, no worker threads. */
  nodeResident: { bytes: 52n * MiB, source: "measured: VmHWM of kexec-ts kdump save (Node 18/20) in the capture kernel on 2 and 4 GiB guests" },
  /** Each compression thread: its isolate, stack and batch buffers. */
  perThread: { bytes: 8n * MiB, source: "measured: resident memory per worker thread of vmcore save (DESIGN.md: ~8 MiB)" },
  /** ext4 journal and metadata buffers, dirty pages the writer may hold before the kernel throttles it. */
  ioHeadroom: { bytes: 16n * MiB, source: "measured: the capture kernel's Dirty + Buffers peak while saving to ext4" },
} satisfies Record<string, MeasuredConstant>;

/** struct page is 64 bytes per 4 KiB page on x86_64: the capture kernel's mem_map covers the reservation. */
export const STRUCT_PAGE_BYTES = 64n;

export interface EstimateInput {
  mode: CaptureMode;
  /** The capture kernel's init_size (setup header): what it occupies once decompressed in place. */
  kernelInitSize: bigint;
  initrdCompressed: bigint;
  initrdUnpacked: bigint;
  moduleBytes: bigint;
  /** The crashed machine's RAM: the save's bitmaps are one bit per page, two of them. */
  systemRam: bigint;
  threads: number;
}

export interface EstimateItem {
  what: string;
  bytes: bigint;
  source: string;
}

export interface Estimate {
  items: EstimateItem[];
  total: bigint;
  /** The smallest crashkernel= size, rounded up to 16 MiB (the kernel's CRASH_ALIGN), that holds `total`. */
  suggested: bigint;
}

const ALIGN = 16n * MiB;
const roundUp = (n: bigint, to: bigint): bigint => ((n + to - 1n) / to) * to;
const PAGE = 4096n;

export function estimateCapture(input: EstimateInput): Estimate {
  const items: EstimateItem[] = [
    { what: "capture kernel (init_size)", bytes: roundUp(input.kernelInitSize, PAGE), source: "the bzImage setup header's init_size: the kernel decompressed in place, with its bss" },
    { what: "initramfs, compressed", bytes: roundUp(input.initrdCompressed, PAGE), source: "the capture initramfs file: loaded into the reservation, freed once unpacked" },
    { what: "initramfs, unpacked", bytes: roundUp(input.initrdUnpacked, PAGE), source: "the capture initramfs' archive size: its files live in the capture kernel's memory" },
    { what: "kernel modules, loaded", bytes: roundUp(input.moduleBytes, PAGE), source: "the modules' sizes in the initramfs (their loaded text and data are at most that)" },
    { what: "kernel runtime", bytes: CONSTANTS.kernelRuntime.bytes, source: CONSTANTS.kernelRuntime.source },
    { what: "node", bytes: CONSTANTS.nodeResident.bytes, source: `${CONSTANTS.nodeResident.source}${input.mode === "self-contained" ? "; the binary's pages are the initramfs' own, counted above" : ""}` },
    { what: "save bitmaps", bytes: roundUp((input.systemRam / PAGE / 8n) * 2n, PAGE), source: "two bits per page of the crashed machine's RAM (dumpable and present bitmaps)" },
    { what: "file system and page cache", bytes: CONSTANTS.ioHeadroom.bytes, source: CONSTANTS.ioHeadroom.source },
  ];
  if (input.threads > 0) items.push({ what: `${input.threads} compression thread(s)`, bytes: CONSTANTS.perThread.bytes * BigInt(input.threads), source: CONSTANTS.perThread.source });
  const base = items.reduce((n, i) => n + i.bytes, 0n);
  // struct pages cover the whole reservation, which is what is being sized: r = base + r * 64/4096.
  const reservation = (base * PAGE) / (PAGE - STRUCT_PAGE_BYTES);
  const memmap = roundUp((reservation / PAGE) * STRUCT_PAGE_BYTES, PAGE);
  items.push({ what: "struct pages for the reservation", bytes: memmap, source: "64 bytes of struct page per 4 KiB page the capture kernel manages" });
  const total = base + memmap;
  return { items, total, suggested: roundUp(total, ALIGN) };
}
