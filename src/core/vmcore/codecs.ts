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
import { decompressLzo1xBlock } from "../image/compression/lzo.js";

export type PageCodec = "zlib" | "lzo" | "snappy" | "zstd";

function corrupt(codec: string, detail: string, at: number): KexecError {
  return new KexecError("decompress", `${codec} page data is corrupt: ${detail} at byte ${at}`, { field: codec, offset: at }, "the dump file is damaged at this page");
}

export function decompressPage(codec: PageCodec, input: Uint8Array, pageSize: number): Uint8Array {
  let out: Uint8Array;
  try {
    if (codec === "zlib") out = unzlibSync(input, { out: new Uint8Array(pageSize) });
    else if (codec === "zstd") out = zstdDecompress(input, new Uint8Array(pageSize));
    else if (codec === "lzo") out = lzo1xDecompress(input, pageSize);
    else out = snappyDecompress(input, pageSize);
  } catch (e) {
    if (e instanceof KexecError) throw e;
    throw corrupt(codec, (e as Error).message, 0);
  }
  if (out.length !== pageSize) throw corrupt(codec, `decoded ${out.length} bytes, expected ${pageSize}`, input.length);
  return out;
}

// ---- LZO1X ----

/** One page's LZO1X block: the same decoder that reads lzop-compressed kernels. */
export function lzo1xDecompress(input: Uint8Array, outLen: number): Uint8Array {
  return decompressLzo1xBlock(input, outLen);
}

/** Growable output for the encoders: typed writes, no per-byte array pushes; reusable across pages. */
export class EncodeBuffer {
  buf: Uint8Array;
  n = 0;
  constructor(capacity: number) {
    this.buf = new Uint8Array(capacity);
  }
  room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    next.set(this.buf.subarray(0, this.n));
    this.buf = next;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.n++] = b;
  }
  copy(src: Uint8Array, from: number, to: number): void {
    this.room(to - from);
    this.buf.set(src.subarray(from, to), this.n);
    this.n += to - from;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.n);
  }
}

const HASH_BITS = 12;

function read32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

/** liblzo's LZO1X-1 uses a 2^14-entry dictionary; the same size keeps our output as small as its. */
export const LZO_HASH_BITS = 14;
/** Farthest back an LZO1X M4 match reaches (lzo1x's M4_MAX_OFFSET). */
const LZO_MAX_DISTANCE = 0xbfff;

/**
 * Emit a literal run src[from, to) at dst[op] and return the new op. Runs of up
 * to 3 bytes ride in the low bits of the previous match's last byte (LZO1X's
 * state field); the first run of a block of up to 238 bytes has its own code.
 */
function lzoLiterals(src: Uint8Array, from: number, to: number, dst: Uint8Array, op: number, lastMatchAt: number): number {
  const lit = to - from;
  if (lastMatchAt >= 0 && lit <= 3) dst[lastMatchAt]! |= lit;
  else if (lastMatchAt < 0 && lit <= 238) dst[op++] = 17 + lit;
  else if (lit - 3 <= 15) dst[op++] = lit - 3;
  else {
    dst[op++] = 0;
    let r = lit - 3 - 15;
    while (r > 255) { dst[op++] = 0; r -= 255; }
    dst[op++] = r;
  }
  if (lit < 16) for (let k = from; k < to; k++) dst[op++] = src[k]!;
  else { dst.set(src.subarray(from, to), op); op += lit; }
  return op;
}

/**
 * LZO1X compression of src[from, from+length) into dst from `at`, greedy with a 4-byte hash
 * (what lzo1x_decompress_safe accepts). Returns the bytes written, or -1 as soon as the
 * output would pass `limit` (the caller stores the page raw instead).
 *
 * The hash table is the caller's and is never cleared: an entry is only used when it points
 * into [from, i) and the 4 bytes there match, so entries left by earlier pages (or earlier
 * buffers) cost at most a missed match. That saves a 64 KiB fill per 4 KiB page.
 */
export function lzo1xCompressInto(src: Uint8Array, view: DataView, from: number, length: number, dst: Uint8Array, at: number, limit: number, table: Int32Array): number {
  const end = from + length;
  const last4 = end - 4;
  const shift = 32 - Math.log2(table.length);
  let op = at;
  let anchor = from;
  let lastMatchAt = -1; // where the last match's S bits (count of trailing short literals) live
  let i = from;
  // `view` covers the same bytes as `src`: V8 turns getInt32 into one unaligned load, a third
  // faster than assembling bytes (measured on 22k real pages: 195 ms -> 141 ms, same output).
  while (i <= last4) {
    const v = view.getInt32(i, true);
    const h = Math.imul(v, 0x9e3779b1) >>> shift;
    const cand = table[h]!;
    table[h] = i;
    if (cand < from || cand >= i || i - cand > LZO_MAX_DISTANCE || view.getInt32(cand, true) !== v) {
      // Step faster through data that keeps missing (as lzo1x_1 does): random pages cost little.
      i += 1 + ((i - anchor) >> 5);
      continue;
    }
    let len = 4;
    while (i + len <= last4 && view.getInt32(cand + len, true) === view.getInt32(i + len, true)) len += 4;
    while (i + len < end && src[cand + len] === src[i + len]) len++;
    // Worst case for the literals and this match; past the limit the page is stored raw.
    const lit = i - anchor;
    if (op + lit + 8 + (((lit + len) / 255) | 0) > limit) return -1;
    if (lit > 0) op = lzoLiterals(src, anchor, i, dst, op, lastMatchAt);
    const distance = i - cand;
    if (len <= 8 && distance <= 2048) {
      const d = distance - 1;
      lastMatchAt = op;
      dst[op++] = len <= 4 ? 0x40 | ((len - 3) << 5) | ((d & 7) << 2) : 0x80 | ((len - 5) << 5) | ((d & 7) << 2);
      dst[op++] = d >> 3;
    } else {
      let marker: number;
      let max: number;
      let d: number;
      if (distance <= 16384) { d = distance - 1; marker = 32; max = 31; } else { d = distance - 16384; marker = 16 | (((d >> 14) & 1) << 3); max = 7; }
      const v2 = len - 2;
      if (v2 <= max) dst[op++] = marker | v2;
      else {
        dst[op++] = marker;
        let r = v2 - max;
        while (r > 255) { dst[op++] = 0; r -= 255; }
        dst[op++] = r;
      }
      lastMatchAt = op;
      dst[op++] = (d & 63) << 2;
      dst[op++] = (d >> 6) & 0xff;
    }
    i += len;
    anchor = i;
  }
  const lit = end - anchor;
  if (op + lit + 8 + ((lit / 255) | 0) > limit) return -1;
  if (lit > 0) op = lzoLiterals(src, anchor, end, dst, op, lastMatchAt);
  // End of stream: an M4 with distance 16384.
  dst[op++] = 0x11;
  dst[op++] = 0;
  dst[op++] = 0;
  return op - at;
}

