/**
 * gzip (`gzip -n -f -9`) through fflate's streaming inflater. We parse the
 * gzip header ourselves (to name the field that is wrong), feed the deflate
 * data in slices so that output beyond maxSize stops the decoder early, and
 * check the CRC-32/ISIZE trailer, which fflate's one-shot gunzip does not
 * locate reliably when bytes (the kernel's size) follow the stream.
 */
import { Inflate } from "fflate";
import { hex } from "../../format.js";
import { type Decoded, Output, crc32, decompressError, hex32, truncated, u32le } from "./common.js";

const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const SLICE = 64 << 10;

/** The offset where the deflate data starts, after the header and its optional fields. */
function skipHeader(input: Uint8Array): number {
  if (input.length < 10) throw truncated("gzip", "the 10-byte header", 0, 10, input.length);
  // 1f 9e is the magic of gzip 0.5 and older; the kernel's table accepts both.
  if (input[0] !== 0x1f || (input[1] !== 0x8b && input[1] !== 0x9e)) {
    throw decompressError("gzip", "not a gzip stream", { offset: 0, field: "magic", expected: "1f 8b", actual: `${hex(input[0]!, 2)} ${hex(input[1]!, 2)}` });
  }
  if (input[2] !== 8) {
    throw decompressError("gzip", "unknown compression method", { offset: 2, field: "CM", expected: "8 (deflate)", actual: `${input[2]}` });
  }
  const flags = input[3]!;
  if (flags & 0xe0) throw decompressError("gzip", "reserved header flags are set", { offset: 3, field: "FLG", expected: "bits 5-7 clear", actual: hex(flags, 2) });
  let pos = 10;
  if (flags & FEXTRA) {
    if (pos + 2 > input.length) throw truncated("gzip", "the extra field length", pos, 2, input.length - pos);
    pos += 2 + (input[pos]! | (input[pos + 1]! << 8));
  }
  for (const [flag, field] of [[FNAME, "the file name"], [FCOMMENT, "the comment"]] as const) {
    if (flags & flag) {
      while (pos < input.length && input[pos] !== 0) pos++;
      if (pos >= input.length) throw truncated("gzip", field, pos, 1, 0);
      pos++;
    }
  }
  if (flags & FHCRC) pos += 2;
  if (pos >= input.length) throw truncated("gzip", "the header", pos, 1, 0);
  return pos;
}

export function decompressGzip(input: Uint8Array, sizeHint: number | undefined, maxSize: number): Decoded {
  const dataStart = skipHeader(input);
  const out = new Output("gzip", sizeHint ?? input.length * 4, maxSize);
  let finished = false;
  const inflater = new Inflate((chunk, final) => {
    out.append(chunk);
    if (final) finished = true;
  });
  let pos = dataStart;
  try {
    while (pos < input.length) {
      const start = pos;
      pos = Math.min(input.length, pos + SLICE);
      inflater.push(input.subarray(start, pos), pos === input.length);
    }
  } catch (e) {
    if (e instanceof Error && e.name === "KexecError") throw e;
    const why = e instanceof Error ? e.message : String(e);
    if (pos >= input.length && /EOF/i.test(why)) throw truncated("gzip", "the deflate data", input.length, 1, 0);
    // fflate reports no position; the fault lies in what had been fed so far.
    throw decompressError("gzip", `deflate data is invalid (${why}) before offset ${hex(pos)}`, {
      field: "deflate data",
      expected: "a valid deflate stream",
      actual: why,
    });
  }
  if (!finished) throw truncated("gzip", "the deflate data", input.length, 1, 0);

  // The trailer (CRC-32, ISIZE) follows the deflate data, which fflate does not
  // report the end of; look for it from the end backwards, since only the
  // kernel's few appended bytes, if anything, follow it.
  const crc = crc32(out.buf, 0, out.length);
  const isize = out.length % 2 ** 32;
  for (let at = input.length - 8; at >= dataStart; at--) {
    if (u32le(input, at) === crc && u32le(input, at + 4) === isize) return { bytes: out.result(), end: at + 8 };
  }
  const last = input.length >= dataStart + 8 ? input.length - 8 : dataStart;
  throw decompressError("gzip", "no CRC-32/ISIZE trailer matches the decompressed data", {
    offset: last,
    field: "trailer",
    expected: `CRC-32 ${hex32(crc)}, ISIZE ${isize}`,
    actual: input.length >= dataStart + 8 ? `CRC-32 ${hex32(u32le(input, last))}, ISIZE ${u32le(input, last + 4)} in the last 8 bytes` : "no room for a trailer",
  });
}
