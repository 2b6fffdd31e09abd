/**
 * LZMA: the range decoder and the literal/match model shared by the legacy
 * `.lzma` container (below) and LZMA2 chunks inside xz (xz.ts).
 *
 * The whole output stays in memory, so the output buffer itself is the
 * dictionary: a match copies from earlier output, and a dictionary reset only
 * moves `dictStart`, before which no match may reach.
 *
 * Format facts (probability model sizes, state transitions, distance slots)
 * follow the LZMA specification in the LZMA SDK and xz's documentation.
 */
import { type Compression, type Decoded, Output, decompressError, truncated, u32le } from "./common.js";

const PROB_BITS = 11;
const PROB_INIT = 1 << (PROB_BITS - 1);
const MOVE_BITS = 5;
const TOP = 1 << 24;

const STATES = 12;
const POS_STATES_MAX = 16;
const LEN_TO_POS_STATES = 4;
const ALIGN_BITS = 4;
const END_POS_MODEL_INDEX = 14;
const FULL_DISTANCES = 1 << (END_POS_MODEL_INDEX >> 1);
const MATCH_LEN_MIN = 2;
/** The longest match LZMA can encode (2 + 8 + 8 + 255). */
export const MATCH_LEN_MAX = 273;

/** Length coder layout: choice, choice2, low[16][8], mid[16][8], high[256]. */
const LEN_CHOICE = 0;
const LEN_CHOICE2 = 1;
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + POS_STATES_MAX * 8;
const LEN_HIGH = LEN_MID + POS_STATES_MAX * 8;
const LEN_PROBS = LEN_HIGH + 256;

/** Where LZMA stopped: it filled the requested output, or it read the end-of-payload marker. */
export type LzmaStop = "limit" | "marker";

export class LzmaDecoder {
  // Range decoder state. `range` and `code` are kept as non-negative numbers below 2^32.
  private range = 0;
  private code = 0;
  input: Uint8Array = new Uint8Array(0);
  inPos = 0;
  inEnd = 0;
  /** Offset of `input[0]` in the caller's compressed stream, for messages. */
  inBase = 0;

  private lc = 0;
  private lp = 0;
  private pb = 0;
  private literal = new Uint16Array(0x300);
  private readonly isMatch = new Uint16Array(STATES * POS_STATES_MAX);
  private readonly isRep = new Uint16Array(STATES);
  private readonly isRepG0 = new Uint16Array(STATES);
  private readonly isRepG1 = new Uint16Array(STATES);
  private readonly isRepG2 = new Uint16Array(STATES);
  private readonly isRep0Long = new Uint16Array(STATES * POS_STATES_MAX);
  private readonly posSlot = new Uint16Array(LEN_TO_POS_STATES << 6);
  private readonly specPos = new Uint16Array(FULL_DISTANCES - END_POS_MODEL_INDEX);
  private readonly align = new Uint16Array(1 << ALIGN_BITS);
  private readonly matchLen = new Uint16Array(LEN_PROBS);
  private readonly repLen = new Uint16Array(LEN_PROBS);

  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  /** Output position of the last dictionary reset: matches may not reach before it. */
  dictStart = 0;

  constructor(
    private readonly codec: Compression,
    readonly out: Output,
  ) {}

  /** lc/lp/pb from the properties byte ((pb * 5 + lp) * 9 + lc); false when out of range. */
  setProperties(props: number, maxLcLp = 12): boolean {
    if (props >= 9 * 5 * 5) return false;
    const lc = props % 9;
    const lp = Math.floor(props / 9) % 5;
    const pb = Math.floor(props / 45);
    if (lc + lp > maxLcLp) return false;
    this.lc = lc;
    this.lp = lp;
    this.pb = pb;
    const literalSize = 0x300 << (lc + lp);
    if (this.literal.length !== literalSize) this.literal = new Uint16Array(literalSize);
    return true;
  }

  resetState(): void {
    for (const probs of [
      this.literal, this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2,
      this.isRep0Long, this.posSlot, this.specPos, this.align, this.matchLen, this.repLen,
    ]) probs.fill(PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }

  resetDictionary(): void {
    this.dictStart = this.out.length;
  }

  /** Start the range decoder on input[start, end): 5 bytes, the first always 0. */
  initRangeDecoder(input: Uint8Array, start: number, end: number): void {
    this.input = input;
    this.inPos = start;
    this.inEnd = end;
    if (end - start < 5) throw truncated(this.codec, "the range decoder's first 5 bytes", this.inBase + start, 5, end - start);
    if (input[start] !== 0) {
      throw decompressError(this.codec, "range decoder does not start with a zero byte", {
        offset: this.inBase + start,
        field: "range coder init",
        expected: "0x00",
        actual: `0x${input[start]!.toString(16)}`,
      });
    }
    this.code = ((input[start + 1]! << 24) | (input[start + 2]! << 16) | (input[start + 3]! << 8) | input[start + 4]!) >>> 0;
    this.range = 0xffffffff;
    this.inPos = start + 5;
    if (this.code === this.range) {
      throw decompressError(this.codec, "range decoder starts with an impossible code", { offset: this.inBase + start + 1 });
    }
  }

  /** A finished range coder has consumed all its bytes and ends with code 0. */
  get rangeDecoderFinished(): boolean {
    return this.code === 0;
  }

  private ranOut(): never {
    throw truncated(this.codec, "LZMA data", this.inBase + this.inPos, 1, 0);
  }

  private bit(probs: Uint16Array, index: number): number {
    const prob = probs[index]!;
    const bound = (this.range >>> PROB_BITS) * prob;
    let result: number;
    if (this.code < bound) {
      this.range = bound;
      probs[index] = prob + (((1 << PROB_BITS) - prob) >>> MOVE_BITS);
      result = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[index] = prob - (prob >>> MOVE_BITS);
      result = 1;
    }
    if (this.range < TOP) {
      if (this.inPos >= this.inEnd) this.ranOut();
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.input[this.inPos++]!) >>> 0;
    }
    return result;
  }

