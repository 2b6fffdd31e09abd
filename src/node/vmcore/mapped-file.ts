/**
 * /proc/vmcore read through mmap windows, as makedumpfile reads it. read() on /proc/vmcore
 * copies each page of the crashed kernel's memory through a mapping made and torn down for that
 * page alone (copy_oldmem_page: ioremap, copy, iounmap, a TLB flush each time); mmap() maps a
 * whole window of old memory into this process at once (remap_oldmem_pfn_range, Linux 3.11
 * and later), and reading it is a memory copy.
 *
 * A few windows stay mapped, most recently used first, because a save reads both in order
 * (the pages, window after window) and here and there (struct pages and page tables for the
 * exclusion scan). Where mmap is refused (a kernel without it, a file system without it) the
 * reads fall back to read() for good. Mappings never leave this module: the bytes are copied
 * into the caller's buffer before a window can be unmapped.
 */
import { closeSync, fstatSync } from "node:fs";
import { KexecError } from "../../core/errors.js";
import { hex } from "../../core/format.js";
import { tryKoffi } from "../ffi.js";
import { SOURCE_FAILING, openRandomAccess, openVmcoreFile, pastEndOfFile, readFullyAt, type OpenFile } from "./file.js";

/** makedumpfile's default window on /proc/vmcore is 4 MiB too. */
export const WINDOW = 4 << 20;
const WINDOWS_KEPT = 4;
const PROT_READ = 1;
const MAP_PRIVATE = 2;

/**
 * Whether mmap's result, as koffi gives its address, is MAP_FAILED: (void *)-1, all ones in a
 * pointer's width. On i386 that is 32 bits (koffi gives 4294967295n there); compared with 64 ones,
 * a refused mmap read as a window mapped at 0xffffffff.
 */
export function isMapFailed(address: bigint, arch: string = process.arch): boolean {
  return address === (1n << (arch === "ia32" ? 32n : 64n)) - 1n;
}

interface Window {
  start: number;
  length: number;
  pointer: unknown;
  bytes: Uint8Array;
}

/** The source a vmcore save reads: /proc/vmcore through mmap windows, anything else through read(). */
export function openVmcoreSource(path: string): OpenFile {
  if (path === "/proc/vmcore" && process.env["KEXEC_TS_VMCORE_MMAP"] !== "0") {
    const mapped = openMappedFile(path);
    if (mapped !== undefined) return mapped;
  }
  return openRandomAccess(path);
}

/** A file read through mmap windows, or undefined where koffi cannot be loaded. */
export function openMappedFile(path: string): OpenFile | undefined {
  const koffi = tryKoffi();
  if (koffi === undefined) return undefined;
  const libc = koffi.load("libc.so.6");
  // mmap64: its offset is 64 bits on i386 too. There mmap's off_t is 32 bits, and a 64-bit
  // offset passed to it lost its high word: above 4 GiB of /proc/vmcore, the wrong memory.
  const mmap = libc.func("void *mmap64(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)") as (...a: unknown[]) => unknown;
  const munmap = libc.func("int munmap(void *addr, size_t length)") as (...a: unknown[]) => number;
  const fd = openVmcoreFile(path);
  const size = fstatSync(fd).size;
  const windows: Window[] = [];
  let mmapWorks = true;

  const unmap = (w: Window): void => {
    munmap(w.pointer, w.length);
  };
  const windowFor = (offset: number): Window | undefined => {
    const hit = windows.findIndex((w) => offset >= w.start && offset < w.start + w.length);
    if (hit >= 0) {
      const [w] = windows.splice(hit, 1);
      windows.unshift(w!);
      return w;
    }
    if (!mmapWorks) return undefined;
    const start = offset - (offset % WINDOW);
    const length = Math.min(WINDOW, size - start);
    const pointer = mmap(null, length, PROT_READ, MAP_PRIVATE, fd, start);
    if (pointer === null || isMapFailed(koffi.address(pointer))) {
      mmapWorks = false;
      return undefined;
    }
    const w: Window = { start, length, pointer, bytes: new Uint8Array(koffi.view(pointer, length)) };
    windows.unshift(w);
    if (windows.length > WINDOWS_KEPT) unmap(windows.pop()!);
    return w;
  };
  const checkInside = (offset: bigint, length: number): void => {
    if (Number(offset) + length > size) throw pastEndOfFile(path, offset, length, BigInt(size));
  };
  const readInto = (offset: bigint, out: Uint8Array, at: number, length: number): void => {
    checkInside(offset, length);
    let pos = Number(offset);
    let done = 0;
    while (done < length) {
      const w = windowFor(pos);
      if (w === undefined) {
        // mmap refused: read() from here on, the rest of this read included.
        readFullyAt(fd, path, BigInt(pos), out, at + done, length - done, SOURCE_FAILING, (end) =>
          new KexecError("io", `${path}: read error at offset ${hex(end)}: end of file`, { file: path, offset: end }, "the dump source is shorter than its ELF headers say: it was cut off or is still being written"));
        return;
      }
      const from = pos - w.start;
      const n = Math.min(length - done, w.length - from);
      out.set(w.bytes.subarray(from, from + n), at + done);
      done += n;
      pos += n;
    }
  };
  return {
    path, fd, size: BigInt(size), readInto,
    read(offset: bigint, length: number): Uint8Array {
      checkInside(offset, length); // before allocating what a damaged length field asks for
      const out = new Uint8Array(length);
      readInto(offset, out, 0, length);
      return out;
    },
    close() {
      for (const w of windows.splice(0)) unmap(w);
      closeSync(fd);
    },
  };
}
