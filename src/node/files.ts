/** File IO at the edge: every failure becomes a KexecError that names the file and says what to do. */
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, writeSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { sha256 } from "./crypto.js";
import { KexecError } from "../core/errors.js";

/** All of `data` written at `position` (writeSync may write less than asked); errors are the caller's to word. */
export function writeFullyAt(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}

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
    const kind = fileKind(st);
    throw new KexecError("io", `${path}: is ${kind}, expected ${what} in a regular file`, { file: path, expected: "a regular file", actual: kind }, `copy the ${what} into a file first`);
  }
  if (st.size === 0 && options.allowEmpty === false) {
    throw new KexecError("io", `${path}: the ${what} is empty (0 bytes)`, { file: path, expected: "a non-empty file", actual: "0 bytes" },
      what === "initrd" ? "an initrd left empty by a full /boot: free space and rebuild it (update-initramfs -u -k VERSION), or load without --initrd" : `give the path of the ${what}`);
  }
  return st.size;
}

/** What kind of file `st` is, for messages ("a pipe (FIFO)", "a directory"): one place, so no caller wraps it for the kinds it lacked. */
export function fileKind(st: Stats): string {
  return st.isFile() ? "a regular file" : st.isDirectory() ? "a directory" : st.isFIFO() ? "a pipe (FIFO)" : st.isCharacterDevice() ? "a character device"
    : st.isBlockDevice() ? "a block device" : st.isSocket() ? "a socket" : "not a regular file";
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

/**
 * An errno error in words: "no such file or directory (ENOENT)", not Node's "ENOENT: no such
 * file or directory, open '/boot/vmlinuz'", which repeats the path the message names already.
 * The call and its path stay where they are another file's (mkdir of a parent, a temporary name).
 */
export function errnoText(e: unknown, named?: string): string {
  const err = e as NodeJS.ErrnoException | undefined;
  const message = err?.message ?? String(e);
  const m = /^(E[A-Z0-9]+): ([^,]+)(?:,|$)/.exec(message);
  if (!m) return message;
  const other = err?.path !== undefined && err.path !== named ? `, ${err.syscall ?? "at"} '${err.path}'` : "";
  return `${m[2]} (${m[1]})${other}`;
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
  return new KexecError("io", `${path}: cannot read ${what}: ${errnoText(e, path)}`, { file: path, errno: code }, hints[code] ?? `check that the ${what} is readable`, { cause: e });
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

/** NAME_MAX of Linux's file systems: the bytes of one name in a path. */
const NAME_MAX = 255;
const INCOMPLETE = ".incomplete";

/**
 * The temporary name an output is written under before it is renamed into place: NAME.incomplete.
 * A name too long for the suffix (NAME_MAX is 255 bytes) keeps as much of its start as fits, and a
 * hash of the whole name, so that the output's own name, which fits, does not fail with ENAMETOOLONG.
 */
export function temporaryOutputPath(path: string): string {
  const cut = path.lastIndexOf("/") + 1;
  const name = path.slice(cut);
  const bytes = new TextEncoder().encode(name);
  if (bytes.length + INCOMPLETE.length <= NAME_MAX) return `${path}${INCOMPLETE}`;
  // sha256 of ./crypto.js loads node:crypto only here: imported, it cost every save 1-2 MiB of peak RSS.
  const tag = `~${[...sha256([bytes]).subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
  // Whole UTF-8 characters only: cut at a byte that does not continue one.
  let keep = NAME_MAX - INCOMPLETE.length - tag.length;
  while (keep > 0 && (bytes[keep]! & 0xc0) === 0x80) keep--;
  return `${path.slice(0, cut)}${new TextDecoder().decode(bytes.subarray(0, keep))}${tag}${INCOMPLETE}`;
}

/** Linux's MAXSYMLINKS: a longer chain is a loop to the kernel too (ELOOP). */
const MAX_LINKS = 40;

/**
 * Where an output given as `path` is written. A rename over a symbolic link replaces the link,
 * not what it names: `-o /var/crash/latest` (a link to that day's vmcore) left the day's file
 * unwritten and the link gone. As shell redirection does, the output goes where the link points,
 * followed to the end of a chain; a dangling link's last name is created, as POSIX cp and `>` do
 * (GNU cp refuses), so a link made before its first dump works. A relative link is resolved from
 * the link's directory, joined without normalising ".." (which would be wrong if that directory
 * is itself reached through a link). Anything else, and a name that cannot be read, is `path`.
 */
export function resolveOutputPath(path: string): string {
  let current = path;
  for (let links = 0; ; links++) {
    let st: Stats;
    try {
      st = lstatSync(current);
    } catch {
      break; // nothing there: the end of a dangling chain, or a path that opening the file will explain
    }
    if (!st.isSymbolicLink()) break;
    if (links === 0) refuseWhatTheKernelWouldNotFollow(path);
    if (links === MAX_LINKS) {
      throw new KexecError("usage", `${path}: symbolic links that go round (more than ${MAX_LINKS} in a row, at ${current})`, { file: path, expected: "a link that ends at a file name", actual: `a chain of more than ${MAX_LINKS} links` }, `point ${path} at a file, or give another name`);
    }
    let to: string;
    try {
      to = readlinkSync(current);
    } catch {
      break; // replaced between the two calls: what is there now is checked as it is
    }
    const dir = current.includes("/") ? current.slice(0, current.lastIndexOf("/")) : "";
    current = to.startsWith("/") || dir === "" ? to : `${dir}/${to}`;
  }
  return current;
}

/**
 * The links are followed here, by name, where `>` lets the kernel follow them: so the kernel's
 * own refusal is asked for first. With fs.protected_symlinks (on by default) it follows no link
 * in a sticky world-writable directory (/tmp) that another user owns: kexec-ts runs as root,
 * and such a link would aim its output at any file on the machine. stat() follows the chain as
 * open() would; ENOENT is a dangling link, which `>` would create.
 */
function refuseWhatTheKernelWouldNotFollow(path: string): void {
  try {
    statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") {
      throw new KexecError("usage", `${path} is a symbolic link the kernel refuses to follow (${code})`, { file: path, errno: code, expected: "a link the writer may follow", actual: "a link it may not" },
        "a link in a sticky world-writable directory such as /tmp, owned by another user, is not followed (fs.protected_symlinks); or a directory on its way is not searchable. Give the file's own path");
    }
    if (code === "ELOOP") {
      throw new KexecError("usage", `${path}: symbolic links that go round (the kernel says ELOOP)`, { file: path, errno: code, expected: "a link that ends at a file name", actual: "a loop of links" }, `point ${path} at a file, or give another name`);
    }
  }
}

/** An output's name in messages: the path given, and where it points when that is a link. */
export function outputName(path: string, target: string): string {
  return target === path ? path : `${path} (a link to ${target})`;
}

/** Where a checked output goes, and what is there now. */
export interface OutputTarget {
  /** The file written: the output's path, or where a symbolic link there points (resolveOutputPath). The temporary file is beside it, so the rename stays on one file system. */
  target: string;
  /** Nothing, or a regular file (at `target`) the caller may decide to keep. */
  existing: Stats | undefined;
}

/**
 * An output is written under a temporary name (temporaryOutputPath) and renamed into place,
 * which replaces whatever is at its path; both are beside where a symbolic link at the path
 * points (resolveOutputPath), so the link stays and its target gets the output. Refused before
 * any work:
 * - one of the command's inputs, at the output's path (`vmcore save V V` and `inspect IMAGE
 *   --extract=IMAGE` each replaced their input) or at the temporary one (`vmcore save
 *   S.incomplete S` truncated its source as it read it: an interrupted save leaves that name);
 * - a directory, and a device, FIFO or socket at either name (/dev/full once became a regular
 *   file; a FIFO at the temporary name blocked forever);
 * - a dangling link into a directory that does not exist, and a loop of links;
 * - an empty path.
 */
export function checkOutputPath(out: OutputPath): OutputTarget {
  if (out.path === "") throw new KexecError("usage", `${out.command} needs a file path for ${out.what}, found an empty one`, { field: "path", expected: "a file path", actual: "" }, `give ${out.what} a file name`);
  const target = resolveOutputPath(out.path);
  const named = outputName(out.path, target);
  const linked = target === out.path ? {} : { target };
  const inputs = out.inputs.flatMap((input) => {
    try {
      return [{ ...input, st: statSync(input.path) }];
    } catch {
      return []; // reading the input says why
    }
  });
  const check = (path: string, temporary: boolean): Stats | undefined => {
    const name = temporary ? path : named;
    const file = temporary ? path : out.path;
    let st: Stats;
    try {
      st = statSync(path);
    } catch {
      return undefined; // nothing there (or nothing reachable): opening the temporary file says what is wrong, if anything
    }
    for (const input of inputs) {
      if (input.st.dev === st.dev && input.st.ino === st.ino) {
        const written = temporary ? `${out.what}, written there first and then renamed to ${target},` : out.what;
        throw new KexecError("usage", `${name} is ${input.what}${input.path === path ? "" : ` (${input.path})`}: ${written} would replace its own source`,
          { file, ...linked, expected: "another file", actual: "the source" }, temporary ? `give ${out.what} another name, or rename ${input.path} first` : `give ${out.what} another name`);
      }
    }
    if (st.isDirectory()) {
      throw new KexecError("usage", `${name} is a directory: ${out.command} needs ${out.what}'s file name`, { file, ...linked, expected: "a file name", actual: "a directory" },
        temporary ? `move ${path} away` : `e.g. ${out.path.replace(/\/+$/, "")}/${out.exampleName ?? out.what.replace(/^the /, "").replace(/\s+/g, "-")}`);
    }
    if (!st.isFile()) {
      const kind = fileKind(st);
      throw new KexecError("usage", temporary
        ? `${name} is ${kind}: ${out.command} writes ${out.what} there first (then renames it to ${target})`
        : `${name} is ${kind}: ${out.command} writes a file and renames it into place, which would replace it`, { file, ...linked, expected: "a file name", actual: kind },
      temporary ? `remove ${path}, or give ${out.what} another name` : out.streamHint ?? "give a file name, and copy the file where it should go afterwards");
    }
    return st;
  };
  const existing = check(target, false);
  if (existing === undefined && target !== out.path) {
    // A dangling link: its last name is created, in a directory that must be there (none is made
    // behind a link: a typo in it would grow a tree somewhere unexpected).
    const dir = target.includes("/") ? target.slice(0, target.lastIndexOf("/")) || "/" : ".";
    let isDirectory = false;
    try {
      isDirectory = statSync(dir).isDirectory();
    } catch { /* said below */ }
    if (!isDirectory) {
      throw new KexecError("usage", `${named} points into ${dir}, which is not a directory that exists`, { file: out.path, target, expected: "an existing directory", actual: dir },
        `create ${dir}, or point ${out.path} elsewhere`);
    }
  }
  check(temporaryOutputPath(target), true); // a stale regular file there (an interrupted run) is simply replaced
  return { target, existing };
}

