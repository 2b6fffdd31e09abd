/**
 * makedumpfile's kdump-compressed format (diskdump_mod.h):
 *
 *   block 0                     disk_dump_header ("KDUMP   ", header_version 6)
 *   block 1 .. 1+sub_hdr_size   kdump_sub_header, then the ELF notes (VMCOREINFO inside)
 *   then bitmap_blocks          1st bitmap (pages that exist) | 2nd bitmap (pages dumped)
 *   then                        page_desc_t per dumped page, in pfn order, then page data
 *
 * A page's descriptor is found by counting the set bits of the 2nd bitmap before it.
 * block_size is the page size. The headers hold C longs and a struct timeval, so their
 * layout follows the dumped machine's word: makedumpfile built for x86_64 writes timestamp
 * at 408, status at 424 and a 104-byte sub header; built for i386 (4-byte longs, 8-byte
 * off_t aligned to 4) timestamp at 404, status at 412 and an 80-byte sub header. Which
 * one a file has is told by utsname.machine, which sits at the same offset in both.
 * Offsets here are checked against files makedumpfile 1.7.2 writes on each.
 */
import { defineLayout, field, offsetOf, readStruct, writeStruct } from "../bytes/layout.js";
import { latin1 } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { parseNotes, type ElfNote } from "../image/elf.js";
import { decodePageInto, type PageCodec, type PageDecodeInto } from "./codecs.js";
import { type PhysRange, type PhysicalMemory, type RandomAccess } from "./memory.js";
import { MAX_KDUMP_PFN } from "./page-frame-limits.js";
import { parseVmcoreInfo, type VmcoreInfo } from "./vmcoreinfo.js";

export const KDUMP_SIGNATURE = "KDUMP   ";
export const KDUMP_HEADER_VERSION = 6;
export const DUMP_DH_COMPRESSED_ZLIB = 0x1;
export const DUMP_DH_COMPRESSED_LZO = 0x2;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x4;
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;

export const CODEC_FLAG: Record<PageCodec, number> = {
  zlib: DUMP_DH_COMPRESSED_ZLIB, lzo: DUMP_DH_COMPRESSED_LZO, snappy: DUMP_DH_COMPRESSED_SNAPPY, zstd: DUMP_DH_COMPRESSED_ZSTD,
};

/** __NEW_UTS_LEN + 1 (include/uapi/linux/utsname.h). */
const UTS_FIELD = 65;
const UTS_NAMES = ["sysname", "nodename", "release", "version", "machine", "domainname"] as const;

/** struct new_utsname: six 65-byte strings; the kernel's init_uts_ns.name and the kdump header's copy of it. */
export const NEW_UTSNAME = defineLayout("struct new_utsname", 6 * UTS_FIELD, "little", UTS_NAMES.map((n, i) => field(n, i * UTS_FIELD, UTS_FIELD, "chars")));

/**
 * struct disk_dump_header (makedumpfile's diskdump_mod.h). It holds a struct timeval and ends in
 * a pointer array, so it follows the dumped machine's word: on x86_64 the timeval is two 8-byte
 * longs aligned to 8 after the 402 bytes of signature, version and utsname; on i386 two 4-byte
 * longs aligned to 4.
 */
function diskDumpHeader(long: 4 | 8) {
  const tv = long === 8 ? 408 : 404;
  const after = tv + 2 * long;
  return defineLayout(`struct disk_dump_header (${long === 8 ? "x86_64" : "i386"})`, after + 40, "little", [
    field("signature", 0, 8, "chars"),
    field("header_version", 8, 4, "uint"),
    ...UTS_NAMES.map((n, i) => field(`utsname.${n}` as const, 12 + i * UTS_FIELD, UTS_FIELD, "chars")),
    field("timestamp.tv_sec", tv, long, "u64"),
    field("timestamp.tv_usec", tv + long, long, "u64"),
    field("status", after, 4, "uint"),
    field("block_size", after + 4, 4, "uint"),
    field("sub_hdr_size", after + 8, 4, "uint"),
    field("bitmap_blocks", after + 12, 4, "uint"),
    // 32 bits only, obsolete since header_version 6: max_mapnr_64 in the sub header has all of it.
    field("max_mapnr", after + 16, 4, "uint"),
    field("total_ram_blocks", after + 20, 4, "uint"),
    field("device_blocks", after + 24, 4, "uint"),
    field("written_blocks", after + 28, 4, "uint"),
    field("current_cpu", after + 32, 4, "uint"),
    field("nr_cpus", after + 36, 4, "uint"),
  ]);
}

/**
 * struct kdump_sub_header, in block 1. unsigned long is the word; off_t is 8 bytes in both
 * (makedumpfile is built with 64-bit file offsets), aligned to 4 on i386. Each field is
 * tagged with the header_version that added it.
 */
