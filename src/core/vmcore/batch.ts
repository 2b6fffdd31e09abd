/**
 * A batch of pages on its way to the dump: which are zero, which were skipped, and the bytes
 * stored for the rest, back to back. Pure: the compressing function is handed in (the system's
 * zlib/liblzo2/libzstd through koffi in Node, or the built-in encoders), so the same code runs in
 * the main thread, in a worker, or in a browser.
 */
import type { SourceView } from "./memory.js";

/**
 * Compresses the page src[from, from+pageSize) into dst at `at` and returns its length, or -1
 * when it does not shrink below a page (makedumpfile then stores it raw). dst must have room
 * for pageSize - 1 bytes from `at`.
 */
export type PageCompressInto = (src: Uint8Array, from: number, dst: Uint8Array, at: number) => number;

/**
 * The size of a batch's output buffer: its pages, and a page more after them, so that a codec
 * whose worst case is above a page (LZO1X-1: n + n/16 + 67 bytes) can write each page straight
 * into it (stored bytes never run past the pages before them, so the last page starts at most
 * at count * pageSize - pageSize).
 */
export function batchOutBytes(pages: number, pageSize: number): number {
  return (pages + 1) * pageSize;
}

/** Per-page results of compressBatch. */
export const PAGE_SKIPPED = -2;
export const PAGE_ZERO = -3;

export interface CompressedBatch {
  /**
   * Per page: PAGE_SKIPPED, PAGE_ZERO, or the bytes stored for it in `data`, in page order:
   * a length below the page size is compressed, the page size itself means stored raw.
   */
  sizes: Int32Array;
  /** The stored bytes of the batch, back to back: what goes to the file as one write. */
  data: Uint8Array;
  /** The buffers handed in, handed back for the next batch. */
  pages: Uint8Array;
}

/** Whether the page src[from, from+pageSize) is all zero bytes; with `pages`, whether that many pages from there on are. */
export type ZeroPageTest = (src: Uint8Array, from: number, pages?: number) => boolean;

/**
 * Pages compressPages tests at once where a batch's pages may run zero (free memory at -d 1 is
 * whole runs of them): one test where there were sixteen. 4 GiB -d 1 lzo `--threads 0` on one
 * CPU 1.429 against 1.479 s, 1 GiB 0.484 against 0.492 (11 alternating runs, stop 45).
 */
export const ZERO_RUN_PAGES = 16;

/**
 * The zero test in JavaScript, for where nothing faster is handed in (a browser): eight words
 * OR-ed per test, 2.5x faster than one at a time (a page is a multiple of 32 bytes). Node hands
 * in a native memcmp, 2-3x faster again.
 */
export function wordsZeroTest(pageSize: number): ZeroPageTest {
  let wordsOf: Uint8Array | undefined;
  let words: Int32Array = new Int32Array(0);
  const pageWords = pageSize >>> 2;
  return (src, from, pages = 1) => {
    if ((src.byteOffset + from) & 3) {
      for (let k = from; k < from + pages * pageSize; k++) if (src[k] !== 0) return false;
      return true;
    }
    // One word view per buffer, not per page.
    if (src !== wordsOf) { wordsOf = src; words = new Int32Array(src.buffer, 0, src.buffer.byteLength >>> 2); }
    const first = (src.byteOffset + from) >>> 2;
    for (let k = first; k < first + pages * pageWords; k += 8) {
      if ((words[k]! | words[k + 1]! | words[k + 2]! | words[k + 3]! | words[k + 4]! | words[k + 5]! | words[k + 6]! | words[k + 7]!) !== 0) return false;
    }
    return true;
  };
}

/**
 * Where a batch's pages are in the source file, as triples (first page index in the batch, file
 * offset, page count), in the batch's order: the thread that compresses takes them from the file
 * itself, so reading is spread over the compression threads instead of queueing in the one that writes.
 */
export type FileExtents = Float64Array;

/** The source file, as the thread that compresses a batch reads its extents. */
export interface ExtentSource {
  readInto(offset: bigint, out: Uint8Array, at: number, length: number): void;
  /**
   * The bytes from `offset` on, as many of `length` as one mapping holds, in place: compressed from
   * there, not copied into the batch first (RandomAccess.view). Undefined where the source is not
   * mapped: the bytes are read instead.
   */
  view?(offset: number, length: number): SourceView | undefined;
}

/**
 * A batch whose pages could not be read: its buffers, to be used again, and why. Thrown by the
 * thread that compresses (or sent back by it) in place of the batch.
 */
export class BatchReadError extends Error {
  constructor(message: string, readonly pages: Uint8Array, readonly out: Uint8Array) {
    super(message);
  }
}

