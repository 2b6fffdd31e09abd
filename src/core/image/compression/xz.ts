/**
 * The .xz container (one stream) with LZMA2 and the x86 BCJ filter — what the
 * kernel's `xz --check=crc32 --x86 --lzma2=dict=32MiB` produces, and what
 * Debian's amd64/686 6.1 kernels carry.
 *
 * Layout (xz-file-format.txt): stream header (magic, flags, CRC32), blocks
 * (header, compressed data, padding to 4, check), index, stream footer.
 * CRC32 and CRC64 checks are verified; SHA-256 is skipped (the kernel never
 * uses it and it would cost a hash implementation).
 */
import { hex } from "../../format.js";
import {
  type Decoded, Output, crc32, crc64, decompressError, hex32, truncated, u32le,
} from "./common.js";
import { LzmaDecoder } from "./lzma.js";

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const FOOTER_MAGIC = [0x59, 0x5a]; // "YZ"

const FILTER_X86 = 0x04;
const FILTER_LZMA2 = 0x21;
/** Filters we know by name but do not implement, for a clearer message. */
const FILTER_NAMES: Record<number, string> = {
  0x03: "delta", 0x05: "PowerPC BCJ", 0x06: "IA-64 BCJ", 0x07: "ARM BCJ", 0x08: "ARM-Thumb BCJ",
  0x09: "SPARC BCJ", 0x0a: "ARM64 BCJ", 0x0b: "RISC-V BCJ",
};

const CHECK_CRC32 = 1;
const CHECK_CRC64 = 4;

/** Check field size by check ID (xz-file-format 2.1.1.2): 0, 4, 8, 16, 32, 64 bytes in groups of three. */
function checkSize(id: number): number {
  return id === 0 ? 0 : 4 << Math.floor((id - 1) / 3);
}

class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
  ) {}

  need(count: number, field: string): void {
    if (this.pos + count > this.bytes.length) throw truncated("xz", field, this.pos, count, this.bytes.length - this.pos);
  }

  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.pos++]!;
  }

  /** xz's variable-length integer: 7 bits per byte, low first, at most 9 bytes, no redundant zero byte. */
  vli(field: string): number {
    const start = this.pos;
    let value = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.u8(field);
      value += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw decompressError("xz", `${field} is not minimally encoded`, { offset: start, field });
        if (value > Number.MAX_SAFE_INTEGER) break;
        return value;
      }
    }
    throw decompressError("xz", `${field} is too large`, { offset: start, field });
  }
}

function expectCrc32(bytes: Uint8Array, start: number, end: number, at: number, field: string): void {
  if (at + 4 > bytes.length) throw truncated("xz", field, at, 4, bytes.length - at);
  const stored = u32le(bytes, at);
  const computed = crc32(bytes, start, end);
  if (stored !== computed) {
    throw decompressError("xz", `${field} CRC32 mismatch`, { offset: at, field, expected: hex32(stored), actual: hex32(computed) });
  }
}

interface BlockRecord {
  unpaddedSize: number;
  uncompressedSize: number;
}

