/**
 * What every codec shares: the error it raises, the growable output buffer
 * that enforces maxSize, and the checksums the containers carry.
 */
import { KexecError } from "../../errors.js";
import { hex, size } from "../../format.js";

export type Compression = "gzip" | "bzip2" | "lzma" | "xz" | "lzo" | "lz4" | "zstd";

export const COMPRESSIONS: readonly Compression[] = ["gzip", "bzip2", "lzma", "xz", "lzo", "lz4", "zstd"];

/**
 * Magic numbers, as in the kernel's lib/decompress.c table. Here, beside the type, not with the
 * decoders: telling what compresses a payload must not load them (fflate and fzstd build their tables
 * when their modules load, a few ms of every `check`).
 */
const MAGICS: readonly { kind: Compression; magic: readonly number[] }[] = [
  { kind: "gzip", magic: [0x1f, 0x8b] },
  { kind: "gzip", magic: [0x1f, 0x9e] },
  { kind: "bzip2", magic: [0x42, 0x5a, 0x68] },
  { kind: "lzma", magic: [0x5d, 0x00, 0x00] },
  { kind: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { kind: "lzo", magic: [0x89, 0x4c, 0x5a, 0x4f] },
  { kind: "lz4", magic: [0x02, 0x21, 0x4c, 0x18] },
  { kind: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd] },
];

export function detectCompression(bytes: Uint8Array): Compression | undefined {
  for (const { kind, magic } of MAGICS) {
    if (bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b)) return kind;
  }
  return undefined;
}

/** A decoder's result: the bytes, and where in the input its stream ended (trailing bytes start there). */
export interface Decoded {
  bytes: Uint8Array;
  end: number;
}

/** The command that checks a stream of each kind, for hints. */
const TEST_COMMAND: Record<Compression, string> = {
  gzip: "gzip -t",
  bzip2: "bzip2 -t",
  lzma: "lzma -t",
  xz: "xz -t",
  lzo: "lzop -t",
  lz4: "lz4 -t",
  zstd: "zstd -t",
};

export interface FailureDetail {
  /** Offset in the compressed stream where decoding went wrong, when known. */
  offset?: number;
  field?: string;
  expected?: string;
  actual?: string;
  hint?: string;
}

/** A KexecError("decompress") that names the codec, the offset and expected vs found. */
export function decompressError(codec: Compression, what: string, detail: FailureDetail = {}): KexecError {
  let message = `${codec}: ${what}`;
  if (detail.offset !== undefined) message += ` at offset ${hex(detail.offset)} of the compressed stream`;
  if (detail.expected !== undefined || detail.actual !== undefined) {
    message += ` (expected ${detail.expected ?? "?"}, found ${detail.actual ?? "?"})`;
  }
  const hint =
    detail.hint ??
    `the ${codec} stream is corrupt or truncated; re-copy the kernel image, or extract the payload and run \`${TEST_COMMAND[codec]}\` on it`;
  const data: Record<string, unknown> = { codec };
  if (detail.field !== undefined) data["field"] = detail.field;
  if (detail.offset !== undefined) data["offset"] = detail.offset;
  if (detail.expected !== undefined) data["expected"] = detail.expected;
  if (detail.actual !== undefined) data["actual"] = detail.actual;
  return new KexecError("decompress", message, data, hint);
}

/** "truncated" errors all look alike: the stream ended while `field` still needed bytes. */
export function truncated(codec: Compression, field: string, offset: number, needed: number, available: number): KexecError {
  return decompressError(codec, `stream ends inside ${field}`, {
    offset,
    field,
    expected: `${needed} more byte${needed === 1 ? "" : "s"}`,
    actual: `${Math.max(0, available)} byte${available === 1 ? "" : "s"}`,
  });
}

/**
 * Decompressed bytes, grown by doubling but never beyond `max`, so a corrupt
 * length field or a decompression bomb fails with a message instead of
 * exhausting memory.
 */
export class Output {
  buf: Uint8Array;
  length = 0;

  constructor(
    readonly codec: Compression,
    initial: number,
    readonly max: number,
  ) {
    this.buf = new Uint8Array(Math.max(0, Math.min(initial, max)));
  }

  /** An output that is `buf` and can grow no further: a decoder fills a caller's buffer in place. */
  static over(codec: Compression, buf: Uint8Array): Output {
    const out = new Output(codec, 0, buf.length);
    out.buf = buf;
    return out;
  }

