/**
 * struct boot_params, "the zero page" (arch/x86/include/uapi/asm/bootparam.h,
 * Documentation/arch/x86/zero-page.rst): what a boot loader hands the kernel, and what
 * /sys/kernel/boot_params/data shows of the running kernel's. The setup header sits inside it
 * at 0x1f1 (setup-header.ts); the fields here are the rest that kexec-ts reads or writes.
 * One table for the reader (machine/bootparams.ts) and the writer (plan/zero-page.ts).
 */
import { defineLayout, field } from "../bytes/layout.js";
import { SETUP_HEADER } from "./setup-header.js";

export const BOOT_PARAMS_SIZE = 4096;
/** E820_MAX_ENTRIES_ZEROPAGE; more entries go to SETUP_E820_EXT setup_data. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

export const BOOT_PARAMS = defineLayout("struct boot_params", BOOT_PARAMS_SIZE, "little", [
  // struct screen_info screen_info (0x000, 0x40): only the legacy KiB-above-1-MiB count.
  field("screen_info.ext_mem_k", 0x002, 2, "uint"),
  field("acpi_rsdp_addr", 0x070, 8, "u64"),
  field("ext_ramdisk_image", 0x0c0, 4, "uint"),
  field("ext_ramdisk_size", 0x0c4, 4, "uint"),
  field("ext_cmd_line_ptr", 0x0c8, 4, "uint"),
  field("cc_blob_address", 0x13c, 4, "uint"),
  // struct efi_info efi_info (0x1c0, 0x20), its members by their own names
  field("efi_loader_signature", 0x1c0, 4, "uint"),
  field("efi_systab", 0x1c4, 4, "uint"),
  field("efi_memdesc_size", 0x1c8, 4, "uint"),
  field("efi_memdesc_version", 0x1cc, 4, "uint"),
  field("efi_memmap", 0x1d0, 4, "uint"),
  field("efi_memmap_size", 0x1d4, 4, "uint"),
  field("efi_systab_hi", 0x1d8, 4, "uint"),
  field("efi_memmap_hi", 0x1dc, 4, "uint"),
  field("alt_mem_k", 0x1e0, 4, "uint"),
  field("scratch", 0x1e4, 4, "uint"),
  field("e820_entries", 0x1e8, 1, "uint"),
  field("eddbuf_entries", 0x1e9, 1, "uint"),
  field("edd_mbr_sig_buf_entries", 0x1ea, 1, "uint"),
  field("kbd_status", 0x1eb, 1, "uint"),
  field("secure_boot", 0x1ec, 1, "uint"),
  field("sentinel", 0x1ef, 1, "uint"),
  ...SETUP_HEADER.fields,
  field("edd_mbr_sig_buffer", 0x290, 0x40, "bytes"),
  // struct boot_e820_entry e820_table[E820_MAX_ENTRIES_ZEROPAGE]
  field("e820_table", 0x2d0, E820_MAX_ENTRIES_ZEROPAGE * 20, "bytes"),
  field("eddbuf", 0xd00, 0x1ec, "bytes"),
]);

/** struct boot_e820_entry: packed, 20 bytes. */
export const BOOT_E820_ENTRY = defineLayout("struct boot_e820_entry", 20, "little", [
  field("addr", 0, 8, "u64"),
  field("size", 8, 8, "u64"),
  field("type", 16, 4, "uint"),
]);

/** struct setup_data: a node of the chain that setup_header.setup_data starts; `len` bytes of data follow. */
export const SETUP_DATA = defineLayout("struct setup_data", 16, "little", [
  field("next", 0, 8, "u64"),
  field("type", 8, 4, "uint"),
  field("len", 12, 4, "uint"),
]);

/** setup_data types (arch/x86/include/uapi/asm/setup_data.h). */
export const SETUP_E820_EXT = 1;
/** struct efi_setup_data (plan/efi.ts): the EFI tables for a kernel entered by kexec. */
export const SETUP_EFI = 4;
export const SETUP_RNG_SEED = 9;

/** e820 types (arch/x86/include/asm/e820/types.h) with the names e820_type_to_string() gives them in /proc/iomem. */
export const E820_TYPE_RAM = 1;
export const E820_TYPE_RESERVED = 2;
export const E820_TYPE_ACPI = 3;
export const E820_TYPE_NVS = 4;
export const E820_TYPE_UNUSABLE = 5;
export const E820_TYPE_PMEM = 7;
export const E820_TYPE_PRAM = 12;
export const E820_TYPE_SOFT_RESERVED = 0xefffffff;
/** Set by the kernel for its own reservations; shown as RAM. */
export const E820_TYPE_RESERVED_KERN = 128;

const E820_NAMES: readonly (readonly [number, string])[] = [
  [E820_TYPE_RAM, "System RAM"],
  [E820_TYPE_RESERVED, "Reserved"],
  [E820_TYPE_ACPI, "ACPI Tables"],
  [E820_TYPE_NVS, "ACPI Non-volatile Storage"],
  [E820_TYPE_UNUSABLE, "Unusable memory"],
  [E820_TYPE_PMEM, "Persistent Memory"],
  [E820_TYPE_PRAM, "Persistent Memory (legacy)"],
  [E820_TYPE_SOFT_RESERVED, "Soft Reserved"],
];

/** The name /proc/iomem shows for an e820 type. */
export function e820TypeName(type: number): string {
  if (type === E820_TYPE_RESERVED_KERN) return "System RAM";
  return E820_NAMES.find(([t]) => t === type)?.[1] ?? "Unknown E820 type";
}

/** The e820 type of an /proc/iomem name (iomem also spells reserved ranges "reserved"). */
export function e820TypeFromName(name: string): number | undefined {
  if (name === "reserved") return E820_TYPE_RESERVED;
  return E820_NAMES.find(([, n]) => n === name)?.[0];
}