export function decompressXz(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  const c = new Cursor(input, 0);
  c.need(12, "stream header");
  for (let i = 0; i < MAGIC.length; i++) {
    if (input[i] !== MAGIC[i]) {
      throw decompressError("xz", "not an xz stream", { offset: i, field: "header magic", expected: "fd 37 7a 58 5a 00", actual: hex(input[i]!, 2) });
    }
  }
  const flags0 = input[6]!, flags1 = input[7]!;
  expectCrc32(input, 6, 8, 8, "stream header flags");
  if (flags0 !== 0 || (flags1 & 0xf0) !== 0) {
    throw decompressError("xz", "unsupported stream flags", { offset: 6, field: "stream flags", expected: "00 0x", actual: `${hex(flags0, 2)} ${hex(flags1, 2)}` });
  }
  const checkType = flags1 & 0x0f;
  c.pos = 12;

  const out = new Output("xz", sizeHint ?? input.length * 4, maxSize);
  const decoder = new LzmaDecoder("xz", out);
  const records: BlockRecord[] = [];

  for (;;) {
    const blockStart = c.pos;
    const headerSizeByte = c.u8("block header size");
    if (headerSizeByte === 0) break; // index indicator
    const headerSize = (headerSizeByte + 1) * 4;
    c.need(headerSize - 1, "block header");
    expectCrc32(input, blockStart, blockStart + headerSize - 4, blockStart + headerSize - 4, `block ${records.length} header`);
    const blockFlags = c.u8("block flags");
    if (blockFlags & 0x3c) {
      throw decompressError("xz", "reserved block flags are set", { offset: blockStart + 1, field: "block flags", expected: "bits 2-5 clear", actual: hex(blockFlags, 2) });
    }
    const declaredCompressed = blockFlags & 0x40 ? c.vli("compressed size") : undefined;
    const declaredUncompressed = blockFlags & 0x80 ? c.vli("uncompressed size") : undefined;
    const filterCount = (blockFlags & 3) + 1;
    let bcjStart: number | undefined;
    let lzma2DictProps: number | undefined;
    for (let f = 0; f < filterCount; f++) {
      const idOffset = c.pos;
      const id = c.vli("filter ID");
      const propsSize = c.vli("filter properties size");
      c.need(propsSize, "filter properties");
      const props = input.subarray(c.pos, c.pos + propsSize);
      c.pos += propsSize;
      const last = f === filterCount - 1;
      if (id === FILTER_LZMA2 && last && propsSize === 1) {
        lzma2DictProps = props[0]!;
      } else if (id === FILTER_X86 && !last && (propsSize === 0 || propsSize === 4)) {
        bcjStart = propsSize === 4 ? u32le(props, 0) : 0;
      } else {
        const name = id === FILTER_LZMA2 ? "LZMA2" : id === FILTER_X86 ? "x86 BCJ" : (FILTER_NAMES[id] ?? `unknown filter ${hex(id)}`);
        throw decompressError("xz", `filter chain not supported: ${name} as filter ${f + 1} of ${filterCount} with ${propsSize} property bytes`, {
          offset: idOffset,
          field: "filter flags",
          expected: "an optional x86 BCJ filter followed by LZMA2",
          actual: name,
          hint: "kexec-ts decodes the xz filters the kernel build uses (x86 BCJ + LZMA2); recompress the payload with them",
        });
      }
    }
    if (lzma2DictProps === undefined) {
      throw decompressError("xz", "block has no LZMA2 filter", { offset: blockStart, field: "filter flags", expected: "LZMA2 last" });
    }
    if (lzma2DictProps > 40) {
      throw decompressError("xz", "LZMA2 dictionary size property out of range", { offset: c.pos - 1, field: "LZMA2 dict size", expected: "0..40", actual: `${lzma2DictProps}` });
    }
    for (let i = c.pos; i < blockStart + headerSize - 4; i++) {
      if (input[i] !== 0) throw decompressError("xz", "block header padding is not zero", { offset: i, field: "block header padding" });
    }
    c.pos = blockStart + headerSize;

    const dataStart = c.pos;
    const outStart = out.length;
    if (declaredUncompressed !== undefined && declaredUncompressed > maxSize - outStart) throw out.tooLarge(outStart + declaredUncompressed);
    if (declaredUncompressed !== undefined) out.reserveUpTo(declaredUncompressed);
    c.pos = decodeLzma2(decoder, input, dataStart, maxSize);
    const compressedSize = c.pos - dataStart;
    const uncompressedSize = out.length - outStart;
    if (declaredCompressed !== undefined && declaredCompressed !== compressedSize) {
      throw decompressError("xz", `block ${records.length} compressed size differs from its header`, { offset: dataStart, field: "compressed size", expected: `${declaredCompressed}`, actual: `${compressedSize}` });
    }
    if (declaredUncompressed !== undefined && declaredUncompressed !== uncompressedSize) {
      throw decompressError("xz", `block ${records.length} uncompressed size differs from its header`, { offset: dataStart, field: "uncompressed size", expected: `${declaredUncompressed}`, actual: `${uncompressedSize}` });
    }
    if (bcjStart !== undefined) x86BcjDecode(out.buf, outStart, out.length, bcjStart);

    while ((c.pos - blockStart) % 4 !== 0) {
      if (c.u8("block padding") !== 0) throw decompressError("xz", "block padding is not zero", { offset: c.pos - 1, field: "block padding" });
    }
    const checkAt = c.pos;
    const checkBytes = checkSize(checkType);
    c.need(checkBytes, "block check");
    verifyCheck(checkType, input, checkAt, out.buf, outStart, out.length, records.length);
    c.pos += checkBytes;
    records.push({ unpaddedSize: headerSize + compressedSize + checkBytes, uncompressedSize });
  }

  // Index: its records must describe exactly the blocks we decoded.
  const indexStart = c.pos - 1;
  const count = c.vli("index record count");
  if (count !== records.length) {
    throw decompressError("xz", "index record count differs from the blocks in the stream", { offset: indexStart + 1, field: "number of records", expected: `${records.length}`, actual: `${count}` });
  }
  for (let i = 0; i < count; i++) {
    const at = c.pos;
    const unpadded = c.vli("index unpadded size");
    const uncompressed = c.vli("index uncompressed size");
    const block = records[i]!;
    if (unpadded !== block.unpaddedSize || uncompressed !== block.uncompressedSize) {
      throw decompressError("xz", `index record ${i} does not match block ${i}`, {
        offset: at,
        field: "index record",
        expected: `unpadded ${block.unpaddedSize}, uncompressed ${block.uncompressedSize}`,
        actual: `unpadded ${unpadded}, uncompressed ${uncompressed}`,
      });
    }
  }
  while ((c.pos - indexStart) % 4 !== 0) {
    if (c.u8("index padding") !== 0) throw decompressError("xz", "index padding is not zero", { offset: c.pos - 1, field: "index padding" });
  }
  expectCrc32(input, indexStart, c.pos, c.pos, "index");
  c.pos += 4;

  // Stream footer: CRC32, backward size, the header's flags again, "YZ".
  const footer = c.pos;
  c.need(12, "stream footer");
  expectCrc32(input, footer + 4, footer + 10, footer, "stream footer");
  const backwardSize = (u32le(input, footer + 4) + 1) * 4;
  if (backwardSize !== footer - indexStart) {
    throw decompressError("xz", "stream footer's backward size does not match the index", { offset: footer + 4, field: "backward size", expected: `${footer - indexStart}`, actual: `${backwardSize}` });
  }
  if (input[footer + 8] !== flags0 || input[footer + 9] !== flags1) {
    throw decompressError("xz", "stream footer flags differ from the header", { offset: footer + 8, field: "stream flags" });
  }
  if (input[footer + 10] !== FOOTER_MAGIC[0] || input[footer + 11] !== FOOTER_MAGIC[1]) {
    throw decompressError("xz", "stream footer magic is wrong", { offset: footer + 10, field: "footer magic", expected: "59 5a", actual: `${hex(input[footer + 10]!, 2)} ${hex(input[footer + 11]!, 2)}` });
  }
  return { bytes: out.result(), end: footer + 12 };
}

