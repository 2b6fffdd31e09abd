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
import { latin1 } from "../bytes/reader.js";
import { ByteWriter } from "../bytes/writer.js";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { parseNotes, type ElfNote } from "../image/elf.js";
import { decompressPage, type PageCodec } from "./codecs.js";
import { u32At, u64At, type PhysRange, type PhysicalMemory, type RandomAccess } from "./memory.js";
import { parseVmcoreInfo, type VmcoreInfo } from "./vmcoreinfo.js";

export const KDUMP_SIGNATURE = "KDUMP   ";
export const KDUMP_HEADER_VERSION = 6;
export const DUMP_DH_COMPRESSED_ZLIB = 0x1;
export const DUMP_DH_COMPRESSED_LZO = 0x2;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x4;
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;
export const PAGE_DESC_SIZE = 24;
export const SUB_HEADER_SIZE = 104;
export const SUB_HEADER_SIZE_32 = 80;
const UTS_FIELD = 65;

export const CODEC_FLAG: Record<PageCodec, number> = {
  zlib: DUMP_DH_COMPRESSED_ZLIB, lzo: DUMP_DH_COMPRESSED_LZO, snappy: DUMP_DH_COMPRESSED_SNAPPY, zstd: DUMP_DH_COMPRESSED_ZSTD,
};

/** disk_dump_header field offsets (x86_64: struct timeval is 16 bytes, 8-aligned). */
export const DISK_DUMP_HEADER = {
  signature: 0, header_version: 8, utsname: 12, timestamp_sec: 408, timestamp_usec: 416, status: 424, block_size: 428,
  sub_hdr_size: 432, bitmap_blocks: 436, max_mapnr: 440, total_ram_blocks: 444, device_blocks: 448, written_blocks: 452,
  current_cpu: 456, nr_cpus: 460, size: 464,
} as const;

/** kdump_sub_header field offsets (x86_64). */
export const KDUMP_SUB_HEADER = {
  phys_base: 0, dump_level: 8, split: 12, start_pfn: 16, end_pfn: 24, offset_vmcoreinfo: 32, size_vmcoreinfo: 40,
  offset_note: 48, size_note: 56, offset_eraseinfo: 64, size_eraseinfo: 72, start_pfn_64: 80, end_pfn_64: 88, max_mapnr_64: 96,
} as const;

/** disk_dump_header on i386: struct timeval is two 4-byte longs, 4-aligned after utsname. */
export const DISK_DUMP_HEADER_32 = {
  signature: 0, header_version: 8, utsname: 12, timestamp_sec: 404, timestamp_usec: 408, status: 412, block_size: 416,
  sub_hdr_size: 420, bitmap_blocks: 424, max_mapnr: 428, total_ram_blocks: 432, device_blocks: 436, written_blocks: 440,
  current_cpu: 444, nr_cpus: 448, size: 452,
} as const;

/** kdump_sub_header on i386: unsigned longs are 4 bytes, off_t 8 (aligned to 4). */
export const KDUMP_SUB_HEADER_32 = {
  phys_base: 0, dump_level: 4, split: 8, start_pfn: 12, end_pfn: 16, offset_vmcoreinfo: 20, size_vmcoreinfo: 28,
  offset_note: 32, size_note: 40, offset_eraseinfo: 44, size_eraseinfo: 52, start_pfn_64: 56, end_pfn_64: 64, max_mapnr_64: 72,
} as const;

type HeaderOffsets = { readonly [K in keyof typeof DISK_DUMP_HEADER]: number };
type SubHeaderOffsets = { readonly [K in keyof typeof KDUMP_SUB_HEADER]: number };

/** The header layout for the dumped machine: the 32-bit one for i386 (utsname.machine i386..i686). */
export interface KdumpHeaderLayout {
  /** sizeof(long): the width of phys_base, the timeval fields and the size_* fields. */
  long: 4 | 8;
  header: HeaderOffsets;
  sub: SubHeaderOffsets;
  subHeaderSize: number;
}

