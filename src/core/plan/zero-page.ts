/**
 * struct boot_params ("the zero page", arch/x86/include/uapi/asm/bootparam.h)
 * for the kernel being loaded: the image's own setup header, then what the
 * loader must fill in (boot.rst "Details of header fields": type_of_loader,
 * cmd_line_ptr, ramdisk_*), the memory map as e820, the ACPI RSDP, and a
 * setup_data chain. The command line and setup_data follow the page in the
 * same segment, so one segment carries all of it.
 */
import { writeStruct } from "../bytes/layout.js";
import { BOOT_E820_ENTRY, BOOT_PARAMS, BOOT_PARAMS_SIZE, E820_MAX_ENTRIES_ZEROPAGE, E820_TYPE_RAM, SETUP_DATA, SETUP_E820_EXT, SETUP_EFI, SETUP_RNG_SEED } from "../image/boot-params.js";
import type { BzImage } from "../image/bzimage.js";
import { headerBytes, writeHeaderField, CAN_USE_HEAP, KEEP_SEGMENTS, QUIET_FLAG } from "../image/setup-header.js";
import { EFI_MEMORY_DESC, EFI_SETUP_DATA } from "./efi.js";

export { SETUP_E820_EXT, SETUP_RNG_SEED, e820TypeFromName } from "../image/boot-params.js";

/** boot.rst: loader ID 0xD is kexec-tools; kexec_file writes 0xD0 (ID in the high nibble, version 0). */
export const LOADER_TYPE_KEXEC = 0xd0;

/** The bytes of a SETUP_RNG_SEED node's data, as the loaders pass it. */
export const RNG_SEED_SIZE = 32;

export interface E820 {
  addr: bigint;
  size: bigint;
  type: number;
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
  efi?: EfiZeroPage | undefined;
}

