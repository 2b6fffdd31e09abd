/**
 * Page compression through the system's own codec libraries (zlib, liblzo2, libzstd), called
 * through koffi. makedumpfile links the same libraries, so with them the bytes per page are the
 * ones makedumpfile would write, at C speed; without them (another distribution's capture
 * initramfs, a missing liblzo2) compress.ts falls back to the JavaScript encoders, except for
 * zstd, which has none.
 *
 * One compressor per thread: each holds its own scratch memory (and libzstd context).
 *
 * Pages are decoded through the same libraries when a kdump file is read (nativePageDecoder):
 * liblzo2's lzo1x_decompress_safe, zlib's uncompress, libzstd's ZSTD_decompressDCtx. Snappy
 * stays JavaScript (no system library is assumed), as does everything when one is missing.
 */
import { FIXED_MIN_BYTES, fixedAddress, hasFixedAddress, tryKoffi, type Koffi } from "../ffi.js";
import { corruptPage, decodePageInto, type PageCodec, type PageDecodeInto } from "../../core/vmcore/codecs.js";
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

/**
 * What a native compressor or decoder starts from: the codec's library (none for snappy, or with
 * KEXEC_TS_NATIVE_CODECS=0), where its buffers are, and a length word for C.
 */
function nativeSetup(codec: PageCodec) {
  if (!nativeCodecsEnabled() || codec === "snappy") return undefined;
  const found = openLibrary(codec);
  if (!found) return undefined;
  const koffi = tryKoffi()!;
  return {
    ...found, koffi,
    // Buffers are passed as addresses (koffi.address of a typed array: where its bytes are, its
    // byteOffset included), so a page is base + offset and no typed array is made per call: a
    // subarray per page for src and dst cost 30-50 ms of the 110 ms that lzo took on the 27,231
    // pages of a 1 GiB -d 31 dump (liblzo2 itself: 82 ms from C). The bytes of a typed array of a
    // page or more live outside V8's heap and do not move while it is referenced; an address is
    // taken again whenever a call brings another array (a batch buffer back from a worker).
    addresses: new BufferAddresses(koffi),
    // Length in/out parameters (unsigned long: 8 bytes on x86_64, 4 on i386) in 32-bit words:
    // page sizes fit the low word, and on x86_64 the high word stays 0. Over an ArrayBuffer of its
    // own: V8 keeps a small typed array's bytes in its moving heap, where no address holds.
    len: pinned(koffi, new Uint32Array(new ArrayBuffer(FIXED_MIN_BYTES), 0, 2)),
  };
}

export interface NativeCompressor {
  compress: PageCompressInto;
  /** The shared object it calls, for messages and the benchmark. */
  library: string;
}

/**
 * This thread's native compressors, by codec and page size, made when first asked for and kept:
 * libzstd's context is never freed, and a compressor is made for every save and for every message
 * that names its library. Their calls are synchronous, so sharing one is safe.
 */
const threadCompressors = new Map<string, NativeCompressor | undefined>();

/**
 * A native compressor for the codec, or undefined when the library (or koffi) is not there, or
 * KEXEC_TS_NATIVE_CODECS=0. Each returns the stored length in dst, or -1 when the page does not
 * shrink below a page.
 */
export function nativePageCompressor(codec: PageCodec, pageSize: number): NativeCompressor | undefined {
  if (!nativeCodecsEnabled()) return undefined;
  const key = `${codec}/${pageSize}`;
  if (!threadCompressors.has(key)) threadCompressors.set(key, makeNativePageCompressor(codec, pageSize));
  return threadCompressors.get(key);
}