/** LZO1X of a whole buffer into a fresh one (tests, odd callers); the save path uses lzo1xCompressInto. */
export function lzo1xCompress(input: Uint8Array, table = new Int32Array(1 << LZO_HASH_BITS)): Uint8Array {
  const out = new Uint8Array(input.length + (input.length >> 4) + 64);
  const n = lzo1xCompressInto(input, new DataView(input.buffer, input.byteOffset, input.byteLength), 0, input.length, out, 0, out.length, table);
  return out.slice(0, n);
}

// ---- snappy (raw) ----

export function snappyDecompress(input: Uint8Array, maxLen: number): Uint8Array {
  let ip = 0;
  let len = 0;
  for (let shift = 0; ; shift += 7) {
    if (ip >= input.length || shift > 28) throw corrupt("snappy", "bad length preamble", ip);
    const b = input[ip++]!;
    len += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) break;
  }
  if (len > maxLen) throw corrupt("snappy", `length ${len} exceeds the page size ${maxLen}`, 0);
  const out = new Uint8Array(len);
  let op = 0;
  while (ip < input.length) {
    const tag = input[ip++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let l = tag >> 2;
      if (l >= 60) {
        const bytes = l - 59;
        if (ip + bytes > input.length) throw corrupt("snappy", "literal length runs past the input", ip);
        l = 0;
        for (let k = 0; k < bytes; k++) l += input[ip++]! * 2 ** (8 * k);
      }
      l += 1;
      if (ip + l > input.length || op + l > len) throw corrupt("snappy", "literal overruns", ip);
      out.set(input.subarray(ip, ip + l), op);
      ip += l;
      op += l;
      continue;
    }
    let l: number;
    let off: number;
    if (ip + (kind === 3 ? 4 : kind) > input.length) throw corrupt("snappy", "copy offset runs past the input", ip);
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
    if (off === 0 || off > op || op + l > len) throw corrupt("snappy", `copy (offset ${off}, length ${l}) outside the output`, ip);
    for (let k = 0; k < l; k++, op++) out[op] = out[op - off]!;
  }
  if (op !== len) throw corrupt("snappy", `decoded ${op} of ${len} bytes`, ip);
  return out;
}

export function snappyCompress(input: Uint8Array, table = new Int32Array(1 << HASH_BITS), scratch?: EncodeBuffer): Uint8Array {
  const n = input.length;
  const out = scratch ?? new EncodeBuffer(n + (n >> 4) + 64);
  out.n = 0;
  for (let v = n; ; ) {
    if (v < 0x80) {
      out.byte(v);
      break;
    }
    out.byte((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  table.fill(-1);
  let anchor = 0;
  const literal = (end: number) => {
    while (anchor < end) {
      const chunk = Math.min(end - anchor, 65536);
      const l = chunk - 1;
      if (l < 60) out.byte(l << 2);
      else if (l < 256) { out.byte(60 << 2); out.byte(l); }
      else { out.byte(61 << 2); out.byte(l & 0xff); out.byte(l >> 8); }
      out.copy(input, anchor, anchor + chunk);
      anchor += chunk;
    }
  };
  let i = 0;
  let misses = 0;
  while (i + 4 <= n) {
    const v = read32(input, i);
    const h = Math.imul(v, 0x1e35a7bd) >>> (32 - HASH_BITS);
    const cand = table[h]!;
    table[h] = i;
    if (cand >= 0 && i - cand < 65536 && read32(input, cand) === v) {
      let len = 4;
      while (i + len < n && input[cand + len] === input[i + len]) len++;
      literal(i);
      const off = i - cand;
      let rest = len;
      while (rest > 0) {
        let l = Math.min(rest, 64);
        // Never leave a tail below 4 that the 1-byte-offset form cannot carry.
        if (rest - l > 0 && rest - l < 4) l = rest - 4;
        if (l >= 4 && l <= 11 && off < 2048) { out.byte(1 | ((l - 4) << 2) | ((off >> 8) << 5)); out.byte(off & 0xff); }
        else { out.byte(2 | ((l - 1) << 2)); out.byte(off & 0xff); out.byte(off >> 8); }
        rest -= l;
      }
      i += len;
      anchor = i;
      misses = 0;
      continue;
    }
    i += 1 + (misses++ >> 5);
  }
  literal(n);
  return scratch ? out.buf.subarray(0, out.n) : out.result();
}