  /** Make room for `count` more bytes or throw when that would pass `max`. */
  reserve(count: number): void {
    const need = this.length + count;
    if (need <= this.buf.length) return;
    if (need > this.max) throw this.tooLarge(need);
    let capacity = Math.max(this.buf.length * 2, 1 << 16);
    while (capacity < need) capacity *= 2;
    const next = new Uint8Array(Math.min(capacity, this.max));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  /** Grow as far as possible towards length + count (for decoders that write whole symbols). */
  reserveUpTo(count: number): void {
    const need = Math.min(this.length + count, this.max);
    if (need > this.buf.length) this.reserve(need - this.length);
  }

  tooLarge(need: number): KexecError {
    return decompressError(this.codec, `output would exceed the ${size(this.max)} limit`, {
      field: "maxSize",
      expected: `at most ${this.max} bytes`,
      actual: `at least ${need} bytes`,
      hint: "the stream is corrupt (a payload expanding this far is no kernel), or raise maxSize",
    });
  }

  append(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** The bytes written; copied when the spare capacity would waste more than an eighth. */
  result(): Uint8Array {
    if (this.length === this.buf.length) return this.buf;
    if (this.buf.length - this.length > this.buf.length / 8) return this.buf.slice(0, this.length);
    return this.buf.subarray(0, this.length);
  }
}

function makeTable(poly: number, reflected: boolean): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = reflected ? n : n << 24;
    for (let k = 0; k < 8; k++) {
      if (reflected) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
      else c = c & 0x80000000 ? (c << 1) ^ poly : c << 1;
    }
    table[n] = c >>> 0;
  }
  return table;
}

let crc32Table: Uint32Array | undefined;
let crc32MsbTable: Uint32Array | undefined;

/** CRC-32 as gzip, xz, lzop and zip compute it (reflected, polynomial 0xEDB88320). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, seed = 0): number {
  const table = (crc32Table ??= makeTable(0xedb88320, true));
  let c = ~seed;
  for (let i = start; i < end; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** bzip2's CRC-32: the same polynomial, most significant bit first, no reflection. */
export function crc32Msb(bytes: Uint8Array, start: number, end: number): number {
  const table = (crc32MsbTable ??= makeTable(0x04c11db7, false));
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = table[((c >>> 24) ^ bytes[i]!) & 0xff]! ^ (c << 8);
  return ~c >>> 0;
}

let crc64Lo: Uint32Array | undefined;
let crc64Hi: Uint32Array | undefined;

/** CRC-64/XZ (ECMA-182 reflected), kept as two 32-bit halves; returned as bigint. */
export function crc64(bytes: Uint8Array, start: number, end: number): bigint {
  if (!crc64Lo || !crc64Hi) {
    crc64Lo = new Uint32Array(256);
    crc64Hi = new Uint32Array(256);
    // The reflected ECMA-182 polynomial 0xC96C5795D7870F42, split in halves.
    const polyHi = 0xc96c5795, polyLo = 0xd7870f42;
    for (let n = 0; n < 256; n++) {
      let lo = n, hi = 0;
      for (let k = 0; k < 8; k++) {
        const carry = lo & 1;
        lo = ((lo >>> 1) | (hi << 31)) >>> 0;
        hi = hi >>> 1;
        if (carry) {
          lo = (lo ^ polyLo) >>> 0;
          hi = (hi ^ polyHi) >>> 0;
        }
      }
      crc64Lo[n] = lo;
      crc64Hi[n] = hi;
    }
  }
  const tLo = crc64Lo, tHi = crc64Hi;
  let lo = 0xffffffff, hi = 0xffffffff;
  for (let i = start; i < end; i++) {
    const idx = (lo ^ bytes[i]!) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ tLo[idx]!) >>> 0;
    hi = ((hi >>> 8) ^ tHi[idx]!) >>> 0;
  }
  return (BigInt((~hi) >>> 0) << 32n) | BigInt((~lo) >>> 0);
}

/** Adler-32 as lzop uses it. */
export function adler32(bytes: Uint8Array, start: number, end: number): number {
  let a = 1, b = 0;
  let i = start;
  while (i < end) {
    // Reduce every 5552 bytes, as zlib does, so the sums stay small integers.
    const stop = Math.min(end, i + 5552);
    for (; i < stop; i++) {
      a += bytes[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

export function u32le(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

export function u32be(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0;
}

export function hex32(value: number): string {
  return hex(value >>> 0, 8);
}
