/**
 * bzip2 (`bzip2 -9`): a bit stream, most significant bit first, of blocks of
 * up to 900 kB, each Huffman + move-to-front + run-length coded and then
 * Burrows-Wheeler transformed, with a CRC per block and one for the stream.
 * Concatenated streams (as pbzip2 writes) are decoded one after another.
 *
 * Layout facts follow bzip2's format as documented by its sources and
 * "The bzip2 file format" (Joe Tsai); the code is ours.
 */
import { hex } from "../../format.js";
import { type Decoded, Output, crc32Msb, decompressError, hex32, truncated } from "./common.js";

const BLOCK_MAGIC_HI = 0x314159; // pi
const BLOCK_MAGIC_LO = 0x265359;
const END_MAGIC_HI = 0x177245; // sqrt(pi)
const END_MAGIC_LO = 0x385090;
const GROUP_SIZE = 50;
const MAX_GROUPS = 6;
const MAX_ALPHA = 258;
const MAX_CODE_LEN = 20;
const MAX_SELECTORS = 18002;

class BitReader {
  private bitBuf = 0;
  private bitCount = 0;
  pos: number;

  constructor(
    private readonly input: Uint8Array,
    start: number,
  ) {
    this.pos = start;
  }

  /** Offset of the byte holding the next unread bit, for messages. */
  get offset(): number {
    return this.pos - (this.bitCount >> 3);
  }

