/**
 * The capture initramfs' /init, a busybox sh script generated from what the build found out
 * about the machine. It runs in the capture kernel after a panic, with one CPU and a small
 * reservation, and must leave something behind whatever fails:
 *
 *   modules for the root and target devices → find the devices (UUID, else the path) →
 *   default mode: mount the real root read-only (the target read-write), chroot, run the
 *   system's Node and kexec-ts with a capped heap; self-contained: mount the target, run the
 *   Node inside the initramfs → `kexec-ts kdump save` writes <target>/<host>-<time>/ →
 *   final_action. Where Node does not start (no root, no memory), a raw copy of /proc/vmcore
 *   goes to raw_target with a record at the device's end, and the console says what failed;
 *   then failure_action.
 *
 * Every line it prints starts with "kexec-ts kdump:" so it stands out on a serial console.
 * Pure: the builder (src/node/kdump/initramfs.ts) puts the text into the cpio.
 */
import { LAUNCH_NODE_FLAGS } from "../launch.js";
import type { CaptureMode, FailureAction, FinalAction } from "./config.js";

/** A block device as the capture kernel should find it. */
export interface CaptureDevice {
  /** File system UUID, tried first: device names can differ in the capture kernel. */
  uuid: string | null;
  /** The running system's device node ("/dev/vda1"), the fallback. */
  path: string;
}

export interface CaptureFilesystem {
  device: CaptureDevice;
  fstype: string;
}

export interface CaptureInitSpec {
  version: string;
  mode: CaptureMode;
  /** Module files (initramfs paths) in load order. */
  modules: string[];
  /** Default mode: the root file system, mounted at /sysroot. */
  root: CaptureFilesystem | null;
  target: {
    fs: CaptureFilesystem;
    /** The target's file system is the root's: mounted once, read-write, the rest bound read-only. */
    onRoot: boolean;
    /** Where the target's file system is mounted in the running system ("/" or "/var"). */
    mountPoint: string;
    /** The target directory in the running system ("/var/crash"). */
    dir: string;
  };
  rawTarget: string | null;
  /** How the init starts Node: the program and kexec-ts' main.js, as seen from where it runs. */
  node: { program: string; main: string; heapMiB: number };
  failureAction: FailureAction;
  finalAction: FinalAction;
  /** Seconds to wait for a device to appear. */
  deviceWaitSec: number;
  /** The config file the settings came from: the console's hints name it. */
  configFile: string;
}

/**
 * Where the init mounts what Node runs from: the real root (default mode) or the squashfs image
 * of Node and kexec-ts (self-contained mode), and there, where the target's file system goes in
 * the self-contained mode.
 */
export const SYSROOT = "/sysroot";
export const TARGET_MOUNT = "/target";
/** The self-contained mode's image of Node, its libraries and kexec-ts, in the initramfs. */
export const SELF_CONTAINED_IMAGE = "/kexec-ts.sqfs";
/** Shared between the init and Node (bound into the chroot): the capture settings, the init's log, Node's started mark. */
export const RUN_DIR = "/run/kexec-ts";
/** V8's semi-space cap for the save in the capture kernel, MiB (see where the init starts Node). */
export const CAPTURE_SEMI_SPACE_MIB = 2;
export const CAPTURE_JSON = `${RUN_DIR}/capture.json`;
/** Names `kdump save` uses too (src/node/kdump/save.ts). */
export const INIT_LOG = `${RUN_DIR}/init.log`;
export const STARTED_MARK = `${RUN_DIR}/started`;
/** The raw target's record: the device's last 4 KiB. */
export const RAW_RECORD_MAGIC = "KEXEC-TS-KDUMP-RAW 1";
export const RAW_RECORD_SIZE = 4096;

