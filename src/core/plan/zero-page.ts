/**
 * struct boot_params ("the zero page", arch/x86/include/uapi/asm/bootparam.h)
 * for the kernel being loaded: the image's own setup header, then what the
 * loader must fill in (boot.rst "Details of header fields": type_of_loader,
 * cmd_line_ptr, ramdisk_*), the memory map as e820, the ACPI RSDP, and a
 * setup_data chain. The command line and setup_data follow the page in the
 * same segment, so one segment carries all of it.
 */
import { ByteWriter } from "../bytes/writer.js";
import { asciiBytes } from "../bytes/reader.js";
import type { BzImage } from "../image/bzimage.js";
import { headerBytes, writeHeaderField, CAN_USE_HEAP, KEEP_SEGMENTS, QUIET_FLAG } from "../image/setup-header.js";
import { EFI_MEMORY_DESC_SIZE, SETUP_EFI } from "./efi.js";

export const BOOT_PARAMS_SIZE = 4096;
const E820_ENTRIES_OFFSET = 0x1e8;
const E820_TABLE_OFFSET = 0x2d0;
const E820_ENTRY_SIZE = 20;
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
const ACPI_RSDP_ADDR_OFFSET = 0x070;
const EXT_RAMDISK_IMAGE = 0x0c0;
const EXT_RAMDISK_SIZE = 0x0c4;
const EXT_CMD_LINE_PTR = 0x0c8;
const ALT_MEM_K = 0x1e0;
/** struct efi_info, 8 x u32: loader_signature, systab, memdesc_size, memdesc_version, memmap, memmap_size, systab_hi, memmap_hi. */
const EFI_INFO_OFFSET = 0x1c0;
const EXT_MEM_K = 0x002; // screen_info.ext_mem_k, legacy: KiB above 1 MiB

/** setup_data types (arch/x86/include/uapi/asm/setup_data.h). */
export const SETUP_E820_EXT = 1;
export const SETUP_RNG_SEED = 9;

/** boot.rst: loader ID 0xD is kexec-tools; kexec_file writes 0xD0 (ID in the high nibble, version 0). */
export const LOADER_TYPE_KEXEC = 0xd0;

export interface E820 {
  addr: bigint;
  size: bigint;
  type: number;
}

/** e820 type numbers for the names the kernel prints (arch/x86/kernel/e820.c e820_type_to_string). */
export function e820TypeFromName(name: string): number | undefined {
  switch (name) {
    case "System RAM": return 1;
    case "Reserved": case "reserved": return 2;
    case "ACPI Tables": return 3;
    case "ACPI Non-volatile Storage": return 4;
    case "Unusable memory": return 5;
    case "Persistent Memory": return 7;
    case "Persistent Memory (legacy)": return 12;
    case "Soft Reserved": return 0xefffffff;
    default: return undefined;
  }
}

export interface ZeroPageInput {
  image: BzImage;
  imageBytes: Uint8Array;
  /** Physical address where this segment (page + command line + setup_data) will sit. */
  address: bigint;
  cmdline: string;
  initrd: { address: bigint; size: bigint } | undefined;
  e820: E820[];
  acpiRsdp: bigint | undefined;
  hardwareSubarch: bigint | undefined;
  /** 32 random bytes for SETUP_RNG_SEED, from the edge (the core has no entropy). */
  rngSeed: Uint8Array | undefined;
  /** Where the kernel will be loaded: code32_start for the 32-bit entry. */
  kernelAddress: bigint;
  /** EFI runtime services handed on (efi.ts): efi_info, the runtime map after the command line, and a SETUP_EFI node. */
  efi?: { loaderSignature: number; systab: bigint; memdescVersion: number; memmap: Uint8Array; setupEfi: Uint8Array } | undefined;
}

export interface ZeroPage {
  bytes: Uint8Array;
  cmdlineAddress: bigint;
  e820InPage: number;
  e820InSetupData: number;
  setupData: { type: number; address: bigint; length: number }[];
}

const low32 = (v: bigint) => v & 0xffffffffn;
const high32 = (v: bigint) => (v >> 32n) & 0xffffffffn;

