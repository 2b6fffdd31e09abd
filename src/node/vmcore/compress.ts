/** Page compression as makedumpfile does it, shared by the inline path and the workers. */
import { deflateSync } from "node:zlib";
import { KexecError } from "../../core/errors.js";
import type { PageCodec } from "../../core/vmcore/codecs.js";
import { EncodeBuffer, LZO_HASH_BITS, lzo1xCompressInto, snappyCompress } from "../../core/vmcore/page-encoders.js";
import { ZERO_RUN_PAGES, type PageCompressInto, type ZeroPageTest } from "../../core/vmcore/batch.js";
import { NATIVE_LIBRARIES, nativeCodecsEnabled, nativePageCompressor } from "./native-codecs.js";

export type Codec = PageCodec | "none";

export type { PageCompressInto } from "../../core/vmcore/batch.js";

/** The system library that will compress, or "javascript" when kexec-ts's own encoder will. */
export function compressorSource(codec: Codec, pageSize: number): string {
  if (codec === "none") return "none";
  return nativePageCompressor(codec, pageSize)?.library ?? "javascript";
}

/**
 * The zero-page test as one native memcmp against zero pages (Buffer#compare over a range, no
 * array made per page): 2-3x faster than the best JavaScript loop, and at -d 1 most of a vmcore's
 * pages are zero pages that are only tested. A page whose first 16 bytes are not all zero is
 * answered before that call: most pages that are not zero say so there, and the call, with
 * Buffer#compare's checks of its arguments, costs more than the memcmp of a page (1 GiB -d 1 lzo
 * `--threads 0` on one CPU: 0.633 against 0.644 s, 4 GiB 1.997 against 2.051 s, stop 42). A run
 * of pages (compressPages tests up to ZERO_RUN_PAGES at once) is one memcmp too.
 */
export function zeroPageTest(pageSize: number): ZeroPageTest {
  // Zero pages enough for the longest run tested at once.
  const zero = Buffer.alloc(pageSize * ZERO_RUN_PAGES);
  let wordsOf: Uint8Array | undefined;
  let words: Int32Array = new Int32Array(0);
  return (src, from, pages = 1) => {
    const byte = src.byteOffset + from;
    if ((byte & 3) === 0) {
      // One word view per buffer (a batch's pages), not per page.
      if (src !== wordsOf) { wordsOf = src; words = new Int32Array(src.buffer, 0, src.buffer.byteLength >>> 2); }
      const k = byte >>> 2;
      if ((words[k]! | words[k + 1]! | words[k + 2]! | words[k + 3]!) !== 0) return false;
    }
    return zero.compare(src, from, from + pages * pageSize, 0, pages * pageSize) === 0;
  };
}

export function pageCompressor(codec: Codec, pageSize: number): PageCompressInto {
  if (codec !== "none") {
    const native = nativePageCompressor(codec, pageSize);
    if (native) return native.compress;
  }
  switch (codec) {
    case "none": return () => -1;
    // makedumpfile: compress2(..., Z_BEST_SPEED), a zlib stream at level 1 of the system zlib. Node bundles
    // Chromium's zlib, whose level 1 gives 1.8% more bytes on real pages; its level 3 costs the same time
    // and lands within 0.1% of the system zlib's level 1 (measured on a 6.1 vmcore, -d 31).
    case "zlib": return (src, from, dst, at) => {
      const c = deflateSync(src.subarray(from, from + pageSize), { level: 3 });
      if (c.length >= pageSize) return -1;
      dst.set(c, at);
      return c.length;
    };
    case "lzo": {
      const table = new Int32Array(1 << LZO_HASH_BITS);
      let viewOf: Uint8Array | undefined;
      let view: DataView = new DataView(new ArrayBuffer(0));
      return (src, from, dst, at) => {
        // One view per batch buffer, not per page.
        if (src !== viewOf) { viewOf = src; view = new DataView(src.buffer, src.byteOffset, src.byteLength); }
        return lzo1xCompressInto(src, view, from, pageSize, dst, at, at + pageSize - 1, table);
      };
    }
    case "snappy": {
      const table = new Int32Array(1 << 12);
      const scratch = new EncodeBuffer(2 * pageSize);
      return (src, from, dst, at) => {
        const c = snappyCompress(src.subarray(from, from + pageSize), table, scratch);
        if (c.length >= pageSize) return -1;
        dst.set(c, at);
        return c.length;
      };
    }
    case "zstd": throw new KexecError("usage", nativeCodecsEnabled()
      ? `zstd compression needs the system's libzstd (${NATIVE_LIBRARIES.zstd.join(", ")}), which could not be loaded`
      : "zstd compression needs the system's libzstd, and KEXEC_TS_NATIVE_CODECS=0 turned native codecs off",
    { field: "compress", actual: "zstd" }, "install libzstd1 (Debian) or libzstd (Fedora), or use --compress lzo or zlib, which also have built-in encoders");
  }
}

