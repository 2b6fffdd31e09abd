/** Page compression as makedumpfile does it, shared by the inline path and the workers. */
import { deflateSync, constants } from "node:zlib";
import { KexecError } from "../../core/errors.js";
import { EncodeBuffer, lzo1xCompress, snappyCompress, type PageCodec } from "../../core/vmcore/codecs.js";

export type Codec = PageCodec | "none";

/** A page in, its compressed bytes out (a view valid until the next call), or undefined for "store raw". */
export function pageCompressor(codec: Codec): (page: Uint8Array) => Uint8Array | undefined {
  const table = new Int32Array(1 << 12);
  const scratch = new EncodeBuffer(8192);
  switch (codec) {
    case "none": return () => undefined;
    // makedumpfile: compress2(..., Z_BEST_SPEED).
    case "zlib": return (page) => deflateSync(page, { level: constants.Z_BEST_SPEED });
    case "lzo": return (page) => lzo1xCompress(page, table, scratch);
    case "snappy": return (page) => snappyCompress(page, table, scratch);
    case "zstd": throw new KexecError("usage", "zstd compression is not available in this build of kexec-ts", { field: "compress", actual: "zstd" }, "use --compress lzo (fastest) or zlib; both are read by makedumpfile and crash");
  }
}

export interface CompressedBatch {
  /** Per page: -2 skipped, -1 stored raw, else the compressed length. */
  sizes: Int32Array;
  data: Uint8Array;
}

/** Compress a batch into one buffer: no allocation per page. */
export function compressBatch(compress: (page: Uint8Array) => Uint8Array | undefined, pages: Uint8Array, pageSize: number, skip: Uint8Array): CompressedBatch {
  const count = pages.length / pageSize;
  const sizes = new Int32Array(count);
  const data = new Uint8Array(pages.length);
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (skip[i]) { sizes[i] = -2; continue; }
    const c = compress(pages.subarray(i * pageSize, (i + 1) * pageSize));
    if (c === undefined || c.length >= pageSize) { sizes[i] = -1; continue; }
    sizes[i] = c.length;
    data.set(c, at);
    at += c.length;
  }
  return { sizes, data: data.subarray(0, at) };
}
