/**
 * makedumpfile's flattened format (-F): a stream for pipes. A 4096-byte header
 * ("makedumpfile", type 1, version 1, big-endian int64s) then records of
 * {int64 offset, int64 size} (big-endian) + data, each placing bytes at an
 * offset of the real file; a record of -1/-1 ends it. `makedumpfile -R`
 * replays the records into a seekable file.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";

export const MDF_SIGNATURE = "makedumpfile";
export const MDF_HEADER_SIZE = 4096;
export const MDF_TYPE_FLAT_HEADER = 1n;
export const MDF_VERSION_FLAT_HEADER = 1n;

export function encodeFlatHeader(): Uint8Array {
  const out = new Uint8Array(MDF_HEADER_SIZE);
  for (let i = 0; i < MDF_SIGNATURE.length; i++) out[i] = MDF_SIGNATURE.charCodeAt(i);
  const dv = new DataView(out.buffer);
  dv.setBigInt64(16, MDF_TYPE_FLAT_HEADER, false);
  dv.setBigInt64(24, MDF_VERSION_FLAT_HEADER, false);
  return out;
}

export function encodeFlatRecordHeader(offset: bigint, size: number): Uint8Array {
  const out = new Uint8Array(16);
  const dv = new DataView(out.buffer);
  dv.setBigInt64(0, offset, false);
  dv.setBigInt64(8, BigInt(size), false);
  return out;
}

export const FLAT_END = (() => {
  const out = new Uint8Array(16);
  out.fill(0xff);
  return out;
})();

export interface FlatRecord {
  offset: bigint;
  data: Uint8Array;
}

/** Replays a whole flattened stream held in memory (tests, small dumps); returns the records in order. */
export function parseFlat(stream: Uint8Array, what = "flattened dump"): FlatRecord[] {
  const sig = String.fromCharCode(...stream.subarray(0, 12));
  if (sig !== MDF_SIGNATURE) throw new KexecError("parse", `${what}: no "makedumpfile" signature at offset 0`, { field: "signature", offset: 0, expected: MDF_SIGNATURE, actual: JSON.stringify(sig) }, "this is not a flattened dump (makedumpfile -F); a kdump-compressed or ELF dump is read directly");
  const dv = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const records: FlatRecord[] = [];
  let at = MDF_HEADER_SIZE;
  for (;;) {
    if (at + 16 > stream.length) throw new KexecError("parse", `${what}: stream ends at ${hex(at)} without the end record`, { offset: at }, "the stream was cut short");
    const offset = dv.getBigInt64(at, false);
    const size = dv.getBigInt64(at + 8, false);
    if (offset === -1n && size === -1n) return records;
    if (offset < 0n || size < 0n || BigInt(at + 16) + size > BigInt(stream.length)) {
      throw new KexecError("parse", `${what}: record at ${hex(at)} (offset ${offset}, size ${size}) is invalid or runs past the stream`, { offset: at }, "the flattened stream is truncated or corrupt");
    }
    records.push({ offset, data: stream.subarray(at + 16, at + 16 + Number(size)) });
    at += 16 + Number(size);
  }
}
