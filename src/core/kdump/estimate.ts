/**
 * How much of the crash reservation the capture needs. Two moments set the peak:
 *
 *   boot: the kernel unpacks the initramfs while the compressed image still sits where kexec
 *         put it (it is freed afterwards);
 *   save: Node runs kexec-ts: its private memory (heap, the save's buffers and bitmaps), its
 *         binary's pages (read from the real root in the default mode, from the squashfs image
 *         in the initramfs in the self-contained mode), threads, and the writes' page cache.
 *
 * Both stand on what is always there: the capture kernel as loaded (init_size), its running
 * memory (slab, page tables, per-CPU areas at nr_cpus=1), the struct pages that describe the
 * reservation, and the unpacked initramfs. The total is that plus the larger of the two
 * moments. Each figure says where it comes from; the constants were measured in the lab
 * (bench/kdump/RESULTS.md). Pure: sizes in, an itemized estimate out.
 */
import { size } from "../format.js";
import { BITMAP_PIECE_BYTES, WINDOW_PAGES } from "../vmcore/dump-writer.js";
import type { CaptureMode } from "./config.js";

const MiB = 1n << 20n;

/** A constant of the estimate and how it was obtained. */
export interface MeasuredConstant {
  bytes: bigint;
  source: string;
}

/** Measured constants (bench/kdump/RESULTS.md says how). */
export const CONSTANTS = {
  kernelRuntime: { bytes: 16n * MiB, source: "measured (bench/kdump/RESULTS.md): what a Debian 6.1 amd64 capture kernel (nr_cpus=1) keeps of its MemTotal beyond the initramfs and Node during a save (slab, page tables, per-CPU areas): 12.5 MiB at the tightest reservation that saved" },
  nodePrivate: { bytes: 56n * MiB, source: "measured (bench/kdump/RESULTS.md): Node's private resident memory (sampled RssAnon: heap capped at 48 MiB, the save's buffers and bitmaps) during kexec-ts kdump save in a capture kernel, no threads: 48.5 MiB at the tightest reservation that saved" },
  nodeText: { bytes: 16n * MiB, source: "measured (bench/kdump/RESULTS.md): the part of the Node binary's pages a save keeps resident under memory pressure (7.8 MiB at the tightest reservation that saved, 42 MiB with room to spare); the rest is page cache the kernel drops and reads again" },
  perThread: { bytes: 8n * MiB, source: "measured: resident memory per worker thread of vmcore save (DESIGN.md: ~8 MiB)" },
  ioHeadroom: { bytes: 8n * MiB, source: "dirty page cache and file-system buffers the writes hold while the dump goes to ext4; the kernel writes dirty pages back under pressure, so this is a floor for the file system, not the dump size" },
} satisfies Record<string, MeasuredConstant>;

/** struct page is 64 bytes per 4 KiB page on x86_64: the capture kernel's mem_map covers the reservation. */
export const STRUCT_PAGE_BYTES = 64n;

export interface EstimateInput {
  mode: CaptureMode;
  /** The capture kernel's init_size (setup header): what it occupies once decompressed in place. */
  kernelInitSize: bigint;
  initrdCompressed: bigint;
  /** The archive's size unpacked; in the self-contained mode it includes Node and its libraries. */
  initrdUnpacked: bigint;
  moduleBytes: bigint;
  /** The crashed machine's RAM: the save's bitmaps are one bit per page, two of them, each held a window at a time. */
  systemRam: bigint;
  threads: number;
}

export type EstimatePhase = "always" | "boot" | "save";

export interface EstimateItem {
  what: string;
  bytes: bigint;
  /** always: the whole time; boot / save: only at that moment (the larger moment counts). */
  phase: EstimatePhase;
  source: string;
}

export interface Estimate {
  items: EstimateItem[];
  /** Which moment is the peak. */
  peak: "boot" | "save";
  total: bigint;
  /** The smallest crashkernel= size, rounded up to 16 MiB (the kernel's CRASH_ALIGN), that holds `total`. */
  suggested: bigint;
}

