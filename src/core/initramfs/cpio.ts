/**
 * The "newc" cpio format the kernel unpacks as an initramfs (Documentation/driver-api/
 * early-userspace/buffer-format.rst): a 110-byte ASCII header of 13 eight-digit hex fields,
 * the NUL-terminated name, padding to 4 bytes, the data, padding to 4 bytes; the archive ends
 * with an entry named "TRAILER!!!". Pure logic: bytes in, chunks out; compression happens at
 * the edge.
 *
 * The kernel does not create missing parent directories, so the writer adds every ancestor
 * before its first child. It also unpacks concatenated archives (each may be compressed on
 * its own), which is what lets the lab cache the big parts of an initramfs separately. The lab
 * and the kdump capture initramfs (src/node/kdump) both write with it.
 */
import { KexecError } from "../errors.js";
import { concatBytes } from "../bytes/reader.js";

export { concatBytes };

export const CPIO_NEWC_MAGIC = "070701";
const HEADER_SIZE = 110;
export const CPIO_TRAILER = "TRAILER!!!";

// st_mode type bits (linux/stat.h).
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;

export type CpioEntryType = "file" | "dir" | "symlink" | "char" | "block";

export interface CpioEntry {
  /** Path without a leading slash: "bin/sh". */
  name: string;
  type: CpioEntryType;
  /** Permission bits only (0o755); the type bits come from `type`. */
  perm: number;
  /** File contents, or the link target for a symlink. */
  data: Uint8Array;
  rdevMajor: number;
  rdevMinor: number;
}

const TYPE_BITS: Record<CpioEntryType, number> = {
  file: S_IFREG,
  dir: S_IFDIR,
  symlink: S_IFLNK,
  char: S_IFCHR,
  block: S_IFBLK,
};

const encoder = new TextEncoder();

/** "/usr//bin/./node" → "usr/bin/node"; refuses "..", which could climb out of the rootfs. */
export function normalizeArchivePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      throw new KexecError("usage", `cpio: path ${JSON.stringify(path)} contains "..", which an initramfs may not use`, {
        field: "name",
        actual: path,
      }, "give a path inside the initramfs");
    }
    parts.push(part);
  }
  if (parts.length === 0) throw new KexecError("usage", `cpio: empty path ${JSON.stringify(path)}`, { field: "name", actual: path }, "give the file a name");
  return parts.join("/");
}

function hex8(value: number, field: string): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new KexecError("usage", `cpio: ${field} ${value} does not fit the 8-digit hex field of a newc header`, {
      field,
      expected: "0..0xffffffff",
      actual: String(value),
    }, "newc archives hold files below 4 GiB");
  }
  return value.toString(16).padStart(8, "0");
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

/**
 * Collects entries and writes one newc archive. Later entries with the same name replace
 * earlier ones, as they would when the kernel unpacks them (it unlinks before creating).
 */
export class CpioWriter {
  private readonly entries = new Map<string, CpioEntry>();

  has(path: string): boolean {
    return this.entries.has(normalizeArchivePath(path));
  }

  get size(): number {
    return this.entries.size;
  }

  dir(path: string, perm = 0o755): this {
    const name = normalizeArchivePath(path);
    this.parents(name);
    const existing = this.entries.get(name);
    if (existing === undefined || existing.type !== "dir") this.put({ name, type: "dir", perm, data: new Uint8Array(0), rdevMajor: 0, rdevMinor: 0 });
    return this;
  }

  file(path: string, data: Uint8Array | string, perm = 0o644): this {
    const name = normalizeArchivePath(path);
    this.parents(name);
    this.put({ name, type: "file", perm, data: typeof data === "string" ? encoder.encode(data) : data, rdevMajor: 0, rdevMinor: 0 });
    return this;
  }

  symlink(path: string, target: string): this {
    const name = normalizeArchivePath(path);
    this.parents(name);
    this.put({ name, type: "symlink", perm: 0o777, data: encoder.encode(target), rdevMajor: 0, rdevMinor: 0 });
    return this;
  }

  device(path: string, type: "char" | "block", major: number, minor: number, perm = 0o600): this {
    const name = normalizeArchivePath(path);
    this.parents(name);
    this.put({ name, type, perm, data: new Uint8Array(0), rdevMajor: major, rdevMinor: minor });
    return this;
  }

  /**
   * The archive as a list of chunks (header, name, data, padding...), so a 100 MB file is
   * never copied just to be framed. Entries keep insertion order; parents always precede
   * children because `parents()` inserted them first. mtime is 0 so equal inputs give equal
   * bytes, which the initramfs cache relies on.
   */
  chunks(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let ino = 1;
    const emit = (name: string, mode: number, nlink: number, data: Uint8Array, rdevMajor: number, rdevMinor: number): void => {
      const nameBytes = encoder.encode(name);
      const header =
        CPIO_NEWC_MAGIC +
        hex8(name === CPIO_TRAILER ? 0 : ino++, "c_ino") +
        hex8(mode, "c_mode") +
        hex8(0, "c_uid") +
        hex8(0, "c_gid") +
        hex8(nlink, "c_nlink") +
        hex8(0, "c_mtime") +
        hex8(data.length, "c_filesize") +
        hex8(0, "c_maj") +
        hex8(0, "c_min") +
        hex8(rdevMajor, "c_rmaj") +
        hex8(rdevMinor, "c_rmin") +
        hex8(nameBytes.length + 1, "c_namesize") +
        hex8(0, "c_chksum");
      const head = new Uint8Array(HEADER_SIZE + nameBytes.length + 1 + pad4(HEADER_SIZE + nameBytes.length + 1));
      head.set(encoder.encode(header), 0);
      head.set(nameBytes, HEADER_SIZE);
      out.push(head);
      if (data.length > 0) {
        out.push(data);
        const padding = pad4(data.length);
        if (padding > 0) out.push(new Uint8Array(padding));
      }
    };
    for (const e of this.entries.values()) {
      emit(e.name, TYPE_BITS[e.type] | (e.perm & 0o7777), e.type === "dir" ? 2 : 1, e.data, e.rdevMajor, e.rdevMinor);
    }
    emit(CPIO_TRAILER, 0, 1, new Uint8Array(0), 0, 0);
    return out;
  }