  private directBits(count: number): number {
    let result = 0;
    for (let i = 0; i < count; i++) {
      this.range = this.range >>> 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      result = result * 2 + b;
      if (this.range < TOP) {
        if (this.inPos >= this.inEnd) this.ranOut();
        this.range = (this.range * 256) >>> 0;
        this.code = ((this.code * 256) + this.input[this.inPos++]!) >>> 0;
      }
    }
    return result;
  }

  private bitTree(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(probs, base + m);
    return m - (1 << bits);
  }

  private reverseBitTree(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    let result = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(probs, base + m);
      m = (m << 1) | b;
      result |= b << i;
    }
    return result;
  }

  private length(probs: Uint16Array, posState: number): number {
    if (this.bit(probs, LEN_CHOICE) === 0) return MATCH_LEN_MIN + this.bitTree(probs, LEN_LOW + posState * 8, 3);
    if (this.bit(probs, LEN_CHOICE2) === 0) return MATCH_LEN_MIN + 8 + this.bitTree(probs, LEN_MID + posState * 8, 3);
    return MATCH_LEN_MIN + 16 + this.bitTree(probs, LEN_HIGH, 8);
  }

  /** Distance minus one, as LZMA codes it; 0xFFFFFFFF is the end-of-payload marker. */
  private distance(len: number): number {
    const lenState = Math.min(len - MATCH_LEN_MIN, LEN_TO_POS_STATES - 1);
    const slot = this.bitTree(this.posSlot, lenState << 6, 6);
    if (slot < 4) return slot;
    const directCount = (slot >>> 1) - 1;
    // Plain arithmetic, not shifts: slot 63 gives distances up to 2^32 - 1.
    let dist = (2 + (slot & 1)) * 2 ** directCount;
    if (slot < END_POS_MODEL_INDEX) {
      return dist + this.reverseBitTree(this.specPos, dist - slot - 1, directCount);
    }
    dist += this.directBits(directCount - ALIGN_BITS) * (1 << ALIGN_BITS);
    return dist + this.reverseBitTree(this.align, 0, ALIGN_BITS);
  }

  /**
   * Decode symbols until the output reaches `limit` (an absolute output length)
   * or, when `allowMarker`, until the end-of-payload marker.
   */
  decode(limit: number, allowMarker: boolean): LzmaStop {
    const out = this.out;
    const lc = this.lc;
    const lpMask = (1 << this.lp) - 1;
    const pbMask = (1 << this.pb) - 1;
    let buf = out.buf;
    let pos = out.length;
    let state = this.state;
    try {
      while (pos < limit) {
        if (pos + MATCH_LEN_MAX > buf.length) {
          out.length = pos;
          out.reserveUpTo(MATCH_LEN_MAX);
          buf = out.buf;
        }
        const dictPos = pos - this.dictStart;
        const posState = dictPos & pbMask;
        if (this.bit(this.isMatch, (state << 4) | posState) === 0) {
          if (pos >= buf.length) throw out.tooLarge(pos + 1);
          const prev = dictPos > 0 ? buf[pos - 1]! : 0;
          const base = 0x300 * (((dictPos & lpMask) << lc) + (prev >>> (8 - lc)));
          const probs = this.literal;
          let symbol = 1;
          if (state >= 7) {
            // After a match the literal is coded relative to the byte at rep0.
            let matchByte = dictPos > this.rep0 ? buf[pos - this.rep0 - 1]! : 0;
            while (symbol < 0x100) {
              const matchBit = (matchByte >>> 7) & 1;
              matchByte <<= 1;
              const b = this.bit(probs, base + ((1 + matchBit) << 8) + symbol);
              symbol = (symbol << 1) | b;
              if (matchBit !== b) break;
            }
          }
          while (symbol < 0x100) symbol = (symbol << 1) | this.bit(probs, base + symbol);
          buf[pos++] = symbol & 0xff;
          state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
          continue;
        }

        let len: number;
        if (this.bit(this.isRep, state) === 0) {
          len = this.length(this.matchLen, posState);
          state = state < 7 ? 7 : 10;
          const dist = this.distance(len);
          if (dist === 0xffffffff) {
            if (!allowMarker) {
              throw decompressError(this.codec, "end-of-payload marker where none is allowed", { offset: this.inBase + this.inPos });
            }
            this.state = state;
            out.length = pos;
            return "marker";
          }
          this.rep3 = this.rep2;
          this.rep2 = this.rep1;
          this.rep1 = this.rep0;
          this.rep0 = dist;
        } else {
          if (dictPos === 0) {
            throw decompressError(this.codec, "repeated match before any output", { offset: this.inBase + this.inPos });
          }
          if (this.bit(this.isRepG0, state) === 0) {
            if (this.bit(this.isRep0Long, (state << 4) | posState) === 0) {
              // A "short rep": one byte from distance rep0.
              state = state < 7 ? 9 : 11;
              if (this.rep0 >= dictPos) this.badDistance(this.rep0, dictPos);
              if (pos >= buf.length) throw out.tooLarge(pos + 1);
              buf[pos] = buf[pos - this.rep0 - 1]!;
              pos++;
              continue;
            }
          } else {
            let dist: number;
            if (this.bit(this.isRepG1, state) === 0) {
              dist = this.rep1;
            } else {
              if (this.bit(this.isRepG2, state) === 0) {
                dist = this.rep2;
              } else {
                dist = this.rep3;
                this.rep3 = this.rep2;
              }
              this.rep2 = this.rep1;
            }
            this.rep1 = this.rep0;
            this.rep0 = dist;
          }
          len = this.length(this.repLen, posState);
          state = state < 7 ? 8 : 11;
        }

        const rep0 = this.rep0;
        if (rep0 >= dictPos) this.badDistance(rep0, dictPos);
        if (pos + len > limit) {
          throw decompressError(this.codec, "match runs past the end of the declared uncompressed size", {
            offset: this.inBase + this.inPos,
            expected: `at most ${limit - pos} bytes`,
            actual: `${len} bytes`,
          });
        }
        if (pos + len > buf.length) throw out.tooLarge(pos + len);
        let from = pos - rep0 - 1;
        if (len > 16 && rep0 + 1 >= len) {
          buf.copyWithin(pos, from, from + len);
          pos += len;
        } else {
          // Overlapping copies repeat the last rep0+1 bytes, so they go byte by byte.
          const end = pos + len;
          while (pos < end) buf[pos++] = buf[from++]!;
        }
      }
      this.state = state;
      out.length = pos;
      return "limit";
    } finally {
      // Keep the output consistent even when an error escapes mid-symbol.
      if (out.length < pos) out.length = Math.min(pos, out.buf.length);
    }
  }

  private badDistance(dist: number, available: number): never {
    throw decompressError(this.codec, "match distance reaches before the start of the dictionary", {
      offset: this.inBase + this.inPos,
      field: "match distance",
      expected: `at most ${available}`,
      actual: `${dist + 1}`,
    });
  }
}

