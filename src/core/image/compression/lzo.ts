/**
 * LZO as the kernel build stores it: an lzop file (`lzop -9`), i.e. a header
 * (magic, versions, method, flags, mode, mtime, name, header checksum) and
 * blocks of up to 256 KiB, each with its sizes, optional Adler-32/CRC-32 of
 * the data, and LZO1X-compressed (or stored) bytes, ended by a zero size.
 *
 * The LZO1X instruction set is as described in the kernel's
 * Documentation/staging/lzo.rst; the header layout is lzop's.
 */
import { hex } from "../../format.js";
import { type Decoded, Output, adler32, crc32, decompressError, hex32, truncated, u32be } from "./common.js";

const MAGIC = [0x89, 0x4c, 0x5a, 0x4f, 0x00, 0x0d, 0x0a, 0x1a, 0x0a];

// lzop header flags.
const F_ADLER32_D = 0x1;
const F_ADLER32_C = 0x2;
const F_H_EXTRA_FIELD = 0x40;
const F_CRC32_D = 0x100;
const F_CRC32_C = 0x200;
const F_MULTIPART = 0x400;
const F_H_FILTER = 0x800;
const F_H_CRC32 = 0x1000;

/** lzop never writes blocks above 64 MiB (its own limit); anything larger is corruption. */
const MAX_BLOCK = 64 << 20;

class Cursor {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
  ) {}
  need(count: number, field: string): void {
    if (this.pos + count > this.bytes.length) throw truncated("lzo", field, this.pos, count, this.bytes.length - this.pos);
  }
  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.pos++]!;
  }
  u16(field: string): number {
    this.need(2, field);
    const v = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = u32be(this.bytes, this.pos);
    this.pos += 4;
    return v;
  }
}

export function decompressLzop(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  const c = new Cursor(input, 0);
  c.need(MAGIC.length, "the lzop magic");
  for (let i = 0; i < MAGIC.length; i++) {
    if (input[i] !== MAGIC[i]) {
      throw decompressError("lzo", "not an lzop file", { offset: i, field: "magic", expected: "89 4c 5a 4f 00 0d 0a 1a 0a", actual: hex(input[i]!, 2) });
    }
  }
  c.pos = MAGIC.length;
  const headerStart = c.pos;
  const version = c.u16("version");
  c.u16("library version");
  if (version >= 0x0940) c.u16("version needed to extract");
  const methodAt = c.pos;
  const method = c.u8("method");
  if (method < 1 || method > 3) {
    throw decompressError("lzo", "unsupported compression method", { offset: methodAt, field: "method", expected: "1, 2 or 3 (LZO1X)", actual: `${method}` });
  }
  if (version >= 0x0940) c.u8("level");
  const flagsAt = c.pos;
  const flags = c.u32("flags");
  if (flags & F_H_FILTER) {
    throw decompressError("lzo", "lzop filters are not supported", { offset: flagsAt, field: "flags", expected: "no F_H_FILTER", actual: hex32(flags) });
  }
  if (flags & F_MULTIPART) {
    throw decompressError("lzo", "multi-part lzop files are not supported", { offset: flagsAt, field: "flags", expected: "no F_MULTIPART", actual: hex32(flags) });
  }
  c.u32("mode");
  c.u32("mtime");
  if (version >= 0x0940) c.u32("mtime high");
  const nameLength = c.u8("name length");
  c.need(nameLength, "name");
  c.pos += nameLength;
  const headerEnd = c.pos;
  const storedHeaderSum = c.u32("header checksum");
  const headerSum = flags & F_H_CRC32 ? crc32(input, headerStart, headerEnd) : adler32(input, headerStart, headerEnd);
  if (storedHeaderSum !== headerSum) {
    throw decompressError("lzo", "header checksum mismatch", { offset: headerEnd, field: "header checksum", expected: hex32(storedHeaderSum), actual: hex32(headerSum) });
  }
  if (flags & F_H_EXTRA_FIELD) {
    const length = c.u32("extra field length");
    c.need(length + 4, "extra field");
    c.pos += length + 4;
  }

  const out = new Output("lzo", sizeHint ?? input.length * 3, maxSize);
  for (let block = 0; ; block++) {
    const at = c.pos;
    const dLen = c.u32("block uncompressed size");
    if (dLen === 0) break;
    const cLen = c.u32("block compressed size");
    if (dLen > MAX_BLOCK || cLen > dLen) {
      throw decompressError("lzo", `block ${block} has impossible sizes`, {
        offset: at,
        field: "block sizes",
        expected: `uncompressed <= ${MAX_BLOCK} and compressed <= uncompressed`,
        actual: `uncompressed ${dLen}, compressed ${cLen}`,
      });
    }
    const dAdler = flags & F_ADLER32_D ? c.u32("block data Adler-32") : undefined;
    const dCrc = flags & F_CRC32_D ? c.u32("block data CRC-32") : undefined;
    const stored = cLen === dLen;
    const cAdler = !stored && flags & F_ADLER32_C ? c.u32("block compressed Adler-32") : undefined;
    const cCrc = !stored && flags & F_CRC32_C ? c.u32("block compressed CRC-32") : undefined;
    c.need(cLen, `block ${block} data`);
    const dataAt = c.pos;
    const sums: [number | undefined, (b: Uint8Array, s: number, e: number) => number, string, Uint8Array, number, number][] = [
      [cAdler, adler32, "compressed Adler-32", input, dataAt, dataAt + cLen],
      [cCrc, (b, s, e) => crc32(b, s, e), "compressed CRC-32", input, dataAt, dataAt + cLen],
    ];
    for (const [want, fn, name, bytes, s, e] of sums) {
      if (want !== undefined && fn(bytes, s, e) !== want) {
        throw decompressError("lzo", `block ${block} ${name} mismatch`, { offset: at, field: name, expected: hex32(want), actual: hex32(fn(bytes, s, e)) });
      }
    }
    const outStart = out.length;
    if (outStart + dLen > maxSize) throw out.tooLarge(outStart + dLen);
    if (stored) out.append(input.subarray(dataAt, dataAt + cLen));
    else lzo1xDecode(input, dataAt, dataAt + cLen, out, dLen, block);
    c.pos = dataAt + cLen;
    for (const [want, fn, name] of [[dAdler, adler32, "data Adler-32"], [dCrc, (b: Uint8Array, s: number, e: number) => crc32(b, s, e), "data CRC-32"]] as const) {
      if (want !== undefined) {
        const got = fn(out.buf, outStart, out.length);
        if (got !== want) throw decompressError("lzo", `block ${block} ${name} mismatch`, { offset: at, field: name, expected: hex32(want), actual: hex32(got) });
      }
    }
  }
  return { bytes: out.result(), end: c.pos };
}

