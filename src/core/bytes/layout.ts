/**
 * Binary layouts as data. A struct is a table of fields — named as the C header spells them,
 * with offset, size and kind — and one generic reader, writer and dump work from the table, so
 * a field's place is written down once. Tables cite the header they come from; each is
 * cross-checked in tests against an independent source (pahole on the kernel's BTF, readelf,
 * files written by makedumpfile), so a reader and a writer sharing a wrong offset cannot pass.
 */
import { KexecError } from "../errors.js";
import { latin1 } from "./reader.js";

/**
 * - `uint`: unsigned, 1, 2 or 4 bytes, as a number
 * - `u64`: unsigned as a bigint, 4 or 8 bytes (addresses, offsets and sizes that are 32-bit in
 *   one word size and 64-bit in the other keep one type)
 * - `i64`: signed 8 bytes as a bigint (the flattened format's int64_t)
 * - `chars`: a NUL-padded char array, as a string
 * - `bytes`: raw bytes
 */
export type FieldKind = "uint" | "u64" | "i64" | "chars" | "bytes";

export interface Field<N extends string = string, K extends FieldKind = FieldKind> {
  readonly name: N;
  readonly offset: number;
  readonly size: number;
  readonly kind: K;
  /** The format or protocol version that introduced the field (boot protocol, kdump header_version); 0: always there. */
  readonly since: number;
}

export interface Layout<F extends Field = Field> {
  /** The C name: "struct elf64_phdr", "struct disk_dump_header (x86_64)". */
  readonly name: string;
  readonly size: number;
  readonly endian: "little" | "big";
  readonly fields: readonly F[];
}

type KindValue<K extends FieldKind> = K extends "uint" ? number : K extends "u64" | "i64" ? bigint : K extends "chars" ? string : Uint8Array;

/** The decoded struct: one property per field, typed by its kind. */
export type StructValues<L extends Layout> = { [F in L["fields"][number] as F["name"]]: KindValue<F["kind"]> };
export type FieldName<L extends Layout> = L["fields"][number]["name"];

export function field<const N extends string, const K extends FieldKind>(name: N, offset: number, size: number, kind: K, since = 0): Field<N, K> {
  return { name, offset, size, kind, since };
}

/** A layout, checked once: fields in order, inside the struct, not overlapping, sizes that fit their kind. */
export function defineLayout<const F extends Field>(name: string, size: number, endian: "little" | "big", fields: readonly F[]): Layout<F> {
  let end = 0;
  for (const f of fields) {
    const sizes: Record<FieldKind, readonly number[]> = { uint: [1, 2, 4], u64: [4, 8], i64: [8], chars: [], bytes: [] };
    const allowed = sizes[f.kind];
    if ((allowed.length > 0 && !allowed.includes(f.size)) || f.size <= 0) throw tableBug(`${name}.${f.name}: a ${f.kind} field cannot be ${f.size} bytes`);
    if (f.offset < end) throw tableBug(`${name}.${f.name} at ${f.offset} overlaps the field before it (ends at ${end})`);
    end = f.offset + f.size;
    if (end > size) throw tableBug(`${name}.${f.name} ends at ${end}, past the struct's ${size} bytes`);
  }
  return { name, size, endian, fields };
}

/** A table or a field name that is wrong is kexec-ts' own mistake. */
function tableBug(message: string): KexecError {
  return new KexecError("internal", message, {}, "this is a bug in kexec-ts; please report it");
}

export function fieldOf<L extends Layout>(layout: L, name: FieldName<L>): L["fields"][number] {
  const f = layout.fields.find((x) => x.name === name);
  if (!f) throw tableBug(`${layout.name} has no field ${name}`);
  return f;
}