const ALIGN = 16n * MiB;
const PAGE = 4096n;
const roundUp = (n: bigint, to: bigint): bigint => ((n + to - 1n) / to) * to;
const sum = (items: readonly EstimateItem[], phase: EstimatePhase): bigint => items.filter((i) => i.phase === phase).reduce((n, i) => n + i.bytes, 0n);

/** The save holds a window of the 2nd bitmap and a piece of the 1st (dump-writer.ts), whatever the RAM beyond 64 GiB. */
const WINDOW_BYTES = BigInt(WINDOW_PAGES / 8);
const PIECE_BYTES = BigInt(BITMAP_PIECE_BYTES);
function saveBitmapBytes(systemRam: bigint): bigint {
  const whole = systemRam / PAGE / 8n;
  return roundUp((whole < WINDOW_BYTES ? whole : WINDOW_BYTES) + (whole < PIECE_BYTES ? whole : PIECE_BYTES), PAGE);
}

export function estimateCapture(input: EstimateInput): Estimate {
  const items: EstimateItem[] = [
    { what: "capture kernel (init_size)", phase: "always", bytes: roundUp(input.kernelInitSize, PAGE), source: "the bzImage setup header's init_size: the kernel decompressed in place, with its bss" },
    { what: "kernel runtime", phase: "always", bytes: CONSTANTS.kernelRuntime.bytes, source: CONSTANTS.kernelRuntime.source },
    { what: "initramfs, unpacked", phase: "always", bytes: roundUp(input.initrdUnpacked, PAGE), source: `the capture initramfs' archive size${input.mode === "self-contained" ? " (with the compressed squashfs image of Node and kexec-ts)" : ""}: its files live in memory` },
    { what: "kernel modules, loaded", phase: "always", bytes: roundUp(input.moduleBytes, PAGE), source: "the modules' sizes in the initramfs (their loaded text and data are at most that)" },
    { what: "initramfs, compressed", phase: "boot", bytes: roundUp(input.initrdCompressed, PAGE), source: "the capture initramfs file, in the reservation until it is unpacked" },
    { what: "node, private", phase: "save", bytes: CONSTANTS.nodePrivate.bytes, source: CONSTANTS.nodePrivate.source },
  ];
  items.push({ what: "node, binary pages", phase: "save", bytes: CONSTANTS.nodeText.bytes, source: `${CONSTANTS.nodeText.source}${input.mode === "self-contained" ? " (here from the squashfs image: page cache the kernel can drop again)" : ""}` });
  if (input.threads > 0) items.push({ what: `${input.threads} compression thread(s)`, phase: "save", bytes: CONSTANTS.perThread.bytes * BigInt(input.threads), source: CONSTANTS.perThread.source });
  items.push(
    { what: "save bitmaps", phase: "save", bytes: saveBitmapBytes(input.systemRam), source: `a bit per page of the crashed machine's RAM, twice, each at most a window: the dumpable bitmap ${size(WINDOW_BYTES)} at a time (${size(BigInt(WINDOW_PAGES) * PAGE)} of RAM), the present one written in pieces of ${size(PIECE_BYTES)}` },
    { what: "file system and page cache", phase: "save", bytes: CONSTANTS.ioHeadroom.bytes, source: CONSTANTS.ioHeadroom.source },
  );
  const boot = sum(items, "boot");
  const save = sum(items, "save");
  const base = sum(items, "always") + (boot > save ? boot : save);
  // struct pages cover the whole reservation, which is what is being sized: r = base + r * 64/4096.
  const reservation = (base * PAGE) / (PAGE - STRUCT_PAGE_BYTES);
  items.push({ what: "struct pages for the reservation", phase: "always", bytes: roundUp((reservation / PAGE) * STRUCT_PAGE_BYTES, PAGE), source: "64 bytes of struct page per 4 KiB page the capture kernel manages" });
  const total = sum(items, "always") + (boot > save ? boot : save);
  return { items, peak: boot > save ? "boot" : "save", total, suggested: roundUp(total, ALIGN) };
}
