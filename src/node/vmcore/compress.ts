/** Page compression as makedumpfile does it, shared by the inline path and the workers. */
import { deflateSync, constants } from "node:zlib";
import { KexecError } from "../../core/errors.js";
import { lzo1xCompress, snappyCompress, type PageCodec } from "../../core/vmcore/codecs.js";

export type Codec = PageCodec | "none";

export function pageCompressor(codec: Codec): (page: Uint8Array) => Uint8Array | undefined {
  const table = new Int32Array(1 << 12);
  switch (codec) {
    case "none": return () => undefined;
    // makedumpfile: compress2(..., Z_BEST_SPEED).
    case "zlib": return (page) => deflateSync(page, { level: constants.Z_BEST_SPEED });
    case "lzo": return (page) => lzo1xCompress(page, table);
    case "snappy": return (page) => snappyCompress(page, table);
    case "zstd": throw new KexecError("usage", "zstd compression is not available in this build of kexec-ts", { field: "compress", actual: "zstd" }, "use --compress lzo (fastest) or zlib; both are read by makedumpfile and crash");
  }
}
