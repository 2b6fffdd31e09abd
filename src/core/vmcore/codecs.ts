/**
 * Raw block codecs for kdump pages, both ways. makedumpfile stores each page
 * compressed on its own: zlib (compress2), LZO1X-1 (lzo1x_1_compress), snappy
 * (raw, not framed) or a zstd frame. zlib and zstd decoding reuse fflate/fzstd;
 * LZO1X and snappy are written here from their format descriptions
 * (Documentation/staging/lzo.rst; snappy's format_description.txt).
 */
import { unzlibSync } from "fflate";
import { decompress as zstdDecompress } from "fzstd";
import { KexecError } from "../errors.js";
import { adler32, u32be } from "../image/compression/common.js";
import { decompressLzo1xBlock, decompressLzo1xBlockInto } from "../image/compression/lzo.js";

export type PageCodec = "zlib" | "lzo" | "snappy" | "zstd";

const PAGE_DAMAGED = "the dump file is damaged at this page";

/** A page whose stored bytes do not decode to one page: the dump is damaged there (the native decoders say it the same way). */
export function corruptPage(codec: string, detail: string, at?: number): KexecError {
  return new KexecError("decompress", `${codec} page data is corrupt: ${detail}${at === undefined ? "" : ` at byte ${at}`}`, { field: codec, ...(at === undefined ? {} : { offset: at }) }, PAGE_DAMAGED);
}

export function decompressPage(codec: PageCodec, input: Uint8Array, pageSize: number): Uint8Array {
  const out = new Uint8Array(pageSize);
  decompressPageInto(codec, input, out);
  return out;
}

/**
 * One page decoded into `page` (its whole length): a reader of many pages (a save from a kdump
 * file, the exclusion scan's struct pages) reuses its buffers instead of making garbage per page,
 * which V8 collects only once 64 MiB of it is outside its heap.
 */
export function decompressPageInto(codec: PageCodec, input: Uint8Array, page: Uint8Array): void {
  const pageSize = page.length;
  let out: Uint8Array;
  try {
    if (codec === "zlib") out = unzlibSync(input, { out: page });
    else if (codec === "zstd") out = zstdDecompress(input, page);
    else if (codec === "lzo") { decompressLzo1xBlockInto(input, page); out = page; }
    else out = snappyDecompress(input, pageSize);
  } catch (e) {
    if (e instanceof KexecError && e.hint === PAGE_DAMAGED) throw e;
    // The LZO decoder is the kernel images' too: its errors said "re-copy the kernel image" of a
    // dump's page. Said as a damaged page, its own words kept (where included), less "lzo: block 0: ".
    const detail = (e as Error).message.replace(new RegExp(`^${codec}: (block \\d+: )?`), "");
    throw corruptPage(codec, detail, e instanceof KexecError ? undefined : 0);
  }
  if (out.length !== pageSize) throw corruptPage(codec, `decoded ${out.length} bytes, expected ${pageSize}`, input.length);
  // fflate and fzstd write into the buffer given (a view of it comes back); snappy's is its own.
  if (out.buffer !== page.buffer || out.byteOffset !== page.byteOffset) page.set(out);
  // fflate drops a zlib stream's trailer unread; zlib's uncompress (the native decoder) checks it,
  // and both must call the same page damaged.
  if (codec === "zlib") {
    const stored = u32be(input, input.length - 4);
    const sum = adler32(page, 0, pageSize);
    if (stored !== sum) throw corruptPage(codec, `Adler-32 0x${sum.toString(16).padStart(8, "0")} of the decoded page, the stream says 0x${stored.toString(16).padStart(8, "0")}`, input.length - 4);
  }
}

/**
 * Decodes the `length` stored bytes at `from` of `stored` into the `pageSize` bytes of `dst` from
 * `at`, or throws a KexecError "decompress" (the dump is damaged at this page). Whole buffers and
 * offsets, not a view per page: a native decoder takes each buffer's address once and adds the
 * offsets, where a subarray per page for its source and its destination had cost 30-50 ms per
 * 27,000 pages (native-codecs.ts).
 */
export type PageDecodeInto = (codec: PageCodec, stored: Uint8Array, from: number, length: number, dst: Uint8Array, at: number, pageSize: number) => void;

/** The JavaScript decoders, for every codec: the kdump reader's default (browsers, no system libraries). */
export const decodePageInto: PageDecodeInto = (codec, stored, from, length, dst, at, pageSize) =>
  decompressPageInto(codec, stored.subarray(from, from + length), dst.subarray(at, at + pageSize));

// ---- LZO1X ----

/** One page's LZO1X block: the same decoder that reads lzop-compressed kernels. */
export function lzo1xDecompress(input: Uint8Array, outLen: number): Uint8Array {
  return decompressLzo1xBlock(input, outLen);
}

// The encoders live in page-encoders.ts (no fflate or fzstd there: the compressing threads load
// only what compresses); re-exported for the readers and tests that import them from here.
export { EncodeBuffer, LZO_HASH_BITS, lzo1xCompress, lzo1xCompressInto, snappyCompress } from "./page-encoders.js";

// ---- snappy (raw) ----

export function snappyDecompress(input: Uint8Array, maxLen: number): Uint8Array {
  let ip = 0;
  let len = 0;
  for (let shift = 0; ; shift += 7) {
    if (ip >= input.length || shift > 28) throw corruptPage("snappy", "bad length preamble", ip);
    const b = input[ip++]!;
    len += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  if (len > maxLen) throw corruptPage("snappy", `length ${len} exceeds the page size ${maxLen}`, 0);
  const out = new Uint8Array(len);
  let op = 0;
  while (ip < input.length) {
    const tag = input[ip++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let l = tag >> 2;
      if (l >= 60) {
        const bytes = l - 59;
        if (ip + bytes > input.length) throw corruptPage("snappy", "literal length runs past the input", ip);
        l = 0;
        for (let k = 0; k < bytes; k++) l += input[ip++]! * 2 ** (8 * k);
      }
      l += 1;
      if (ip + l > input.length || op + l > len) throw corruptPage("snappy", "literal overruns", ip);
      out.set(input.subarray(ip, ip + l), op);
      ip += l;
      op += l;
      continue;
    }
    let l: number;
    let off: number;
    if (ip + (kind === 3 ? 4 : kind) > input.length) throw corruptPage("snappy", "copy offset runs past the input", ip);
    if (kind === 1) {
      l = 4 + ((tag >> 2) & 7);
      off = ((tag >> 5) << 8) | input[ip++]!;
    } else if (kind === 2) {
      l = (tag >> 2) + 1;
      off = input[ip]! | (input[ip + 1]! << 8);
      ip += 2;
    } else {
      l = (tag >> 2) + 1;
      off = (input[ip]! | (input[ip + 1]! << 8) | (input[ip + 2]! << 16) | (input[ip + 3]! << 24)) >>> 0;
      ip += 4;
    }
    if (off === 0 || off > op || op + l > len) throw corruptPage("snappy", `copy (offset ${off}, length ${l}) outside the output`, ip);
    for (let k = 0; k < l; k++, op++) out[op] = out[op - off]!;
  }
  if (op !== len) throw corruptPage("snappy", `decoded ${op} of ${len} bytes`, ip);
  return out;
}
