/**
 * What the capture initramfs needs to mount a file system again: the mount that holds a path
 * (/proc/self/mountinfo), its block device, the device's UUID, and the kernel modules that
 * drive it, read from /sys: every ancestor of /sys/dev/block/MAJ:MIN that has a driver bound
 * (the disk, its virtio or PCI parent, the controller), the devices under it for dm and md
 * (slaves/), and the file system's own module.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { DEFAULT_CONFIG_PATH } from "../../core/kdump/config.js";
import { SUPERBLOCK_BYTES, filesystemUuid } from "../../core/kdump/fs-uuid.js";
import { LOCAL_BLOCK_FILESYSTEMS, mountOf, parseMountinfo, pathInFilesystem, type MountEntry } from "../../core/kdump/mounts.js";

export interface DriverFact {
  /** The sysfs device the driver is bound to. */
  device: string;
  driver: string;
  /** The module that provides it; null for a driver built into the kernel. */
  module: string | null;
}

export interface FilesystemFacts {
  /** The path asked about, symlinks resolved. */
  path: string;
  mount: MountEntry;
  /** The path within the file system (what the capture kernel sees after mounting it itself). */
  pathInFs: string;
  fstype: string;
  /** The block device node, "/dev/vda1". */
  devPath: string;
  majMin: string;
  uuid: string | null;
  drivers: DriverFact[];
}

export function readMounts(): MountEntry[] {
  return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

/** A mount's block device as MAJ:MIN: btrfs reports an anonymous 0:N there, so its source's st_rdev instead. */
function blockMajMin(m: MountEntry): string | null {
  if (!m.majMin.startsWith("0:")) return m.majMin;
  try {
    const st = statSync(m.source);
    if (!st.isBlockDevice()) return null;
    const rdev = st.rdev;
    // glibc's encoding of dev_t (gnu_dev_major/minor).
    const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
    const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
    return `${major}:${minor}`;
  } catch {
    return null;
  }
}

/** Drivers bound to the device and its ancestors, and to the devices it is built on (dm, md). */
export function blockDeviceDrivers(majMin: string, seen = new Set<string>()): DriverFact[] {
  if (seen.has(majMin)) return [];
  seen.add(majMin);
  const link = `/sys/dev/block/${majMin}`;
  let dir: string;
  try {
    dir = realpathSync(link);
  } catch {
    return [];
  }
  const out: DriverFact[] = [];
  for (let d = dir; d.startsWith("/sys/devices/") && d !== "/sys/devices"; d = dirname(d)) {
    const driverLink = join(d, "driver");
    if (!existsSync(driverLink)) continue;
    const driverDir = realpathSync(driverLink);
    const moduleLink = join(driverDir, "module");
    // A built-in driver may still have a module directory (for its parameters), but no initstate there.
    const moduleDir = existsSync(moduleLink) ? realpathSync(moduleLink) : null;
    const module = moduleDir !== null && existsSync(join(moduleDir, "initstate")) ? basename(moduleDir) : null;
    out.push({ device: d, driver: basename(driverDir), module });
  }
  // A partition's disk is its parent directory, already walked; dm and md name their parts under slaves/.
  const slaves = join(dir, "slaves");
  if (existsSync(slaves)) {
    for (const s of readdirSync(slaves)) {
      const dev = readText(join(slaves, s, "dev"));
      if (dev !== null) out.push(...blockDeviceDrivers(dev, seen));
    }
  }
  // Device-mapper targets are modules of their own (dm-crypt, dm-linear is built into dm-mod).
  const dmTable = readText(join(dir, "dm", "uuid"));
  if (dmTable !== null && /^CRYPT-/.test(dmTable)) out.push({ device: dir, driver: "dm-crypt", module: "dm_crypt" });
  return out;
}

function devNode(majMin: string, fallback: string): string {
  const uevent = readText(`/sys/dev/block/${majMin}/uevent`) ?? "";
  const name = /^DEVNAME=(.+)$/m.exec(uevent)?.[1];
  return name === undefined ? fallback : `/dev/${name}`;
}

function uuidOf(devPath: string, fstype: string): string | null {
  // udev's links first: they are what findfs will match in the capture kernel too.
  try {
    for (const name of readdirSync("/dev/disk/by-uuid")) {
      if (realpathSync(join("/dev/disk/by-uuid", name)) === realpathSync(devPath)) return name;
    }
  } catch {
    // no udev (an initramfs, a container): read the superblock
  }
  let fd: number | undefined;
  try {
    fd = openSync(devPath, "r");
    const head = new Uint8Array(SUPERBLOCK_BYTES);
    const n = readSync(fd, head, 0, head.length, 0);
    return filesystemUuid(head.subarray(0, n), fstype);
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The facts for the file system that holds `path`; a KexecError names what makes it unusable for a capture. */
export function describeFilesystem(path: string, what: string, mounts = readMounts(), configFile = DEFAULT_CONFIG_PATH): FilesystemFacts {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw new KexecError("io", `the ${what} ${path} does not exist (${(e as NodeJS.ErrnoException).code ?? "error"})`, { file: path }, `create it (mkdir -p ${path}) or set another one in ${configFile}`);
  }
  const m = mountOf(mounts, real);
  if (m === undefined) throw new KexecError("machine", `no mount holds ${real} in /proc/self/mountinfo`, { file: "/proc/self/mountinfo", actual: real }, "give a path on a mounted file system");
  if (!LOCAL_BLOCK_FILESYSTEMS.has(m.fstype)) {
    throw new KexecError("machine", `the ${what} ${real} is on ${m.fstype} (${m.source} at ${m.mountPoint}), which the capture kernel cannot mount from a local disk`,
      { file: real, field: "fstype", expected: [...LOCAL_BLOCK_FILESYSTEMS].join(", "), actual: m.fstype }, "put the target on a local disk file system (ext4, xfs, btrfs), or set raw_target");
  }
  const majMin = blockMajMin(m);
  if (majMin === null) throw new KexecError("machine", `the ${what} ${real} is on ${m.source}, which is not a block device`, { file: real, actual: m.source }, "the dump target must be on a local block device (or use raw_target)");
  const devPath = devNode(majMin, m.source);
  return { path: real, mount: m, pathInFs: pathInFilesystem(m, real), fstype: m.fstype, devPath, majMin, uuid: uuidOf(devPath, m.fstype), drivers: blockDeviceDrivers(majMin) };
}

/** The drivers of a raw block device (raw_target). */
export function describeRawDevice(path: string): { devPath: string; majMin: string; drivers: DriverFact[] } {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new KexecError("io", `raw_target ${path} does not exist (${(e as NodeJS.ErrnoException).code ?? "error"})`, { file: path, field: "raw_target" }, "give a block device such as /dev/vdb, or leave raw_target empty");
  }
  if (!st.isBlockDevice()) throw new KexecError("io", `raw_target ${path} is not a block device`, { file: path, field: "raw_target" }, "give a block device such as /dev/vdb");
  const base = basename(realpathSync(path));
  const link = existsSync(`/sys/class/block/${base}/dev`) ? readText(`/sys/class/block/${base}/dev`) : null;
  if (link === null) throw new KexecError("machine", `no /sys/class/block/${base}/dev for raw_target ${path}`, { file: path }, "give raw_target a block device under /dev");
  return { devPath: `/dev/${base}`, majMin: link, drivers: blockDeviceDrivers(link) };
}

/** Modules loaded now (/proc/modules), by name. */
export function loadedModules(): Set<string> {
  const text = readText("/proc/modules") ?? "";
  return new Set(text.split("\n").map((l) => l.split(" ")[0]!).filter(Boolean));
}
