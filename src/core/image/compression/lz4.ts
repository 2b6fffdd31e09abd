/**
 * LZ4 "legacy" frame, the one `lz4 -l` writes for the kernel: the magic
 * 0x184C2102, then blocks each preceded by its compressed size (32-bit LE).
 * Every block but the last decompresses to exactly 8 MiB, and blocks are
 * independent (no match reaches into an earlier block). The frame has no end
 * marker, so it ends at the end of the input, after a short block, or where
 * the next "size" is the kernel's appended length rather than a block.
 */
import { hex } from "../../format.js";
import { type Decoded, Output, decompressError, truncated, u32le } from "./common.js";

const LEGACY_MAGIC = 0x184c2102;
const LEGACY_BLOCK_SIZE = 8 << 20;
/** LZ4_compressBound(8 MiB): the largest compressed size a legacy block can have. */
const MAX_COMPRESSED_BLOCK = LEGACY_BLOCK_SIZE + Math.floor(LEGACY_BLOCK_SIZE / 255) + 16;
const MIN_MATCH = 4;

export function decompressLz4Legacy(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  if (input.length < 4) throw truncated("lz4", "the magic number", 0, 4, input.length);
  if (u32le(input, 0) !== LEGACY_MAGIC) {
    throw decompressError("lz4", "not an LZ4 legacy frame", {
      offset: 0,
      field: "magic",
      expected: "02 21 4c 18 (lz4 -l)",
      actual: hex(u32le(input, 0), 8),
      hint: "the kernel's LZ4 payload uses the legacy frame; a modern LZ4 frame (04 22 4d 18) is not what the kernel build writes",
    });
  }
  const out = new Output("lz4", sizeHint ?? input.length * 3, maxSize);
  let pos = 4;
  for (;;) {
    if (input.length - pos < 4) break;
    const blockSize = u32le(input, pos);
    // lz4 -l may concatenate frames: a repeated magic starts a new one.
    if (blockSize === LEGACY_MAGIC) {
      pos += 4;
      continue;
    }
    const remaining = input.length - pos - 4;
    // The kernel's appended size follows the last block: it reads as a block size that cannot be one.
    const isAppendedSize = remaining === 0 && blockSize === out.length % 2 ** 32;
    if (isAppendedSize || blockSize > MAX_COMPRESSED_BLOCK) break;
    if (blockSize === 0) {
      throw decompressError("lz4", "empty block", { offset: pos, field: "block size", expected: "1.." + MAX_COMPRESSED_BLOCK, actual: "0" });
    }
    if (blockSize > remaining) throw truncated("lz4", "a block", pos + 4, blockSize, remaining);
    const produced = decodeBlock(input, pos + 4, pos + 4 + blockSize, out);
    pos += 4 + blockSize;
    if (produced > LEGACY_BLOCK_SIZE) {
      throw decompressError("lz4", "block decompresses to more than 8 MiB", { offset: pos - blockSize, expected: `at most ${LEGACY_BLOCK_SIZE}`, actual: `${produced}` });
    }
    if (produced < LEGACY_BLOCK_SIZE) break; // only the last block is short
  }
  return { bytes: out.result(), end: pos };
}

/**
 * One LZ4 block: sequences of (token, literals, 16-bit offset, match). The last
 * sequence has literals only. Returns the number of bytes it produced.
 */
function decodeBlock(input: Uint8Array, start: number, end: number, out: Output): number {
  const blockStart = out.length;
  let ip = start;
  const fail = (what: string, expected?: string, actual?: string): never => {
    throw decompressError("lz4", what, { offset: ip, expected, actual });
  };
  for (;;) {
    if (ip >= end) fail("block ends without its final literals");
    const token = input[ip++]!;
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        if (ip >= end) fail("block ends inside a literal length");
        b = input[ip++]!;
        literals += b;
      } while (b === 255);
    }
    if (literals > 0) {
      if (ip + literals > end) fail("literals run past the end of the block", `at most ${end - ip}`, `${literals}`);
      out.append(input.subarray(ip, ip + literals));
      ip += literals;
    }
    if (ip === end) return out.length - blockStart;

    if (ip + 2 > end) fail("block ends inside a match offset");
    const distance = input[ip]! | (input[ip + 1]! << 8);
    ip += 2;
    let length = token & 15;
    if (length === 15) {
      let b: number;
      do {
        if (ip >= end) fail("block ends inside a match length");
        b = input[ip++]!;
        length += b;
      } while (b === 255);
    }
    length += MIN_MATCH;
    const available = out.length - blockStart;
    if (distance === 0 || distance > available) fail("match offset reaches outside the block", `1..${available}`, `${distance}`);
    out.reserve(length);
    const buf = out.buf;
    let from = out.length - distance;
    let to = out.length;
    const stop = to + length;
    if (distance >= length) {
      buf.copyWithin(to, from, from + length);
    } else {
      while (to < stop) buf[to++] = buf[from++]!;
    }
    out.length = stop;
  }
}