export function buildZeroPage(input: ZeroPageInput): ZeroPage {
  const cmdline = asciiBytes(`${input.cmdline}\0`);
  const w = ByteWriter.growable(BOOT_PARAMS_SIZE + cmdline.length + 64);
  w.bytesAt(0, new Uint8Array(BOOT_PARAMS_SIZE));

  // Only the header proper is copied: the rest of the image's first page is
  // boot-sector code and data, which would read as garbage boot_params fields.
  w.bytesAt(0x1f1, headerBytes(input.imageBytes, input.image.headerEnd), "setup_header");
  writeHeaderField(w, "type_of_loader", BigInt(LOADER_TYPE_KEXEC));
  const loadflags = input.image.loadflags & ~(CAN_USE_HEAP | KEEP_SEGMENTS | QUIET_FLAG);
  writeHeaderField(w, "loadflags", BigInt(loadflags));
  writeHeaderField(w, "code32_start", low32(input.kernelAddress));
  if (input.image.protocol >= 0x207 && input.hardwareSubarch !== undefined) writeHeaderField(w, "hardware_subarch", input.hardwareSubarch);

  const cmdlineAddress = input.address + BigInt(BOOT_PARAMS_SIZE);
  w.bytesAt(BOOT_PARAMS_SIZE, cmdline, "command line");
  writeHeaderField(w, "cmd_line_ptr", low32(cmdlineAddress));
  w.u32(EXT_CMD_LINE_PTR, Number(high32(cmdlineAddress)), "ext_cmd_line_ptr");

  if (input.initrd) {
    writeHeaderField(w, "ramdisk_image", low32(input.initrd.address));
    writeHeaderField(w, "ramdisk_size", low32(input.initrd.size));
    w.u32(EXT_RAMDISK_IMAGE, Number(high32(input.initrd.address)), "ext_ramdisk_image");
    w.u32(EXT_RAMDISK_SIZE, Number(high32(input.initrd.size)), "ext_ramdisk_size");
  } else {
    writeHeaderField(w, "ramdisk_image", 0n);
    writeHeaderField(w, "ramdisk_size", 0n);
  }
  if (input.acpiRsdp !== undefined && input.acpiRsdp !== 0n) w.u64(ACPI_RSDP_ADDR_OFFSET, input.acpiRsdp, "acpi_rsdp_addr");

  const e820 = input.e820.slice().sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  const inPage = e820.slice(0, E820_MAX_ENTRIES_ZEROPAGE);
  w.u8(E820_ENTRIES_OFFSET, inPage.length, "e820_entries");
  inPage.forEach((e, i) => writeE820(w, E820_TABLE_OFFSET + i * E820_ENTRY_SIZE, e));

  // Legacy memory sizes some early code still reads: KiB of RAM above 1 MiB in the range that spans it.
  const spanning = e820.find((e) => e.type === 1 && e.addr <= 0x100000n && e.addr + e.size > 0x100000n);
  if (spanning) {
    const kib = (spanning.addr + spanning.size - 0x100000n) >> 10n;
    w.u32(ALT_MEM_K, Number(kib > 0xffffffffn ? 0xffffffffn : kib), "alt_mem_k");
    w.u16(EXT_MEM_K, Number(kib > 0xfc00n ? 0xfc00n : kib), "ext_mem_k");
  }

  // The EFI runtime map goes after the command line; setup_data nodes after it, 16-byte aligned, each linking to the next.
  let offset = align16(BOOT_PARAMS_SIZE + cmdline.length);
  if (input.efi) {
    const memmapAddress = input.address + BigInt(offset);
    w.bytesAt(offset, input.efi.memmap, "efi runtime map");
    w.u32(EFI_INFO_OFFSET, input.efi.loaderSignature, "efi_loader_signature");
    w.u32(EFI_INFO_OFFSET + 4, Number(low32(input.efi.systab)), "efi_systab");
    w.u32(EFI_INFO_OFFSET + 8, EFI_MEMORY_DESC_SIZE, "efi_memdesc_size");
    w.u32(EFI_INFO_OFFSET + 12, input.efi.memdescVersion, "efi_memdesc_version");
    w.u32(EFI_INFO_OFFSET + 16, Number(low32(memmapAddress)), "efi_memmap");
    w.u32(EFI_INFO_OFFSET + 20, input.efi.memmap.length, "efi_memmap_size");
    w.u32(EFI_INFO_OFFSET + 24, Number(high32(input.efi.systab)), "efi_systab_hi");
    w.u32(EFI_INFO_OFFSET + 28, Number(high32(memmapAddress)), "efi_memmap_hi");
    offset = align16(offset + input.efi.memmap.length);
  }
  const nodes: { type: number; data: Uint8Array }[] = [];
  const rest = e820.slice(E820_MAX_ENTRIES_ZEROPAGE);
  if (rest.length) {
    const ext = new ByteWriter(rest.length * E820_ENTRY_SIZE);
    rest.forEach((e, i) => writeE820(ext, i * E820_ENTRY_SIZE, e));
    nodes.push({ type: SETUP_E820_EXT, data: ext.finish() });
  }
  if (input.efi && input.image.protocol >= 0x209) nodes.push({ type: SETUP_EFI, data: input.efi.setupEfi });
  if (input.rngSeed && input.image.protocol >= 0x209) nodes.push({ type: SETUP_RNG_SEED, data: input.rngSeed });

  const setupData: ZeroPage["setupData"] = [];
  let previousNext = input.image.protocol >= 0x209 ? 0x250 : -1; // setup_header.setup_data
  for (const node of nodes) {
    const address = input.address + BigInt(offset);
    if (previousNext >= 0) w.u64(previousNext, address, "setup_data.next");
    w.u64(offset, 0n, "setup_data.next");
    w.u32(offset + 8, node.type, "setup_data.type");
    w.u32(offset + 12, node.data.length, "setup_data.len");
    w.bytesAt(offset + 16, node.data, "setup_data.data");
    setupData.push({ type: node.type, address, length: node.data.length });
    previousNext = offset;
    offset = align16(offset + 16 + node.data.length);
  }
  if (input.image.protocol >= 0x209 && nodes.length === 0) w.u64(0x250, 0n, "setup_data");

  return { bytes: w.finish(), cmdlineAddress, e820InPage: inPage.length, e820InSetupData: rest.length, setupData };
}

function writeE820(w: ByteWriter, at: number, e: E820): void {
  w.u64(at, e.addr, "e820.addr");
  w.u64(at + 8, e.size, "e820.size");
  w.u32(at + 16, e.type, "e820.type");
}

function align16(n: number): number {
  return (n + 15) & ~15;
}