/**
 * An output made from the files under --root (a snapshot) is not written among them: there it would
 * replace one (`report -o SNAP/proc/iomem` left every later run unable to parse iomem). `target` is
 * where the output is written (where a link at its path points), so that is what must be outside.
 */
export function refuseOutputInsideRoot(out: OutputPath, target: string, root: string): void {
  let rootDir: string;
  let outDir: string;
  try {
    rootDir = realpathSync(root);
    outDir = realpathSync(dirname(resolve(target)));
  } catch {
    return; // reading the snapshot, or writing the output, says what is wrong
  }
  // --root / is the machine itself: /proc and /sys, which no output is written over.
  if (rootDir !== "/" && (outDir === rootDir || outDir.startsWith(`${rootDir}/`))) {
    throw new KexecError("usage", `${outputName(out.path, target)} is inside --root ${root}, the snapshot ${out.what} is made from`, { file: out.path, expected: `a path outside ${root}`, actual: target },
      `write ${out.what} next to the snapshot, not into it`);
  }
}

/**
 * Write a whole file via a temporary name, so a failure never leaves half a file under the real
 * name, nor the temporary one behind. An existing regular file is replaced (as `cp` and `cc -o` do),
 * and a symbolic link's target is written, the link kept.
 */
export function writeOutputFile(out: OutputPath, data: Uint8Array, mode = 0o644): void {
  const { target } = checkOutputPath(out);
  const tmp = temporaryOutputPath(target);
  let fd: number;
  try {
    fd = openTemporaryOutput(tmp, mode);
  } catch (e) {
    throw writeError(e, out.path, out.what, target);
  }
  try {
    try {
      writeFullyAt(fd, data, 0);
    } catch (e) {
      closeSync(fd);
      throw writeError(e, out.path, out.what, target);
    }
    syncAndCloseOutput(fd, out, target);
    renameOutputIntoPlace(tmp, out, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * An output's temporary name (temporaryOutputPath), opened to be written from the start: made, or
 * a stale one truncated; never through a symbolic link planted there (O_NOFOLLOW), so the output
 * goes where it is named. A stale one keeps its own permissions through O_TRUNC: those `mode` does
 * not grant are taken away (never added), so a dump or a log of the crashed kernel's memory is
 * not written into a file others can read. `readable`: opened for reading too (a dump's bitmap is
 * read back). The errors are the open's or the chmod's; the caller says them.
 */
export function openTemporaryOutput(tmp: string, mode: number, readable = false): number {
  const fd = openSync(tmp, (readable ? constants.O_RDWR : constants.O_WRONLY) | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode);
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o777 & ~mode) !== 0) fchmodSync(fd, st.mode & 0o777 & mode);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/**
 * The end of writing an output under its temporary name: fsync, then close. Without the fsync a
 * crash soon after the rename can leave the name on an empty file: ext4 and xfs may commit the
 * rename before a new file's data. The descriptor is closed whatever happens.
 */
export function syncAndCloseOutput(fd: number, out: Pick<OutputPath, "path" | "what">, target: string): void {
  try {
    fsyncSync(fd);
  } catch (e) {
    try { closeSync(fd); } catch { /* the fsync's error is the one to tell */ }
    throw writeError(e, out.path, out.what, target);
  }
  closeSync(fd);
}

/** The temporary output renamed to its name, and the rename made durable too (an fsync of the directory). */
export function renameOutputIntoPlace(tmp: string, out: Pick<OutputPath, "path" | "what">, target: string): void {
  try {
    renameSync(tmp, target);
  } catch (e) {
    throw writeError(e, out.path, `${out.what} (renaming ${tmp} to it)`, target);
  }
  try {
    const dir = openSync(dirname(target), "r");
    try { fsyncSync(dir); } finally { closeSync(dir); }
  } catch { /* some file systems refuse fsync on a directory; the rename still comes after the data's fsync */ }
}

/** The error for an output that cannot be created or written. */
export function writeError(e: unknown, path: string, what: string, target = path): KexecError {
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
    // O_NOFOLLOW met a symbolic link at the temporary name (planted, or left by hand): not written through.
    ELOOP: "a symbolic link is at that name (outputs are never written through one there), or the path loops: remove it, or choose another place",
    // Creating the file (its temporary name) in a directory that is not there.
    ENOENT: `${dirname(target)} does not exist: create it first, or choose another place`,
  };
  return new KexecError("io", `${outputName(path, target)}: cannot write ${what}: ${errnoText(e, target)}`, { file: path, ...(target === path ? {} : { target }), errno: code }, hints[code] ?? "check the directory exists, is writable and has room", { cause: e });
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
      writeFullyAt(fd, bytes, 0);
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
