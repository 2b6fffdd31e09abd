/** File IO at the edge: every failure becomes a KexecError that names the file and says what to do. */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { KexecError } from "../core/errors.js";

/** A regular file's size, without reading it (placement needs only the initrd's size). */
/** A file's size, checked to be a regular file (and, unless `allowEmpty`, not empty). */
export function fileSize(path: string, what: string, options: { allowEmpty?: boolean } = {}): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw ioError(e, path, what);
  }
  if (st.isDirectory()) {
    throw new KexecError("io", `${path}: is a directory, expected ${what}`, { file: path, expected: "a regular file", actual: "a directory" }, `give the path of the ${what} file`);
  }
  // Its size is planned before its bytes are read, and kexec_file_load hands the kernel the file itself.
  if (!st.isFile()) {
    const kind = specialFileKind(st);
    throw new KexecError("io", `${path}: is ${kind}, expected ${what} in a regular file`, { file: path, expected: "a regular file", actual: kind }, `copy the ${what} into a file first`);
  }
  if (st.size === 0 && options.allowEmpty === false) {
    throw new KexecError("io", `${path}: the ${what} is empty (0 bytes)`, { file: path, expected: "a non-empty file", actual: "0 bytes" },
      what === "initrd" ? "an initrd left empty by a full /boot: free space and rebuild it (update-initramfs -u -k VERSION), or load without --initrd" : `give the path of the ${what}`);
  }
  return st.size;
}

/** What a file that is neither a regular file nor a directory is, for messages ("a pipe (FIFO)"). */
export function specialFileKind(st: Stats): string {
  return st.isFIFO() ? "a pipe (FIFO)" : st.isCharacterDevice() ? "a character device" : st.isBlockDevice() ? "a block device" : st.isSocket() ? "a socket" : "not a regular file";
}

export function readInputFile(path: string, what: string, options: { allowEmpty?: boolean } = {}): Uint8Array {
  fileSize(path, what, options);
  try {
    const data = readFileSync(path);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (e) {
    throw ioError(e, path, what);
  }
}

/** Opens and closes the file: the error a read would give (EACCES...), without reading it. */
export function checkReadable(path: string, what: string): void {
  try {
    closeSync(openSync(path, "r"));
  } catch (e) {
    throw ioError(e, path, what);
  }
}

export function ioError(e: unknown, path: string, what: string): KexecError {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? "EIO";
  const hints: Record<string, string> = {
    ENOENT: `check the path of the ${what}`,
    EACCES: "run as root or fix the file's permissions",
    EPERM: "run as root or fix the file's permissions",
    EISDIR: `give the path of a file, not a directory`,
  };
  return new KexecError("io", `${path}: cannot read ${what}: ${err?.message ?? String(e)}`, { file: path, errno: code }, hints[code] ?? `check that the ${what} is readable`, { cause: e });
}

/** Write a whole file via a temporary name, so a failure never leaves half a file under the real name. */
export function writeOutputFile(path: string, data: Uint8Array, what: string): void {
  const tmp = `${path}.incomplete`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    throw writeError(e, path, what);
  }
}

/** The error for an output that cannot be created or written. */
export function writeError(e: unknown, path: string, what: string): KexecError {
  const err = e as NodeJS.ErrnoException;
  return new KexecError("io", `${path}: cannot write ${what}: ${err?.message ?? String(e)}`, { file: path, errno: err?.code ?? "EIO" }, "check the directory exists, is writable and has room", { cause: e });
}

/**
 * Writes a whole file under a temporary name, fsyncs it and renames it into place (creating
 * the directory): a crash or a full disk leaves the old file or the new one, never half of one.
 */
export function replaceFileDurably(path: string, data: Uint8Array | string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", mode);
  try {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