function makeNativePageCompressor(codec: PageCodec, pageSize: number): NativeCompressor | undefined {
  const setup = nativeSetup(codec);
  if (!setup) return undefined;
  const { lib, name, koffi, addresses, len } = setup;
  const lenWords = len.bytes;
  if (codec === "zlib") {
    // int compress2(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen, int level)
    const compress2 = lib.func("int compress2(uintptr_t dest, uintptr_t destLen, uintptr_t source, unsigned long sourceLen, int level)") as Fn;
    // makedumpfile: Z_BEST_SPEED. With room for less than a page, zlib answers Z_BUF_ERROR (-5)
    // for a page that does not shrink enough, and the page is stored raw, as makedumpfile does.
    // It never writes past destLen: straight into dst. (One deflate stream kept and reset for each
    // page writes the same bytes in the same time: 1 GiB -d 1 with a worker 2.337 against 2.354 s,
    // -d 31 alone 0.748 against 0.749, medians of 5 and 11 alternating runs, stop 39.)
    return {
      library: name,
      compress(src, from, dst, at) {
        checkBounds(src, from, dst, at, pageSize);
        lenWords[0] = pageSize - 1;
        const rc = compress2(addresses.of(dst) + at, len.at, addresses.of(src) + from, pageSize, 1) as number;
        return rc === 0 ? lenWords[0]! : -1;
      },
    };
  }
  if (codec === "lzo") {
    // int lzo1x_1_compress(const lzo_bytep src, lzo_uint src_len, lzo_bytep dst, lzo_uintp dst_len, lzo_voidp wrkmem)
    const lzo1x1 = lib.func("int lzo1x_1_compress(uintptr_t src, unsigned long srcLen, uintptr_t dst, uintptr_t dstLen, uintptr_t wrkmem)") as Fn;
    // LZO1X_1_MEM_COMPRESS is 16384 dictionary entries; 8 bytes each covers every lzo_dict_t width.
    const wrkmem = pinned(koffi, new Uint8Array(16384 * 8));
    // LZO has no output bound parameter: its worst case is n + n/16 + 64 + 3 bytes. Where dst has
    // that much room (the batches' buffers: batchOutBytes) it writes straight into it, else here first.
    const worst = lzoWorstCase(pageSize);
    const out = pinned(koffi, new Uint8Array(worst));
    return {
      library: name,
      compress(src, from, dst, at) {
        checkBounds(src, from, dst, at, pageSize);
        const direct = dst.length - at >= worst;
        lenWords[0] = worst;
        const rc = lzo1x1(addresses.of(src) + from, pageSize, direct ? addresses.of(dst) + at : out.at, len.at, wrkmem.at) as number;
        const n = lenWords[0]!;
        if (rc !== 0 || n >= pageSize) return -1;
        if (!direct) dst.set(out.bytes.subarray(0, n), at);
        return n;
      },
    };
  }
  // zstd: size_t ZSTD_compressCCtx(ZSTD_CCtx*, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int level)
  const createCCtx = lib.func("void *ZSTD_createCCtx(void)") as () => unknown;
  const compressCCtx = lib.func("size_t ZSTD_compressCCtx(void *cctx, uintptr_t dst, size_t dstCapacity, uintptr_t src, size_t srcSize, int level)") as Fn;
  const isError = lib.func("unsigned int ZSTD_isError(size_t code)") as Fn;
  // One context per thread, reused for every page and kept until the thread ends.
  const cctx = createCCtx();
  if (cctx === null) return undefined;
  return {
    library: name,
    compress(src, from, dst, at) {
      // Level 1, zstd's fastest regular level: a dump is about getting out quickly. A frame that
      // would not fit in less than a page comes back as an error (destination too small): stored
      // raw. It never writes past dstCapacity: straight into dst.
      checkBounds(src, from, dst, at, pageSize);
      const r = compressCCtx(cctx, addresses.of(dst) + at, pageSize - 1, addresses.of(src) + from, pageSize, 1);
      if (isError(r) as number) return -1;
      return Number(r);
    },
  };
}

/**
 * C is given addresses, not arrays, so nothing else stops it reading or writing past them: a page
 * must lie whole in src from `from`, and dst must have room for a page less a byte from `at` (the
 * PageCompressInto contract).
 */
function checkBounds(src: Uint8Array, from: number, dst: Uint8Array, at: number, pageSize: number): void {
  if (from < 0 || from + pageSize > src.length || at < 0 || at + pageSize - 1 > dst.length) {
    throw new RangeError(`page compressor: a ${pageSize}-byte page at ${from} of a ${src.length}-byte source into ${at} of a ${dst.length}-byte output does not fit`);
  }
}

/** LZO1X-1's largest output for n input bytes (lzo1x.h: n + n/16 + 64 + 3). */
export function lzoWorstCase(n: number): number {
  return n + (n >> 4) + 67;
}

/**
 * A buffer for C and its address, kept together: whoever uses the address holds the object, so
 * the array cannot be collected (and its bytes freed) while C may still be handed the address.
 * (A closure that kept only the number let the collector free liblzo2's work memory mid-dump.)
 */
