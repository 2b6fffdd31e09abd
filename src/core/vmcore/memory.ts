/**
 * The two ways a vmcore is read: as a file (random access by file offset) and
 * as the crashed machine's memory (by physical, then virtual, address). The
 * core never opens files: the Node side hands it a RandomAccess over a file
 * descriptor, tests hand it one over a Uint8Array.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";

export interface RandomAccess {
  readonly size: bigint;
  /** Exactly `length` bytes from `offset`; throws a KexecError when the file is shorter. */
  read(offset: bigint, length: number): Uint8Array;
  /** Optional: the same bytes into dst at `at`, without allocating (the save path reads GiBs this way). */
  readInto?(offset: bigint, dst: Uint8Array, at: number, length: number): void;
  /**
   * Optional, where the file is mapped: the bytes from `offset` on, as many of `length` as one
   * mapping holds, in place. Valid only until the next call of `view` (its window may then be
   * mapped over); reads leave it be. Undefined where the bytes cannot be seen in place.
   */
  view?(offset: number, length: number): SourceView | undefined;
}

/** Bytes of a source seen in place: `bytes[from, from + length)`. */
export interface SourceView { bytes: Uint8Array; from: number; length: number }

export function bytesAccess(bytes: Uint8Array, what = "vmcore"): RandomAccess {
  return {
    size: BigInt(bytes.length),
    read(offset: bigint, length: number): Uint8Array {
      const end = offset + BigInt(length);
      if (offset < 0n || end > BigInt(bytes.length)) {
        throw new KexecError("parse", `${what}: ${length} bytes at offset ${hex(offset)} lie past the end of the file (${bytes.length} bytes)`,
          { offset, expected: `end <= ${hex(bytes.length)}`, actual: hex(end) }, "the file is truncated");
      }
      return bytes.subarray(Number(offset), Number(end));
    },
    readInto(offset: bigint, dst: Uint8Array, at: number, length: number): void {
      if (offset < 0n || offset + BigInt(length) > BigInt(bytes.length)) throw new KexecError("parse", `${what}: ${length} bytes at offset ${hex(offset)} lie past the end of the file (${bytes.length} bytes)`, { offset }, "the file is truncated");
      dst.set(bytes.subarray(Number(offset), Number(offset) + length), at);
    },
  };
}

/** Half-open physical range [start, end). */
export interface PhysRange {
  start: bigint;
  end: bigint;
}

export interface PhysicalMemory {
  readonly pageSize: number;
  /** The physical ranges the dump describes (present in memory, dumped or not). */
  readonly ranges: readonly PhysRange[];
  /**
   * One page's bytes by page frame number, or undefined when the page was excluded
   * from the dump or lies in a hole. Never throws for an absent page.
   */
  readPage(pfn: bigint): Uint8Array | undefined;
  /**
   * Optional fast path: `count` consecutive pages in one read, or undefined when they do not
   * lie in one stored run (the caller then reads page by page).
   */
  readRun?(pfn: bigint, count: number): Uint8Array | undefined;
  /** Optional: like readRun, into dst at `at`; false (nothing read) when the pages are not one stored run. */
  readRunInto?(pfn: bigint, count: number, dst: Uint8Array, at: number): boolean;
  /**
   * Optional (sources that store pages uncompressed, as ELF does): where page `pfn` and up to
   * `max - 1` pages after it lie whole in the file, as one run; undefined when page `pfn` is not
   * wholly in the file. Lets a reader on another thread fetch the bytes itself.
   */
  fileRun?(pfn: number, max: number): { offset: number; pages: number } | undefined;
  /** Optional: whether a page is stored, without reading it (kdump files answer from their bitmap). */
  hasPage?(pfn: bigint): boolean;
  /** Optional: `length` bytes from `paddr` in place (RandomAccess.view), or undefined when they are not all in one view. */
  view?(paddr: bigint, length: number): SourceView | undefined;
}

/**
 * What a read is for (a symbol, a VMCOREINFO key, a struct field), named by its error. A function
 * where the name would be formatted per read (the exclusion scan reads a section's entries by
 * the thousand): it is called only to throw.
 */
export type Field = string | (() => string);

export function fieldName(field: Field): string {
  return typeof field === "string" ? field : field();
}

/** Physical reads that may cross pages; a missing page is an error naming the address. */
export function readPhysical(mem: PhysicalMemory, paddr: bigint, length: number, field: Field): Uint8Array {
  const out = new Uint8Array(length);
  const ps = BigInt(mem.pageSize);
  let done = 0;
  while (done < length) {
    const at = paddr + BigInt(done);
    const pfn = at / ps;
    const within = Number(at % ps);
    const page = mem.readPage(pfn);
    if (page === undefined) {
      const name = fieldName(field);
      throw new KexecError("parse", `${name}: physical address ${hex(at)} (page frame ${hex(pfn)}) is not in the dump`,
        { field: name, offset: at }, "the page was excluded by the dump level or lies in a memory hole");
    }
    const n = Math.min(length - done, mem.pageSize - within);
    out.set(page.subarray(within, within + n), done);
    done += n;
  }
  return out;
}

export function u64At(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, true);
}

export function u32At(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
}

export function u16At(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(offset, true);
}
