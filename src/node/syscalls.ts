/**
 * The kexec syscalls through FFI (koffi, which ships prebuilt linux-x64 and
 * linux-ia32 binaries, so the same code runs in a 64-bit and a 32-bit Node).
 * Numbers are those of the *user space's* ABI: a 32-bit Node on a 64-bit
 * kernel goes through the compat entry points (kexec_load 283), whose segment
 * struct has 32-bit fields — so it cannot name a destination above 4 GiB.
 */
import { closeSync, openSync, readSync, constants as fsConstants } from "node:fs";
import { fixedAddress, hasFixedAddress, loadKoffi, type Koffi } from "./ffi.js";
import { KexecError } from "../core/errors.js";
import { hex } from "../core/format.js";
import { KEXEC_FILE_NO_INITRAMFS, KEXEC_FILE_ON_CRASH, KEXEC_FILE_UNLOAD, KEXEC_ON_CRASH, KEXEC_SEGMENT_MAX } from "../core/plan/kexec-abi.js";
import { syscallError, type ErrnoContext } from "../core/plan/syscall-errors.js";
import { ioError } from "./files.js";


const LINUX_REBOOT_MAGIC1 = 0xfee1dead;
const LINUX_REBOOT_MAGIC2 = 672274793;
const LINUX_REBOOT_CMD_KEXEC = 0x45584543;

export type UserArch = "x86_64" | "i386";

interface SyscallNumbers {
  kexec_load: number;
  kexec_file_load: number | undefined;
  reboot: number;
}

const NUMBERS: Record<UserArch, SyscallNumbers> = {
  // arch/x86/entry/syscalls/syscall_64.tbl
  x86_64: { kexec_load: 246, kexec_file_load: 320, reboot: 169 },
  // syscall_32.tbl: there is no kexec_file_load for 32-bit callers
  i386: { kexec_load: 283, kexec_file_load: undefined, reboot: 88 },
};

export function userArch(): UserArch {
  if (process.arch === "x64") return "x86_64";
  if (process.arch === "ia32") return "i386";
  throw new KexecError("syscall", `kexec-ts runs on x86 only; this Node is ${process.arch}`, { actual: process.arch }, "load on an x86 machine; elsewhere, predict with `check` and `plan --root DIR` on a snapshot of one");
}

export interface LoadSegment {
  buf: Uint8Array;
  mem: bigint;
  memsz: bigint;
}

let ffi: { koffi: Koffi; syscall: (...args: unknown[]) => number | bigint; sync: () => void; lseek: (fd: number, offset: number, whence: number) => number | bigint } | undefined;

function load() {
  if (ffi) return ffi;
  const koffi = loadKoffi();
  let libc: ReturnType<Koffi["load"]>;
  try {
    libc = koffi.load("libc.so.6");
  } catch (e) {
    // musl (Alpine) has no libc.so.6, and the system calls are made through glibc's syscall(2).
    throw new KexecError("syscall", `cannot load the C library libc.so.6 to make the kexec system calls: ${(e as Error).message}`, { file: "libc.so.6" },
      "kexec-ts calls the kernel through glibc; on a system without it, predict with `check` and `plan`, and load with kexec-tools");
  }
  ffi = {
    koffi,
    syscall: libc.func("long syscall(long number, ...)") as (...args: unknown[]) => number | bigint,
    sync: libc.func("void sync(void)") as () => void,
    lseek: libc.func("int64_t lseek64(int fd, int64_t offset, int whence)") as (fd: number, offset: number, whence: number) => number | bigint,
  };
  return ffi;
}

function errnoName(koffi: Koffi, errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** The errno of the call that just failed, by name and number. */
function lastErrno(koffi: Koffi): { errno: string; errnoNumber: number } {
  const n = koffi.errno();
  return { errno: errnoName(koffi, n), errnoNumber: n };
}

/** A file the kernel reads through a descriptor (kexec_file_load). */
function openForSyscall(path: string, what: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw ioError(e, path, what);
  }
}

const SEEK_END = 2;

/**
 * The kernel log from now on (/dev/kmsg, one record per read), for what a failing syscall
 * logged. Opened at its end by lseek: reading the whole log to find its end took 30-40 ms of a
 * crash load under QEMU's TCG. Where /dev/kmsg cannot be opened, no lines.
 */