function kdumpSubHeader(long: 4 | 8) {
  const fields = [
    field("phys_base", 0, long, "u64"),
    field("dump_level", long, 4, "uint", 1),
    field("split", long + 4, 4, "uint", 2),
  ];
  let at = long + 8;
  const next = (size: number) => { if (size === 8 && long === 8) at = (at + 7) & ~7; const o = at; at += size; return o; };
  const rest = [
    field("start_pfn", next(long), long, "u64", 2),
    field("end_pfn", next(long), long, "u64", 2),
    field("offset_vmcoreinfo", next(8), 8, "u64", 3),
    field("size_vmcoreinfo", next(long), long, "u64", 3),
    field("offset_note", next(8), 8, "u64", 4),
    field("size_note", next(long), long, "u64", 4),
    field("offset_eraseinfo", next(8), 8, "u64", 5),
    field("size_eraseinfo", next(long), long, "u64", 5),
    field("start_pfn_64", next(8), 8, "u64", 6),
    field("end_pfn_64", next(8), 8, "u64", 6),
    field("max_mapnr_64", next(8), 8, "u64", 6),
  ];
  return defineLayout(`struct kdump_sub_header (${long === 8 ? "x86_64" : "i386"})`, at, "little", [...fields, ...rest]);
}

export const DISK_DUMP_HEADER_64 = diskDumpHeader(8);
export const DISK_DUMP_HEADER_32 = diskDumpHeader(4);
export const KDUMP_SUB_HEADER_64 = kdumpSubHeader(8);
export const KDUMP_SUB_HEADER_32 = kdumpSubHeader(4);

/** page_desc_t: where a page's data is, how long, how compressed (the same 24 bytes on both word sizes). */
export const PAGE_DESC = defineLayout("page_desc_t", 24, "little", [
  field("offset", 0, 8, "u64"),
  field("size", 8, 4, "uint"),
  field("flags", 12, 4, "uint"),
  field("page_flags", 16, 8, "u64"),
]);
export const PAGE_DESC_SIZE = PAGE_DESC.size;

/** The header layouts for the dumped machine: the 32-bit ones for i386 (utsname.machine i386..i686). */
export interface KdumpHeaderLayout {
  /** sizeof(long): the width of phys_base, the timeval fields and the size_* fields. */
  long: 4 | 8;
  header: typeof DISK_DUMP_HEADER_64;
  sub: typeof KDUMP_SUB_HEADER_64;
}

export function kdumpHeaderLayout(machine: string): KdumpHeaderLayout {
  return /^i[3-6]86$/.test(machine)
    ? { long: 4, header: DISK_DUMP_HEADER_32, sub: KDUMP_SUB_HEADER_32 }
    : { long: 8, header: DISK_DUMP_HEADER_64, sub: KDUMP_SUB_HEADER_64 };
}

export interface Utsname {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
}

export interface KdumpHeader {
  header_version: number;
  utsname: Utsname;
  timestampSec: bigint;
  timestampUsec: bigint;
  status: number;
  block_size: number;
  sub_hdr_size: number;
  bitmap_blocks: number;
  max_mapnr: bigint;
  nr_cpus: number;
  phys_base: bigint;
  dump_level: number;
  offset_vmcoreinfo: bigint;
  size_vmcoreinfo: bigint;
  offset_note: bigint;
  size_note: bigint;
}

export function looksLikeKdump(head: Uint8Array): boolean {
  return head.length >= 8 && latin1(head.subarray(0, 8)) === KDUMP_SIGNATURE;
}

export function codecOf(status: number): PageCodec | undefined {
  if (status & DUMP_DH_COMPRESSED_ZSTD) return "zstd";
  if (status & DUMP_DH_COMPRESSED_SNAPPY) return "snappy";
  if (status & DUMP_DH_COMPRESSED_LZO) return "lzo";
  if (status & DUMP_DH_COMPRESSED_ZLIB) return "zlib";
  return undefined;
}

export interface KdumpFile {
  format: "kdump";
  header: KdumpHeader;
  notes: ElfNote[];
  noteBytes: Uint8Array;
  vmcoreinfo: VmcoreInfo | undefined;
  incomplete: boolean;
  /** Why the file is shorter than its headers say (cut off in a copy), or undefined. */
  cutShort: string | undefined;
  memory: PhysicalMemory;
  /** Pages the 1st bitmap says exist, and the 2nd says were dumped. */
  presentPages: bigint;
  dumpedPages: bigint;
}

/**
 * struct disk_dump_header alone, from the file's first bytes, in the layout of the dumped
 * machine's word: what `kdump list` reads of a dump (its status) without the bitmaps behind it.
 */