/**
 * Compresses `count` pages into `out` (batchOutBytes: every stored page is at most a page, and a
 * codec may need room past that while it works), finding zero pages on the way so the thread that
 * reads never scans them. Page k is in `pages` at k * pageSize, except those `extents` lists: they
 * are read from `source` here, or, where it has them in place (a mapped file), compressed from
 * there without a copy. A read that fails is a BatchReadError carrying both buffers. The sizes go
 * into `sizesInto` where given (a batch's own, used again), else into an array made here.
 */
export function compressBatch(compress: PageCompressInto, pages: Uint8Array, count: number, pageSize: number, skip: Uint8Array, out: Uint8Array, isZero: ZeroPageTest = wordsZeroTest(pageSize), extents?: FileExtents, source?: ExtentSource, sizesInto?: Int32Array): CompressedBatch {
  const sizes = sizesInto ? sizesInto.subarray(0, count) : new Int32Array(count);
  let at = 0;
  // The first page not compressed yet: those between extents are in `pages`.
  let next = 0;
  if (extents !== undefined && extents.length > 0) {
    if (source === undefined) throw new Error("compressBatch: extents without a source to read them from");
    for (let e = 0; e < extents.length; e += 3) {
      const first = extents[e]!;
      const offset = extents[e + 1]!;
      const n = extents[e + 2]!;
      at = compressPages(compress, isZero, pages, next * pageSize, next, first - next, pageSize, skip, out, at, sizes);
      for (let done = 0; done < n; ) {
        const k = first + done;
        const place = offset + done * pageSize;
        const seen = viewOf(source, place, (n - done) * pageSize, pages, out);
        const whole = seen === undefined ? 0 : Math.floor(seen.length / pageSize);
        if (whole > 0) {
          at = compressPages(compress, isZero, seen!.bytes, seen!.from, k, whole, pageSize, skip, out, at, sizes);
          done += whole;
          continue;
        }
        // Not in place: the source is not mapped (the rest of the extent is read at once), or
        // this page lies across the end of a mapping window (an ELF file whose segments are not
        // page-aligned), and that page alone is read.
        const rest = seen === undefined ? n - done : 1;
        readOrThrow(source, place, pages, k * pageSize, rest * pageSize, out);
        at = compressPages(compress, isZero, pages, k * pageSize, k, rest, pageSize, skip, out, at, sizes);
        done += rest;
      }
      next = first + n;
    }
  }
  at = compressPages(compress, isZero, pages, next * pageSize, next, count - next, pageSize, skip, out, at, sizes);
  return { sizes, data: out.subarray(0, at), pages };
}

/**
 * Pages first .. first+n-1 of the batch, which are in `src` from `from` on, one after another.
 * Returns where the next stored page goes in `out`.
 */
function compressPages(compress: PageCompressInto, isZero: ZeroPageTest, src: Uint8Array, from: number, first: number, n: number, pageSize: number, skip: Uint8Array, out: Uint8Array, at: number, sizes: Int32Array): number {
  for (let i = 0; i < n; i++) {
    // A group of ZERO_RUN_PAGES all zero, none of them skipped, is done in one test; any other
    // group goes page by page (a page that is not zero mostly says so in its first bytes).
    if (i % ZERO_RUN_PAGES === 0 && i + ZERO_RUN_PAGES <= n && isZero(src, from + i * pageSize, ZERO_RUN_PAGES) && noneSkipped(skip, first + i, ZERO_RUN_PAGES)) {
      sizes.fill(PAGE_ZERO, first + i, first + i + ZERO_RUN_PAGES);
      i += ZERO_RUN_PAGES - 1;
      continue;
    }
    // One store for every kind of page: skipped pages are rare (the log's, stored ahead; pages a
    // source lacks), and a store only they reached threw this loop's optimised code away.
    let size: number;
    if (skip[first + i]) size = PAGE_SKIPPED;
    else {
      const page = from + i * pageSize;
      if (isZero(src, page)) size = PAGE_ZERO;
      else {
        size = compress(src, page, out, at);
        if (size < 0) {
          out.set(src.subarray(page, page + pageSize), at);
          size = pageSize;
        }
        at += size;
      }
    }
    sizes[first + i] = size;
  }
  return at;
}

function noneSkipped(skip: Uint8Array, from: number, n: number): boolean {
  let any = 0;
  for (let k = from; k < from + n; k++) any |= skip[k]!;
  return any === 0;
}

function viewOf(source: ExtentSource, offset: number, length: number, pages: Uint8Array, out: Uint8Array): SourceView | undefined {
  try {
    return source.view?.(offset, length);
  } catch (e) {
    throw new BatchReadError((e as Error).message, pages, out);
  }
}

function readOrThrow(source: ExtentSource, offset: number, into: Uint8Array, at: number, length: number, out: Uint8Array): void {
  try {
    source.readInto(BigInt(offset), into, at, length);
  } catch (e) {
    throw new BatchReadError((e as Error).message, into, out);
  }
}