function verifyCheck(type: number, input: Uint8Array, at: number, data: Uint8Array, start: number, end: number, block: number): void {
  if (type === CHECK_CRC32) {
    const stored = u32le(input, at);
    const computed = crc32(data, start, end);
    if (stored !== computed) {
      throw decompressError("xz", `block ${block} CRC32 of the decompressed data does not match`, { offset: at, field: "block check", expected: hex32(stored), actual: hex32(computed) });
    }
  } else if (type === CHECK_CRC64) {
    const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    const stored = view.getBigUint64(at, true);
    const computed = crc64(data, start, end);
    if (stored !== computed) {
      throw decompressError("xz", `block ${block} CRC64 of the decompressed data does not match`, { offset: at, field: "block check", expected: hex(stored, 16), actual: hex(computed, 16) });
    }
  }
  // None (0) has nothing to verify; SHA-256 and the reserved IDs are skipped (see the file comment).
}

/**
 * LZMA2: a sequence of chunks, each either stored or LZMA-coded, each saying
 * whether it resets the dictionary, the coder state, or the lc/lp/pb
 * properties. Returns the offset just after the end-of-stream byte (0x00).
 */
function decodeLzma2(decoder: LzmaDecoder, input: Uint8Array, start: number, maxSize: number): number {
  const out = decoder.out;
  let pos = start;
  let needDictReset = true;
  let needProps = true;
  for (;;) {
    if (pos >= input.length) throw truncated("xz", "LZMA2 chunk header", pos, 1, 0);
    const chunkAt = pos;
    const control = input[pos++]!;
    if (control === 0x00) return pos;

    if (control === 0x01 || control === 0x02) {
      // Stored chunk; 0x01 also resets the dictionary.
      if (pos + 2 > input.length) throw truncated("xz", "LZMA2 stored chunk size", pos, 2, input.length - pos);
      const storedSize = ((input[pos]! << 8) | input[pos + 1]!) + 1;
      pos += 2;
      if (control === 0x01) {
        decoder.resetDictionary();
        needDictReset = false;
      } else if (needDictReset) {
        throw decompressError("xz", "first LZMA2 chunk does not reset the dictionary", { offset: chunkAt, field: "LZMA2 control", expected: "0x01 or >= 0xe0", actual: hex(control, 2) });
      }
      if (pos + storedSize > input.length) throw truncated("xz", "LZMA2 stored chunk", pos, storedSize, input.length - pos);
      out.append(input.subarray(pos, pos + storedSize));
      pos += storedSize;
      continue;
    }
    if (control < 0x80) {
      throw decompressError("xz", "invalid LZMA2 control byte", { offset: chunkAt, field: "LZMA2 control", expected: "0x00-0x02 or 0x80-0xff", actual: hex(control, 2) });
    }
    if (pos + 4 > input.length) throw truncated("xz", "LZMA2 chunk header", pos, 4, input.length - pos);
    const unpackedSize = (control & 0x1f) * 65536 + ((input[pos]! << 8) | input[pos + 1]!) + 1;
    const packedSize = ((input[pos + 2]! << 8) | input[pos + 3]!) + 1;
    pos += 4;
    const reset = (control >>> 5) & 3; // 0 none, 1 state, 2 state + props, 3 everything
    if (reset === 3) {
      decoder.resetDictionary();
      needDictReset = false;
    } else if (needDictReset) {
      throw decompressError("xz", "first LZMA2 chunk does not reset the dictionary", { offset: chunkAt, field: "LZMA2 control", expected: "0x01 or >= 0xe0", actual: hex(control, 2) });
    }
    if (reset >= 2) {
      if (pos >= input.length) throw truncated("xz", "LZMA2 properties byte", pos, 1, 0);
      // LZMA2 restricts lc + lp to 4 so the literal tables stay small.
      if (!decoder.setProperties(input[pos]!, 4)) {
        throw decompressError("xz", "invalid LZMA2 lc/lp/pb properties", { offset: pos, field: "LZMA2 properties", expected: "lc + lp <= 4, pb <= 4", actual: hex(input[pos]!, 2) });
      }
      pos++;
      needProps = false;
    } else if (needProps) {
      throw decompressError("xz", "LZMA2 chunk without properties after a dictionary reset", { offset: chunkAt, field: "LZMA2 control", expected: ">= 0xc0", actual: hex(control, 2) });
    }
    if (reset >= 1) decoder.resetState();

    if (out.length + unpackedSize > maxSize) throw out.tooLarge(out.length + unpackedSize);
    const chunkEnd = pos + packedSize;
    if (chunkEnd > input.length) throw truncated("xz", "LZMA2 chunk", pos, packedSize, input.length - pos);
    decoder.initRangeDecoder(input, pos, chunkEnd);
    decoder.decode(out.length + unpackedSize, false);
    if (decoder.inPos !== chunkEnd || !decoder.rangeDecoderFinished) {
      throw decompressError("xz", "LZMA2 chunk did not end where its header said", {
        offset: chunkAt,
        field: "LZMA2 packed size",
        expected: `${packedSize} bytes ending with a clean range coder`,
        actual: `${decoder.inPos - pos} bytes${decoder.rangeDecoderFinished ? "" : ", range coder not finished"}`,
      });
    }
    pos = chunkEnd;
  }
}