/**
 * One raw LZO1X block with no lzop container, as makedumpfile stores each page
 * of a kdump-compressed dump (lzo1x_1 output, end marker included).
 */
export function decompressLzo1xBlock(input: Uint8Array, outSize: number): Uint8Array {
  const out = new Output("lzo", outSize, outSize);
  lzo1xDecode(input, 0, input.length, out, outSize, 0);
  return out.buf.length === outSize ? out.buf : out.buf.subarray(0, outSize);
}

/** The same block decoded into `into` (exactly into.length bytes), allocating nothing for the output. */
export function decompressLzo1xBlockInto(input: Uint8Array, into: Uint8Array): void {
  lzo1xDecode(input, 0, input.length, Output.over("lzo", into), into.length, 0);
}

/** Decode one LZO1X block of exactly `outSize` bytes from input[start, end). */
function lzo1xDecode(input: Uint8Array, start: number, end: number, out: Output, outSize: number, block: number): void {
  out.reserve(outSize);
  const buf = out.buf;
  const outStart = out.length;
  const outEnd = outStart + outSize;
  let ip = start;
  let op = outStart;
  const fail = (what: string, expected?: string, actual?: string): never => {
    throw decompressError("lzo", `block ${block}: ${what}`, { offset: ip, expected, actual });
  };
  const byte = (): number => {
    if (ip >= end) fail("compressed data ends inside an instruction");
    return input[ip++]!;
  };
  /** A length continued by zero bytes (255 each) and a final non-zero byte. */
  const extendedLength = (base: number): number => {
    let length = base;
    let b = byte();
    while (b === 0) {
      length += 255;
      if (length > outSize) fail("length runs past the block", `at most ${outSize}`, `${length}`);
      b = byte();
    }
    return length + b;
  };
  const literals = (count: number): void => {
    if (ip + count > end) fail("literal run past the end of the compressed data", `at most ${end - ip}`, `${count}`);
    if (op + count > outEnd) fail("literal run past the block's declared size", `at most ${outEnd - op}`, `${count}`);
    buf.set(input.subarray(ip, ip + count), op);
    ip += count;
    op += count;
  };
  const match = (distance: number, length: number): void => {
    if (distance > op - outStart) fail("match reaches before the start of the block", `at most ${op - outStart}`, `${distance}`);
    if (op + length > outEnd) fail("match runs past the block's declared size", `at most ${outEnd - op}`, `${length}`);
    let from = op - distance;
    const stop = op + length;
    if (distance >= length) {
      buf.copyWithin(op, from, from + length);
      op = stop;
    } else {
      while (op < stop) buf[op++] = buf[from++]!;
    }
  };

  // `state`: literals copied by the previous instruction (0..3), or 4 for "4 or more".
  let state = 0;
  if (ip < end && input[ip]! > 17) {
    const count = input[ip++]! - 17;
    literals(count);
    state = count < 4 ? count : 4;
  }
  for (;;) {
    const t = byte();
    let trailing: number;
    if (t < 16) {
      if (state === 0) {
        literals((t === 0 ? extendedLength(15) : t) + 3);
        state = 4;
        continue;
      }
      const h = byte();
      if (state < 4) match((t >>> 2) + (h << 2) + 1, 2);
      else match((t >>> 2) + (h << 2) + 2049, 3);
      trailing = t & 3;
    } else if (t < 32) {
      const length = (t & 7) === 0 ? extendedLength(7) + 2 : (t & 7) + 2;
      const lo = byte(), hi = byte();
      const d = (lo >>> 2) | (hi << 6);
      const distance = 16384 + ((t & 8) << 11) + d;
      if (distance === 16384) {
        if (length !== 3) fail("malformed end-of-stream marker", "11 00 00");
        break;
      }
      match(distance, length);
      trailing = lo & 3;
    } else if (t < 64) {
      const length = (t & 31) === 0 ? extendedLength(31) + 2 : (t & 31) + 2;
      const lo = byte(), hi = byte();
      match(((lo >>> 2) | (hi << 6)) + 1, length);
      trailing = lo & 3;
    } else {
      const h = byte();
      match(((t >>> 2) & 7) + (h << 3) + 1, (t >>> 5) + 1);
      trailing = t & 3;
    }
    if (trailing > 0) literals(trailing);
    state = trailing;
  }
  if (ip !== end) fail("bytes left after the end-of-stream marker", `${end - start} bytes`, `${ip - start} bytes used`);
  if (op !== outEnd) fail("block decompressed to the wrong size", `${outSize} bytes`, `${op - outStart} bytes`);
  out.length = op;
}