function pinned<T extends Uint8Array | Uint32Array>(koffi: Koffi, bytes: T): { readonly bytes: T; readonly at: number } {
  return { bytes, at: fixedAddress(koffi, bytes) };
}

/**
 * Where the bytes of the two typed arrays seen last are (a batch's pages and its output).
 * Each array is held while its address is kept, so its bytes cannot be freed under it.
 */
class BufferAddresses {
  private readonly arrays: (Uint8Array | undefined)[] = [undefined, undefined];
  private readonly at = [0, 0];
  private used = 0;
  constructor(private readonly koffi: Koffi) {}
  of(bytes: Uint8Array): number {
    if (bytes === this.arrays[0]) { this.used = 0; return this.at[0]!; }
    if (bytes === this.arrays[1]) { this.used = 1; return this.at[1]!; }
    const slot = this.used ^ 1;
    this.arrays[slot] = bytes;
    this.at[slot] = fixedAddress(this.koffi, bytes);
    this.used = slot;
    return this.at[slot]!;
  }
}

/** Decodes one page as PageDecodeInto does, for the codec it was made for. */
export type NativePageDecode = (stored: Uint8Array, from: number, length: number, dst: Uint8Array, at: number, pageSize: number) => void;

export interface NativeDecoder {
  decode: NativePageDecode;
  /** The shared object it calls, for messages and tests. */
  library: string;
}

/** liblzo2's return codes (lzoconf.h), named in the error of a page it refuses. */
const LZO_ERRORS: Record<number, string> = {
  [-1]: "LZO_E_ERROR", [-2]: "LZO_E_OUT_OF_MEMORY", [-3]: "LZO_E_NOT_COMPRESSIBLE", [-4]: "LZO_E_INPUT_OVERRUN",
  [-5]: "LZO_E_OUTPUT_OVERRUN", [-6]: "LZO_E_LOOKBEHIND_OVERRUN", [-7]: "LZO_E_EOF_NOT_FOUND", [-8]: "LZO_E_INPUT_NOT_CONSUMED",
};
/** zlib's return codes (zlib.h) that uncompress gives. */
const ZLIB_ERRORS: Record<number, string> = { [-3]: "Z_DATA_ERROR", [-4]: "Z_MEM_ERROR", [-5]: "Z_BUF_ERROR" };

/**
 * A native decoder for the codec, or undefined when the library (or koffi) is not there, or
 * KEXEC_TS_NATIVE_CODECS=0. Each is given the exact room of the page's slot (lzo1x_decompress_safe's
 * dst_len, uncompress's destLen, ZSTD_decompressDCtx's dstCapacity), so a damaged page never
 * writes outside it, and a page that decodes to other than pageSize bytes is damaged too:
 * KexecError "decompress", as the JavaScript decoders say it.
 */