/** BCJ x86 may only convert an address whose top byte is 0x00 or 0xFF. */
function isAddressTopByte(b: number): boolean {
  return b === 0 || b === 0xff;
}

const MASK_TO_ALLOWED = [true, true, true, false, true, false, false, false];
const MASK_TO_BIT_NUMBER = [0, 1, 2, 2, 3, 3, 3, 3];

/**
 * Undo the x86 branch-call-jump filter on buf[start, end) in place. The
 * encoder turned the relative targets of E8 (call) and E9 (jmp) into absolute
 * ones so that repeated calls to one function compress well; decoding turns
 * them back. `prevMask` tracks recent E8/E9 bytes so that the decoder skips
 * the same false positives the encoder skipped. Offsets count from the block's
 * start plus the filter's start-offset property; the last 4 bytes of a block
 * are never converted.
 */
export function x86BcjDecode(buf: Uint8Array, start: number, end: number, startOffset: number): void {
  const size = end - start;
  if (size < 5) return;
  let prevMask = 0;
  let prevPos = -5; // relative to start; "no E8/E9 seen yet"
  const limit = size - 5;
  let i = 0;
  while (i <= limit) {
    const b = buf[start + i]!;
    if (b !== 0xe8 && b !== 0xe9) {
      i++;
      continue;
    }
    const gap = i - prevPos;
    prevPos = i;
    if (gap > 5) {
      prevMask = 0;
    } else {
      for (let k = 0; k < gap; k++) prevMask = (prevMask & 0x77) << 1;
    }
    const top = buf[start + i + 4]!;
    if (isAddressTopByte(top) && MASK_TO_ALLOWED[(prevMask >>> 1) & 7] && prevMask >>> 1 < 0x10) {
      const p = start + i + 1;
      let src = (buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24)) >>> 0;
      let dest: number;
      for (;;) {
        dest = (src - (startOffset + i + 5)) >>> 0;
        if (prevMask === 0) break;
        const bitNumber = MASK_TO_BIT_NUMBER[prevMask >>> 1]!;
        if (!isAddressTopByte((dest >>> (24 - bitNumber * 8)) & 0xff)) break;
        src = (dest ^ (2 ** (32 - bitNumber * 8) - 1)) >>> 0;
      }
      // Sign-extend bit 24 into the top byte: targets stay within ±16 MiB.
      dest &= 0x01ffffff;
      if (dest & 0x01000000) dest |= 0xff000000;
      buf[p] = dest & 0xff;
      buf[p + 1] = (dest >>> 8) & 0xff;
      buf[p + 2] = (dest >>> 16) & 0xff;
      buf[p + 3] = (dest >>> 24) & 0xff;
      i += 5;
      prevMask = 0;
    } else {
      i++;
      prevMask |= 1;
      if (isAddressTopByte(top)) prevMask |= 0x10;
    }
  }
}
