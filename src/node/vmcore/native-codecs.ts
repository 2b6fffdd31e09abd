/**
 * Page compression through the system's own codec libraries (zlib, liblzo2, libzstd), called
 * through koffi. makedumpfile links the same libraries, so with them the bytes per page are the
 * ones makedumpfile would write, at C speed; without them (another distribution's capture
 * initramfs, a missing liblzo2) compress.ts falls back to the JavaScript encoders, except for
 * zstd, which has none.
 *
 * One compressor per thread: each holds its own scratch memory (and libzstd context).
 */
import { tryKoffi, type Koffi } from "../ffi.js";
import type { PageCodec } from "../../core/vmcore/codecs.js";
import type { PageCompressInto } from "./compress.js";

/** The shared objects tried in order; the SONAMEs are stable ABI (zlib 1, lzo2 2, zstd 1). */
export const NATIVE_LIBRARIES: Record<"zlib" | "lzo" | "zstd", readonly string[]> = {
  zlib: ["libz.so.1"],
  lzo: ["liblzo2.so.2"],
  zstd: ["libzstd.so.1"],
};

/** Set KEXEC_TS_NATIVE_CODECS=0 to use the JavaScript encoders (tests compare both). */
export function nativeCodecsEnabled(): boolean {
  return process.env["KEXEC_TS_NATIVE_CODECS"] !== "0";
}

type Fn = (...args: unknown[]) => number | bigint;

function openLibrary(codec: "zlib" | "lzo" | "zstd"): { lib: ReturnType<Koffi["load"]>; name: string } | undefined {
  const k = tryKoffi();
  if (!k) return undefined;
  for (const name of NATIVE_LIBRARIES[codec]) {
    try {
      // RTLD_DEEPBIND: Node exports its own bundled zlib's symbols, and without it the system
      // compress2 calls Node's deflate (Chromium's zlib: 0.5% larger pages than makedumpfile's).
      return { lib: k.load(name, { deep: true }), name };
    } catch { /* try the next name */ }
  }
  return undefined;
}

export interface NativeCompressor {
  compress: PageCompressInto;
  /** The shared object it calls, for messages and the benchmark. */
  library: string;
}

/**
 * A native compressor for the codec, or undefined when the library (or koffi) is not there.
 * Each returns the stored length in dst, or -1 when the page does not shrink below a page.
 */
export function nativePageCompressor(codec: PageCodec, pageSize: number): NativeCompressor | undefined {
  if (!nativeCodecsEnabled() || codec === "snappy") return undefined;
  const found = openLibrary(codec);
  if (!found) return undefined;
  const { lib, name } = found;
  // Buffers are passed as typed arrays declared as plain pointers: koffi hands C the address of
  // their bytes, no copy. Length in/out parameters (unsigned long: 8 bytes on x86_64, 4 on i386)
  // live in a small typed array too, read back through a DataView.
  const ulong = tryKoffi()!.sizeof("unsigned long");
  const lenBytes = new Uint8Array(8);
  const lenView = new DataView(lenBytes.buffer);
  const setLen = (n: number) => { if (ulong === 8) lenView.setBigUint64(0, BigInt(n), true); else lenView.setUint32(0, n, true); };
  const getLen = () => ulong === 8 ? Number(lenView.getBigUint64(0, true)) : lenView.getUint32(0, true);
  if (codec === "zlib") {
    // int compress2(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen, int level)
    const compress2 = lib.func("int compress2(uint8_t *dest, void *destLen, const uint8_t *source, unsigned long sourceLen, int level)") as Fn;
    // makedumpfile: Z_BEST_SPEED. With room for less than a page, zlib answers Z_BUF_ERROR (-5)
    // for a page that does not shrink enough, and the page is stored raw, as makedumpfile does.
    const out = new Uint8Array(pageSize);
    return {
      library: name,
      compress(src, from, dst, at) {
        setLen(pageSize - 1);
        const rc = compress2(out, lenBytes, src.subarray(from, from + pageSize), pageSize, 1) as number;
        if (rc !== 0) return -1;
        const n = getLen();
        dst.set(out.subarray(0, n), at);
        return n;
      },
    };
  }
  if (codec === "lzo") {
    // int lzo1x_1_compress(const lzo_bytep src, lzo_uint src_len, lzo_bytep dst, lzo_uintp dst_len, lzo_voidp wrkmem)
    const lzo1x1 = lib.func("int lzo1x_1_compress(const uint8_t *src, unsigned long srcLen, uint8_t *dst, void *dstLen, uint8_t *wrkmem)") as Fn;
    // LZO1X_1_MEM_COMPRESS is 16384 dictionary entries; 8 bytes each covers every lzo_dict_t width.
    const wrkmem = new Uint8Array(16384 * 8);
    // LZO has no output bound parameter: its worst case is n + n/16 + 64 + 3 bytes.
    const out = new Uint8Array(pageSize + (pageSize >> 4) + 67);
    return {
      library: name,
      compress(src, from, dst, at) {
        setLen(out.length);
        const rc = lzo1x1(src.subarray(from, from + pageSize), pageSize, out, lenBytes, wrkmem) as number;
        const n = getLen();
        if (rc !== 0 || n >= pageSize) return -1;
        dst.set(out.subarray(0, n), at);
        return n;
      },
    };
  }
  // zstd: size_t ZSTD_compressCCtx(ZSTD_CCtx*, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int level)
  const createCCtx = lib.func("void *ZSTD_createCCtx(void)") as () => unknown;
  const compressCCtx = lib.func("size_t ZSTD_compressCCtx(void *cctx, uint8_t *dst, size_t dstCapacity, const uint8_t *src, size_t srcSize, int level)") as Fn;
  const isError = lib.func("unsigned int ZSTD_isError(size_t code)") as Fn;
  // One context per thread, reused for every page and kept until the thread ends.
  const cctx = createCCtx();
  if (cctx === null) return undefined;
  const out = new Uint8Array(pageSize);
  return {
    library: name,
    compress(src, from, dst, at) {
      // Level 1, zstd's fastest regular level: a dump is about getting out quickly. A frame that
      // would not fit in less than a page comes back as an error (destination too small): stored raw.
      const r = compressCCtx(cctx, out, pageSize - 1, src.subarray(from, from + pageSize), pageSize, 1);
      if (isError(r) as number) return -1;
      const n = Number(r);
      dst.set(out.subarray(0, n), at);
      return n;
    },
  };
}
