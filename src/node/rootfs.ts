/**
 * Reading /proc and /sys under a root directory ("/" or --root DIR). Kernel
 * files do not behave like regular files: procfs reports size 0, sysfs 4096
 * whatever the content, and some attributes fail with EIO or EINVAL on read.
 * So every file is read to EOF, and a failure is an outcome, not an exception.
 */
import { closeSync, constants, fstatSync, openSync, readSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { MACHINE_FILES, expandGlob, type MachineFiles } from "../core/machine/files.js";
import { fileKind } from "./files.js";

export type ReadOutcome =
  | { kind: "ok"; bytes: Uint8Array }
  | { kind: "missing" }
  | { kind: "unreadable"; errno: string };

/** A path under root; "/" + "proc/iomem" stays "/proc/iomem". */
export function underRoot(root: string, relative: string): string {
  return join(root, relative);
}

/**
 * One buffer that every read goes through, grown when a file is bigger. A
 * machine with thousands of memory ranges and CPUs has as many small files,
 * and a fresh 64 KiB buffer (and a promise) per file cost more than the reads.
 */
let scratch = new Uint8Array(64 * 1024);

/**
 * Reads until EOF, whatever size stat() claims. Synchronous: the files are small and nothing else
 * is waiting. `shortReadIsEof`: a read that returns less than asked ends the file, as it does for
 * a sysfs attribute (handed over whole at offset 0) and a regular file (a snapshot); that saves
 * thousands of reads on a large machine. procfs files (seq_file) are read until a read returns 0.
 *
 * What is not a file (a FIFO or a device in a --root snapshot) is refused as openRegularFile
 * refuses it, but asked only when the reads say something is odd: nothing at all, no data yet
 * (EAGAIN), or more than the scratch buffer holds (a /proc file of a large machine, or /dev/zero,
 * which would be read until memory ran out). An fstat per file was a third of the syscalls and
 * 1.5 MB of Stats objects for the 1,055 files of `plan -p` on the 64 TiB model.
 */
export function readFully(path: string, shortReadIsEof = false): Uint8Array {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    let filled = 0;
    // Asked once however often the buffer grows.
    let regular = false;
    for (;;) {
      if (filled === scratch.length) {
        if (!regular) refuseUnlessRegular(fd);
        regular = true;
        const bigger = new Uint8Array(scratch.length * 2);
        bigger.set(scratch);
        scratch = bigger;
      }
      const asked = scratch.length - filled;
      let n: number;
      try {
        n = readSync(fd, scratch, filled, asked, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EAGAIN") refuseUnlessRegular(fd);
        throw e;
      }
      if (n === 0 && filled === 0) refuseUnlessRegular(fd);
      filled += n;
      if (n === 0 || (shortReadIsEof && n < asked)) break;
    }
    return scratch.slice(0, filled);
  } finally {
    closeSync(fd);
  }
}

/**
 * A file descriptor for reading `path`, which must be a regular file: /proc and /sys files are, to
 * fstat(). In a --root snapshot a FIFO would block the open for ever, and a character device (a link
 * to /dev/zero) would be read until memory ran out. Else throws as Node does, with `code` the errno
 * (EISDIR) or the kind of file ("a pipe (FIFO)").
 */
export function openRegularFile(path: string): number {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    refuseUnlessRegular(fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** Throws as openRegularFile does unless `fd` is a regular file. */
function refuseUnlessRegular(fd: number): void {
  const st = fstatSync(fd);
  if (st.isFile()) return;
  const kind = st.isDirectory() ? "EISDIR" : fileKind(st);
  throw Object.assign(new Error(`${st.isDirectory() ? "a directory" : kind}, not a file`), { code: kind });
}

/** `path` is a file under the root, as underRoot makes it. */
export function tryRead(path: string, shortReadIsEof = false): ReadOutcome {
  try {
    return { kind: "ok", bytes: readFully(path, shortReadIsEof) };
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code ?? "EIO";
    // ENOENT/ENOTDIR: not there. Anything else (EACCES, EISDIR, EIO, EINVAL..., or "a pipe (FIFO)") is there but unreadable.
    return errno === "ENOENT" || errno === "ENOTDIR" ? { kind: "missing" } : { kind: "unreadable", errno };
  }
}

/** Entries of a directory under root, or null when it does not exist or cannot be listed. */
export function tryList(root: string, relative: string): string[] | null {
  try {
    return readdirSync(underRoot(root, relative));
  } catch {
    return null;
  }
}

export function isDirectory(root: string, relative: string): boolean {
  try {
    return statSync(underRoot(root, relative)).isDirectory();
  } catch {
    return false;
  }
}

export interface CollectedFiles extends MachineFiles {
  /** Paths from the list (after glob expansion) that do not exist, for the snapshot manifest. */
  missing: string[];
  /** Unreadable paths with the errno, for the manifest. */
  errors: Record<string, string>;
}

/** Reads every file of MACHINE_FILES under root. The single expansion the reader and the snapshot share. */
/** `skip`: glob directories not to read (core/machine/files.ts UNUSED_BY), recorded as notRead. */
export async function collectMachineFiles(root: string, skip: readonly string[] = []): Promise<CollectedFiles> {
  if (!isDirectory(root, ".")) {
    throw new KexecError(
      "io",
      `${root}: not a directory, expected the root to read /proc and /sys under`,
      { file: root, expected: "a directory", actual: "missing or not a directory" },
      "give --root a directory such as a snapshot made with `kexec-ts snapshot DIR`",
    );
  }
  const files: Record<string, Uint8Array> = {};
  const dirs: string[] = [];
  const unreadable: string[] = [];
  const missing: string[] = [];
  const errors: Record<string, string> = {};
  const notRead: string[] = [];
  // The listed paths are already normal relative paths: one join for the root, not one per file.
  const base = underRoot(root, "/");
  const read = (rel: string, recordMissing: boolean): void => {
    const r = tryRead(base + rel, rel.startsWith("sys/"));
    if (r.kind === "ok") files[rel] = r.bytes;
    else if (r.kind === "unreadable") {
      unreadable.push(rel);
      errors[rel] = r.errno;
    } else if (recordMissing) missing.push(rel);
  };
  for (const spec of MACHINE_FILES) {
    if (spec.kind === "file") read(spec.path, true);
    else if (spec.kind === "dir") {
      if (isDirectory(root, spec.path)) dirs.push(spec.path);
      else missing.push(spec.path);
    } else if (skip.includes(spec.dir)) {
      notRead.push(spec.dir);
    } else {
      const entries = tryList(root, spec.dir);
      if (entries === null) {
        missing.push(spec.dir);
        continue;
      }
      // A glob yields only files that exist: cpuN without crash_notes is not a fact worth a line each.
      for (const rel of expandGlob(spec, entries)) read(rel, false);
    }
  }
  return { files, dirs, unreadable, missing, errors, ...(notRead.length ? { notRead } : {}) };
}
