/**
 * /proc/self/mountinfo (Documentation/filesystems/proc.rst, "mountinfo"): which mount holds a
 * path, its device (major:minor), file system type and options. The capture initramfs has to
 * mount the same file systems again, from the device, with only its own drivers.
 */
import { KexecError } from "../errors.js";

export interface MountEntry {
  mountId: number;
  parentId: number;
  /** "254:1". */
  majMin: string;
  /** The directory of the file system mounted here ("/" unless a bind mount of a subtree). */
  root: string;
  mountPoint: string;
  /** Per-mount options (ro/rw, nosuid...). */
  options: string[];
  fstype: string;
  /** "/dev/vda1", or "none", "tmpfs"... */
  source: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040...). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountinfo(text: string, file = "/proc/self/mountinfo"): MountEntry[] {
  const out: MountEntry[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    const fields = line.split(" ");
    const dash = fields.indexOf("-", 6);
    if (fields.length < 10 || dash < 0 || fields.length < dash + 4) {
      throw new KexecError("parse", `${file}:${i + 1}: expected "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPEROPTIONS"`, { file, line: i + 1, actual: line }, "the file is not in /proc/self/mountinfo's format (proc(5))");
    }
    out.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      majMin: fields[2]!,
      root: unescape(fields[3]!),
      mountPoint: unescape(fields[4]!),
      options: fields[5]!.split(","),
      fstype: fields[dash + 1]!,
      source: unescape(fields[dash + 2]!),
      superOptions: fields[dash + 3]!.split(","),
    });
  }
  return out;
}

/**
 * The mount that holds `path` (already free of symlinks): the longest mount point that is a
 * prefix of it, the last one mounted when several share a mount point (it hides the others).
 */
export function mountOf(mounts: readonly MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    const mp = m.mountPoint;
    const inside = mp === "/" || path === mp || path.startsWith(`${mp}/`);
    if (!inside) continue;
    if (best === undefined || mp.length >= best.mountPoint.length) best = m;
  }
  return best;
}

/** `path` relative to the file system mounted at `m`, as the capture kernel will see it after mounting that file system itself. */
export function pathInFilesystem(m: MountEntry, path: string): string {
  const rest = m.mountPoint === "/" ? path : path.slice(m.mountPoint.length);
  const joined = `${m.root === "/" ? "" : m.root}${rest}`;
  return joined === "" ? "/" : joined.startsWith("/") ? joined : `/${joined}`;
}

/** File systems a capture kernel can mount from a local block device. */
export const LOCAL_BLOCK_FILESYSTEMS = new Set(["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "f2fs"]);
