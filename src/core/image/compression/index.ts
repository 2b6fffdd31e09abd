/**
 * The seven codecs a bzImage payload can use (CONFIG_KERNEL_GZIP ... _ZSTD),
 * decoded synchronously and in memory, in Node and in the browser.
 *
 * Every stream may be followed by trailing bytes: arch/x86/boot/compressed
 * appends the uncompressed size (32-bit LE) to all but gzip, whose own ISIZE
 * trailer says the same. When exactly those 4 bytes follow the stream and they
 * disagree with what was decoded, that is reported as corruption.
 *
 * Library choices (evaluated 2025): fflate (gzip) and fzstd (zstd) are pure JS
 * and synchronous. For the rest nothing on npm fits a synchronous, browser-safe
 * core: xz-decompress and node-liblzma are WASM behind async/stream APIs,
 * lzma-native is a native addon, LZMA-JS ("lzma") has no xz container or BCJ,
 * seek-bzip/unbzip2-stream use Buffer/Node streams, compressjs and lzma-purejs
 * are unmaintained AMD modules, lz4js knows only the modern frame and does not
 * bounds-check, and lzo-wasm wraps FFmpeg asynchronously. So xz/lzma, bzip2,
 * lz4-legacy and lzop are decoded by the small decoders beside this file.
 */
import { KexecError } from "../../errors.js";
import { size } from "../../format.js";
import { decompressBzip2 } from "./bzip2.js";
import { COMPRESSIONS, type Compression, type Decoded, decompressError, u32le } from "./common.js";
import { decompressGzip } from "./gzip.js";
import { decompressLz4Legacy } from "./lz4.js";
import { decompressLzmaAlone } from "./lzma.js";
import { decompressLzop } from "./lzo.js";
import { decompressXz } from "./xz.js";
import { decompressZstd } from "./zstd.js";

export type { Compression } from "./common.js";

export { COMPRESSIONS, detectCompression } from "./common.js";

export interface DecompressOptions {
  /** The size the output must have (e.g. the kernel's appended size); also sizes the first allocation. */
  expectedSize?: number;
  /** Refuse to produce more than this many bytes (default 1 GiB). */
  maxSize?: number;
}

export const DEFAULT_MAX_SIZE = 1 << 30;

type Decoder = (input: Uint8Array, sizeHint: number | undefined, maxSize: number) => Decoded;

const DECODERS: Record<Compression, Decoder> = {
  gzip: decompressGzip,
  bzip2: decompressBzip2,
  lzma: decompressLzmaAlone,
  xz: decompressXz,
  lzo: decompressLzop,
  lz4: decompressLz4Legacy,
  zstd: decompressZstd,
};

/**
 * Decompress one stream of the given kind. Throws KexecError("decompress")
 * naming the codec, the offset in the compressed stream when known, expected
 * vs found, and a hint; nothing else escapes.
 */
export function decompress(kind: Compression, bytes: Uint8Array, options: DecompressOptions = {}): Uint8Array {
  const decoder = DECODERS[kind];
  if (decoder === undefined) {
    throw new KexecError("decompress", `unknown compression "${String(kind)}"`, { field: "kind", expected: COMPRESSIONS.join(", "), actual: String(kind) }, "kexec-ts decompresses gzip, bzip2, lzma, xz, lzo, lz4 and zstd");
  }
  const maxSize = options.maxSize ?? DEFAULT_MAX_SIZE;
  const expected = options.expectedSize;
  if (expected !== undefined && (!Number.isInteger(expected) || expected < 0)) {
    throw new KexecError("internal", `${kind}: expectedSize must be a non-negative integer`, { field: "expectedSize", actual: String(expected) }, "this is a bug in kexec-ts; please report it");
  }
  if (expected !== undefined && expected > maxSize) {
    throw decompressError(kind, `expected size ${size(expected)} is above the ${size(maxSize)} limit`, {
      field: "expectedSize",
      expected: `at most ${maxSize}`,
      actual: `${expected}`,
      hint: "the appended size field is corrupt, or raise maxSize",
    });
  }
  // Without an explicit size, the last 4 bytes (the kernel's appended size) are a
  // plausible first allocation; decoders grow past a wrong guess and never trust it.
  const tail = bytes.length >= 8 ? u32le(bytes, bytes.length - 4) : undefined;
  const plausibleTail = tail !== undefined && tail > 0 && tail <= maxSize && tail <= bytes.length * 64 ? tail : undefined;
  const hint = expected ?? plausibleTail;

  let result: Decoded;
  try {
    result = decoder(bytes, hint, maxSize);
  } catch (e) {
    if (e instanceof KexecError) throw e;
    // Out-of-range reads and library errors are still corrupt input, never a crash.
    const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    throw decompressError(kind, `decoder failed (${why})`, { expected: `a valid ${kind} stream`, actual: why });
  }

  const out = result.bytes;
  if (expected !== undefined && out.length !== expected) {
    throw decompressError(kind, "decompressed size differs from the expected size", {
      field: "expectedSize",
      expected: `${expected} bytes`,
      actual: `${out.length} bytes`,
    });
  }
  if (bytes.length - result.end === 4) {
    const appended = u32le(bytes, result.end);
    if (appended !== out.length % 2 ** 32) {
      throw decompressError(kind, "the size appended after the stream differs from the decompressed size", {
        offset: result.end,
        field: "appended size",
        expected: `${appended} bytes`,
        actual: `${out.length} bytes`,
      });
    }
  }
  return out;
}
