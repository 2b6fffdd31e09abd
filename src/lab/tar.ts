/**
 * A tar reader for what a guest sends back (busybox `tar c`, GNU tar): ustar headers with the
 * prefix field, GNU long names ('L'/'K') and pax extended headers ('x'). 512-byte blocks;
 * the archive ends with a zero block. Pure logic over Uint8Array.
 */
import { KexecError } from "../core/errors.js";

export interface TarEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "hardlink" | "other";
  mode: number;
  data: Uint8Array;
  linkName: string;
}

const BLOCK = 512;
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

function paxRecords(data: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const s = decoder.decode(data);
  let at = 0;
  while (at < s.length) {
    const space = s.indexOf(" ", at);
    if (space < 0) break;
    const length = parseInt(s.slice(at, space), 10);
    if (!(length > 0)) break;
    const record = s.slice(space + 1, at + length - 1);
    const eq = record.indexOf("=");
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return out;
}

export function readTar(bytes: Uint8Array): TarEntry[] {
  const entries: TarEntry[] = [];
  let at = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, string>();
  while (at + BLOCK <= bytes.length) {
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
      }, "the archive is truncated");
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
      pax = paxRecords(data);
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
