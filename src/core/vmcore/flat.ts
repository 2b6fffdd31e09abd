/**
 * makedumpfile's flattened format (-F): a stream for pipes. A 4096-byte block that starts with
 * struct makedumpfile_header, then records of struct makedumpfile_data_header + data, each
 * placing bytes at an offset of the real file; a record of -1/-1 ends it. Its int64s are
 * big-endian whatever the machine (makedumpfile.h). `makedumpfile -R` replays the records
 * into a seekable file; so does FlatReassembler here, fed the stream in chunks of any size.
 */
import { defineLayout, encodeStruct, field, readStruct } from "../bytes/layout.js";
import { latin1 } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";

export const MDF_SIGNATURE = "makedumpfile";
/** MAX_SIZE_MDF_HEADER: the header block, zero after the header proper. */
export const MDF_HEADER_SIZE = 4096;
export const TYPE_FLAT_HEADER = 1n;
export const VERSION_FLAT_HEADER = 1n;
/** No dump has a record of 256 TiB or more: a size beyond it is corruption, not data to wait for. */
export const MAX_FLAT_RECORD = 1n << 48n;
/**
 * Nor does a dump file reach 256 TiB: a record placed beyond is corruption. Node takes a write
 * position past 2^53 for "the current position": a record at offset 2^60 was written at the
 * file's start, and `-R` said Completed.
 */
export const MAX_FLAT_FILE = 1n << 48n;

export const MAKEDUMPFILE_HEADER = defineLayout("struct makedumpfile_header", 32, "big", [
  field("signature", 0, 16, "chars"),
  field("type", 16, 8, "i64"),
  field("version", 24, 8, "i64"),
]);

export const MAKEDUMPFILE_DATA_HEADER = defineLayout("struct makedumpfile_data_header", 16, "big", [
  field("offset", 0, 8, "i64"),
  field("buf_size", 8, 8, "i64"),
]);

export function encodeFlatHeader(): Uint8Array {
  const out = new Uint8Array(MDF_HEADER_SIZE);
  out.set(encodeStruct(MAKEDUMPFILE_HEADER, { signature: MDF_SIGNATURE, type: TYPE_FLAT_HEADER, version: VERSION_FLAT_HEADER }));
  return out;
}

export function encodeFlatRecordHeader(offset: bigint, size: number): Uint8Array {
  return encodeStruct(MAKEDUMPFILE_DATA_HEADER, { offset, buf_size: BigInt(size) });
}

/** The end record: offset and buf_size both -1 (END_FLAG_FLAT_HEADER). */
export const FLAT_END = encodeStruct(MAKEDUMPFILE_DATA_HEADER, { offset: -1n, buf_size: -1n });

export function looksLikeFlat(head: Uint8Array): boolean {
  return head.length >= MDF_SIGNATURE.length && latin1(head.subarray(0, MDF_SIGNATURE.length)) === MDF_SIGNATURE;
}

export interface FlatRecord {
  offset: bigint;
  data: Uint8Array;
}

/**
 * Replays a flattened stream given in chunks, as they come from a pipe: `push` returns the
 * positioned writes the chunk completes; `end` says whether the stream was whole. A stream
 * cut short (no end record) is an error naming how far it got, never a wait for more.
 */
export class FlatReassembler {
  private readonly what: string;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Where in the stream the next unread byte is. */
  private consumed = 0;
  private headerSeen = false;
  private record: { offset: bigint; left: number; at: number } | undefined;
  done = false;
  /** The end of the furthest record written: the size of the reassembled file. */
  fileSize = 0n;