  bits(n: number): number {
    while (this.bitCount < n) {
      if (this.pos >= this.input.length) throw truncated("bzip2", "a block", this.pos, 1, 0);
      // Only the low bitCount bits matter; older ones may fall off the top.
      this.bitBuf = ((this.bitBuf << 8) | this.input[this.pos++]!) >>> 0;
      this.bitCount += 8;
    }
    this.bitCount -= n;
    return (this.bitBuf >>> this.bitCount) & ((1 << n) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  /** Skip to the next byte boundary (a stream's end is padded to one). */
  align(): void {
    this.bitCount -= this.bitCount & 7;
  }

  /** The offset just after the last byte that held a consumed bit. */
  get consumedEnd(): number {
    return this.pos - (this.bitCount >> 3);
  }
}

/** Canonical Huffman decoding table for one coding group. */
interface HuffmanTable {
  minLen: number;
  /** limit[len]: the largest code of that length (left-justified per length), or -1. */
  limit: Int32Array;
  /** base[len]: subtract from a code of that length to index `perm`. */
  base: Int32Array;
  perm: Uint16Array;
}

function buildTable(lengths: Uint8Array, alphaSize: number): HuffmanTable {
  let minLen = MAX_CODE_LEN, maxLen = 0;
  for (let i = 0; i < alphaSize; i++) {
    minLen = Math.min(minLen, lengths[i]!);
    maxLen = Math.max(maxLen, lengths[i]!);
  }
  const perm = new Uint16Array(alphaSize);
  let p = 0;
  for (let len = minLen; len <= maxLen; len++) {
    for (let s = 0; s < alphaSize; s++) if (lengths[s] === len) perm[p++] = s;
  }
  const limit = new Int32Array(MAX_CODE_LEN + 2).fill(-1);
  const base = new Int32Array(MAX_CODE_LEN + 2);
  let code = 0, index = 0;
  for (let len = minLen; len <= maxLen; len++) {
    let count = 0;
    for (let s = 0; s < alphaSize; s++) if (lengths[s] === len) count++;
    base[len] = code - index;
    code += count;
    index += count;
    limit[len] = code - 1;
    code <<= 1;
  }
  return { minLen, limit, base, perm };
}

export function decompressBzip2(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  const out = new Output("bzip2", sizeHint ?? input.length * 5, maxSize);
  let pos = 0;
  let streams = 0;
  // Further streams may follow; anything else after the first stream is trailing data.
  while (streams === 0 || (pos + 4 <= input.length && input[pos] === 0x42 && input[pos + 1] === 0x5a && input[pos + 2] === 0x68)) {
    pos = decodeStream(input, pos, out);
    streams++;
  }
  return { bytes: out.result(), end: pos };
}

function decodeStream(input: Uint8Array, start: number, out: Output): number {
  if (input.length - start < 4) throw truncated("bzip2", "the stream header", start, 4, input.length - start);
  if (input[start] !== 0x42 || input[start + 1] !== 0x5a || input[start + 2] !== 0x68) {
    throw decompressError("bzip2", "not a bzip2 stream", { offset: start, field: "magic", expected: '"BZh"', actual: hex(input[start]!, 2) });
  }
  const level = input[start + 3]! - 0x30;
  if (level < 1 || level > 9) {
    throw decompressError("bzip2", "invalid block size digit", { offset: start + 3, field: "block size", expected: "'1'..'9'", actual: hex(input[start + 3]!, 2) });
  }
  const maxBlock = level * 100000;
  const br = new BitReader(input, start + 4);
  const tt = new Uint32Array(maxBlock);
  let combined = 0;
  for (let block = 0; ; block++) {
    const at = br.offset;
    const hi = br.bits(24), lo = br.bits(24);
    if (hi === END_MAGIC_HI && lo === END_MAGIC_LO) {
      const storedCombined = (br.bits(16) * 65536 + br.bits(16)) >>> 0;
      if (storedCombined !== combined) {
        throw decompressError("bzip2", "stream CRC does not match the blocks", { offset: at + 6, field: "combined CRC", expected: hex32(storedCombined), actual: hex32(combined) });
      }
      br.align();
      return br.consumedEnd;
    }
    if (hi !== BLOCK_MAGIC_HI || lo !== BLOCK_MAGIC_LO) {
      throw decompressError("bzip2", `block ${block} does not start with the block magic`, {
        offset: at,
        field: "block magic",
        expected: "31 41 59 26 53 59 or the end-of-stream magic",
        actual: `${hi.toString(16).padStart(6, "0")}${lo.toString(16).padStart(6, "0")}`,
      });
    }
    const storedCrc = (br.bits(16) * 65536 + br.bits(16)) >>> 0;
    const outStart = out.length;
    decodeBlock(br, tt, maxBlock, out, block);
    const crc = crc32Msb(out.buf, outStart, out.length);
    if (crc !== storedCrc) {
      throw decompressError("bzip2", `block ${block} CRC does not match its data`, { offset: at + 6, field: "block CRC", expected: hex32(storedCrc), actual: hex32(crc) });
    }
    combined = (((combined << 1) | (combined >>> 31)) ^ crc) >>> 0;
  }
}

function decodeBlock(br: BitReader, tt: Uint32Array, maxBlock: number, out: Output, block: number): void {
  const fail = (what: string, expected?: string, actual?: string): never => {
    throw decompressError("bzip2", `block ${block}: ${what}`, { offset: br.offset, expected, actual });
  };
  if (br.bit()) fail("randomised blocks (written by bzip2 0.9.0 and older) are not supported", "0", "1");
  const origPtr = br.bits(24);

  // Which byte values occur: 16 groups of 16.
  const used = br.bits(16);
  const seqToUnseq = new Uint8Array(256);
  let inUse = 0;
  for (let i = 0; i < 16; i++) {
    if (used & (0x8000 >>> i)) {
      const bits = br.bits(16);
      for (let j = 0; j < 16; j++) if (bits & (0x8000 >>> j)) seqToUnseq[inUse++] = i * 16 + j;
    }
  }
  if (inUse === 0) fail("no byte values in use", "at least 1", "0");
  const alphaSize = inUse + 2;

  const groups = br.bits(3);
  if (groups < 2 || groups > MAX_GROUPS) fail("invalid number of Huffman groups", "2..6", `${groups}`);
  const selectorCount = br.bits(15);
  if (selectorCount < 1) fail("no selectors", "at least 1", "0");
  const selectorMtf = [0, 1, 2, 3, 4, 5].slice(0, groups);
  const selectors = new Uint8Array(Math.min(selectorCount, MAX_SELECTORS));
  for (let i = 0; i < selectorCount; i++) {
    let j = 0;
    while (br.bit()) {
      j++;
      if (j >= groups) fail("selector index out of range", `below ${groups}`, `${j}`);
    }
    // bzip2 1.0.8 tolerates (and ignores) selectors beyond its maximum; so do we.
    if (i >= MAX_SELECTORS) continue;
    const v = selectorMtf[j]!;
    for (let k = j; k > 0; k--) selectorMtf[k] = selectorMtf[k - 1]!;
    selectorMtf[0] = v;
    selectors[i] = v;
  }

  const tables: HuffmanTable[] = [];
  const lengths = new Uint8Array(MAX_ALPHA);
  for (let g = 0; g < groups; g++) {
    let len = br.bits(5);
    for (let s = 0; s < alphaSize; s++) {
      for (;;) {
        if (len < 1 || len > MAX_CODE_LEN) fail("Huffman code length out of range", "1..20", `${len}`);
        if (!br.bit()) break;
        len += br.bit() ? -1 : 1;
      }
      lengths[s] = len;
    }
    tables.push(buildTable(lengths, alphaSize));
  }

  // Huffman -> MTF/RLE2 symbols -> bytes in tt (low 8 bits), with counts for the BWT.
  const mtf = new Uint8Array(256);
  for (let i = 0; i < 256; i++) mtf[i] = i;
  const counts = new Int32Array(256);
  const endOfBlock = inUse + 1;
  let n = 0;
  let groupIndex = 0;
  let groupLeft = 0;
  let table = tables[0]!;
  let runLength = 0;
  let runWeight = 1;
  for (;;) {
    if (groupLeft === 0) {
      if (groupIndex >= selectors.length) fail("ran out of selectors", `at most ${selectors.length} groups`, "more");
      table = tables[selectors[groupIndex++]!]!;
      groupLeft = GROUP_SIZE;
    }
    groupLeft--;
    let len = table.minLen;
    let code = br.bits(len);
    while (len <= MAX_CODE_LEN && code > table.limit[len]!) {
      code = (code << 1) | br.bit();
      len++;
    }
    if (len > MAX_CODE_LEN) fail("invalid Huffman code");
    const index = code - table.base[len]!;
    if (index < 0 || index >= alphaSize) fail("invalid Huffman code");
    const sym = table.perm[index]!;

    if (sym <= 1) {
      // RUNA/RUNB: a bijective base-2 run length of the front byte.
      runLength += runWeight << sym;
      runWeight <<= 1;
      if (runLength > maxBlock) fail("run longer than the block", `at most ${maxBlock}`, `${runLength}`);
      continue;
    }
    if (runLength > 0) {
      if (n + runLength > maxBlock) fail("block longer than its declared size", `at most ${maxBlock} bytes`, `${n + runLength}`);
      const b = seqToUnseq[mtf[0]!]!;
      counts[b] = counts[b]! + runLength;
      tt.fill(b, n, n + runLength);
      n += runLength;
      runLength = 0;
      runWeight = 1;
    }
    if (sym === endOfBlock) break;
    if (sym > endOfBlock) fail("invalid symbol");
    if (n >= maxBlock) fail("block longer than its declared size", `at most ${maxBlock} bytes`, `${n + 1}`);
    const k = sym - 1;
    const v = mtf[k]!;
    mtf.copyWithin(1, 0, k);
    mtf[0] = v;
    const b = seqToUnseq[v]!;
    counts[b] = counts[b]! + 1;
    tt[n++] = b;
  }
  if (origPtr >= n) fail("BWT origin pointer outside the block", `below ${n}`, `${origPtr}`);

  // Inverse Burrows-Wheeler: link each position to its successor in the upper bits.
  const start = new Int32Array(256);
  for (let i = 0, sum = 0; i < 256; i++) {
    start[i] = sum;
    sum += counts[i]!;
  }
  for (let i = 0; i < n; i++) {
    const b = tt[i]! & 0xff;
    tt[start[b]!++]! |= i << 8;
  }

  // Walk the chain and undo the initial run-length coding (4 equal bytes + a count).
  out.reserveUpTo(n);
  let t = tt[origPtr]! >>> 8;
  let last = -1, same = 0;
  for (let i = 0; i < n; i++) {
    const entry = tt[t]!;
    const b = entry & 0xff;
    t = entry >>> 8;
    if (same === 4) {
      if (b > 0) {
        out.reserve(b);
        out.buf.fill(last, out.length, out.length + b);
        out.length += b;
      }
      same = 0;
      last = -1;
      continue;
    }
    if (b === last) same++;
    else {
      last = b;
      same = 1;
    }
    if (out.length >= out.buf.length) out.reserve(1);
    out.buf[out.length++] = b;
  }
}