export function kernelLogFromNow(lseek = load().lseek): { lines(): string[]; close(): void } {
  let open: number;
  try {
    open = openSync("/dev/kmsg", fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return { lines: () => [], close: () => {} };
  }
  // Where lseek fails, the records there now are read, and so passed over.
  if (Number(lseek(open, 0, SEEK_END)) < 0) readRecords(open);
  return { lines: () => readRecords(open), close: () => closeSync(open) };
}

/** The records readable from a /dev/kmsg descriptor, each record's message (its first line). */
function readRecords(fd: number): string[] {
  const lines: string[] = [];
  const buf = Buffer.alloc(8192);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EPIPE") continue; // records were overwritten; keep reading
      break; // EAGAIN: no more records
    }
    const record = buf.toString("utf8", 0, n);
    lines.push(record.slice(record.indexOf(";") + 1).split("\n")[0] ?? "");
  }
  return lines;
}

export function kexecLoad(entry: bigint, segments: readonly LoadSegment[], flags: number, ctx: ErrnoContext = {}): void {
  const arch = userArch();
  if (segments.length > KEXEC_SEGMENT_MAX) throw new KexecError("internal", `kexec_load takes at most ${KEXEC_SEGMENT_MAX} segments, the plan has ${segments.length}`, { expected: `<= ${KEXEC_SEGMENT_MAX}`, actual: String(segments.length) }, "this is a bug in kexec-ts' plan; please report it with `kexec-ts plan --json`");
  if (arch === "i386") {
    for (const s of segments) {
      if (s.mem + s.memsz > 1n << 32n) {
        throw new KexecError("syscall", `a 32-bit kexec_load cannot name destination ${hex(s.mem)}+${hex(s.memsz)}: the compat segment struct has 32-bit addresses`,
          { field: "mem", actual: hex(s.mem) }, "use a 64-bit kexec-ts, or a crash region below 4 GiB");
      }
    }
    if (entry >= 1n << 32n) throw new KexecError("syscall", `a 32-bit kexec_load cannot pass entry ${hex(entry)}`, { field: "entry", actual: hex(entry) }, "use a 64-bit kexec-ts, or a crash region below 4 GiB");
  }
  const { koffi, syscall } = load();
  const native = nativeSegments(koffi, segments);
  try {
    const rc = syscall(NUMBERS[arch].kexec_load, "unsigned long", entry, "unsigned long", segments.length, "void *", native.array, "unsigned long", flags >>> 0);
    if (Number(rc) < 0) {
      throw syscallError({ call: "kexec_load", ...lastErrno(koffi), entry, flags, segments: segments.map((s) => ({ mem: s.mem, memsz: s.memsz, bufsz: BigInt(s.buf.length) })) }, ctx);
    }
  } finally {
    native.free();
  }
}

/**
 * The struct kexec_segment array kexec_load reads, in native memory. A segment's bytes are
 * handed over where they are (the address of its array, which lies outside V8's moving heap and
 * is held by `segments` through the call): copying the kernel and initrd into native memory first
 * took 0.7 s of a 5-6 s crash load in the lab's emulated guest, and their size again in memory.
 * Only a tiny segment, whose bytes V8 may keep in its heap, is copied into an allocation, through
 * a view (koffi caps an array type at 64 MiB, and an initramfs-tools initrd can be larger).
 * The caller frees, after the call.
 */
export function nativeSegments(koffi: Koffi, segments: readonly LoadSegment[]): { array: unknown; free: () => void } {
  const kexecSegment = koffi.struct({ buf: "uintptr_t", bufsz: "size_t", mem: "uintptr_t", memsz: "size_t" });
  const owned: unknown[] = [];
  const free = (): void => {
    for (const p of owned) koffi.free(p as never);
  };
  try {
    const records = segments.map((s) => {
      if (s.buf.length > 0 && hasFixedAddress(s.buf)) return { buf: fixedAddress(koffi, s.buf), bufsz: s.buf.length, mem: s.mem, memsz: s.memsz };
      const buf = koffi.alloc("uint8_t", Math.max(1, s.buf.length));
      owned.push(buf);
      if (s.buf.length) new Uint8Array(koffi.view(buf, s.buf.length)).set(s.buf);
      return { buf: koffi.address(buf), bufsz: s.buf.length, mem: s.mem, memsz: s.memsz };
    });
    const array = koffi.alloc(kexecSegment, Math.max(1, records.length));
    owned.push(array);
    if (records.length) koffi.encode(array, koffi.array(kexecSegment, records.length), records);
    return { array, free };
  } catch (e) {
    free();
    throw e;
  }
}

