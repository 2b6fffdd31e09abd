/**
 * The initrd read for kexec_load, into a buffer laid out by where the kernel will copy it.
 *
 * For a crash load the kernel copies each segment page by page from this process's buffer to
 * its place in the crash region, through the direct map: source and destination advance
 * together, so the distance between their virtual addresses is the same for the whole copy.
 * Under QEMU's TCG (labs and CI machines without KVM) the guest's TLB is modelled as a table
 * indexed by the low bits of the virtual page number; when that distance is a multiple of the
 * table's size, source and destination evict each other on every access of the copy. It happened
 * by construction: glibc maps a buffer this size just below an earlier, 2 MiB-aligned mapping, and
 * the plan puts the initrd just below the 2 MiB-aligned kernel, so both start at "a 2 MiB boundary
 * minus the initrd's size". In the lab's load guest the initrd's copy then took 1.37-1.48 s
 * instead of 0.13 s (function_graph timings of kimage_load_segment; kexec-tools' own 0.13 s), in
 * three `kexec-ts -c -p` runs of eight. Real processors' TLBs are associative and do not care;
 * what it costs there is an allocation 256 KiB longer, never touched.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { fileSize, ioError, readInputFile } from "./files.js";
import { fixedAddress, tryKoffi } from "./ffi.js";

/** The distances that alias: a TLB of at least 64 entries, 4 KiB pages (TCG's smallest table is 64). */
export const ALIAS_SPAN = 256 * 1024;

/**
 * How far into a buffer at `address` the bytes should start so that their distance to
 * `destination` is half an ALIAS_SPAN away from a multiple of it: then no table of 64 entries or
 * more (a power of two) indexes both pages alike, nor the page after either. Page offsets stay
 * equal, so each destination page is copied from one source page.
 */
export function offsetAwayFromAlias(address: bigint, destination: bigint): number {
  const span = BigInt(ALIAS_SPAN);
  return Number((((destination + span / 2n - address) % span) + span) % span);
}

/**
 * The initrd's bytes, to be copied to `destination`. Where koffi cannot give the buffer's
 * address, a plain read. A file that changed size since it was placed comes back at its new size,
 * for the plan's check to name.
 */
export function readInitrdFor(path: string, what: string, destination: bigint): Uint8Array {
  const koffi = tryKoffi();
  const size = fileSize(path, what, { allowEmpty: false });
  if (koffi === undefined) return readInputFile(path, what, { allowEmpty: false });
  // Not zero-filled, and never touched beyond the bytes read: the slack costs no memory.
  const backing = Buffer.allocUnsafeSlow(size + ALIAS_SPAN);
  const offset = offsetAwayFromAlias(BigInt(fixedAddress(koffi, backing)), destination);
  const bytes = new Uint8Array(backing.buffer, backing.byteOffset + offset, size);
  let fd: number | undefined;
  let asPlaced: boolean;
  try {
    fd = openSync(path, "r");
    let done = 0;
    for (let n = 1; n > 0 && done < size; done += n) n = readSync(fd, bytes, done, size - done, done);
    asPlaced = done === size && readSync(fd, new Uint8Array(1), 0, 1, size) === 0;
  } catch (e) {
    throw ioError(e, path, what);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  // It changed while it was read (shorter, or one more byte is there): read as it is now; the plan refuses a length other than the one it placed.
  return asPlaced ? bytes : readInputFile(path, what, { allowEmpty: false });
}