/** Offset of a field from the start of the struct. */
export function offsetOf<L extends Layout>(layout: L, name: FieldName<L>): number {
  return fieldOf(layout, name).offset;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface ReadOptions {
  /** What the bytes are, for messages: "vmlinuz", "program header 3". */
  what?: string;
  /** Read only the fields with since <= version (older formats and protocols lack the newer ones). */
  version?: number;
  /** Read only the fields that end at or before this offset from the struct's start (a header shorter than the struct). */
  limit?: number;
}

/**
 * The struct at `at`. A field that does not fit in `bytes` is a parse error naming the field,
 * its offset and both lengths; fields left out by `version` or `limit` are absent.
 */
export function readStruct<L extends Layout>(layout: L, bytes: Uint8Array, at = 0, options: ReadOptions = {}): StructValues<L> {
  const what = options.what ?? layout.name;
  const dv = view(bytes);
  const little = layout.endian === "little";
  const out: Record<string, unknown> = {};
  for (const f of layout.fields) {
    if (options.version !== undefined && f.since > options.version) continue;
    if (options.limit !== undefined && f.offset + f.size > options.limit) continue;
    const o = at + f.offset;
    if (o < 0 || o + f.size > bytes.length) {
      throw new KexecError("parse", `${what}: ${f.name} at offset 0x${o.toString(16)} needs ${f.size} bytes, but the input is only ${bytes.length} bytes long`,
        { field: f.name, offset: o, expected: `${o + f.size} bytes`, actual: `${bytes.length} bytes` }, "the file looks truncated; check that it was copied completely");
    }
    switch (f.kind) {
      case "uint": out[f.name] = f.size === 1 ? dv.getUint8(o) : f.size === 2 ? dv.getUint16(o, little) : dv.getUint32(o, little); break;
      case "u64": out[f.name] = f.size === 8 ? dv.getBigUint64(o, little) : BigInt(dv.getUint32(o, little)); break;
      case "i64": out[f.name] = dv.getBigInt64(o, little); break;
      case "chars": {
        let end = o;
        while (end < o + f.size && bytes[end] !== 0) end++;
        out[f.name] = latin1(bytes.subarray(o, end));
        break;
      }
      case "bytes": out[f.name] = bytes.subarray(o, o + f.size); break;
    }
  }
  return out as StructValues<L>;
}

/**
 * Writes the given fields of the struct at `at` in `bytes`; fields not given are left as they
 * are. A value that does not fit its field is an internal error naming it: callers check what
 * a user can make too big (an ELF32 core header above 4 GiB) before they write it.
 */
export function writeStruct<L extends Layout>(layout: L, bytes: Uint8Array, at: number, values: Partial<StructValues<L>>): void {
  const dv = view(bytes);
  const little = layout.endian === "little";
  const given = values as Record<string, unknown>;
  for (const f of layout.fields) {
    const v = given[f.name];
    if (v === undefined) continue;
    const o = at + f.offset;
    if (o < 0 || o + f.size > bytes.length) {
      throw new KexecError("internal", `${layout.name}.${f.name} at offset 0x${o.toString(16)} does not fit in a ${bytes.length}-byte buffer`, { field: f.name, offset: o }, "this is a bug in kexec-ts; please report it");
    }
    const tooBig = (max: bigint, actual: bigint) => {
      throw valueTooBig(layout, f, max, actual);
    };
    switch (f.kind) {
      case "uint": {
        const n = v as number;
        const max = uintMax(f.size);
        if (!Number.isInteger(n) || n < 0 || n > max) tooBig(BigInt(max), BigInt(Math.trunc(n)));
        if (f.size === 1) dv.setUint8(o, n); else if (f.size === 2) dv.setUint16(o, n, little); else dv.setUint32(o, n, little);
        break;
      }
      case "u64": {
        const n = v as bigint;
        const max = u64Max(f.size);
        if (n < 0n || n > max) tooBig(max, n);
        if (f.size === 8) dv.setBigUint64(o, n, little); else dv.setUint32(o, Number(n), little);
        break;
      }
      case "i64": dv.setBigInt64(o, v as bigint, little); break;
      case "chars": {
        const s = v as string;
        if (s.length > f.size) tooBig(BigInt(f.size), BigInt(s.length));
        for (let i = 0; i < f.size; i++) bytes[o + i] = i < s.length ? s.charCodeAt(i) & 0xff : 0;
        break;
      }
      case "bytes": {
        const b = v as Uint8Array;
        if (b.length > f.size) tooBig(BigInt(f.size), BigInt(b.length));
        bytes.set(b, o);
        bytes.fill(0, o + b.length, o + f.size);
        break;
      }
    }
  }
}

/** The largest value a "uint" field of `size` bytes holds. */
function uintMax(size: number): number {
  return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
}

/** The largest value a "u64" field (8 bytes, or 4 where ELF32 narrows it) holds. */
function u64Max(size: number): bigint {
  return size === 8 ? (1n << 64n) - 1n : 0xffffffffn;
}

/** The error of writeStruct for a value past its field's maximum. */
function valueTooBig(layout: Layout, f: Field, max: bigint, actual: bigint): KexecError {
  return new KexecError("internal", `${layout.name}.${f.name}: ${actual} does not fit in ${f.size} bytes`, { field: f.name, expected: `<= ${max}`, actual: String(actual) },
    "a value was not checked before it was written: this is a bug in kexec-ts; please report it");
}

/** A fresh struct, zero where no value is given. */
export function encodeStruct<L extends Layout>(layout: L, values: Partial<StructValues<L>>): Uint8Array {
  const out = new Uint8Array(layout.size);
  writeStruct(layout, out, 0, values);
  return out;
}

/** One line per field present in `values`: offset, name, value (the debug dump). */
export function dumpStruct<L extends Layout>(layout: L, values: Partial<StructValues<L>>): string[] {
  const given = values as Record<string, unknown>;
  const lines: string[] = [];
  for (const f of layout.fields) {
    const v = given[f.name];
    if (v === undefined) continue;
    const shown = typeof v === "number" || typeof v === "bigint" ? `0x${v.toString(16)}` : typeof v === "string" ? JSON.stringify(v) : Array.from(v as Uint8Array, (b) => b.toString(16).padStart(2, "0")).join(" ");
    lines.push(`0x${f.offset.toString(16).padStart(3, "0")}  ${f.name.padEnd(24)} ${shown}`);
  }
  return lines;
}