export function kexecUnload(crash: boolean, ctx: ErrnoContext = {}): void {
  const arch = userArch();
  const { koffi, syscall } = load();
  // kexec_load with no segments unloads; the arch bits must still be DEFAULT or native, so pass none.
  const rc = syscall(NUMBERS[arch].kexec_load, "unsigned long", 0n, "unsigned long", 0, "void *", null, "unsigned long", crash ? KEXEC_ON_CRASH : 0);
  if (Number(rc) < 0) throw syscallError({ call: "kexec_unload", ...lastErrno(koffi), flags: crash ? KEXEC_ON_CRASH : 0 }, ctx);
}

export function kexecFileLoad(kernelPath: string, initrdPath: string | undefined, cmdline: string, flags: number, ctx: ErrnoContext = {}): void {
  const arch = userArch();
  const number = NUMBERS[arch].kexec_file_load;
  if (number === undefined) {
    throw new KexecError("syscall", "kexec_file_load does not exist for 32-bit processes (no entry in syscall_32.tbl)", { errno: "ENOSYS", call: "kexec_file_load", kernel: kernelPath, fallbackAllowed: true }, "use kexec_load (-c), or a 64-bit kexec-ts");
  }
  const { koffi, syscall } = load();
  const kernelFd = openForSyscall(kernelPath, "kernel image");
  let initrdFd = -1;
  try {
    initrdFd = initrdPath === undefined ? -1 : openForSyscall(initrdPath, "initrd");
  } catch (e) {
    closeSync(kernelFd);
    throw e;
  }
  const fileFlags = (flags | (initrdPath === undefined ? KEXEC_FILE_NO_INITRAMFS : 0)) >>> 0;
  const kernelLogAfter = kernelLogFromNow();
  try {
    // The length the kernel wants includes the terminating NUL, which koffi appends to the string.
    const rc = syscall(number, "int", kernelFd, "int", initrdFd, "unsigned long", Buffer.byteLength(cmdline, "utf8") + 1, "const char *", cmdline, "unsigned long", fileFlags);
    if (Number(rc) < 0) {
      const errno = lastErrno(koffi);
      const kernelLog = kernelLogAfter.lines().filter((l) => /kexec|bzImage|purgatory|crash/i.test(l));
      throw syscallError({ call: "kexec_file_load", ...errno, flags: fileFlags, kernel: kernelPath, initrd: initrdPath, cmdline }, { ...ctx, kernelLog });
    }
  } finally {
    kernelLogAfter.close();
    closeSync(kernelFd);
    if (initrdFd >= 0) closeSync(initrdFd);
  }
}

export function kexecFileUnload(crash: boolean, ctx: ErrnoContext = {}): void {
  const arch = userArch();
  const number = NUMBERS[arch].kexec_file_load;
  if (number === undefined) return kexecUnload(crash, ctx);
  const { koffi, syscall } = load();
  const flags = KEXEC_FILE_UNLOAD | (crash ? KEXEC_FILE_ON_CRASH : 0);
  const rc = syscall(number, "int", -1, "int", -1, "unsigned long", 0, "const char *", null, "unsigned long", flags);
  if (Number(rc) < 0) throw syscallError({ call: "kexec_unload", ...lastErrno(koffi), flags }, ctx);
}

/** sync() (unless told not to, as kexec -y), then reboot(LINUX_REBOOT_CMD_KEXEC). Returns only on failure. */
export function rebootIntoKexec(ctx: ErrnoContext = {}, options: { sync: boolean } = { sync: true }): never {
  const arch = userArch();
  const { koffi, syscall, sync } = load();
  if (options.sync) sync();
  syscall(NUMBERS[arch].reboot, "int", LINUX_REBOOT_MAGIC1 | 0, "int", LINUX_REBOOT_MAGIC2, "unsigned int", LINUX_REBOOT_CMD_KEXEC, "void *", null);
  throw syscallError({ call: "reboot", ...lastErrno(koffi), flags: LINUX_REBOOT_CMD_KEXEC }, ctx);
}

export function syncFilesystems(): void {
  load().sync();
}
