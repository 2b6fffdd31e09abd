/**
 * How high in physical memory kexec-ts follows a dump, in page frames (of 4 KiB on x86). There are
 * two limits, because where a bitmap of every page frame is held in one array its size, not the
 * arithmetic, is what stops it: everything a user runs (saving, reading back, info, dmesg and the
 * report) holds a window of the bitmap at a time and goes to 2^40; only presentBitmaps, for small
 * dumps (the lab's synthetic vmcore reads its source guest's so; tests), holds one whole.
 *
 * Page frames are plain numbers (doubles, exact below 2^53) everywhere; a physical address made
 * of one as pfn * pageSize (ELF extents, fileRun) is exact below 2^53 too, that is below 2^41
 * page frames. Bit indexing (p >>> 3, p & 7) is done only on offsets inside one bitmap array.
 */
import { KexecError } from "../errors.js";
import { hex, size } from "../format.js";

/** Who holds the page frames, and what to do about a dump beyond them: for the error. */
export interface PageFrameLimit {
  /** One past the highest page frame. */
  end: number;
  /** "<holder> memory below 0x...": who refuses, and why. */
  holder: string;
  hint: string;
}

/**
 * A bitmap of every page frame held whole (presentBitmaps: the lab's synthetic vmcore, of its
 * source dump; tests). At 2^31 page frames the bitmap is 256 MiB already, and indexes past 2^32
 * bits would not fit p >>> 3. A damaged PT_LOAD (p_memsz 2^64 - 1) had asked for a bitmap larger
 * than any typed array, or looped for minutes.
 */
export const MAX_WHOLE_BITMAP_PFN = 2 ** 31;

/**
 * The kdump-compressed format, written and read back, and ELF dumps. The kdump writer
 * (dump-writer.ts: a file, or a flattened stream) holds its 2nd bitmap a window of WINDOW_PAGES at
 * a time and makes the 1st in pieces; the ELF writer plans its PT_LOADs from the same windows, one
 * at a time (only its segment list grows with the machine); the reader (readKdump) streams both
 * bitmaps once at open and keeps a prefix count per 256 KiB of the 2nd (4 MiB at this limit),
 * reading a block back to find a page. So nothing they hold grows with the highest page frame; a
 * kdump file's own bitmaps do (32 MiB per TiB each, as makedumpfile's). The report
 * (report/vmcore.ts) lists a dump's pages a window at a time too. 2^40 page frames are 4 PiB,
 * the reach of 5-level paging (MAX_PHYSMEM_BITS 52), and keep pfn * 4096 exact as a double (below
 * 2^53); bitmap_blocks, a 32-bit count of 4 KiB blocks, is 2^26 there.
 */
export const MAX_KDUMP_PFN = 2 ** 40;

const RESAVE_AS_KDUMP = "save it in the kdump-compressed format (vmcore save's default --format kdump, or makedumpfile -c/-l/-p/-z without -E), which kexec-ts writes for memory below 4 PiB";

export const WHOLE_BITMAP_LIMIT: PageFrameLimit = {
  end: MAX_WHOLE_BITMAP_PFN,
  holder: "where it holds a bitmap of every page frame whole (the lab's synthetic vmcore, of its source dump), kexec-ts handles",
  hint: `if the crashed machine really has memory there, ${RESAVE_AS_KDUMP}, and read that with kexec-ts vmcore info and dmesg, makedumpfile or crash; otherwise the dump's headers (its PT_LOADs or bitmaps) are damaged`,
};

export const REPORT_LIMIT: PageFrameLimit = {
  end: MAX_KDUMP_PFN,
  holder: "kexec-ts reports dumps of",
  hint: "if the crashed machine really has memory there, read its dump with makedumpfile or crash; otherwise the dump's headers (its PT_LOADs) are damaged",
};

export const KDUMP_WRITER_LIMIT: PageFrameLimit = {
  end: MAX_KDUMP_PFN,
  holder: "kexec-ts saves kdump-compressed dumps of",
  hint: "if the crashed machine really has memory there, save its dump with makedumpfile; otherwise the dump's headers (its PT_LOADs) are damaged",
};

export const ELF_DUMP_LIMIT: PageFrameLimit = {
  end: MAX_KDUMP_PFN,
  holder: "kexec-ts saves ELF dumps of",
  hint: KDUMP_WRITER_LIMIT.hint,
};

/** Throws when a memory range [start, end) reaches page frame `limit.end` or beyond. */
export function checkPageFrameLimit(range: { start: bigint; end: bigint }, pageSize: number, limit: PageFrameLimit, field = "memory range end"): void {
  const ps = BigInt(pageSize);
  const endPfn = (range.end + ps - 1n) / ps;
  if (endPfn <= BigInt(limit.end)) return;
  const below = BigInt(limit.end) * ps;
  throw new KexecError("parse", `memory range ${hex(range.start)}-${hex(range.end)} reaches page frame ${hex(endPfn)}; ${limit.holder} memory below ${hex(below)} (${size(below)} of ${size(pageSize)} pages)`,
    { field, expected: `<= ${hex(below)}`, actual: hex(range.end) }, limit.hint);
}
