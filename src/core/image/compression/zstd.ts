/**
 * zstd (`zstd -22 --ultra`, as Debian's 6.12 kernels use) through fzstd. We
 * walk the frame header and block headers ourselves: that finds where the
 * frame ends (the kernel appends its size after it, which fzstd would take for
 * a second frame), names the offset of a truncation, and lets us verify the
 * frame's XXH64 content checksum, which fzstd skips.
 *
 * Speed: the kernel's frame has no content size and a 128 MiB window. Given an
 * output buffer of the right size fzstd decodes straight into it; without one
 * it slides the whole window per block, several times slower. So a known size
 * (content size field, expectedSize, or the appended size) is used when the
 * frame's checksum can confirm it, and the sliding path is the fallback.
 */
import { Decompress, decompress as fzstdDecompress } from "fzstd";
import { hex, size } from "../../format.js";
import { type Decoded, Output, decompressError, hex32, truncated, u32le } from "./common.js";

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 << 10;

interface Frame {
  end: number;
  contentSize: number | undefined;
  windowSize: number;
  checksum: number | undefined;
}

function readFrame(input: Uint8Array, maxSize: number): Frame {
  if (input.length < 6) throw truncated("zstd", "the frame header", 0, 6, input.length);
  if (u32le(input, 0) !== MAGIC) {
    throw decompressError("zstd", "not a zstd frame", { offset: 0, field: "magic", expected: "28 b5 2f fd", actual: hex32(u32le(input, 0)) });
  }
  const fhd = input[4]!;
  const fcsFlag = fhd >>> 6;
  const singleSegment = (fhd >>> 5) & 1;
  const hasChecksum = (fhd >>> 2) & 1;
  const dictFlag = fhd & 3;
  if (fhd & 0x08) throw decompressError("zstd", "reserved frame header bit is set", { offset: 4, field: "Frame_Header_Descriptor", actual: hex(fhd, 2) });
  let pos = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = input[pos++]!;
    const base = 2 ** (10 + (wd >>> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][dictFlag]!;
  if (pos + dictBytes > input.length) throw truncated("zstd", "the dictionary ID", pos, dictBytes, input.length - pos);
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += input[pos + i]! * 2 ** (8 * i);
  if (dictId !== 0) {
    throw decompressError("zstd", "frame needs a dictionary", { offset: pos, field: "Dictionary_ID", expected: "none", actual: `${dictId}`, hint: "the kernel never compresses with a dictionary; this is not a kernel payload" });
  }
  pos += dictBytes;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (pos + fcsBytes > input.length) throw truncated("zstd", "the frame content size", pos, fcsBytes, input.length - pos);
  let contentSize: number | undefined;
  if (fcsBytes > 0) {
    contentSize = 0;
    for (let i = 0; i < fcsBytes; i++) contentSize += input[pos + i]! * 2 ** (8 * i);
    if (fcsBytes === 2) contentSize += 256;
    if (contentSize > maxSize) {
      throw decompressError("zstd", `frame content size exceeds the ${size(maxSize)} limit`, { offset: pos, field: "Frame_Content_Size", expected: `at most ${maxSize}`, actual: `${contentSize}` });
    }
  }
  pos += fcsBytes;
  if (singleSegment) windowSize = contentSize ?? 0;

  for (;;) {
    if (pos + 3 > input.length) throw truncated("zstd", "a block header", pos, 3, input.length - pos);
    const header = input[pos]! | (input[pos + 1]! << 8) | (input[pos + 2]! << 16);
    const last = header & 1;
    const type = (header >>> 1) & 3;
    const blockSize = header >>> 3;
    if (type === 3) throw decompressError("zstd", "reserved block type", { offset: pos, field: "Block_Type", expected: "0, 1 or 2", actual: "3" });
    if (blockSize > MAX_BLOCK && type !== 1) {
      throw decompressError("zstd", "block larger than 128 KiB", { offset: pos, field: "Block_Size", expected: `at most ${MAX_BLOCK}`, actual: `${blockSize}` });
    }
    pos += 3;
    const stored = type === 1 ? 1 : blockSize;
    if (pos + stored > input.length) throw truncated("zstd", "a block", pos, stored, input.length - pos);
    pos += stored;
    if (last) break;
  }
  let checksum: number | undefined;
  if (hasChecksum) {
    if (pos + 4 > input.length) throw truncated("zstd", "the content checksum", pos, 4, input.length - pos);
    checksum = u32le(input, pos);
    pos += 4;
  }
  return { end: pos, contentSize, windowSize, checksum };
}

function libraryError(e: unknown, frameEnd: number): never {
  if (e instanceof Error && e.name === "KexecError") throw e;
  const why = e instanceof Error ? e.message : String(e);
  throw decompressError("zstd", `frame data is invalid (${why})`, { field: "frame data", expected: `a valid frame of ${frameEnd} bytes`, actual: why });
}

export function decompressZstd(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  const frame = readFrame(input, maxSize);
  const data = input.subarray(0, frame.end);
  const knownSize = frame.contentSize ?? (frame.checksum !== undefined ? sizeHint : undefined);

  if (knownSize !== undefined && knownSize <= maxSize) {
    let bytes: Uint8Array | undefined;
    try {
      bytes = fzstdDecompress(data, new Uint8Array(knownSize));
    } catch (e) {
      // A wrong size hint can make fzstd overrun the buffer; only a declared size is authoritative.
      if (frame.contentSize !== undefined) libraryError(e, frame.end);
    }
    if (bytes !== undefined && (frame.checksum === undefined || (xxh64Low32(bytes) === frame.checksum))) {
      return { bytes, end: frame.end };
    }
    if (frame.contentSize !== undefined) verifyChecksum(bytes ?? new Uint8Array(0), frame, data.length);
  }

  if (frame.windowSize > maxSize) {
    throw decompressError("zstd", `window of ${size(frame.windowSize)} exceeds the ${size(maxSize)} limit`, { offset: 5, field: "Window_Descriptor", expected: `at most ${maxSize}`, actual: `${frame.windowSize}` });
  }
  const out = new Output("zstd", sizeHint ?? input.length * 4, maxSize);
  const stream = new Decompress((chunk) => out.append(chunk));
  try {
    // Slices keep the output check (in out.append) close to where a bomb starts.
    for (let pos = 0; pos < data.length; pos += MAX_BLOCK) {
      const end = Math.min(data.length, pos + MAX_BLOCK);
      stream.push(data.subarray(pos, end), end === data.length);
    }
  } catch (e) {
    libraryError(e, frame.end);
  }
  const bytes = out.result();
  verifyChecksum(bytes, frame, data.length);
  return { bytes, end: frame.end };
}

function verifyChecksum(bytes: Uint8Array, frame: Frame, checksumEnd: number): void {
  if (frame.checksum === undefined) return;
  const computed = xxh64Low32(bytes);
  if (computed !== frame.checksum) {
    throw decompressError("zstd", "content checksum (XXH64) does not match the decompressed data", {
      offset: checksumEnd - 4,
      field: "Content_Checksum",
      expected: hex32(frame.checksum),
      actual: hex32(computed),
    });
  }
}

// XXH64 with seed 0, in 32-bit halves (BigInt would be ~10x slower on a 60 MB kernel).
// Primes from the xxHash specification, as [high, low].
const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;

/** A 64-bit value as two unsigned 32-bit halves, updated in place to avoid allocation in the hot loop. */
class U64 {
  constructor(
    public h = 0,
    public l = 0,
  ) {}

  set(h: number, l: number): this {
    this.h = h >>> 0;
    this.l = l >>> 0;
    return this;
  }

  add(h: number, l: number): this {
    const lo = this.l + (l >>> 0);
    this.l = lo >>> 0;
    this.h = (this.h + h + (lo > 0xffffffff ? 1 : 0)) >>> 0;
    return this;
  }

  /** this *= (h, l) mod 2^64. */
  mul(h: number, l: number): this {
    const al = this.l, ah = this.h;
    // Low 32 x low 32 exactly, through 16-bit pieces.
    const a0 = al & 0xffff, a1 = al >>> 16, b0 = l & 0xffff, b1 = l >>> 16;
    const mid = a1 * b0 + a0 * b1;
    const low = a0 * b0 + (mid % 65536) * 65536;
    const carry = Math.floor(low / 4294967296);
    const high = a1 * b1 + Math.floor(mid / 65536) + carry + Math.imul(ah, l) + Math.imul(al, h);
    this.l = low >>> 0;
    this.h = high >>> 0;
    return this;
  }

  rotl(r: number): this {
    const h = this.h, l = this.l;
    if (r >= 32) {
      this.h = l;
      this.l = h;
      r -= 32;
      if (r === 0) return this;
      return this.rotl(r);
    }
    this.h = ((h << r) | (l >>> (32 - r))) >>> 0;
    this.l = ((l << r) | (h >>> (32 - r))) >>> 0;
    return this;
  }

  xor(h: number, l: number): this {
    this.h = (this.h ^ h) >>> 0;
    this.l = (this.l ^ l) >>> 0;
    return this;
  }

  shiftRightXor(r: number): this {
    // this ^= this >>> r, for 32 < r < 64 or r = 32 or r < 32.
    if (r >= 32) return this.xor(0, this.h >>> (r - 32));
    return this.xor(this.h >>> r, ((this.l >>> r) | (this.h << (32 - r))) >>> 0);
  }
}

const scratch = new U64();

/** XXH64's round: acc = rotl(acc + lane * P2, 31) * P1. */
function round(acc: U64, h: number, l: number): void {
  scratch.set(h, l).mul(P2H, P2L);
  acc.add(scratch.h, scratch.l).rotl(31).mul(P1H, P1L);
}

export function xxh64Low32(bytes: Uint8Array): number {
  const len = bytes.length;
  const acc = new U64();
  const k = new U64();
  let i = 0;
  if (len >= 32) {
    const v1 = new U64(P1H, P1L).add(P2H, P2L);
    const v2 = new U64(P2H, P2L);
    const v3 = new U64(0, 0);
    const v4 = new U64(0, 0).add(~P1H, ~P1L).add(0, 1); // -P1
    const limit = len - 32;
    while (i <= limit) {
      round(v1, u32le(bytes, i + 4), u32le(bytes, i));
      round(v2, u32le(bytes, i + 12), u32le(bytes, i + 8));
      round(v3, u32le(bytes, i + 20), u32le(bytes, i + 16));
      round(v4, u32le(bytes, i + 28), u32le(bytes, i + 24));
      i += 32;
    }
    acc.set(v1.h, v1.l).rotl(1);
    k.set(v2.h, v2.l).rotl(7);
    acc.add(k.h, k.l);
    k.set(v3.h, v3.l).rotl(12);
    acc.add(k.h, k.l);
    k.set(v4.h, v4.l).rotl(18);
    acc.add(k.h, k.l);
    for (const v of [v1, v2, v3, v4]) {
      k.set(0, 0);
      round(k, v.h, v.l);
      acc.xor(k.h, k.l).mul(P1H, P1L).add(P4H, P4L);
    }
  } else {
    acc.set(P5H, P5L);
  }
  acc.add(Math.floor(len / 4294967296), len >>> 0);
  for (; i + 8 <= len; i += 8) {
    k.set(0, 0);
    round(k, u32le(bytes, i + 4), u32le(bytes, i));
    acc.xor(k.h, k.l).rotl(27).mul(P1H, P1L).add(P4H, P4L);
  }
  if (i + 4 <= len) {
    k.set(0, u32le(bytes, i)).mul(P1H, P1L);
    acc.xor(k.h, k.l).rotl(23).mul(P2H, P2L).add(P3H, P3L);
    i += 4;
  }
  for (; i < len; i++) {
    k.set(0, bytes[i]!).mul(P5H, P5L);
    acc.xor(k.h, k.l).rotl(11).mul(P1H, P1L);
  }
  acc.shiftRightXor(33).mul(P2H, P2L).shiftRightXor(29).mul(P3H, P3L).shiftRightXor(32);
  return acc.l;
}
