/**
 * A vmcore seen through mmap windows, as makedumpfile sees it.
 *
 * /proc/vmcore is read through them: read() on it copies each page of the crashed kernel's
 * memory through a mapping made and torn down for that page alone (copy_oldmem_page: ioremap,
 * copy, iounmap, a TLB flush each time); mmap() maps a whole window of old memory into this
 * process at once (remap_oldmem_pfn_range, Linux 3.11 and later), and reading it is a memory
 * copy. A few windows stay mapped, most recently used first: a save reads here and there
 * (headers, page tables, the log).
 *
 * Of any vmcore, /proc/vmcore or a file, the bytes a save goes through are seen in place
 * (`view`), in a window of their own: the pages it compresses, and the struct pages its exclusion
 * scan reads (exclude.ts). read() copied them once more (0.17 s of system time per GiB here), and
 * the compressor or the scan then read the copy. 4 GiB -d 1 lzo on one CPU took 1.38 s against
 * 1.59 (makedumpfile 1.24), 1.04 against 1.11 s with a worker (alternating runs, medians, stop
 * 44). A file's other reads stay read() copies: a fault maps more of a file than the page it is
 * on, and the 162 log pages of a 1 GiB vmcore, read through kept windows, left 15.6 MiB of it
 * resident.
 *
 * Where mmap is refused (a kernel without it, a file system without it) the reads fall back to
 * read() for good. A file mapped is read as memory: should it shrink while it is saved, or its
 * disk fail, the save is killed by SIGBUS where read() gave an error (makedumpfile too maps it);
 * KEXEC_TS_VMCORE_MMAP=0 reads everything through read().
 */
import { closeSync, fstatSync } from "node:fs";
import { KexecError } from "../../core/errors.js";
import { hex } from "../../core/format.js";
import { tryKoffi, type Koffi } from "../ffi.js";
import type { SourceView } from "../../core/vmcore/memory.js";
import { SOURCE_FAILING, openRandomAccess, openVmcoreFile, pastEndOfFile, readFullyAt, type OpenFile } from "./file.js";

/** makedumpfile's default window on /proc/vmcore is 4 MiB too. */
export const WINDOW = 4 << 20;
/** Windows kept for the reads of /proc/vmcore. */
const WINDOWS_KEPT = 4;
const PROT_NONE = 0;
const PROT_READ = 1;
const MAP_PRIVATE = 2;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;

/**
 * Whether mmap's result, as koffi gives its address, is MAP_FAILED: (void *)-1, all ones in a
 * pointer's width. On i386 that is 32 bits (koffi gives 4294967295n there); compared with 64 ones,
 * a refused mmap read as a window mapped at 0xffffffff.
 */
export function isMapFailed(address: bigint, arch: string = process.arch): boolean {
  return address === (1n << (arch === "ia32" ? 32n : 64n)) - 1n;
}

/**
 * A place a window is mapped at: one of the fixed slots of address space reserved when the file
 * is opened, each with its view made once. A window is mapped over the one before it in its slot
 * (MAP_FIXED), so no view ever points at unmapped memory, and no ArrayBuffer is made per window:
 * V8 counts each one's bytes as external memory, and a view per window made it collect garbage
 * four times as often (1 GiB -d 1 lzo: 17 ms against 4).
 */
interface Slot {
  /** The slot's address. */
  at: number;
  /** Its bytes, as big as a window. */
  bytes: Uint8Array;
  /** The window mapped here: its file offset and length; length 0 while none is. */
  start: number;
  length: number;
  /** Whether the kernel refused a window here: what the slot held is gone, and its place is not ours. */
  lost: boolean;
}

/** The source a vmcore save reads: /proc/vmcore through mmap windows, a file through read() with its pages seen in place. */
export function openVmcoreSource(path: string): OpenFile {
  if (process.env["KEXEC_TS_VMCORE_MMAP"] !== "0") {
    const mapped = path === "/proc/vmcore" ? openMappedFile(path) : openViewedFile(path);
    if (mapped !== undefined) return mapped;
  }
  return openRandomAccess(path);
}