  bytes(): Uint8Array {
    return concatBytes(this.chunks());
  }

  private parents(name: string): void {
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const existing = this.entries.get(dir);
      if (existing === undefined) this.put({ name: dir, type: "dir", perm: 0o755, data: new Uint8Array(0), rdevMajor: 0, rdevMinor: 0 });
      else if (existing.type !== "dir" && existing.type !== "symlink") {
        throw new KexecError("usage", `cpio: ${JSON.stringify(dir)} is a ${existing.type}, so ${JSON.stringify(name)} cannot be put under it`, {
          field: "name",
          actual: name,
        }, "an initramfs cannot hold a file under a path that is not a directory; rename one of them");
      }
    }
  }

  private put(entry: CpioEntry): void {
    // Re-inserting moves the entry to the end, after any parent added since.
    this.entries.delete(entry.name);
    this.entries.set(entry.name, entry);
  }
}


const decoder = new TextDecoder();

function typeOfMode(mode: number, name: string, offset: number): CpioEntryType {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default:
      throw new KexecError("parse", `cpio: entry ${JSON.stringify(name)} at offset 0x${offset.toString(16)} has unsupported mode 0o${mode.toString(8)}`, {
        field: "c_mode",
        offset,
        actual: `0o${mode.toString(8)}`,
      }, "the archive holds a file type the lab does not unpack (regular files, directories and symlinks only)");
  }
}

/**
 * Reads every uncompressed newc archive in `bytes` (concatenated archives and the zero
 * padding the kernel tolerates between them included). Used to check what the writer made
 * and to list an initramfs.
 */
export function readCpio(bytes: Uint8Array): CpioEntry[] {
  const entries: CpioEntry[] = [];
  let at = 0;
  const field = (offset: number, index: number, name: string): number => {
    const text = decoder.decode(bytes.subarray(offset + 6 + index * 8, offset + 14 + index * 8));
    if (!/^[0-9a-fA-F]{8}$/.test(text)) {
      throw new KexecError("parse", `cpio: ${name} at offset 0x${(offset + 6 + index * 8).toString(16)} is not 8 hex digits`, {
        field: name,
        offset: offset + 6 + index * 8,
        expected: "8 hex digits",
        actual: JSON.stringify(text),
      }, "the archive is corrupt or not a newc cpio");
    }
    return parseInt(text, 16);
  };
  while (at < bytes.length) {
    if (bytes[at] === 0) {
      at++;
      continue;
    }
    if (at + HEADER_SIZE > bytes.length) {
      throw new KexecError("parse", `cpio: header at offset 0x${at.toString(16)} needs ${HEADER_SIZE} bytes, only ${bytes.length - at} remain`, {
        field: "header",
        offset: at,
      }, "the archive is truncated");
    }
    const magic = decoder.decode(bytes.subarray(at, at + 6));
    if (magic !== CPIO_NEWC_MAGIC) {
      throw new KexecError("parse", `cpio: bad magic at offset 0x${at.toString(16)}`, {
        field: "c_magic",
        offset: at,
        expected: CPIO_NEWC_MAGIC,
        actual: JSON.stringify(magic),
      }, "only uncompressed newc archives can be read; decompress the initramfs first");
    }
    const mode = field(at, 1, "c_mode");
    const filesize = field(at, 6, "c_filesize");
    const rdevMajor = field(at, 9, "c_rmaj");
    const rdevMinor = field(at, 10, "c_rmin");
    const namesize = field(at, 11, "c_namesize");
    const nameStart = at + HEADER_SIZE;
    const dataStart = nameStart + namesize + pad4(HEADER_SIZE + namesize);
    const dataEnd = dataStart + filesize;
    if (namesize < 1 || dataEnd > bytes.length) {
      throw new KexecError("parse", `cpio: entry at offset 0x${at.toString(16)} runs past the end (${dataEnd} > ${bytes.length})`, {
        field: "c_filesize",
        offset: at,
      }, "the archive is truncated");
    }
    const name = decoder.decode(bytes.subarray(nameStart, nameStart + namesize - 1));
    const entryOffset = at;
    at = dataEnd + pad4(filesize);
    if (name === CPIO_TRAILER) continue;
    entries.push({ name, type: typeOfMode(mode, name, entryOffset), perm: mode & 0o7777, data: bytes.subarray(dataStart, dataEnd), rdevMajor, rdevMinor });
  }
  return entries;
}
