/** File IO at the edge: every failure becomes a KexecError that names the file and says what to do. */
import { closeSync, constants, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync, type Stats } from "node:fs";
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

/** A command's output, and the inputs it must never replace. */
export interface OutputPath {
  path: string;
  /** "the dump", "vmlinux": for messages. */
  what: string;
  /** The command, for messages: "vmcore save". */
  command: string;
  /** Files the output is made from: an output at one of them (by any name: same device and inode) is refused. */
  inputs: readonly { path: string; what: string }[];
  /** How to write into a pipe or device instead, where the command can; a hint. */
  streamHint?: string;
  /** A file name to suggest inside a directory given as the output ("vmcore"). */
  exampleName?: string;
}

/**
 * An output is written under a temporary name and renamed into place, which replaces whatever is
 * at its path. Refused before any work: one of the command's inputs (`vmcore save V V` and
 * `inspect IMAGE --extract=IMAGE` each replaced their input), a directory, and a device, FIFO or
 * socket (/dev/full once became a regular file). Returns what is there: nothing, or a regular
 * file the caller may decide to keep.
 */
export function checkOutputPath(out: OutputPath): Stats | undefined {
  let target: Stats;
  try {
    target = statSync(out.path);
  } catch {
    return undefined; // nothing there (or nothing reachable): opening the temporary file says what is wrong, if anything
  }
  for (const input of out.inputs) {
    let source: Stats;
    try {
      source = statSync(input.path);
    } catch {
      continue; // reading the input says why
    }
    if (source.dev === target.dev && source.ino === target.ino) {
      throw new KexecError("usage", `${out.path} is ${input.what}${input.path === out.path ? "" : ` (${input.path})`}: ${out.what} would replace its own source`, { file: out.path, expected: "another file", actual: "the source" }, `give ${out.what} another name`);
    }
  }
  if (target.isDirectory()) {
    throw new KexecError("usage", `${out.path} is a directory: ${out.command} needs ${out.what}'s file name`, { file: out.path, expected: "a file name", actual: "a directory" }, `e.g. ${out.path.replace(/\/+$/, "")}/${out.exampleName ?? out.what.replace(/^the /, "").replace(/\s+/g, "-")}`);
  }
  if (!target.isFile()) {
    const kind = specialFileKind(target);
    throw new KexecError("usage", `${out.path} is ${kind}: ${out.command} writes a file and renames it into place, which would replace it`, { file: out.path, expected: "a file name", actual: kind },
      out.streamHint ?? "give a file name, and copy the file where it should go afterwards");
  }
  return target;
}

/**
 * Write a whole file via a temporary name, so a failure never leaves half a file under the real
 * name, nor the temporary one behind. An existing regular file is replaced (as `cp` and `cc -o` do).
 */
export function writeOutputFile(out: OutputPath, data: Uint8Array): void {
  checkOutputPath(out);
  const tmp = `${out.path}.incomplete`;
  let opened = false;
  try {
    // Not through a symbolic link planted at the temporary name: the output goes where it is named.
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
    opened = true;
    try {
      for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, out.path);
  } catch (e) {
    if (opened) rmSync(tmp, { force: true });
    throw writeError(e, out.path, out.what);
  }
}

/** The error for an output that cannot be created or written. */
export function writeError(e: unknown, path: string, what: string): KexecError {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? "EIO";
  const hints: Record<string, string> = {
    EISDIR: "give the path of a file, not of a directory",
    // mkdir -p of the parent meets a file (EEXIST), or a path goes through one (ENOTDIR).
    ENOTDIR: "a part of the path is a file, not a directory: check the path",
    EEXIST: "a part of the path is a file, not a directory: check the path",
    EACCES: "run as root or choose a writable place",
    EPERM: "run as root or choose a writable place",
    EROFS: "the file system is mounted read-only: choose another place",
    ENOSPC: "free some space on that file system",
  };
  return new KexecError("io", `${path}: cannot write ${what}: ${err?.message ?? String(e)}`, { file: path, errno: code }, hints[code] ?? "check the directory exists, is writable and has room", { cause: e });
}

/**
 * mkdir -p. Not Node's mkdirSync({ recursive: true }): where mkdir fails with ENOENT although
 * the parent exists (under /proc, through a dangling symlink), Node 18 and 20 retry forever.
 */
export function makeDirectories(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST" && statSync(dir).isDirectory()) return;
    const parent = dirname(dir);
    if (code !== "ENOENT" || parent === dir) throw e;
    makeDirectories(parent);
    // The parent is there now: a second ENOENT is final.
    mkdirSync(dir);
  }
}

/**
 * Writes a whole file under a temporary name, fsyncs it and renames it into place (creating
 * the directory): a crash or a full disk leaves the old file or the new one, never half of one.
 */
export function replaceFileDurably(path: string, data: Uint8Array | string, mode = 0o644): void {
  makeDirectories(dirname(path));
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", mode);
  try {
    try {
      const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
      for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    // A full disk or a directory in the way: the half-written temporary goes too.
    rmSync(tmp, { force: true });
    throw e;
  }
}
