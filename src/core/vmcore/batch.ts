/**
 * A batch of pages on its way to the dump: which are zero, which were skipped, and the bytes
 * stored for the rest, back to back. Pure: the compressing function is handed in (the system's
 * zlib/liblzo2/libzstd through koffi in Node, or the built-in encoders), so the same code runs in
 * the main thread, in a worker, or in a browser.
 */

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

/** Whether the page src[from, from+pageSize) is all zero bytes. */
export type ZeroPageTest = (src: Uint8Array, from: number) => boolean;

/**
 * The zero test in JavaScript, for where nothing faster is handed in (a browser): eight words
 * OR-ed per test, 2.5x faster than one at a time (a page is a multiple of 32 bytes). Node hands
 * in a native memcmp, 2-3x faster again.
 */
export function wordsZeroTest(pageSize: number): ZeroPageTest {
  let wordsOf: Uint8Array | undefined;
  let words: Int32Array = new Int32Array(0);
  const pageWords = pageSize >>> 2;
  return (src, from) => {
    if ((src.byteOffset + from) & 3) {
      for (let k = from; k < from + pageSize; k++) if (src[k] !== 0) return false;
      return true;
    }
    // One word view per buffer, not per page.
    if (src !== wordsOf) { wordsOf = src; words = new Int32Array(src.buffer, 0, src.buffer.byteLength >>> 2); }
    const first = (src.byteOffset + from) >>> 2;
    for (let k = first; k < first + pageWords; k += 8) {
      if ((words[k]! | words[k + 1]! | words[k + 2]! | words[k + 3]! | words[k + 4]! | words[k + 5]! | words[k + 6]! | words[k + 7]!) !== 0) return false;
    }
    return true;
  };
}

/**
 * Compresses `count` pages of `pages` into `out` (batchOutBytes: every stored page is at most a
 * page, and a codec may need room past that while it works), finding zero pages on the way so
 * the thread that reads never scans them.
 */
export function compressBatch(compress: PageCompressInto, pages: Uint8Array, count: number, pageSize: number, skip: Uint8Array, out: Uint8Array, isZero: ZeroPageTest = wordsZeroTest(pageSize)): CompressedBatch {
  const sizes = new Int32Array(count);
  let at = 0;
  for (let i = 0; i < count; i++) {
    // One store for every kind of page: skipped pages are rare (the log's, stored ahead; pages a
    // source lacks), and a store only they reached threw this loop's optimised code away.
    let n: number;
    if (skip[i]) n = PAGE_SKIPPED;
    else {
      const from = i * pageSize;
      if (isZero(pages, from)) n = PAGE_ZERO;
      else {
        n = compress(pages, from, out, at);
        if (n < 0) {
          out.set(pages.subarray(from, from + pageSize), at);
          n = pageSize;
        }
        at += n;
      }
    }
    sizes[i] = n;
  }
  return { sizes, data: out.subarray(0, at), pages };
}

/**
 * Where a batch's pages are in the source file, as triples (first page index in the batch, file
 * offset, page count): the thread that compresses reads them itself, so reading is spread over the
 * compression threads instead of queueing in the one that writes.
 */
export type FileExtents = Float64Array;

export function readExtents(read: (offset: bigint, out: Uint8Array, at: number, length: number) => void, extents: FileExtents, pages: Uint8Array, pageSize: number): void {
  for (let e = 0; e < extents.length; e += 3) read(BigInt(extents[e + 1]!), pages, extents[e]! * pageSize, extents[e + 2]! * pageSize);
}