  constructor(what = "flattened dump") {
    this.what = what;
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const head = this.pending[0]!;
      const k = Math.min(head.length, n - got);
      out.set(head.subarray(0, k), got);
      got += k;
      if (k === head.length) this.pending.shift();
      else this.pending[0] = head.subarray(k);
    }
    this.pendingBytes -= n;
    this.consumed += n;
    return out;
  }

  /**
   * The writes `chunk` completes, each with bytes of its own. The caller may reuse `chunk` once
   * this returns (a read buffer): the few bytes kept for the next call (a record header cut by the
   * chunk's end) are copied. Kept as a view, the next read overwrote them, and a header that
   * straddled two 1 MiB reads of `-R` came out as garbage.
   */
  push(chunk: Uint8Array): FlatRecord[] {
    if (this.done) {
      if (chunk.length > 0) this.trailing += chunk.length;
      return [];
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const out = this.replay();
    if (this.pendingBytes > 0) {
      const kept = new Uint8Array(this.pendingBytes);
      let at = 0;
      for (const p of this.pending) { kept.set(p, at); at += p.length; }
      this.pending = [kept];
    }
    return out;
  }

  /** The records the pending bytes complete, taken out of them. */
  private replay(): FlatRecord[] {
    const out: FlatRecord[] = [];
    for (;;) {
      if (!this.headerSeen) {
        if (this.pendingBytes < MDF_HEADER_SIZE) return out;
        const block = this.take(MDF_HEADER_SIZE);
        const h = readStruct(MAKEDUMPFILE_HEADER, block, 0, { what: this.what });
        if (!h.signature.startsWith(MDF_SIGNATURE)) {
          throw new KexecError("parse", `${this.what}: no "makedumpfile" signature at offset 0`, { field: "signature", offset: 0, expected: MDF_SIGNATURE, actual: JSON.stringify(h.signature) },
            "this is not a flattened dump (makedumpfile -F or kexec-ts vmcore save --format flat)");
        }
        if (h.type !== TYPE_FLAT_HEADER) {
          throw new KexecError("parse", `${this.what}: makedumpfile_header.type is ${h.type}, expected ${TYPE_FLAT_HEADER} (TYPE_FLAT_HEADER)`, { field: "type", offset: 16, expected: String(TYPE_FLAT_HEADER), actual: String(h.type) },
            "this is not a flattened dump, or its header is corrupt");
        }
        this.headerSeen = true;
        continue;
      }
      if (this.record === undefined) {
        if (this.pendingBytes < MAKEDUMPFILE_DATA_HEADER.size) return out;
        const at = this.consumed;
        const r = readStruct(MAKEDUMPFILE_DATA_HEADER, this.take(MAKEDUMPFILE_DATA_HEADER.size), 0, { what: this.what });
        if (r.offset === -1n && r.buf_size === -1n) {
          this.done = true;
          if (this.pendingBytes > 0) this.trailing += this.pendingBytes;
          this.pending = [];
          this.pendingBytes = 0;
          return out;
        }
        if (r.offset < 0n || r.buf_size < 0n || r.buf_size > MAX_FLAT_RECORD || r.offset + r.buf_size > MAX_FLAT_FILE) {
          throw new KexecError("parse", `${this.what}: the record header at stream offset ${hex(at)} says offset ${r.offset}, size ${r.buf_size}`,
            { field: "makedumpfile_data_header", offset: at, expected: `offset >= 0, 0 <= size <= ${MAX_FLAT_RECORD}, offset + size <= ${MAX_FLAT_FILE}`, actual: `offset ${r.offset}, size ${r.buf_size}` },
            "the stream is corrupt: it was not written by makedumpfile -F or kexec-ts, or bytes were lost on the way");
        }
        this.record = { offset: r.offset, left: Number(r.buf_size), at };
        // An empty record places nothing; it is reported as it is (makedumpfile -R would take it for the end).
        if (r.buf_size === 0n) {
          out.push({ offset: r.offset, data: new Uint8Array(0) });
          this.record = undefined;
          continue;
        }
      }
      const rec = this.record;
      if (rec.left > 0 && this.pendingBytes === 0) return out;
      const n = Math.min(rec.left, this.pendingBytes);
      const data = this.take(n);
      if (n > 0) out.push({ offset: rec.offset, data });
      rec.offset += BigInt(n);
      rec.left -= n;
      if (rec.offset > this.fileSize) this.fileSize = rec.offset;
      if (rec.left === 0) this.record = undefined;
    }
  }

  /** Bytes after the end record (ignored, as makedumpfile -R ignores them). */
  trailing = 0;

  /** The stream has ended: throws unless the end record was seen. */
  end(): void {
    if (this.done) return;
    const where = this.record
      ? `inside the record that started at stream offset ${hex(this.record.at)} (${this.record.left} of its bytes missing)`
      : !this.headerSeen ? `in the ${MDF_HEADER_SIZE}-byte header (${this.pendingBytes} bytes read)` : `after ${hex(this.consumed + this.pendingBytes)} bytes, before the end record`;
    throw new KexecError("parse", `${this.what}: the stream ends ${where}`, { field: "end record", offset: this.consumed + this.pendingBytes, expected: "a record of offset -1, size -1" },
      "the flattened stream was cut short (the writer died or the pipe broke): what was reassembled is incomplete");
  }
}

/** Replays a whole flattened stream held in memory (tests, small dumps); returns the records in order. */
export function parseFlat(stream: Uint8Array, what = "flattened dump"): FlatRecord[] {
  const r = new FlatReassembler(what);
  const records = r.push(stream);
  r.end();
  return records;
}