export function kdumpHeaderLayout(machine: string): KdumpHeaderLayout {
  return /^i[3-6]86$/.test(machine)
    ? { long: 4, header: DISK_DUMP_HEADER_32, sub: KDUMP_SUB_HEADER_32, subHeaderSize: SUB_HEADER_SIZE_32 }
    : { long: 8, header: DISK_DUMP_HEADER, sub: KDUMP_SUB_HEADER, subHeaderSize: SUB_HEADER_SIZE };
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
  memory: PhysicalMemory;
  /** Pages the 1st bitmap says exist, and the 2nd says were dumped. */
  presentPages: bigint;
  dumpedPages: bigint;
}

function cstr(bytes: Uint8Array, at: number, max: number): string {
  let end = at;
  while (end < at + max && bytes[end] !== 0) end++;
  return latin1(bytes.subarray(at, end));
}

export function readKdump(file: RandomAccess, what = "kdump file"): KdumpFile {
  const h = file.read(0n, DISK_DUMP_HEADER.size);
  if (!looksLikeKdump(h)) {
    throw new KexecError("parse", `${what}: no "KDUMP   " signature at offset 0`, { field: "signature", offset: 0, expected: "KDUMP   ", actual: JSON.stringify(latin1(h.subarray(0, 8))) }, "this is not a kdump-compressed file; an ELF dump is read directly, and `makedumpfile -R` turns a flattened stream into a file");
  }
  const uts = (i: number) => cstr(h, DISK_DUMP_HEADER.utsname + i * UTS_FIELD, UTS_FIELD);
  const L = kdumpHeaderLayout(uts(4));
  const D = L.header;
  const long = (b: Uint8Array, at: number) => (L.long === 8 ? u64At(b, at) : BigInt(u32At(b, at)));
  const version = u32At(h, D.header_version);
  const blockSize = u32At(h, D.block_size);
  if (blockSize < 1024 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) {
    throw new KexecError("parse", `${what}: block_size at offset ${D.block_size} is ${blockSize}, expected a power of two page size`, { field: "block_size", offset: D.block_size, expected: "4096", actual: String(blockSize) },
      `read with the ${L.long * 8}-bit header layout (utsname.machine is ${JSON.stringify(uts(4))}); a dump of the other word size places this field elsewhere`);
  }
  const S = L.sub;
  const sub = file.read(BigInt(blockSize), L.subHeaderSize);
  const header: KdumpHeader = {
    header_version: version,
    utsname: { sysname: uts(0), nodename: uts(1), release: uts(2), version: uts(3), machine: uts(4), domainname: uts(5) },
    timestampSec: long(h, D.timestamp_sec), timestampUsec: long(h, D.timestamp_usec), status: u32At(h, D.status), block_size: blockSize,
    sub_hdr_size: u32At(h, D.sub_hdr_size), bitmap_blocks: u32At(h, D.bitmap_blocks),
    max_mapnr: version >= 6 ? u64At(sub, S.max_mapnr_64) : BigInt(u32At(h, D.max_mapnr)),
    nr_cpus: u32At(h, D.nr_cpus), phys_base: long(sub, S.phys_base), dump_level: u32At(sub, S.dump_level),
    offset_vmcoreinfo: version >= 3 ? u64At(sub, S.offset_vmcoreinfo) : 0n, size_vmcoreinfo: version >= 3 ? long(sub, S.size_vmcoreinfo) : 0n,
    offset_note: version >= 4 ? u64At(sub, S.offset_note) : 0n, size_note: version >= 4 ? long(sub, S.size_note) : 0n,
  };
  const bitmapBytes = (header.bitmap_blocks * blockSize) / 2;
  if (header.max_mapnr > BigInt(bitmapBytes) * 8n) {
    throw new KexecError("parse", `${what}: max_mapnr ${header.max_mapnr} needs ${header.max_mapnr / 8n} bitmap bytes, but bitmap_blocks ${header.bitmap_blocks} gives ${bitmapBytes} per bitmap`,
      { field: "bitmap_blocks", offset: D.bitmap_blocks, expected: `>= ${header.max_mapnr / 8n} bytes`, actual: String(bitmapBytes) }, "the dump's header is corrupt");
  }
  const noteBytes = header.size_note > 0n ? file.read(header.offset_note, Number(header.size_note)) : new Uint8Array(0);
  const notes = parseNotes(noteBytes, Number(header.offset_note), `${what} notes`);
  let vmcoreinfo: VmcoreInfo | undefined;
  if (header.size_vmcoreinfo > 0n) vmcoreinfo = parseVmcoreInfo(latin1(file.read(header.offset_vmcoreinfo, Number(header.size_vmcoreinfo))).replace(/\0+$/, ""));
  const bitmapAt = BigInt((1 + header.sub_hdr_size) * blockSize);
  const bitmap1 = file.read(bitmapAt, bitmapBytes);
  const bitmap2 = file.read(bitmapAt + BigInt(bitmapBytes), bitmapBytes);
  const descAt = bitmapAt + BigInt(header.bitmap_blocks * blockSize);
  const rank = rankIndex(bitmap2);
  const present = popcount(bitmap1);
  const dumped = popcount(bitmap2);
  const ranges = rangesOf(bitmap1, header.max_mapnr, BigInt(blockSize));
  const memory: PhysicalMemory = {
    pageSize: blockSize,
    ranges,
    hasPage(pfn: bigint): boolean {
      const p = Number(pfn);
      return pfn >= 0n && pfn < header.max_mapnr && (bitmap2[p >>> 3]! & (1 << (p & 7))) !== 0;
    },
    readPage(pfn: bigint): Uint8Array | undefined {
      if (pfn < 0n || pfn >= header.max_mapnr) return undefined;
      const p = Number(pfn);
      if ((bitmap2[p >>> 3]! & (1 << (p & 7))) === 0) return undefined;
      const index = rank(p);
      const desc = file.read(descAt + BigInt(index) * BigInt(PAGE_DESC_SIZE), PAGE_DESC_SIZE);
      const offset = u64At(desc, 0);
      const size = u32At(desc, 8);
      const flags = u32At(desc, 12);
      // An incomplete dump ends before some descriptors were filled: they read as zeros.
      if (offset === 0n && size === 0) return undefined;
      if (size > blockSize) {
        throw new KexecError("parse", `${what}: page_desc ${index} (pfn ${hex(pfn)}) says ${size} bytes, more than a page`, { field: "page_desc.size", offset: descAt + BigInt(index * PAGE_DESC_SIZE), expected: `<= ${blockSize}`, actual: String(size) }, "the dump is corrupt at this page");
      }
      const data = file.read(offset, size);
      const pageCodec = (flags & DUMP_DH_COMPRESSED_ZSTD) ? "zstd" : (flags & DUMP_DH_COMPRESSED_SNAPPY) ? "snappy" : (flags & DUMP_DH_COMPRESSED_LZO) ? "lzo" : (flags & DUMP_DH_COMPRESSED_ZLIB) ? "zlib" : undefined;
      if (pageCodec === undefined) {
        if (size !== blockSize) throw new KexecError("parse", `${what}: uncompressed page_desc ${index} has size ${size}, expected ${blockSize}`, { field: "page_desc.size" }, "the dump is corrupt at this page");
        return data;
      }
      return decompressPage(pageCodec, data, blockSize);
    },
  };
  return {
    format: "kdump", header, notes, noteBytes, vmcoreinfo, incomplete: (header.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0,
    memory, presentPages: present, dumpedPages: dumped,
  };
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

function rangesOf(bitmap: Uint8Array, maxPfn: bigint, pageSize: bigint): PhysRange[] {
  const ranges: PhysRange[] = [];
  let start = -1;
  const limit = Number(maxPfn);
  for (let p = 0; p <= limit; p++) {
    const set = p < limit && (bitmap[p >>> 3]! & (1 << (p & 7))) !== 0;
    if (set && start < 0) start = p;
    else if (!set && start >= 0) {
      ranges.push({ start: BigInt(start) * pageSize, end: BigInt(p) * pageSize });
      start = -1;
    }
  }
  return ranges;
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
  const subHeaderSize = kdumpHeaderLayout(input.utsname.machine).subHeaderSize;
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

export function encodeUtsname(release: string, machine: string, version = ""): Utsname {
  return { sysname: "Linux", nodename: "", release, version, machine, domainname: "" };
}

/** Block 0 and the sub header blocks (with the notes), ready to write at offset 0; 32-bit layout for an i386 utsname.machine. */
export function encodeKdumpHeaders(input: KdumpHeaderInput, layout: KdumpLayout): Uint8Array {
  const bs = input.blockSize;
  const w = new ByteWriter((1 + layout.subHeaderBlocks) * bs);
  const L = kdumpHeaderLayout(input.utsname.machine);
  const D = L.header;
  const long = (at: number, v: bigint) => (L.long === 8 ? w.u64(at, v) : w.u32(at, Number(BigInt.asUintN(32, v))));
  for (let i = 0; i < 8; i++) w.u8(D.signature + i, KDUMP_SIGNATURE.charCodeAt(i));
  w.u32(D.header_version, KDUMP_HEADER_VERSION);
  const u = input.utsname;
  [u.sysname, u.nodename, u.release, u.version, u.machine, u.domainname].forEach((s, i) => {
    for (let k = 0; k < Math.min(s.length, UTS_FIELD - 1); k++) w.u8(D.utsname + i * UTS_FIELD + k, s.charCodeAt(k) & 0xff);
  });
  long(D.timestamp_sec, input.timestampSec);
  long(D.timestamp_usec, 0n);
  w.u32(D.status, input.status);
  w.u32(D.block_size, bs);
  w.u32(D.sub_hdr_size, layout.subHeaderBlocks);
  w.u32(D.bitmap_blocks, layout.bitmapBlocks);
  w.u32(D.max_mapnr, Number(input.maxMapnr > 0xffffffffn ? 0xffffffffn : input.maxMapnr));
  w.u32(D.nr_cpus, input.nrCpus);
  const S = L.sub;
  const base = bs;
  long(base + S.phys_base, input.physBase);
  w.u32(base + S.dump_level, input.dumpLevel);
  w.u32(base + S.split, 0);
  w.u64(base + S.offset_vmcoreinfo, layout.vmcoreinfoOffset);
  long(base + S.size_vmcoreinfo, BigInt(input.vmcoreinfoInNotes?.size ?? 0));
  w.u64(base + S.offset_note, input.noteBytes.length > 0 ? layout.noteOffset : 0n);
  long(base + S.size_note, BigInt(input.noteBytes.length));
  w.u64(base + S.max_mapnr_64, input.maxMapnr);
  w.bytesAt(Number(layout.noteOffset), input.noteBytes);
  return w.finish();
}

/**
 * One page_desc (offset u64, size u32, flags u32, page_flags u64) at `at` in `view`. Plain
 * numbers and a caller's DataView: a save writes a million of them per 4 GiB, where a BigInt
 * and a fresh DataView per descriptor cost 0.2 s.
 */
export function writePageDesc(view: DataView, at: number, offset: number, size: number, flags: number): void {
  view.setUint32(at, offset % 0x100000000, true);
  view.setUint32(at + 4, Math.floor(offset / 0x100000000), true);
  view.setUint32(at + 8, size, true);
  view.setUint32(at + 12, flags, true);
  view.setUint32(at + 16, 0, true);
  view.setUint32(at + 20, 0, true);
}

/** Where the VMCOREINFO note's text sits inside a note area. */
export function findVmcoreinfo(noteBytes: Uint8Array): { offset: number; size: number } | undefined {
  const note = parseNotes(noteBytes, 0, "notes").find((n) => n.name === "VMCOREINFO");
  if (!note) return undefined;
  return { offset: note.desc.byteOffset - noteBytes.byteOffset, size: note.desc.length };
}