export function shellWord(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** The target directory as Node sees it in this mode. */
export function targetDirForNode(spec: Pick<CaptureInitSpec, "mode" | "target">, pathInFs: string): string {
  if (spec.mode === "default") return spec.target.dir;
  return pathInFs === "/" ? TARGET_MOUNT : `${TARGET_MOUNT}${pathInFs}`;
}

export function generateCaptureInit(spec: CaptureInitSpec): string {
  const q = shellWord;
  const t = spec.target;
  // Where the target's file system ends up mounted, to unmount (and so flush) it before the action.
  const targetMount = spec.mode === "self-contained" ? SYSROOT + TARGET_MOUNT : SYSROOT + (t.onRoot ? t.dir : t.mountPoint);
  const L: string[] = [
    "#!/bin/sh",
    `# kexec-ts ${spec.version} kdump capture init (generated; see src/core/kdump/capture-init.ts). Mode: ${spec.mode}.`,
    "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    "/bin/busybox mount -t proc proc /proc",
    "/bin/busybox mount -t sysfs sysfs /sys",
    "/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null",
    `mkdir -p ${RUN_DIR} ${SYSROOT}`,
    `cp /etc/kexec-ts/capture.json ${CAPTURE_JSON}`,
    `say() { echo "kexec-ts kdump: $*"; echo "$(cut -d' ' -f1 /proc/uptime) $*" >> ${INIT_LOG}; }`,
    // Quiet kernel chatter so the console shows what happens; errors still print.
    "echo 4 > /proc/sys/kernel/printk",
    `say "capture environment of kexec-ts ${spec.version} (${spec.mode} mode) started; $(grep MemTotal /proc/meminfo | tr -s ' ')"`,
    "failed=",
    "fail() { failed=\"$*\"; say \"FAILED: $*\"; }",
    "",
    "# The actions, as kdump.conf names them.",
    "act() {",
    `  say "$1"`,
    `  umount ${q(targetMount)} 2>/dev/null; sync`,
    "  case \"$2\" in",
    "    halt) halt -f ;;",
    "    poweroff) poweroff -f ;;",
    "    shell) say \"a shell on the console; leave it to reboot\"; setsid cttyhack sh || sh; reboot -f ;;",
    "    *) reboot -f ;;",
    "  esac",
    "  sleep 5; echo b > /proc/sysrq-trigger",
    "}",
    "",
    "# A device by file system UUID (names may differ in the capture kernel), else by path.",
    "find_dev() {",
    "  i=0",
    `  while [ $i -lt ${spec.deviceWaitSec} ]; do`,
    "    if [ -n \"$1\" ]; then d=$(findfs \"UUID=$1\" 2>/dev/null) && [ -b \"$d\" ] && { echo \"$d\"; return 0; }; elif [ -b \"$2\" ]; then echo \"$2\"; return 0; fi",
    "    sleep 1; i=$((i+1))",
    "  done",
    "  [ -b \"$2\" ] && { echo \"$2\"; return 0; }",
    "  return 1",
    "}",
    "",
    "[ -e /proc/vmcore ] || fail \"/proc/vmcore is missing: this kernel was not started by a crash (or lacks CONFIG_PROC_VMCORE)\"",
  ];
  for (const m of spec.modules) L.push(`insmod ${q(m)} 2>>${INIT_LOG} || say ${q(`insmod ${m.slice(m.lastIndexOf("/") + 1)} failed (see capture.log)`)}`);
  const mountFs = (what: string, fs: CaptureFilesystem, where: string, options: string): string[] => [
    `if [ -z "$failed" ]; then`,
    `  if dev=$(find_dev ${q(fs.device.uuid ?? "")} ${q(fs.device.path)}); then`,
    `    mount -t ${q(fs.fstype)} -o ${options} "$dev" ${q(where)} 2>>${INIT_LOG} || fail ${q(`cannot mount the ${what} (`)}"$dev"${q(`, ${fs.fstype}, ${options}) at ${where}: see the kernel messages above`)}`,
    `  else fail ${q(`the ${what} device ${fs.device.uuid ? `UUID=${fs.device.uuid} ` : ""}(${fs.device.path}) did not appear within ${spec.deviceWaitSec} s: a driver missing from the capture initramfs?`)}; fi`,
    "fi",
  ];
  if (spec.mode === "default") {
    if (spec.root === null) throw new Error("default mode needs the root file system");
    // The target on the root's file system: one read-write mount, the target bound, the rest made read-only.
    L.push(...mountFs("root", spec.root, SYSROOT, t.onRoot ? "rw" : "ro"));
    if (t.onRoot) {
      L.push(`[ -z "$failed" ] && { mount --bind ${q(SYSROOT + t.dir)} ${q(SYSROOT + t.dir)} && mount -o remount,bind,ro ${SYSROOT} || say "could not make the root read-only around ${t.dir}; it stays read-write"; }`);
    } else {
      L.push(...mountFs("target", t.fs, SYSROOT + t.mountPoint, "rw"));
    }
  } else {
    // Node, its libraries and kexec-ts are a squashfs image in the initramfs: mounted, not unpacked,
    // so the reservation holds the compressed image and only the pages Node reads.
    L.push(
      `mount -t squashfs -o loop,ro ${SELF_CONTAINED_IMAGE} ${SYSROOT} 2>>${INIT_LOG} || fail "cannot mount ${SELF_CONTAINED_IMAGE} (squashfs over a loop device): see the kernel messages above"`,
      ...mountFs("target", t.fs, SYSROOT + TARGET_MOUNT, "rw"),
    );
  }
  const whose = spec.mode === "default" ? "the system's Node" : "the Node inside the capture initramfs";
  L.push(
    `if [ -z "$failed" ]; then`,
    `  for d in proc sys dev run; do mount --bind /$d ${SYSROOT}/$d || fail "cannot bind /$d into ${SYSROOT}"; done`,
    `  mount -t tmpfs -o size=8m tmpfs ${SYSROOT}/tmp 2>/dev/null`,
    `  say "saving with ${whose}: ${spec.node.program} (heap ${spec.node.heapMiB} MiB)"`,
    // The young generation is capped too: V8 grows it to 3 x 16 MiB under a high allocation rate,
    // beyond the old-space cap, and in a tight reservation that pushes Node's own binary pages out
    // (seen at 160M: private memory 71 MiB and a 48 MiB dump saved in 591 s instead of 52).
    // Node is given what kexec-ts's #! line gives it (launch.ts).
    `  chroot ${SYSROOT} ${q(spec.node.program)} ${LAUNCH_NODE_FLAGS.join(" ")} --max-old-space-size=${spec.node.heapMiB} --max-semi-space-size=${CAPTURE_SEMI_SPACE_MIB} ${q(spec.node.main)} kdump save ${CAPTURE_JSON}`,
    "  rc=$?",
    "fi",
  );
  L.push(
    "",
    `if [ -z "$failed" ] && [ "$rc" = 0 ]; then act "the dump is saved; ${spec.finalAction}" ${q(spec.finalAction)}; fi`,
    `if [ -z "$failed" ] && [ -e ${STARTED_MARK} ]; then act "the save did not finish (exit $rc); see capture.log in the dump's directory; ${spec.failureAction}" ${q(spec.failureAction)}; fi`,
    `[ -z "$failed" ] && fail "Node did not start (exit $rc): out of memory in the reservation, or a missing library"`,
  );
  if (spec.rawTarget !== null) {
    const raw = q(spec.rawTarget);
    L.push(
      "# Node never ran: the raw target gets /proc/vmcore as it is, and a record in its last 4 KiB.",
      `if [ -b ${raw} ] && [ -e /proc/vmcore ]; then`,
      `  size=$(blockdev --getsize64 ${raw}); want=$(stat -c %s /proc/vmcore); room=$((size - ${RAW_RECORD_SIZE}))`,
      `  say "copying /proc/vmcore ($want bytes) raw to ${spec.rawTarget}; kexec-ts kdump report converts it after the reboot"`,
      // Whole MiBs, then the 4 KiB pages after them (/proc/vmcore's size is a multiple of pages, not of MiBs).
      "  copied=$((room < want ? room : want)); mib=$((copied / 1048576)); pages=$(((copied - mib * 1048576) / 4096)); copied=$((mib * 1048576 + pages * 4096))",
      `  dd if=/proc/vmcore of=${raw} bs=1M count=$mib conv=fsync 2>>${INIT_LOG} && dd if=/proc/vmcore of=${raw} bs=4096 skip=$((mib * 256)) seek=$((mib * 256)) count=$pages conv=fsync,notrunc 2>>${INIT_LOG}; ddrc=$?`,
      "  complete=0; [ $ddrc = 0 ] && [ $copied -ge $want ] && complete=1",
      `  head -c ${RAW_RECORD_SIZE} /dev/zero > /run/raw-record`,
      `  { echo ${q(RAW_RECORD_MAGIC)}; echo "time=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "bytes=$copied"; echo "vmcore=$want"; echo "complete=$complete"; echo "reason=$failed"; } | dd of=/run/raw-record conv=notrunc 2>/dev/null`,
      `  dd if=/run/raw-record of=${raw} bs=${RAW_RECORD_SIZE} count=1 seek=$((size / ${RAW_RECORD_SIZE} - 1)) conv=fsync,notrunc 2>>${INIT_LOG} && say "raw copy done: $copied of $want bytes"`,
      "else",
      `  say "the raw target ${spec.rawTarget} is not there: nothing saved"`,
      "fi",
    );
  } else {
    L.push(`say "no raw_target configured: nothing saved (configure raw_target in "${q(spec.configFile)}" as a last resort)"`);
  }
  L.push(`act "${spec.failureAction} after the failure: $failed" ${q(spec.failureAction)}`, "while true; do sleep 3600; done", "");
  return L.join("\n");
}
