/**
 * A tar reader for what a guest sends back (busybox `tar c`, GNU tar): ustar headers with the
 * prefix field, GNU long names ('L'/'K') and pax extended headers ('x'). 512-byte blocks;
 * the archive ends with zero blocks (POSIX writes two; one is taken as the end, as GNU tar
 * takes a lone zero block). Pure logic over Uint8Array.
 */
import { concatBytes } from "../bytes/reader.js";
import { KexecError } from "../errors.js";

export interface TarEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink" | "other";
  mode: number;
  data: Uint8Array;
  linkName: string;
}

const BLOCK = 512;
const TRUNCATED_HINT = "the archive was cut short (an interrupted copy or download): copy it again, or make it again";
const decoder = new TextDecoder();

function text(bytes: Uint8Array, offset: number, length: number): string {
  const field = bytes.subarray(offset, offset + length);
  const nul = field.indexOf(0);
  return decoder.decode(nul < 0 ? field : field.subarray(0, nul));
}

function octal(bytes: Uint8Array, offset: number, length: number, field: string, at: number): number {
  // GNU base-256 for values that do not fit in octal: high bit of the first byte set.
  if ((bytes[offset]! & 0x80) !== 0) {
    let v = 0;
    for (let i = 1; i < length; i++) v = v * 256 + bytes[offset + i]!;
    return v;
  }
  const t = text(bytes, offset, length).trim();
  if (t === "") return 0;
  if (!/^[0-7]+$/.test(t)) {
    throw new KexecError("parse", `tar: ${field} of the header at offset 0x${at.toString(16)} is not octal`, { field, offset: at, actual: JSON.stringify(t) }, "the archive from the guest is corrupt; run the scenario again");
  }
  return parseInt(t, 8);
}

/**
 * The records of a pax extended header ('x'), "LENGTH KEY=VALUE\n" each, where LENGTH counts the
 * record's bytes, its own digits, the space and the newline included (POSIX pax, "pax Extended
 * Header File Format"). The walk is over bytes and only keys and values are decoded: a UTF-8
 * path (GNU tar --format=posix, bsdtar) has fewer characters than bytes, and lengths applied to
 * decoded text cut the records after it in the wrong places. `dataOffset` is where `data` sits
 * in the archive, for the error.
 */
function paxRecords(data: Uint8Array, dataOffset: number): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const offset = dataOffset + at;
    const malformed = (problem: string, expected: string, actual: string): KexecError =>
      new KexecError("parse", `tar: pax record at offset 0x${offset.toString(16)} ${problem}`, { field: "pax record", offset, expected, actual }, "the archive is corrupt or truncated");
    const shown = (bytes: Uint8Array): string => JSON.stringify(decoder.decode(bytes.subarray(0, 32)));
    const space = data.indexOf(0x20, at);
    const digits = space < 0 ? "" : decoder.decode(data.subarray(at, space));
    const length = /^[0-9]+$/.test(digits) ? Number(digits) : 0;
    const end = at + length;
    // The record holds at least its digits, the space and the newline; a length of 0 would
    // also never move on to the next record.
    if (space < 0 || end <= space + 1) throw malformed("does not start with its length", "a decimal byte length longer than its digits, then a space", shown(data.subarray(at)));
    if (end > data.length) throw malformed("runs past the end of its header", `at most ${data.length - at} bytes (what is left of the header)`, `${length} bytes`);
    if (data[end - 1] !== 0x0a) throw malformed("does not end in a newline", `"\\n" at offset 0x${(dataOffset + end - 1).toString(16)}`, shown(data.subarray(end - 1, end)));
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end - 1) throw malformed("has no '=' between key and value", "KEY=VALUE", shown(data.subarray(space + 1, end - 1)));
    if (eq === space + 1) throw malformed("has an empty key", "KEY=VALUE", shown(data.subarray(space + 1, end - 1)));
    out.set(decoder.decode(data.subarray(space + 1, eq)), decoder.decode(data.subarray(eq + 1, end - 1)));
    at = end;
  }
  return out;
}