export function readDiskDumpHeader(h: Uint8Array, what = "kdump file") {
  if (!looksLikeKdump(h)) {
    throw new KexecError("parse", `${what}: no "KDUMP   " signature at offset 0`, { field: "signature", offset: 0, expected: "KDUMP   ", actual: JSON.stringify(latin1(h.subarray(0, 8))) }, "this is not a kdump-compressed file; an ELF dump is read directly, and `makedumpfile -R` turns a flattened stream into a file");
  }
  // utsname.machine sits at the same offset in both layouts and says which one the file has.
  const machine = readStruct(DISK_DUMP_HEADER_64, h, 0, { what, limit: offsetOf(DISK_DUMP_HEADER_64, "utsname.domainname") })["utsname.machine"];
  const L = kdumpHeaderLayout(machine);
  return { layout: L, fields: readStruct(L.header, h, 0, { what }) };
}

/** How a kdump file's pages are read. */
export interface KdumpReadOptions {
  /**
   * Decodes each compressed page; the JavaScript decoders when not given. Node passes the system's
   * codec libraries (node/vmcore/native-codecs.ts): LZO decoding in JavaScript was about half of
   * a report's time on a kdump file.
   */
  decodePage?: PageDecodeInto;
}

export function readKdump(file: RandomAccess, what = "kdump file", options: KdumpReadOptions = {}): KdumpFile {
  const decodePage = options.decodePage ?? decodePageInto;
  const h = file.read(0n, Number(file.size < BigInt(DISK_DUMP_HEADER_64.size) ? file.size : BigInt(DISK_DUMP_HEADER_64.size)));
  const { layout: L, fields: d } = readDiskDumpHeader(h, what);
  const machine = d["utsname.machine"];
  const blockSize = d.block_size;
  if (blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
    const at = offsetOf(L.header, "block_size");
    throw new KexecError("parse", `${what}: block_size at offset ${at} is ${blockSize}, expected a power of two page size`, { field: "block_size", offset: at, expected: "4096", actual: String(blockSize) },
      `read with the ${L.long * 8}-bit header layout (utsname.machine is ${JSON.stringify(machine)}); a dump of the other word size places this field elsewhere`);
  }
  const version = d.header_version;
  const sub = readStruct(L.sub, file.read(BigInt(blockSize), L.sub.size), 0, { what: `${what} kdump_sub_header`, version });
  const header: KdumpHeader = {
    header_version: version,
    utsname: { sysname: d["utsname.sysname"], nodename: d["utsname.nodename"], release: d["utsname.release"], version: d["utsname.version"], machine: d["utsname.machine"], domainname: d["utsname.domainname"] },
    timestampSec: d["timestamp.tv_sec"], timestampUsec: d["timestamp.tv_usec"], status: d.status, block_size: blockSize,
    sub_hdr_size: d.sub_hdr_size, bitmap_blocks: d.bitmap_blocks,
    max_mapnr: sub.max_mapnr_64 ?? BigInt(d.max_mapnr),
    nr_cpus: d.nr_cpus, phys_base: sub.phys_base, dump_level: sub.dump_level ?? 0,
    offset_vmcoreinfo: sub.offset_vmcoreinfo ?? 0n, size_vmcoreinfo: sub.size_vmcoreinfo ?? 0n,
    offset_note: sub.offset_note ?? 0n, size_note: sub.size_note ?? 0n,
  };
  // The bitmaps are streamed at open and read a block at a time after (kdumpBitmaps), so what
  // is held does not grow with the highest page frame; this limit is the writer's (2^40 page
  // frames, 4 PiB), where pfn * block_size stays exact as a double.
  if (header.max_mapnr > BigInt(MAX_KDUMP_PFN)) {
    const field = sub.max_mapnr_64 === undefined ? "max_mapnr" : "max_mapnr_64";
    const offset = sub.max_mapnr_64 === undefined ? offsetOf(L.header, "max_mapnr") : blockSize + offsetOf(L.sub, "max_mapnr_64");
    throw new KexecError("parse", `${what}: ${field} ${hex(header.max_mapnr)} page frames: kexec-ts reads kdump files of memory below ${hex(BigInt(MAX_KDUMP_PFN) * BigInt(blockSize))} (${hex(MAX_KDUMP_PFN)} page frames, 5-level paging's reach)`,
      { field, offset, expected: `<= ${hex(MAX_KDUMP_PFN)}`, actual: hex(header.max_mapnr) },
      "if the crashed machine really has memory there, read this dump with makedumpfile (--dump-dmesg) or crash; otherwise the dump's header is damaged");
  }
  const bitmapBytes = (header.bitmap_blocks * blockSize) / 2;
  if (header.max_mapnr > BigInt(bitmapBytes) * 8n) {
    throw new KexecError("parse", `${what}: max_mapnr ${header.max_mapnr} needs ${header.max_mapnr / 8n} bitmap bytes, but bitmap_blocks ${header.bitmap_blocks} gives ${bitmapBytes} per bitmap`,
      { field: "bitmap_blocks", offset: offsetOf(L.header, "bitmap_blocks"), expected: `>= ${header.max_mapnr / 8n} bytes`, actual: String(bitmapBytes) }, "the dump's header is corrupt");
  }
  // Each (offset, size) pair of the headers is checked against the file before it is read: a
  // damaged size named the read, not the field, or asked for more than a typed array holds.
  const inside = (says: string, field: string, fieldAt: number, offset: bigint, bytes: bigint) => {
    if (offset + bytes > file.size) {
      throw new KexecError("parse", `${what}: ${says}: ${bytes} bytes at offset ${hex(offset)}, past the end of the file (${hex(file.size)} bytes)`,
        { field, offset: fieldAt, expected: `offset + size <= ${hex(file.size)}`, actual: hex(offset + bytes) }, "the file is truncated or its header is damaged");
    }
  };
  const subAt = (name: "size_note" | "size_vmcoreinfo") => blockSize + offsetOf(L.sub, name);
  if (header.size_note > 0n) inside("offset_note and size_note say", "size_note", subAt("size_note"), header.offset_note, header.size_note);
  if (header.size_vmcoreinfo > 0n) inside("offset_vmcoreinfo and size_vmcoreinfo say", "size_vmcoreinfo", subAt("size_vmcoreinfo"), header.offset_vmcoreinfo, header.size_vmcoreinfo);
  inside(`the bitmaps, by sub_hdr_size ${header.sub_hdr_size} and bitmap_blocks ${header.bitmap_blocks}, are`, "bitmap_blocks", offsetOf(L.header, "bitmap_blocks"),
    BigInt(1 + header.sub_hdr_size) * BigInt(blockSize), BigInt(header.bitmap_blocks) * BigInt(blockSize));
  const noteBytes = header.size_note > 0n ? file.read(header.offset_note, Number(header.size_note)) : new Uint8Array(0);
  const notes = parseNotes(noteBytes, Number(header.offset_note), `${what} notes`);
  let vmcoreinfo: VmcoreInfo | undefined;
  if (header.size_vmcoreinfo > 0n) vmcoreinfo = parseVmcoreInfo(latin1(file.read(header.offset_vmcoreinfo, Number(header.size_vmcoreinfo))).replace(/\0+$/, ""));
  const bitmapAt = BigInt((1 + header.sub_hdr_size) * blockSize);
  const descAt = bitmapAt + BigInt(header.bitmap_blocks) * BigInt(blockSize);
  const bitmaps = kdumpBitmaps(file, bitmapAt, bitmapBytes, Number(header.max_mapnr), blockSize);
  // A run's descriptors and stored bytes are read into these, grown to the longest run asked for.
  let descBytes = new Uint8Array(PAGE_DESC_SIZE);
  let descView = new DataView(descBytes.buffer);
  let storedBytes = new Uint8Array(blockSize);
  const readAt = (offset: bigint, into: Uint8Array): void => {
    if (file.readInto) file.readInto(offset, into, 0, into.length);
    else into.set(file.read(offset, into.length));
  };
  // Fields of descriptor k of the run read last, from the buffer (an object per page had been
  // promoted, a run of struct pages at a time, and grew a save's heap by 6 MiB).
  const storedAt = (k: number): number => {
    const at = k * PAGE_DESC_SIZE + DESC_OFFSET;
    return descView.getUint32(at + 4, true) * 2 ** 32 + descView.getUint32(at, true);
  };
  const storedSize = (k: number): number => descView.getUint32(k * PAGE_DESC_SIZE + DESC_SIZE, true);
  const storedCodec = (k: number): PageCodec | undefined => codecOf(descView.getUint32(k * PAGE_DESC_SIZE + DESC_FLAGS, true));
  /**
   * `count` dumped pages from page frame pfn, whose descriptors start at `index`, decoded into dst
   * at `at`: their descriptors in one read, then the stored bytes of pages stored back to back
   * (all but zero pages, which point at one shared copy) in one read each. Two reads a page had
   * been most of a report's time on a kdump file, whose every struct page is read.
   * False, with nothing written, when a descriptor was never filled (an incomplete dump).
   */
  const decodeRun = (pfn: bigint, index: number, count: number, dst: Uint8Array, at: number): boolean => {
    const descLength = count * PAGE_DESC_SIZE;
    if (descBytes.length < descLength) {
      descBytes = new Uint8Array(descLength);
      descView = new DataView(descBytes.buffer);
    }
    const firstDescAt = descAt + BigInt(index) * BigInt(PAGE_DESC_SIZE);
    readAt(firstDescAt, descBytes.subarray(0, descLength));
    // Made once per run and called only for a damaged descriptor: a save reads millions of them.
    const damaged = (k: number, name: "offset" | "size", says: string, expected: string, actual: string) =>
      new KexecError("parse", `${what}: page_desc ${index + k} (pfn ${hex(pfn + BigInt(k))}) ${says}`,
        { field: `page_desc.${name}`, offset: firstDescAt + BigInt(k * PAGE_DESC_SIZE + (name === "offset" ? DESC_OFFSET : DESC_SIZE)), expected, actual }, "the dump is corrupt at this page");
    for (let k = 0; k < count; k++) {
      const offset = storedAt(k);
      const size = storedSize(k);
      // An incomplete dump ends before some descriptors were filled: they read as zeros.
      if (offset === 0 && size === 0) return false;
      if (offset > Number.MAX_SAFE_INTEGER) throw damaged(k, "offset", `says its data is at ${hex(offset)}, past any file`, `< ${hex(file.size)}`, hex(offset));
      if (size > blockSize) throw damaged(k, "size", `says ${size} bytes, more than a page`, `<= ${blockSize}`, String(size));
      if (storedCodec(k) === undefined && size !== blockSize) throw damaged(k, "size", `is stored uncompressed in ${size} bytes, expected ${blockSize}`, String(blockSize), String(size));
    }
    for (let k = 0; k < count;) {
      const first = storedAt(k);
      let end = first + storedSize(k);
      let next = k + 1;
      while (next < count && storedAt(next) === end) end += storedSize(next++);
      if (storedBytes.length < end - first) storedBytes = new Uint8Array(end - first);
      readAt(BigInt(first), storedBytes.subarray(0, end - first));
      for (let from = 0; k < next; k++) {
        const size = storedSize(k);
        const codec = storedCodec(k);
        if (codec === undefined) dst.set(storedBytes.subarray(from, from + size), at + k * blockSize);
        else {
          try {
            decodePage(codec, storedBytes, from, size, dst, at + k * blockSize, blockSize);
          } catch (e) {
            // The decoder knows the bytes, not whose they are: the page, its descriptor and where its data lies.
            if (!(e instanceof KexecError) || e.code !== "decompress") throw e;
            const dataAt = BigInt(first + from);
            throw new KexecError("decompress", `${what}: page frame ${hex(pfn + BigInt(k))} (page_desc ${index + k}, ${size} bytes at ${hex(dataAt)}): ${e.message}`,
              { ...e.data, field: `page_desc ${index + k}`, offset: dataAt }, e.hint);
          }
        }
        from += size;
      }
    }
    return true;
  };
  const memory: PhysicalMemory = {
    pageSize: blockSize,
    ranges: bitmaps.ranges,
    hasPage(pfn: bigint): boolean {
      return pfn >= 0n && pfn < header.max_mapnr && bitmaps.isDumped(Number(pfn));
    },
    readPage(pfn: bigint): Uint8Array | undefined {
      if (pfn < 0n || pfn >= header.max_mapnr) return undefined;
      const index = bitmaps.descIndex(Number(pfn));
      if (index === undefined) return undefined;
      const page = new Uint8Array(blockSize);
      return decodeRun(pfn, index, 1, page, 0) ? page : undefined;
    },
    readRunInto(pfn: bigint, count: number, dst: Uint8Array, at: number): boolean {
      // Every page of the run is asked of the bitmap first: then their descriptors are consecutive.
      for (let k = 0; k < count; k++) if (!memory.hasPage!(pfn + BigInt(k))) return false;
      return decodeRun(pfn, bitmaps.descIndex(Number(pfn))!, count, dst, at);
    },
  };
  return {
    format: "kdump", header, notes, noteBytes, vmcoreinfo, incomplete: (header.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0,
    memory, presentPages: BigInt(bitmaps.presentPages), dumpedPages: BigInt(bitmaps.dumpedPages), cutShort: kdumpCutShort(file, descAt, BigInt(bitmaps.dumpedPages)),
  };
}

/**
 * Why the file is shorter than its headers say, or undefined: the page descriptors must fit, and
 * the data they point at must end inside the file. A copy cut off in transfer keeps its header's
 * "complete" status; without this, `vmcore info` called it complete.
 *
 * Pages are stored in page frame order, but the zero pages all point at one copy stored before
 * them (makedumpfile's and kexec-ts's writers alike), and a dump often ends with zero pages (the
 * unwritten end of the log's ring buffer, kept at any dump level). So the descriptors are read
 * from the last one back, a few KiB at a time, until one points somewhere else than the last:
 * the furthest data is among those read.
 */
function kdumpCutShort(file: RandomAccess, descAt: bigint, dumped: bigint): string | undefined {
  if (dumped === 0n) return undefined;
  const descEnd = descAt + dumped * BigInt(PAGE_DESC_SIZE);
  if (descEnd > file.size) return `the file ends at ${hex(file.size)}, but its ${dumped} page descriptors run to ${hex(descEnd)}`;
  const CHUNK = 256n;
  let dataEnd = 0n;
  let lastOffset: bigint | undefined;
  for (let end = dumped; end > 0n;) {
    const from = end > CHUNK ? end - CHUNK : 0n;
    const bytes = file.read(descAt + from * BigInt(PAGE_DESC_SIZE), Number(end - from) * PAGE_DESC_SIZE);
    let other = false;
    for (let i = Number(end - from) - 1; i >= 0; i--) {
      const d = readStruct(PAGE_DESC, bytes, i * PAGE_DESC_SIZE);
      if (d.offset + BigInt(d.size) > dataEnd) dataEnd = d.offset + BigInt(d.size);
      lastOffset ??= d.offset;
      if (d.offset !== lastOffset) other = true;
    }
    if (other) break;
    end = from;
  }
  if (dataEnd > file.size) return `the file ends at ${hex(file.size)}, but its pages' data runs to ${hex(dataEnd)}`;
  return undefined;
}

/** Set bits per byte value. */
export const POP8 = new Uint8Array(256).map((_, i) => {
  let c = 0;
  for (let v = i; v; v >>= 1) c += v & 1;
  return c;
});

export function popcount(bitmap: Uint8Array): bigint {
  let n = 0;
  for (let i = 0; i < bitmap.length; i++) n += POP8[bitmap[i]!]!;
  return BigInt(n);
}

/** rank(p) = set bits before bit p, from a prefix count per 512-bit block. */
export function rankIndex(bitmap: Uint8Array): (p: number) => number {
  const blocks = Math.ceil(bitmap.length / 64);
  const prefix = new Uint32Array(blocks + 1);
  for (let b = 0; b < blocks; b++) {
    let c = 0;
    for (let i = b * 64; i < Math.min(bitmap.length, b * 64 + 64); i++) c += POP8[bitmap[i]!]!;
    prefix[b + 1] = prefix[b]! + c;
  }
  return (p: number) => {
    const byte = p >>> 3;
    const block = byte >>> 6;
    let c = prefix[block]!;
    for (let i = block * 64; i < byte; i++) c += POP8[bitmap[i]!]!;
    return c + POP8[bitmap[byte]! & ((1 << (p & 7)) - 1)]!;
  };
}

/** Set bits of a 32-bit word (SWAR: pairs, nibbles, then the bytes summed by one multiply). */
function popcount32(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/**
 * Bytes of the 2nd bitmap per entry of its rank index (the set bits before each such block):
 * 2^21 page frames, 8 GiB of 4 KiB pages. At 2^40 page frames (4 PiB) the index is 2^19 doubles,
 * 4 MiB; a 1 GiB machine's whole bitmap (32 KiB) is one block, ranked as it was held whole.
 */
const RANK_BLOCK_BYTES = 1 << 18;
const RANK_BLOCK_BITS = RANK_BLOCK_BYTES * 8;
/** How much of each bitmap the open reads at a time (a whole number of rank blocks). */
const SCAN_CHUNK_BYTES = 4 * RANK_BLOCK_BYTES;
/**
 * Blocks of the 2nd bitmap kept once read, the last used first: a log's pages cluster, and a
 * page-table walk visits a few places (the tables, then the page) before it moves on.
 */
const CACHED_RANK_BLOCKS = 4;

/** What readKdump knows of a file's two bitmaps without holding either. */
interface KdumpBitmaps {
  /** The runs of the 1st bitmap below max_mapnr, as physical ranges. */
  ranges: PhysRange[];
  /** Set bits of each bitmap, all of it (as popcount of the whole bitmap had counted). */
  presentPages: number;
  dumpedPages: number;
  /** Whether page frame p (below max_mapnr) is set in the 2nd bitmap. */
  isDumped(p: number): boolean;
  /** Page frame p's page_desc index (the set bits of the 2nd bitmap before it), or undefined when it is not dumped. */
  descIndex(p: number): number | undefined;
}

/**
 * One pass over each bitmap at open, SCAN_CHUNK_BYTES at a time: the 1st gives the present
 * ranges and count, the 2nd its count and a prefix count per RANK_BLOCK_BYTES. A page is then
 * looked up in its block of the 2nd bitmap, read back from the file. At 12 TiB each bitmap is
 * 384 MiB, which held whole had been 768 MiB for a log of a few pages. Page frames are doubles
 * (exact to 2^53); bits are indexed (>>> 3, & 7) only inside one chunk or block.
 */
function kdumpBitmaps(file: RandomAccess, bitmapAt: bigint, bitmapBytes: number, maxPfn: number, pageSize: number): KdumpBitmaps {
  const readAt = (offset: bigint, into: Uint8Array): void => {
    if (file.readInto) file.readInto(offset, into, 0, into.length);
    else into.set(file.read(offset, into.length));
  };
  // bitmapBytes is a multiple of half a block (512 bytes or more): chunks are whole words.
  const chunk = new Uint8Array(Math.min(SCAN_CHUNK_BYTES, bitmapBytes));
  const words = new Uint32Array(chunk.buffer);
  const ps = BigInt(pageSize);

  const ranges: PhysRange[] = [];
  let runStart = -1;
  let presentPages = 0;
  for (let at = 0; at < bitmapBytes; at += SCAN_CHUNK_BYTES) {
    const bytes = chunk.subarray(0, Math.min(SCAN_CHUNK_BYTES, bitmapBytes - at));
    readAt(bitmapAt + BigInt(at), bytes);
    const firstPfn = at * 8;
    const n = bytes.length >>> 2;
    for (let w = 0; w < n; w++) {
      // Outside a run, zero words (most of a machine with memory placed high) are passed in a tight loop.
      if (runStart < 0) {
        while (w < n && words[w] === 0) w++;
        if (w === n) break;
      }
      const word = words[w]!;
      presentPages += popcount32(word);
      const p0 = firstPfn + w * 32;
      // A run that goes on through the word's every bit needs no look inside (one open at
      // max_mapnr is closed there after the loop).
      if (p0 >= maxPfn || (runStart >= 0 && word === 0xffffffff)) continue;
      for (let bit = 0; bit < 32; bit++) {
        const p = p0 + bit;
        const set = p < maxPfn && ((bytes[(w << 2) + (bit >>> 3)]! >>> (bit & 7)) & 1) !== 0;
        if (set && runStart < 0) runStart = p;
        else if (!set && runStart >= 0) {
          ranges.push({ start: BigInt(runStart) * ps, end: BigInt(p) * ps });
          runStart = -1;
        }
      }
    }
  }
  if (runStart >= 0) ranges.push({ start: BigInt(runStart) * ps, end: BigInt(maxPfn) * ps });

  const dumpedAt = bitmapAt + BigInt(bitmapBytes);
  const blocks = Math.ceil(bitmapBytes / RANK_BLOCK_BYTES);
  // Doubles: more than 2^32 pages (16 TiB) may be dumped.
  const dumpedBefore = new Float64Array(blocks + 1);
  let dumpedPages = 0;
  for (let at = 0; at < bitmapBytes; at += SCAN_CHUNK_BYTES) {
    const bytes = chunk.subarray(0, Math.min(SCAN_CHUNK_BYTES, bitmapBytes - at));
    readAt(dumpedAt + BigInt(at), bytes);
    for (let from = 0; from < bytes.length; from += RANK_BLOCK_BYTES) {
      dumpedBefore[(at + from) / RANK_BLOCK_BYTES] = dumpedPages;
      const end = Math.min(bytes.length, from + RANK_BLOCK_BYTES) >>> 2;
      for (let w = from >>> 2; w < end; w++) {
        const word = words[w]!;
        if (word !== 0) dumpedPages += popcount32(word);
      }
    }
  }
  dumpedBefore[blocks] = dumpedPages;

  const cache: { block: number; bits: Uint8Array; rank: (p: number) => number }[] = [];
  const blockAt = (block: number) => {
    const first = cache[0];
    if (first !== undefined && first.block === block) return first;
    const i = cache.findIndex((c) => c.block === block);
    let entry;
    if (i > 0) entry = cache.splice(i, 1)[0]!;
    else {
      const from = block * RANK_BLOCK_BYTES;
      const bits = new Uint8Array(Math.min(RANK_BLOCK_BYTES, bitmapBytes - from));
      readAt(dumpedAt + BigInt(from), bits);
      entry = { block, bits, rank: rankIndex(bits) };
      if (cache.length === CACHED_RANK_BLOCKS) cache.pop();
    }
    cache.unshift(entry);
    return entry;
  };
  const isDumped = (p: number): boolean => {
    const block = Math.floor(p / RANK_BLOCK_BITS);
    const within = p - block * RANK_BLOCK_BITS;
    return (blockAt(block).bits[within >>> 3]! & (1 << (within & 7))) !== 0;
  };
  return {
    ranges, presentPages, dumpedPages, isDumped,
    descIndex(p: number): number | undefined {
      const block = Math.floor(p / RANK_BLOCK_BITS);
      const within = p - block * RANK_BLOCK_BITS;
      const b = blockAt(block);
      if ((b.bits[within >>> 3]! & (1 << (within & 7))) === 0) return undefined;
      return dumpedBefore[block]! + b.rank(within);
    },
  };
}

// ---- writing ----

export interface KdumpLayout {
  blockSize: number;
  subHeaderBlocks: number;
  bitmapBlocks: number;
  maxMapnr: bigint;
  bitmapOffset: bigint;
  /** Where the page_desc table starts and where page data starts after it. */
  descOffset: bigint;
  dataOffset: bigint;
  noteOffset: bigint;
  vmcoreinfoOffset: bigint;
}

export interface KdumpHeaderInput {
  utsname: Utsname;
  timestampSec: bigint;
  status: number;
  blockSize: number;
  maxMapnr: bigint;
  nrCpus: number;
  physBase: bigint;
  dumpLevel: number;
  noteBytes: Uint8Array;
  /** Offset of the VMCOREINFO text inside noteBytes, and its length; undefined when there is none. */
  vmcoreinfoInNotes: { offset: number; size: number } | undefined;
  /** How many page descriptors to reserve (pages dumped before zero-page exclusion). */
  descCount: bigint;
}

/** Reserve every region first (gimli's writer order), so headers can be rewritten in place at the end. */
export function planKdumpLayout(input: KdumpHeaderInput): KdumpLayout {
  const bs = input.blockSize;
  const subHeaderSize = kdumpHeaderLayout(input.utsname.machine).sub.size;
  const subBytes = subHeaderSize + input.noteBytes.length;
  const subHeaderBlocks = Math.ceil(subBytes / bs);
  const bitmapBytes = Math.ceil(Number((input.maxMapnr + 7n) / 8n) / bs) * bs;
  const bitmapBlocks = (bitmapBytes / bs) * 2;
  const bitmapOffset = BigInt((1 + subHeaderBlocks) * bs);
  const descOffset = bitmapOffset + BigInt(bitmapBlocks * bs);
  const noteOffset = BigInt(bs + subHeaderSize);
  return {
    blockSize: bs, subHeaderBlocks, bitmapBlocks, maxMapnr: input.maxMapnr, bitmapOffset, descOffset,
    dataOffset: descOffset + input.descCount * BigInt(PAGE_DESC_SIZE), noteOffset,
    vmcoreinfoOffset: input.vmcoreinfoInNotes ? noteOffset + BigInt(input.vmcoreinfoInNotes.offset) : 0n,
  };
}

/** Block 0 and the sub header blocks (with the notes), ready to write at offset 0; 32-bit layout for an i386 utsname.machine. */
export function encodeKdumpHeaders(input: KdumpHeaderInput, layout: KdumpLayout): Uint8Array {
  const bs = input.blockSize;
  const out = new Uint8Array((1 + layout.subHeaderBlocks) * bs);
  const L = kdumpHeaderLayout(input.utsname.machine);
  const word = (v: bigint) => (L.long === 8 ? v : BigInt.asUintN(32, v));
  const u = input.utsname;
  // As makedumpfile's write_kdump_header fills it; total_ram_blocks, device_blocks,
  // written_blocks and current_cpu stay 0 there too. max_mapnr is MIN(max_mapnr, UINT_MAX) there
  // (memory from 16 TiB up): readers take max_mapnr_64 from the sub header.
  writeStruct(L.header, out, 0, {
    signature: KDUMP_SIGNATURE, header_version: KDUMP_HEADER_VERSION,
    "utsname.sysname": u.sysname, "utsname.nodename": u.nodename, "utsname.release": u.release,
    "utsname.version": u.version, "utsname.machine": u.machine, "utsname.domainname": u.domainname,
    "timestamp.tv_sec": word(input.timestampSec), "timestamp.tv_usec": 0n,
    status: input.status, block_size: bs, sub_hdr_size: layout.subHeaderBlocks, bitmap_blocks: layout.bitmapBlocks,
    max_mapnr: Number(input.maxMapnr > 0xffffffffn ? 0xffffffffn : input.maxMapnr), nr_cpus: input.nrCpus,
  });
  writeStruct(L.sub, out, bs, {
    phys_base: word(input.physBase), dump_level: input.dumpLevel, split: 0,
    offset_vmcoreinfo: layout.vmcoreinfoOffset, size_vmcoreinfo: BigInt(input.vmcoreinfoInNotes?.size ?? 0),
    offset_note: input.noteBytes.length > 0 ? layout.noteOffset : 0n, size_note: BigInt(input.noteBytes.length),
    max_mapnr_64: input.maxMapnr,
  });
  out.set(input.noteBytes, Number(layout.noteOffset));
  return out;
}

const DESC_OFFSET = offsetOf(PAGE_DESC, "offset");
const DESC_SIZE = offsetOf(PAGE_DESC, "size");
const DESC_FLAGS = offsetOf(PAGE_DESC, "flags");
const DESC_PAGE_FLAGS = offsetOf(PAGE_DESC, "page_flags");

/**
 * One page_desc at `at` in `view`, by the PAGE_DESC table's offsets. Plain numbers and a
 * caller's DataView: a save writes a million of them per 4 GiB, where a BigInt and a fresh
 * DataView per descriptor cost 0.2 s.
 */
export function writePageDesc(view: DataView, at: number, offset: number, size: number, flags: number): void {
  view.setUint32(at + DESC_OFFSET, offset % 0x100000000, true);
  view.setUint32(at + DESC_OFFSET + 4, Math.floor(offset / 0x100000000), true);
  view.setUint32(at + DESC_SIZE, size, true);
  view.setUint32(at + DESC_FLAGS, flags, true);
  view.setBigUint64(at + DESC_PAGE_FLAGS, 0n, true);
}

/** Where the VMCOREINFO note's text sits inside a note area. */
export function findVmcoreinfo(noteBytes: Uint8Array): { offset: number; size: number } | undefined {
  const note = parseNotes(noteBytes, 0, "notes").find((n) => n.name === "VMCOREINFO");
  if (!note) return undefined;
  return { offset: note.desc.byteOffset - noteBytes.byteOffset, size: note.desc.length };
}
