/**
 * The page encoders kexec-ts has of its own, for where the system's liblzo2 (or no snappy
 * library) is not there: LZO1X-1 and raw snappy, written from their format descriptions
 * (Documentation/staging/lzo.rst; snappy's format_description.txt). Apart from the decoders in
 * codecs.ts, which import fflate and fzstd: a compression thread loads only this (those two
 * modules build their tables when loaded, 8-80 ms of a worker's or a save's start here).
 */

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