/** "Unknown" in the legacy header's 64-bit size field. */
const SIZE_UNKNOWN = 0xffffffffffffffffn;

/**
 * The legacy `.lzma` ("LZMA_alone") container that `lzma -9` writes:
 * properties byte, 32-bit dictionary size, 64-bit uncompressed size (all ones
 * when the size was unknown, as it is for a pipe; the stream then ends with
 * the end-of-payload marker), then the range-coded data.
 */
export function decompressLzmaAlone(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  if (input.length < 13) throw truncated("lzma", "the 13-byte .lzma header", 0, 13, input.length);
  const props = input[0]!;
  const dictSize = u32le(input, 1);
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const declared = view.getBigUint64(5, true);
  const known = declared !== SIZE_UNKNOWN;
  if (known && declared > BigInt(maxSize)) {
    throw decompressError("lzma", "header declares an uncompressed size above maxSize", {
      offset: 5,
      field: "uncompressed size",
      expected: `at most ${maxSize}`,
      actual: `${declared}`,
    });
  }
  const out = new Output("lzma", known ? Number(declared) : (sizeHint ?? input.length * 4), maxSize);
  const decoder = new LzmaDecoder("lzma", out);
  if (!decoder.setProperties(props)) {
    throw decompressError("lzma", "invalid properties byte", {
      offset: 0,
      field: "lc/lp/pb",
      expected: "below 225 (pb*45 + lp*9 + lc)",
      actual: `${props}`,
    });
  }
  void dictSize; // The whole output is the dictionary; the declared size only matters to streaming decoders.
  decoder.resetState();
  decoder.resetDictionary();
  decoder.initRangeDecoder(input, 13, input.length);
  const limit = known ? Number(declared) : maxSize + 1;
  const stop = decoder.decode(limit, true);
  if (stop === "limit" && !known) throw out.tooLarge(maxSize + 1);
  if (stop === "marker" && !decoder.rangeDecoderFinished) {
    throw decompressError("lzma", "range decoder did not end cleanly after the end marker", { offset: decoder.inPos });
  }
  if (known && out.length !== Number(declared)) {
    throw decompressError("lzma", "end marker before the declared size", {
      offset: decoder.inPos,
      field: "uncompressed size",
      expected: `${declared} bytes`,
      actual: `${out.length} bytes`,
    });
  }
  return { bytes: out.result(), end: decoder.inPos };
}
