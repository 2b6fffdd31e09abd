/**
 * Reading /proc and /sys under a root directory ("/" or --root DIR). Kernel
 * files do not behave like regular files: procfs reports size 0, sysfs 4096
 * whatever the content, and some attributes fail with EIO or EINVAL on read.
 * So every file is read to EOF, and a failure is an outcome, not an exception.
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { MACHINE_FILES, expandGlob, type MachineFiles } from "../core/machine/files.js";
import { concatBytes } from "../core/bytes/reader.js";

export type ReadOutcome =
  | { kind: "ok"; bytes: Uint8Array }
  | { kind: "missing" }
  | { kind: "unreadable"; errno: string };

/** A path under root; "/" + "proc/iomem" stays "/proc/iomem". */
export function underRoot(root: string, relative: string): string {
  return join(root, relative);
}

/** Reads until EOF, whatever size stat() claims. */
export async function readFully(path: string): Promise<Uint8Array> {
  const handle = await open(path, "r");
  try {
    const chunks: Uint8Array[] = [];
    for (;;) {
      const chunk = new Uint8Array(65536);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return concatBytes(chunks);
  } finally {
    await handle.close();
  }
}

export async function tryRead(root: string, relative: string): Promise<ReadOutcome> {
  try {
    return { kind: "ok", bytes: await readFully(underRoot(root, relative)) };
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).code ?? "EIO";
    // ENOENT/ENOTDIR: not there. Anything else (EACCES, EISDIR, EIO, EINVAL...) is there but unreadable.
    return errno === "ENOENT" || errno === "ENOTDIR" ? { kind: "missing" } : { kind: "unreadable", errno };
  }
}

/** Entries of a directory under root, or null when it does not exist or cannot be listed. */
export async function tryList(root: string, relative: string): Promise<string[] | null> {
  try {
    return await readdir(underRoot(root, relative));
  } catch {
    return null;
  }
}

export async function isDirectory(root: string, relative: string): Promise<boolean> {
  try {
    return (await stat(underRoot(root, relative))).isDirectory();
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
export async function collectMachineFiles(root: string): Promise<CollectedFiles> {
  if (!(await isDirectory(root, "."))) {
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
  const read = async (rel: string, recordMissing: boolean): Promise<void> => {
    const r = await tryRead(root, rel);
    if (r.kind === "ok") files[rel] = r.bytes;
    else if (r.kind === "unreadable") {
      unreadable.push(rel);
      errors[rel] = r.errno;
    } else if (recordMissing) missing.push(rel);
  };
  for (const spec of MACHINE_FILES) {
    if (spec.kind === "file") await read(spec.path, true);
    else if (spec.kind === "dir") {
      if (await isDirectory(root, spec.path)) dirs.push(spec.path);
      else missing.push(spec.path);
    } else {
      const entries = await tryList(root, spec.dir);
      if (entries === null) {
        missing.push(spec.dir);
        continue;
      }
      // A glob yields only files that exist: cpuN without crash_notes is not a fact worth a line each.
      for (const rel of expandGlob(spec, entries)) await read(rel, false);
    }
  }
  return { files, dirs, unreadable, missing, errors };
}