export function readTar(bytes: Uint8Array): TarEntry[] {
  const entries: TarEntry[] = [];
  let at = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, string>();
  for (;;) {
    // Only the zero block ends an archive: running out of bytes first means it was cut short
    // (seen: a snapshot cut at a header boundary read as 2 of its 28 files, without a word).
    if (at + BLOCK > bytes.length) {
      throw new KexecError("parse", `tar: the archive ends at offset 0x${bytes.length.toString(16)} without its end-of-archive blocks: it was cut short`, {
        offset: bytes.length,
        expected: `a header or two zero blocks at 0x${at.toString(16)}`,
        actual: at === bytes.length ? "the end of the data" : `${bytes.length - at} bytes`,
      }, TRUNCATED_HINT);
    }
    const header = bytes.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break;
    const stored = octal(bytes, at + 148, 8, "chksum", at);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    if (sum !== stored) {
      throw new KexecError("parse", `tar: header checksum at offset 0x${at.toString(16)} is ${stored}, the header sums to ${sum}`, {
        field: "chksum",
        offset: at,
        expected: String(sum),
        actual: String(stored),
      }, "the archive is corrupt or truncated");
    }
    const size = octal(bytes, at + 124, 12, "size", at);
    const typeflag = String.fromCharCode(header[156]!);
    const dataStart = at + BLOCK;
    if (dataStart + size > bytes.length) {
      throw new KexecError("parse", `tar: entry at offset 0x${at.toString(16)} needs ${size} bytes of data, the archive ends first`, {
        field: "size",
        offset: at,
      }, TRUNCATED_HINT);
    }
    const data = bytes.subarray(dataStart, dataStart + size);
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === "L") {
      longName = text(data, 0, data.length);
      continue;
    }
    if (typeflag === "K") {
      longLink = text(data, 0, data.length);
      continue;
    }
    if (typeflag === "x") {
      pax = paxRecords(data, dataStart);
      continue;
    }
    if (typeflag === "g") continue;
    const magic = text(bytes, dataStart - BLOCK + 257, 6);
    const prefix = magic.startsWith("ustar") ? text(header, 345, 155) : "";
    const baseName = text(header, 0, 100);
    const name = pax.get("path") ?? longName ?? (prefix !== "" ? `${prefix}/${baseName}` : baseName);
    const linkName = pax.get("linkpath") ?? longLink ?? text(header, 157, 100);
    const type: TarEntry["type"] =
      typeflag === "0" || typeflag === "\0" || typeflag === "7" ? "file" : typeflag === "5" ? "dir" : typeflag === "2" ? "symlink" : typeflag === "1" ? "hardlink" : "other";
    entries.push({ name, type, mode: octal(header, 100, 8, "mode", dataStart - BLOCK) & 0o7777, data, linkName });
    longName = undefined;
    longLink = undefined;
    pax = new Map();
  }
  return entries;
}

/** "./proc/iomem" → "proc/iomem"; undefined for the archive root or a path that leaves it. */
export function safeRelativePath(name: string): string | undefined {
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") return undefined;
    parts.push(p);
  }
  return parts.length === 0 ? undefined : parts.join("/");
}

const USTAR_LIMITS = "ustar holds paths up to 255 bytes and files below 8 GiB; write a directory instead (kexec-ts snapshot DIR)";

/** A ustar archive of files and directories (names up to 255 bytes, split across prefix and name). */
export function writeTar(entries: readonly { name: string; type: "file" | "dir"; data?: Uint8Array; mode?: number; mtime?: number }[]): Uint8Array {
  const encoder = new TextEncoder();
  const blocks: Uint8Array[] = [];
  const push = (b: Uint8Array) => blocks.push(b);
  const put = (h: Uint8Array, offset: number, length: number, value: string) => {
    const bytes = encoder.encode(value);
    if (bytes.length > length) throw new KexecError("io", `tar: "${value}" does not fit the ${length}-byte ustar field at ${offset}`, { field: "name", actual: value }, USTAR_LIMITS);
    h.set(bytes, offset);
  };
  const octalField = (h: Uint8Array, offset: number, length: number, value: number) => put(h, offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
  for (const e of entries) {
    const data = e.type === "file" ? (e.data ?? new Uint8Array(0)) : new Uint8Array(0);
    const name = e.type === "dir" && !e.name.endsWith("/") ? `${e.name}/` : e.name;
    const h = new Uint8Array(BLOCK);
    const raw = encoder.encode(name);
    if (raw.length <= 100) put(h, 0, 100, name);
    else {
      // Split at a slash so the prefix (155) and the name (100) both fit.
      const cut = name.lastIndexOf("/", name.length - 2 >= 155 ? 155 : name.length - 2);
      if (cut <= 0 || encoder.encode(name.slice(cut + 1)).length > 100) throw new KexecError("io", `tar: path too long for ustar: ${name}`, { field: "name", actual: name }, USTAR_LIMITS);
      put(h, 0, 100, name.slice(cut + 1));
      put(h, 345, 155, name.slice(0, cut));
    }
    octalField(h, 100, 8, e.mode ?? (e.type === "dir" ? 0o755 : 0o644));
    octalField(h, 108, 8, 0);
    octalField(h, 116, 8, 0);
    octalField(h, 124, 12, data.length);
    octalField(h, 136, 12, e.mtime ?? 0);
    h.fill(0x20, 148, 156);
    h[156] = (e.type === "dir" ? "5" : "0").charCodeAt(0);
    put(h, 257, 6, "ustar\0");
    put(h, 263, 2, "00");
    let sum = 0;
    for (const b of h) sum += b;
    put(h, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
    push(h);
    if (data.length) {
      const padded = new Uint8Array(Math.ceil(data.length / BLOCK) * BLOCK);
      padded.set(data);
      push(padded);
    }
  }
  push(new Uint8Array(2 * BLOCK));
  return concatBytes(blocks);
}