export function nativePageDecoder(codec: PageCodec): NativeDecoder | undefined {
  const setup = nativeSetup(codec);
  if (!setup) return undefined;
  // The kdump reader passes its run's stored bytes and the caller's pages as whole buffers with
  // offsets: their addresses are taken once per buffer, not once per page.
  const { lib, name, koffi, addresses, len } = setup;
  const lenWords = len.bytes;
  // Stored bytes in a small array of their own (V8 may move those): copied here first.
  let copy = pinned(koffi, new Uint8Array(4096));
  const source = (stored: Uint8Array, from: number, length: number): number => {
    if (hasFixedAddress(stored)) return addresses.of(stored) + from;
    if (copy.bytes.length < length) copy = pinned(koffi, new Uint8Array(length));
    copy.bytes.set(stored.subarray(from, from + length));
    return copy.at;
  };
  const wrongSize = (decoded: number, pageSize: number, length: number) =>
    corruptPage(codec, `${name} decoded ${decoded} bytes, expected ${pageSize}`, length);
  /** lzo1x_decompress_safe and uncompress alike: an int return code, the slot's room in and the decoded length out through len. */
  const withLengthWord = (fn: string, errors: Record<number, string>, call: (src: number, length: number, dst: number) => number): NativeDecoder => ({
    library: name,
    decode(stored, from, length, dst, at, pageSize) {
      checkDecodeBounds(stored, from, length, dst, at, pageSize);
      lenWords[0] = pageSize;
      const rc = call(source(stored, from, length), length, addresses.of(dst) + at);
      if (rc !== 0) throw corruptPage(codec, `${name} ${fn} says ${errors[rc] ?? rc}`);
      if (lenWords[0] !== pageSize) throw wrongSize(lenWords[0]!, pageSize, length);
    },
  });
  if (codec === "lzo") {
    // int lzo1x_decompress_safe(const lzo_bytep src, lzo_uint src_len, lzo_bytep dst, lzo_uintp dst_len, lzo_voidp wrkmem)
    // makedumpfile decodes with it too; "safe" checks every read and write against src_len and dst_len.
    const decompress = lib.func("int lzo1x_decompress_safe(uintptr_t src, unsigned long srcLen, uintptr_t dst, uintptr_t dstLen, uintptr_t wrkmem)") as Fn;
    return withLengthWord("lzo1x_decompress_safe", LZO_ERRORS, (src, length, dst) => decompress(src, length, dst, len.at, 0) as number);
  }
  if (codec === "zlib") {
    // int uncompress(Bytef *dest, uLongf *destLen, const Bytef *source, uLong sourceLen): one whole
    // zlib stream, its Adler-32 checked; Z_BUF_ERROR when it would need more than destLen.
    const uncompress = lib.func("int uncompress(uintptr_t dest, uintptr_t destLen, uintptr_t source, unsigned long sourceLen)") as Fn;
    return withLengthWord("uncompress", ZLIB_ERRORS, (src, length, dst) => uncompress(dst, len.at, src, length) as number);
  }
  // zstd: size_t ZSTD_decompressDCtx(ZSTD_DCtx*, void *dst, size_t dstCapacity, const void *src, size_t srcSize)
  const createDCtx = lib.func("void *ZSTD_createDCtx(void)") as () => unknown;
  const decompressDCtx = lib.func("size_t ZSTD_decompressDCtx(void *dctx, uintptr_t dst, size_t dstCapacity, uintptr_t src, size_t srcSize)") as Fn;
  const isError = lib.func("unsigned int ZSTD_isError(size_t code)") as Fn;
  const errorName = lib.func("const char *ZSTD_getErrorName(size_t code)") as (code: unknown) => string;
  // One context per thread, kept: ZSTD_decompress would allocate and free one for every page.
  const dctx = createDCtx();
  if (dctx === null) return undefined;
  return {
    library: name,
    decode(stored, from, length, dst, at, pageSize) {
      checkDecodeBounds(stored, from, length, dst, at, pageSize);
      const r = decompressDCtx(dctx, addresses.of(dst) + at, pageSize, source(stored, from, length), length);
      if (isError(r) as number) throw corruptPage("zstd", `${name} ZSTD_decompressDCtx says ${errorName(r)}`);
      if (Number(r) !== pageSize) throw wrongSize(Number(r), pageSize, length);
    },
  };
}

/**
 * This thread's native decoders, made when a page of their codec is first met (a dump has one
 * codec) and shared by every vmcore it opens: libzstd's context is never freed, so a decoder per
 * open would leave one behind each time. Their calls are synchronous, so sharing is safe.
 */
const threadDecoders = new Map<PageCodec, NativePageDecode | undefined>();

/**
 * The page decoder a Node reader of kdump files uses: each codec's native decoder, else (no
 * library, no koffi, snappy, or KEXEC_TS_NATIVE_CODECS=0 when it is made) the JavaScript one.
 */
export function systemPageDecoder(): PageDecodeInto {
  if (!nativeCodecsEnabled()) return decodePageInto;
  return (codec, stored, from, length, dst, at, pageSize) => {
    let native = threadDecoders.get(codec);
    if (native === undefined && !threadDecoders.has(codec)) {
      native = nativePageDecoder(codec)?.decode;
      threadDecoders.set(codec, native);
    }
    if (native) native(stored, from, length, dst, at, pageSize);
    else decodePageInto(codec, stored, from, length, dst, at, pageSize);
  };
}

/** As checkBounds: C would read past the stored bytes or write past the page's slot. */
function checkDecodeBounds(stored: Uint8Array, from: number, length: number, dst: Uint8Array, at: number, pageSize: number): void {
  if (!(from >= 0 && length >= 0 && from + length <= stored.length && at >= 0 && at + pageSize <= dst.length)) {
    throw new RangeError(`page decoder: ${length} stored bytes at ${from} of ${stored.length} into a ${pageSize}-byte page at ${at} of ${dst.length} do not fit`);
  }
}
