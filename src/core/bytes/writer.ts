/** Little-endian writes into a fixed-size buffer (boot_params, core headers) or a growable one. */
import { KexecError } from "../errors.js";

export class ByteWriter {
  bytes: Uint8Array;
  private view: DataView;
  private readonly growable: boolean;
  /** High-water mark: the number of bytes written so far (for growable buffers). */
  length = 0;

  constructor(sizeOrBytes: number | Uint8Array, growable = false) {
    this.bytes = typeof sizeOrBytes === "number" ? new Uint8Array(sizeOrBytes) : sizeOrBytes;
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.growable = growable;
    if (typeof sizeOrBytes !== "number") this.length = sizeOrBytes.length;
  }

  static growable(initial = 4096): ByteWriter {
    return new ByteWriter(initial, true);
  }

  private ensure(offset: number, size: number, field: string): void {
    const end = offset + size;
    if (end <= this.bytes.length) {
      if (end > this.length) this.length = end;
      return;
    }
    if (!this.growable) {
      // Writers are sized by kexec-ts from the layout it writes: running past the end is a bug, not bad input.
      throw new KexecError("internal", `${field} at offset 0x${offset.toString(16)} does not fit in a ${this.bytes.length}-byte buffer`, { field, offset }, "this is a bug in kexec-ts' layout sizes; please report it with the command line");
    }
    // From an empty buffer too: doubling zero would never reach `end`.
    let cap = Math.max(this.bytes.length * 2, 64);
    while (cap < end) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes);
    this.bytes = next;
    this.view = new DataView(next.buffer);
    this.length = end;
  }

  u8(offset: number, value: number, field = "u8"): void {
    this.ensure(offset, 1, field);
    this.view.setUint8(offset, value);
  }
  u16(offset: number, value: number, field = "u16"): void {
    this.ensure(offset, 2, field);
    this.view.setUint16(offset, value, true);
  }
  u32(offset: number, value: number, field = "u32"): void {
    this.ensure(offset, 4, field);
    this.view.setUint32(offset, value >>> 0, true);
  }
  u64(offset: number, value: bigint, field = "u64"): void {
    this.ensure(offset, 8, field);
    this.view.setBigUint64(offset, BigInt.asUintN(64, value), true);
  }
  uint(offset: number, size: 1 | 2 | 4 | 8, value: bigint, field = "uint"): void {
    switch (size) {
      case 1: return this.u8(offset, Number(value & 0xffn), field);
      case 2: return this.u16(offset, Number(value & 0xffffn), field);
      case 4: return this.u32(offset, Number(value & 0xffffffffn), field);
      case 8: return this.u64(offset, value, field);
    }
  }
  bytesAt(offset: number, data: Uint8Array, field = "bytes"): void {
    this.ensure(offset, data.length, field);
    this.bytes.set(data, offset);
  }
  /** The written part (growable) or the whole buffer (fixed). */
  finish(): Uint8Array {
    return this.growable ? this.bytes.slice(0, this.length) : this.bytes;
  }
}