export interface EfiZeroPage {
  loaderSignature: number;
  systab: bigint;
  memdescVersion: number;
  /** efi_memory_desc_t records (efi.ts encodeRuntimeMap). */
  memmap: Uint8Array;
  /** struct efi_setup_data (efi.ts encodeEfiSetupData). */
  setupEfi: Uint8Array;
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

/**
 * The bytes buildZeroPage will write, known before the address: boot_params, the command line,
 * the EFI runtime map if any, then 16-byte-aligned setup_data nodes (the e820 entries beyond the
 * zero page's 128, SETUP_EFI, the RNG seed). A machine with hundreds of e820 entries needs more
 * than one page for them.
 */
export function zeroPageSize(cmdlineLength: number, e820Entries: number, rngSeed: boolean, efiMemmapBytes?: number): number {
  let offset = align16(BOOT_PARAMS_SIZE + cmdlineLength + 1);
  if (efiMemmapBytes !== undefined) offset = align16(offset + efiMemmapBytes);
  const extra = e820Entries - E820_MAX_ENTRIES_ZEROPAGE;
  if (extra > 0) offset = align16(offset + SETUP_DATA.size + extra * BOOT_E820_ENTRY.size);
  if (efiMemmapBytes !== undefined) offset = align16(offset + SETUP_DATA.size + EFI_SETUP_DATA.size);
  if (rngSeed) offset = align16(offset + SETUP_DATA.size + RNG_SEED_SIZE);
  return offset;
}

export function buildZeroPage(input: ZeroPageInput): ZeroPage {
  // UTF-8, as kexec_file_load passes it and the checks count it: the low byte of each UTF-16 unit (asciiBytes) turned "é" into 0xe9 and "日" into 0xe5.
  const cmdline = new TextEncoder().encode(`${input.cmdline}\0`);
  const e820 = input.e820.slice().sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  const inPage = e820.slice(0, E820_MAX_ENTRIES_ZEROPAGE);
  const rest = e820.slice(E820_MAX_ENTRIES_ZEROPAGE);

  // The EFI runtime map goes after the command line, then the setup_data nodes, 16-byte aligned, each linking to the next.
  let size = align16(BOOT_PARAMS_SIZE + cmdline.length);
  const memmapAt = input.efi ? size : undefined;
  if (input.efi) size = align16(size + input.efi.memmap.length);
  const nodes: { type: number; data: Uint8Array }[] = [];
  if (rest.length) nodes.push({ type: SETUP_E820_EXT, data: encodeE820(rest) });
  if (input.efi && input.image.protocol >= 0x209) nodes.push({ type: SETUP_EFI, data: input.efi.setupEfi });
  if (input.rngSeed && input.image.protocol >= 0x209) nodes.push({ type: SETUP_RNG_SEED, data: input.rngSeed });
  const nodeAt = nodes.map((n) => { const at = size; size = align16(size + SETUP_DATA.size + n.data.length); return at; });
  const end = nodes.length ? nodeAt[nodeAt.length - 1]! + SETUP_DATA.size + nodes[nodes.length - 1]!.data.length : memmapAt !== undefined ? memmapAt + input.efi!.memmap.length : BOOT_PARAMS_SIZE + cmdline.length;
  const out = new Uint8Array(end);

  // Only the header proper is copied: the rest of the image's first page is
  // boot-sector code and data, which would read as garbage boot_params fields.
  out.set(headerBytes(input.imageBytes, input.image.headerEnd), 0x1f1);
  writeHeaderField(out, "type_of_loader", BigInt(LOADER_TYPE_KEXEC));
  writeHeaderField(out, "loadflags", BigInt(input.image.loadflags & ~(CAN_USE_HEAP | KEEP_SEGMENTS | QUIET_FLAG)));
  writeHeaderField(out, "code32_start", low32(input.kernelAddress));
  if (input.image.protocol >= 0x207 && input.hardwareSubarch !== undefined) writeHeaderField(out, "hardware_subarch", input.hardwareSubarch);

  const cmdlineAddress = input.address + BigInt(BOOT_PARAMS_SIZE);
  out.set(cmdline, BOOT_PARAMS_SIZE);
  writeHeaderField(out, "cmd_line_ptr", low32(cmdlineAddress));
  writeHeaderField(out, "ramdisk_image", low32(input.initrd?.address ?? 0n));
  writeHeaderField(out, "ramdisk_size", low32(input.initrd?.size ?? 0n));
  writeStruct(BOOT_PARAMS, out, 0, {
    ext_cmd_line_ptr: Number(high32(cmdlineAddress)),
    ...(input.initrd ? { ext_ramdisk_image: Number(high32(input.initrd.address)), ext_ramdisk_size: Number(high32(input.initrd.size)) } : {}),
    ...(input.acpiRsdp !== undefined && input.acpiRsdp !== 0n ? { acpi_rsdp_addr: input.acpiRsdp } : {}),
    e820_entries: inPage.length,
    e820_table: encodeE820(inPage),
  });

  if (input.efi && memmapAt !== undefined) {
    const memmap = input.address + BigInt(memmapAt);
    out.set(input.efi.memmap, memmapAt);
    writeStruct(BOOT_PARAMS, out, 0, {
      efi_loader_signature: input.efi.loaderSignature,
      efi_systab: Number(low32(input.efi.systab)),
      efi_systab_hi: Number(high32(input.efi.systab)),
      efi_memdesc_size: EFI_MEMORY_DESC.size,
      efi_memdesc_version: input.efi.memdescVersion,
      efi_memmap: Number(low32(memmap)),
      efi_memmap_hi: Number(high32(memmap)),
      efi_memmap_size: input.efi.memmap.length,
    });
  }

  // Legacy memory sizes some early code still reads: KiB of RAM above 1 MiB in the range that spans it.
  const spanning = e820.find((e) => e.type === E820_TYPE_RAM && e.addr <= 0x100000n && e.addr + e.size > 0x100000n);
  if (spanning) {
    const kib = (spanning.addr + spanning.size - 0x100000n) >> 10n;
    writeStruct(BOOT_PARAMS, out, 0, { alt_mem_k: Number(kib > 0xffffffffn ? 0xffffffffn : kib), "screen_info.ext_mem_k": Number(kib > 0xfc00n ? 0xfc00n : kib) });
  }

  const setupData: ZeroPage["setupData"] = [];
  if (input.image.protocol >= 0x209) writeHeaderField(out, "setup_data", nodes.length ? input.address + BigInt(nodeAt[0]!) : 0n);
  nodes.forEach((node, i) => {
    const address = input.address + BigInt(nodeAt[i]!);
    const next = i + 1 < nodes.length ? input.address + BigInt(nodeAt[i + 1]!) : 0n;
    writeStruct(SETUP_DATA, out, nodeAt[i]!, { next, type: node.type, len: node.data.length });
    out.set(node.data, nodeAt[i]! + SETUP_DATA.size);
    setupData.push({ type: node.type, address, length: node.data.length });
  });

  return { bytes: out, cmdlineAddress, e820InPage: inPage.length, e820InSetupData: rest.length, setupData };
}

/** struct boot_e820_entry[] for the zero page's e820_table or a SETUP_E820_EXT node. */
export function encodeE820(entries: readonly E820[]): Uint8Array {
  const out = new Uint8Array(entries.length * BOOT_E820_ENTRY.size);
  entries.forEach((e, i) => writeStruct(BOOT_E820_ENTRY, out, i * BOOT_E820_ENTRY.size, e));
  return out;
}

function align16(n: number): number {
  return (n + 15) & ~15;
}
