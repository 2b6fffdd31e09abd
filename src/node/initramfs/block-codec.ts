/**
 * The codec a squashfs image is written with: zstd through the system's libzstd where it loads
 * (Debian's dpkg depends on it; images about a quarter smaller than zlib's, so a smaller
 * reservation), else zlib from Node itself. Both are in Debian kernels' squashfs
 * (CONFIG_SQUASHFS_ZSTD, CONFIG_SQUASHFS_ZLIB).
 */
import { deflateSync } from "node:zlib";
import type { BlockCompressor, SquashfsCompression } from "../../core/initramfs/squashfs.js";
import { tryKoffi } from "../ffi.js";

/** squashfs-tools' default zstd level: slow to write once, as fast to read as any level. */
const ZSTD_LEVEL = 15;

type Fn = (...args: unknown[]) => number | bigint;

function zstdCompressor(): BlockCompressor | undefined {
  const k = tryKoffi();
  if (k === undefined || process.env["KEXEC_TS_NATIVE_CODECS"] === "0") return undefined;
  let lib;
  try {
    lib = k.load("libzstd.so.1");
  } catch {
    return undefined;
  }
  const bound = lib.func("size_t ZSTD_compressBound(size_t srcSize)") as Fn;
  const compress = lib.func("size_t ZSTD_compress(uint8_t *dst, size_t dstCapacity, const uint8_t *src, size_t srcSize, int level)") as Fn;
  const isError = lib.func("unsigned int ZSTD_isError(size_t code)") as Fn;
  return (block) => {
    const out = new Uint8Array(Number(bound(block.length)));
    const n = compress(out, out.length, block, block.length, ZSTD_LEVEL);
    // An error leaves the block as it is; the writer then stores it raw.
    return isError(n) as number ? block : out.subarray(0, Number(n));
  };
}

export function squashfsCodec(): { compression: SquashfsCompression; compress: BlockCompressor } {
  const zstd = zstdCompressor();
  if (zstd !== undefined) return { compression: "zstd", compress: zstd };
  return { compression: "zlib", compress: (block) => deflateSync(block, { level: 9 }) };
}