/** A file read through mmap windows (its bytes copied from them), or undefined where koffi cannot be loaded. */
export function openMappedFile(path: string): OpenFile | undefined {
  const koffi = tryKoffi();
  if (koffi === undefined) return undefined;
  const fd = openVmcoreFile(path);
  const size = fstatSync(fd).size;
  const windows = new WindowMapper(koffi, fd, size, WINDOWS_KEPT);
  const checkInside = (offset: bigint, length: number): void => throwPastEnd(path, size, Number(offset), length);
  const readInto = (offset: bigint, out: Uint8Array, at: number, length: number): void => {
    checkInside(offset, length);
    let pos = Number(offset);
    let done = 0;
    while (done < length) {
      const w = windows.holding(pos);
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
    view: (offset, length) => { checkInside(BigInt(offset), length); return windows.view(offset, length); },
    read(offset: bigint, length: number): Uint8Array {
      checkInside(offset, length); // before allocating what a damaged length field asks for
      const out = new Uint8Array(length);
      readInto(offset, out, 0, length);
      return out;
    },
    close() {
      windows.close();
      closeSync(fd);
    },
  };
}

/** A read or view of `length` bytes at `offset` of a file of `size` bytes must lie inside it (pastEndOfFile says where not). */
function throwPastEnd(path: string, size: number, offset: number, length: number): void {
  if (offset + length > size) throw pastEndOfFile(path, BigInt(offset), length, BigInt(size));
}

/**
 * A regular file read through read(), whose pages a save compresses are seen in place; undefined
 * where koffi cannot be loaded. Anything else (a device) is read through read() only, without views.
 */
export function openViewedFile(path: string): OpenFile | undefined {
  const koffi = tryKoffi();
  if (koffi === undefined) return undefined;
  const file = openRandomAccess(path);
  const st = fstatSync(file.fd);
  if (!st.isFile()) return file;
  const windows = new WindowMapper(koffi, file.fd, st.size, 0);
  return {
    ...file,
    view(offset, length) {
      throwPastEnd(path, st.size, offset, length);
      return windows.view(offset, length);
    },
    close() {
      windows.close();
      file.close();
    },
  };
}

/**
 * A file's windows in slots of reserved address space: `kept` for reads, least recently used
 * remapped first, and one for views, remapped at each view outside it (RandomAccess.view: valid
 * until the next view). The view slot is apart so that its pages, all touched, are resident once,
 * not in every kept slot: 1 GiB -d 1 lzo peaked at 97-99 MiB with views in the kept slots.
 */
class WindowMapper {
  /** Most recently used first. */
  private readonly kept: Slot[] = [];
  private inPlace: Slot | undefined;
  private works = true;
  private readonly mapAt: (...a: unknown[]) => number | bigint;
  private readonly munmap: (...a: unknown[]) => number;

  constructor(koffi: Koffi, private readonly fd: number, private readonly size: number, kept: number) {
    const libc = koffi.load("libc.so.6");
    // mmap64: its offset is 64 bits on i386 too. There mmap's off_t is 32 bits, and a 64-bit
    // offset passed to it lost its high word: above 4 GiB of /proc/vmcore, the wrong memory.
    const reserve = libc.func("void *mmap64(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)") as (...a: unknown[]) => unknown;
    // The same call at an address of ours, given and returned as a number.
    this.mapAt = libc.func("uintptr_t mmap64(uintptr_t addr, size_t length, int prot, int flags, int fd, int64_t offset)") as (...a: unknown[]) => number | bigint;
    this.munmap = libc.func("int munmap(uintptr_t addr, size_t length)") as (...a: unknown[]) => number;
    // Address space only: no memory, no file, no access until a window is mapped over it.
    const bytes = WINDOW * (kept + 1);
    const reserved = reserve(null, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserved === null || isMapFailed(koffi.address(reserved))) { this.works = false; return; }
    const base = Number(koffi.address(reserved));
    const all = new Uint8Array(koffi.view(reserved, bytes));
    const slot = (i: number): Slot => ({ at: base + i * WINDOW, bytes: all.subarray(i * WINDOW, (i + 1) * WINDOW), start: 0, length: 0, lost: false });
    for (let i = 0; i < kept; i++) this.kept.push(slot(i));
    this.inPlace = slot(kept);
  }

  /**
   * The bytes from `offset` on, as many of `length` as one window holds, in place; undefined once
   * mmap has been refused. Up to half a window comes whole (a section's struct pages, 2 MiB, in one
   * piece): a window for a view starts at the half-window boundary below its first byte. Not at
   * that byte's page: windows from any page made 4 GiB -d 1 lzo on one CPU 7% slower (1.534
   * against 1.431 s), likely because the kernel can map a large folio of the page cache whole
   * only where a window's address and file offset agree modulo the folio's size.
   */
  view(offset: number, length: number): SourceView | undefined {
    const whole = Math.min(length, WINDOW / 2);
    const holds = (w: Slot): boolean => offset >= w.start && offset + whole <= w.start + w.length;
    // Only from the view slot: reads remap the kept ones, and a view must outlive them.
    let w = this.inPlace !== undefined && holds(this.inPlace) ? this.inPlace : undefined;
    if (w === undefined) {
      if (!this.works) return undefined;
      w = this.mapInto(this.inPlace!, offset - (offset % (WINDOW / 2)));
      if (w === undefined) return undefined;
    }
    const from = offset - w.start;
    return { bytes: w.bytes, from, length: Math.min(length, w.length - from) };
  }

  /** The window holding `offset`, for a read: mapped now into the least recently used kept slot if no slot holds it. */
  holding(offset: number): Slot | undefined {
    const held = (w: Slot): boolean => offset >= w.start && offset < w.start + w.length;
    if (this.inPlace !== undefined && held(this.inPlace)) return this.inPlace;
    const hit = this.kept.findIndex(held);
    if (hit >= 0) {
      const [w] = this.kept.splice(hit, 1);
      this.kept.unshift(w!);
      return w;
    }
    if (!this.works || this.kept.length === 0) return undefined;
    const w = this.kept.pop()!;
    this.kept.unshift(w);
    return this.mapInto(w, offset - (offset % WINDOW));
  }

  /** The window from `start` (a multiple of the page size) mapped into slot `w`, over what it held; undefined, and read() from now on, where the kernel refuses. */
  private mapInto(w: Slot, start: number): Slot | undefined {
    const length = Math.min(WINDOW, this.size - start);
    w.length = 0;
    if (Number(this.mapAt(w.at, length, PROT_READ, MAP_PRIVATE | MAP_FIXED, this.fd, start)) !== w.at) {
      // What the slot held was unmapped first.
      w.lost = true;
      this.works = false;
      return undefined;
    }
    w.start = start;
    w.length = length;
    return w;
  }

  close(): void {
    // Slot by slot: where the kernel refused a window, the place may be another mapping's by now.
    for (const w of [...this.kept.splice(0), ...(this.inPlace ? [this.inPlace] : [])]) if (!w.lost) this.munmap(w.at, WINDOW);
    this.inPlace = undefined;
  }
}
