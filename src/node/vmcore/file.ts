/** Random access to a vmcore file through a file descriptor (files of many GiB never sit in memory). */
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { KexecError } from "../../core/errors.js";
import { hex } from "../../core/format.js";
import type { RandomAccess } from "../../core/vmcore/memory.js";
import { errnoText, fileKind } from "../files.js";

export interface OpenFile extends RandomAccess {
  readonly path: string;
  readonly fd: number;
  readInto(offset: bigint, out: Uint8Array, at: number, length: number): void;
  close(): void;
}

/** The hint of a read error in a vmcore being read. */
export const SOURCE_FAILING = "the source may be on a failing device";

/** A read of `length` bytes at `offset` that the file (of `size` bytes) does not hold. */
export function pastEndOfFile(path: string, offset: bigint, length: number, size: bigint): KexecError {
  return new KexecError("parse", `${path}: ${length} bytes at offset ${hex(offset)} run past the end of the file (${hex(size)})`, { file: path, offset, expected: `end <= ${hex(size)}`, actual: hex(offset + BigInt(length)) }, "the file is truncated, or the header field that gave this length is damaged");
}

/**
 * `length` bytes at `offset` of `fd` into `out` at `at`, in as many reads as it takes. A read
 * error is an io error naming the file and the offset, with `failingHint`; a file that ends
 * first is `endsEarly`'s error, given where it ended.
 */
export function readFullyAt(fd: number, path: string, offset: bigint, out: Uint8Array, at: number, length: number, failingHint: string, endsEarly: (end: bigint) => KexecError): void {
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = readSync(fd, out, at + done, length - done, Number(offset) + done);
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).code;
      throw new KexecError("io", `${path}: read error at offset ${hex(offset + BigInt(done))}: ${errnoText(e, path)}`, { file: path, offset: offset + BigInt(done), ...(errno === undefined ? {} : { errno }) }, failingHint);
    }
    if (n === 0) throw endsEarly(offset + BigInt(done));
    done += n;
  }
}

/**
 * A vmcore is read at offsets its headers give, so it must be a file (or a device) that can be
 * read anywhere. Checked before opening: opening a FIFO waited for a writer forever, and a
 * directory failed its first read as if the disk were failing.
 */
function refuseUnreadableKind(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    return; // opening it says why
  }
  if (st.isDirectory()) {
    throw new KexecError("io", `${path}: is a directory, expected a vmcore file`, { file: path, expected: "a regular file", actual: "a directory" }, "give the path of the dump file (/proc/vmcore, or the vmcore inside the crash directory)");
  }
  if (st.isFIFO() || st.isSocket()) {
    const kind = fileKind(st);
    throw new KexecError("io", `${path}: is ${kind}: a vmcore is read at random offsets, from a file`, { file: path, expected: "a regular file", actual: kind },
      "save the stream into a file first (a flattened stream: makedumpfile -R FILE < stream), then read the file");
  }
}

/** The vmcore's descriptor, for reading; a failure in words, with its errno in the data. */
export function openVmcoreFile(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code;
    throw new KexecError("io", `cannot open ${path}: ${errnoText(e, path)}`, { file: path, ...(errno === undefined ? {} : { errno }) }, "check the path and that you may read it (/proc/vmcore needs root)");
  }
}

export function openRandomAccess(path: string): OpenFile {
  refuseUnreadableKind(path);
  const fd = openVmcoreFile(path);
  const st = fstatSync(fd);
  return { path, fd, ...descriptorAccess(fd, path, BigInt(st.size), st.isFile()), close: () => closeSync(fd) };
}

/**
 * Random access through an open descriptor of `size` bytes, for as long as the caller keeps it
 * open. A device's size is not known from fstat (0), so only a file's reads are checked against it.
 */
export function descriptorAccess(fd: number, path: string, size: bigint, isFile: boolean): RandomAccess & Pick<OpenFile, "readInto"> {
  const pastEnd = (offset: bigint, length: number) => pastEndOfFile(path, offset, length, size);
  const readInto = (offset: bigint, out: Uint8Array, at: number, length: number): void =>
    readFullyAt(fd, path, offset, out, at, length, SOURCE_FAILING, () => pastEnd(offset, length));
  return {
    size, readInto,
    read(offset: bigint, length: number): Uint8Array {
      // Checked before allocating: a damaged length field (a kdump header's bitmap_blocks of
      // 0xffffffff) asked for gigabytes, or more than a typed array can hold, from a small file.
      if (isFile && offset + BigInt(length) > size) throw pastEnd(offset, length);
      const out = new Uint8Array(length);
      readInto(offset, out, 0, length);
      return out;
    },
  };
}
