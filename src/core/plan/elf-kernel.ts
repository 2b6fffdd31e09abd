/**
 * Loading an uncompressed vmlinux (ELF) with kexec_load, as kexec-tools'
 * elf-x86_64 / elf-x86 loaders do: every PT_LOAD goes to its p_paddr (a
 * vmlinux is linked to run at LOAD_PHYSICAL_ADDR and is not relocated by any
 * decompressor), and the purgatory jumps to e_entry, which the kernel's linker
 * script makes physical (ENTRY(phys_startup_64) / phys_startup_32). That entry
 * is the kernel proper's startup_64 (%rsi = boot_params, long mode) or
 * startup_32 (%esi = boot_params, paging off). With no real-mode setup in the
 * file, the setup header in boot_params is made up here from the ELF.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { parseBzImage, type BzImage } from "../image/bzimage.js";
import { EM_386, EM_X86_64, PT_LOAD, segmentBytes } from "../image/elf.js";
import type { Vmlinux } from "../image/index.js";
import { BOOT_FLAG, HDRS_MAGIC, LOADED_HIGH, XLF_CAN_BE_LOADED_ABOVE_4G, XLF_KERNEL_64, writeHeaderField } from "../image/setup-header.js";
import { PAGE_SIZE, alignDown, alignUp } from "./ranges.js";

export interface ElfKernel {
  /** A setup header made for boot_params (protocol 2.15 fields the kernel reads). */
  header: BzImage;
  headerBytes: Uint8Array;
  /** One contiguous span from the lowest to the highest PT_LOAD, gaps zero-filled. */
  mem: bigint;
  memsz: bigint;
  buf: Uint8Array;
  entry: bigint;
  is64: boolean;
}

export function elfKernel(v: Vmlinux, bytes: Uint8Array): ElfKernel {
  const h = v.elf.header;
  const is64 = h.e_machine === EM_X86_64 && h.elfClass === 64;
  if (!is64 && h.e_machine !== EM_386) {
    throw new KexecError("plan", `the ELF file is for ${v.elf.machineName}, not x86`, { field: "e_machine", expected: "62 (x86_64) or 3 (i386)", actual: String(h.e_machine) }, "give an x86 vmlinux, or the bzImage it came in");
  }
  const loads = v.elf.programHeaders.filter((p) => p.p_type === PT_LOAD && p.p_memsz > 0n);
  if (loads.length === 0) throw new KexecError("plan", "the ELF file has no PT_LOAD segments", { field: "p_type", expected: "at least one PT_LOAD" }, "give the kernel's vmlinux (a module or a debug-info file has nothing to load)");
  const start = alignDown(loads.reduce((m, p) => (p.p_paddr < m ? p.p_paddr : m), loads[0]!.p_paddr), PAGE_SIZE);
  const end = alignUp(loads.reduce((m, p) => (p.p_paddr + p.p_memsz > m ? p.p_paddr + p.p_memsz : m), 0n), PAGE_SIZE);
  if (end - start > 1n << 30n) {
    throw new KexecError("plan", `the PT_LOAD segments span ${hex(start)}-${hex(end)}, more than 1 GiB: p_paddr looks like a virtual address`, { field: "p_paddr", actual: hex(start) }, "kexec_load needs a vmlinux whose p_paddr are physical addresses");
  }
  // The file bytes of every PT_LOAD at its offset in the span; bss stays zero (and
  // beyond the last p_filesz the kernel zero-fills up to memsz).
  let fileEnd = 0n;
  for (const p of loads) if (p.p_filesz > 0n && p.p_paddr + p.p_filesz > fileEnd) fileEnd = p.p_paddr + p.p_filesz;
  const buf = new Uint8Array(Number(fileEnd - start));
  for (const p of loads) if (p.p_filesz > 0n) buf.set(segmentBytes(bytes, p, "vmlinux"), Number(p.p_paddr - start));
  const entry = h.e_entry;
  if (entry < start || entry >= end) {
    throw new KexecError("plan", `e_entry ${hex(entry)} is outside the loaded span ${hex(start)}-${hex(end)}`, { field: "e_entry", actual: hex(entry) }, "the entry must be a physical address inside a PT_LOAD (a vmlinux, not a module or user program)");
  }
  const headerBytes = fabricateHeader(is64, start, end - start);
  return { header: parseBzImage(headerBytes), headerBytes, mem: start, memsz: end - start, buf, entry, is64 };
}

/** A 2.15 setup header describing a non-relocatable kernel already at `start`. */
function fabricateHeader(is64: boolean, start: bigint, size: bigint): Uint8Array {
  const out = new Uint8Array(1024);
  const set = (name: Parameters<typeof writeHeaderField>[1], value: bigint | number) => writeHeaderField(out, name, BigInt(value));
  set("setup_sects", 1);
  set("boot_flag", BOOT_FLAG);
  set("jump", 0xeb | (0x6a << 8));
  set("header", HDRS_MAGIC);
  set("version", 0x20f);
  set("loadflags", LOADED_HIGH);
  set("initrd_addr_max", is64 ? 0x7fffffff : 0x37ffffff);
  set("kernel_alignment", 0x200000);
  set("relocatable_kernel", 0);
  set("xloadflags", is64 ? XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G : 0);
  set("cmdline_size", 2047);
  set("pref_address", start);
  set("init_size", size);
  set("code32_start", start);
  return out;
}
