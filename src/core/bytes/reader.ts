/**
 * Bounds-checked little-endian reads over a Uint8Array. Every read names the
 * field it is for, so a short or corrupt input produces "field X at offset Y
 * needs N bytes, the input has M" instead of a RangeError from DataView.
 */
import { KexecError } from "../errors.js";

export class ByteReader {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  /** What the bytes are, for messages: "bzImage", "ELF program header 3". */
  readonly what: string;

  constructor(bytes: Uint8Array, what = "input") {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.what = what;
  }

  get length(): number {
    return this.bytes.length;
  }

  has(offset: number, size: number): boolean {
    return offset >= 0 && size >= 0 && offset + size <= this.bytes.length;
  }

  need(offset: number, size: number, field: string): void {
    if (!this.has(offset, size)) {
      throw new KexecError(
        "parse",
        `${this.what}: ${field} at offset 0x${offset.toString(16)} needs ${size} bytes, but the ${this.what} is only ${this.bytes.length} bytes long`,
        { field, offset, expected: `${offset + size} bytes`, actual: `${this.bytes.length} bytes` },
        "the file looks truncated; check that it was copied completely",
      );
    }
  }

  u8(offset: number, field: string): number {
    this.need(offset, 1, field);
    return this.view.getUint8(offset);
  }
  u16(offset: number, field: string): number {
    this.need(offset, 2, field);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number, field: string): number {
    this.need(offset, 4, field);
    return this.view.getUint32(offset, true);
  }
  u64(offset: number, field: string): bigint {
    this.need(offset, 8, field);
    return this.view.getBigUint64(offset, true);
  }
  u16be(offset: number, field: string): number {
    this.need(offset, 2, field);
    return this.view.getUint16(offset, false);
  }
  u32be(offset: number, field: string): number {
    this.need(offset, 4, field);
    return this.view.getUint32(offset, false);
  }
  u64be(offset: number, field: string): bigint {
    this.need(offset, 8, field);
    return this.view.getBigUint64(offset, false);
  }
  /** An unsigned field of 1, 2, 4 or 8 bytes as bigint (for layout tables). */
  uint(offset: number, size: 1 | 2 | 4 | 8, field: string): bigint {
    switch (size) {
      case 1: return BigInt(this.u8(offset, field));
      case 2: return BigInt(this.u16(offset, field));
      case 4: return BigInt(this.u32(offset, field));
      case 8: return this.u64(offset, field);
    }
  }
  slice(offset: number, size: number, field: string): Uint8Array {
    this.need(offset, size, field);
    return this.bytes.subarray(offset, offset + size);
  }
  /** NUL-terminated string starting at offset, at most max bytes; undefined if no NUL in range. */
  cstring(offset: number, max: number, field: string): string | undefined {
    this.need(offset, 1, field);
    const end = Math.min(this.bytes.length, offset + max);
    for (let i = offset; i < end; i++) {
      if (this.bytes[i] === 0) return latin1(this.bytes.subarray(offset, i));
    }
    return undefined;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Bytes as a string, one char per byte (kernel strings are ASCII; this never throws). */
export function latin1(bytes: Uint8Array): string {
  // Most files a machine is read from are a few bytes (a CPU's crash_notes): no subarray for those.
  if (bytes.length <= 4096) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  // A large file (cpuinfo of 1,024 CPUs is 1 MiB) in one native pass when it is ASCII, which its
  // decoding as UTF-8 to as many chars as bytes proves; anything else goes byte by byte below.
  try {
    const ascii = utf8.decode(bytes);
    if (ascii.length === bytes.length) return ascii;
  } catch {
    // Not UTF-8: one char per byte, as below.
  }
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    // apply() takes the typed array as it is; a spread would iterate it (10x slower on /proc/cpuinfo of 1,024 CPUs).
    s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(bytes.length, i + 4096)) as unknown as number[]);
  }
  return s;
}

export function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

/** One buffer holding the chunks in order. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
