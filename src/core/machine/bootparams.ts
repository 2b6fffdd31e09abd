/**
 * /sys/kernel/boot_params/data: the zero page the running kernel was booted
 * with (struct boot_params, arch/x86/include/uapi/asm/bootparam.h). It is the
 * only place user space can see the e820 table and the EFI hand-over as the
 * boot loader gave them, which a kexec loader has to reproduce.
 */
import { ByteReader } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import type { MemoryRange } from "./memmap.js";
import { parseHex, singleValue, valueError } from "./text.js";

/** The fields kexec-ts reads, spelled as in bootparam.h; offsets are from the start of boot_params. */
export const BOOT_PARAMS_FIELDS = [
  { name: "acpi_rsdp_addr", offset: 0x070, size: 8 },
  { name: "ext_ramdisk_image", offset: 0x0c0, size: 4 },
  { name: "ext_ramdisk_size", offset: 0x0c4, size: 4 },
  { name: "ext_cmd_line_ptr", offset: 0x0c8, size: 4 },
  // struct efi_info, 8 x u32
  { name: "efi_loader_signature", offset: 0x1c0, size: 4 },
  { name: "efi_systab", offset: 0x1c4, size: 4 },
  { name: "efi_memdesc_size", offset: 0x1c8, size: 4 },
  { name: "efi_memdesc_version", offset: 0x1cc, size: 4 },
  { name: "efi_memmap", offset: 0x1d0, size: 4 },
  { name: "efi_memmap_size", offset: 0x1d4, size: 4 },
  { name: "efi_systab_hi", offset: 0x1d8, size: 4 },
  { name: "efi_memmap_hi", offset: 0x1dc, size: 4 },
  { name: "e820_entries", offset: 0x1e8, size: 1 },
  { name: "secure_boot", offset: 0x1ec, size: 1 },
  // struct setup_header starts at 0x1f1 (Documentation/arch/x86/boot.rst)
  { name: "header", offset: 0x202, size: 4 },
  { name: "version", offset: 0x206, size: 2 },
  { name: "type_of_loader", offset: 0x210, size: 1 },
  { name: "loadflags", offset: 0x211, size: 1 },
  { name: "ramdisk_image", offset: 0x218, size: 4 },
  { name: "ramdisk_size", offset: 0x21c, size: 4 },
  { name: "cmd_line_ptr", offset: 0x228, size: 4 },
  { name: "xloadflags", offset: 0x236, size: 2 },
  { name: "hardware_subarch", offset: 0x23c, size: 4 },
  { name: "setup_data", offset: 0x250, size: 8 },
] as const satisfies readonly { name: string; offset: number; size: 1 | 2 | 4 | 8 }[];

export type BootParamsField = (typeof BOOT_PARAMS_FIELDS)[number]["name"];

export const E820_TABLE_OFFSET = 0x2d0;
/** struct boot_e820_entry is packed: u64 addr, u64 size, u32 type. */
export const E820_ENTRY_SIZE = 20;
/** E820_MAX_ENTRIES_ZEROPAGE; more entries go to SETUP_E820_EXT setup_data. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
/** "HdrS", the setup header magic. */
export const HDRS_MAGIC = 0x53726448;

/** e820_type_to_string() in arch/x86/kernel/e820.c, so the names match /proc/iomem. */
export function e820TypeName(type: number): string {
  switch (type) {
    case 1: return "System RAM";
    case 2: return "Reserved";
    case 3: return "ACPI Tables";
    case 4: return "ACPI Non-volatile Storage";
    case 5: return "Unusable memory";
    case 7: return "Persistent Memory";
    case 12: return "Persistent Memory (legacy)";
    case 128: return "System RAM"; // E820_TYPE_RESERVED_KERN
    case 0xefffffff: return "Soft Reserved";
    default: return "Unknown E820 type";
  }
}

export interface E820Entry extends MemoryRange {
  e820Type: number;
}

export type SecureBootMode = "unset" | "unknown" | "disabled" | "enabled";
/** enum efi_secureboot_mode (include/linux/efi.h). */
const SECURE_BOOT_MODES: readonly SecureBootMode[] = ["unset", "unknown", "disabled", "enabled"];

export interface BootParamsEfi {
  /** "EL64" (64-bit firmware) or "EL32"; anything else is kept verbatim. */
  loaderSignature: string;
  systab: bigint;
  memdescSize: number;
  memdescVersion: number;
  memmap: bigint;
  memmapSize: number;
}

export interface BootParams {
  /** Boot protocol version, 0x020c = 2.12. */
  version: number;
  /** Whether "HdrS" is present; some loaders (e.g. Firecracker) fill fields without it. */
  headerMagic: boolean;
  typeOfLoader: number;
  loadflags: number;
  xloadflags: number;
  hardwareSubarch: number;
  cmdLinePtr: bigint;
  ramdiskImage: bigint;
  ramdiskSize: bigint;
  setupData: bigint;
  acpiRsdpAddr: bigint;
  secureBoot: SecureBootMode | `unknown value ${number}`;
  /** null when efi_loader_signature is 0: not booted through the EFI stub. */
  efi: BootParamsEfi | null;
  e820: E820Entry[];
  raw: Record<BootParamsField, bigint>;
}

const HINT = "boot_params/data is the kernel's 4096-byte zero page; copy it with `kexec-ts snapshot` (cp of a sysfs binary file can truncate it)";

export function parseBootParams(bytes: Uint8Array): BootParams {
  const r = new ByteReader(bytes, "boot_params");
  const raw = {} as Record<BootParamsField, bigint>;
  for (const f of BOOT_PARAMS_FIELDS) raw[f.name] = r.uint(f.offset, f.size, f.name);
  const n = (name: BootParamsField): number => Number(raw[name]);

  const count = n("e820_entries");
  if (count > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new KexecError(
      "parse",
      `boot_params: e820_entries at offset 0x1e8 is ${count}, expected at most ${E820_MAX_ENTRIES_ZEROPAGE}`,
      { field: "e820_entries", offset: 0x1e8, expected: `<= ${E820_MAX_ENTRIES_ZEROPAGE}`, actual: String(count) },
      HINT,
    );
  }
  const e820: E820Entry[] = [];
  for (let i = 0; i < count; i++) {
    const at = E820_TABLE_OFFSET + i * E820_ENTRY_SIZE;
    const start = r.u64(at, `e820_table[${i}].addr`);
    const size = r.u64(at + 8, `e820_table[${i}].size`);
    const e820Type = r.u32(at + 16, `e820_table[${i}].type`);
    e820.push({ start, size, type: e820TypeName(e820Type), e820Type });
  }

  const signature = n("efi_loader_signature");
  const efi: BootParamsEfi | null =
    signature === 0
      ? null
      : {
          loaderSignature: fourcc(signature),
          systab: (raw.efi_systab_hi << 32n) | raw.efi_systab,
          memdescSize: n("efi_memdesc_size"),
          memdescVersion: n("efi_memdesc_version"),
          memmap: (raw.efi_memmap_hi << 32n) | raw.efi_memmap,
          memmapSize: n("efi_memmap_size"),
        };

  const sb = n("secure_boot");
  return {
    version: n("version"),
    headerMagic: n("header") === HDRS_MAGIC,
    typeOfLoader: n("type_of_loader"),
    loadflags: n("loadflags"),
    xloadflags: n("xloadflags"),
    hardwareSubarch: n("hardware_subarch"),
    cmdLinePtr: (raw.ext_cmd_line_ptr << 32n) | raw.cmd_line_ptr,
    ramdiskImage: (raw.ext_ramdisk_image << 32n) | raw.ramdisk_image,
    ramdiskSize: (raw.ext_ramdisk_size << 32n) | raw.ramdisk_size,
    setupData: raw.setup_data,
    acpiRsdpAddr: raw.acpi_rsdp_addr,
    secureBoot: SECURE_BOOT_MODES[sb] ?? `unknown value ${sb}`,
    efi,
    e820,
    raw,
  };
}

/** /sys/kernel/boot_params/version: "0x020c\n". */
export function parseBootParamsVersion(text: string): number {
  const v = parseHex(singleValue(text));
  if (v === undefined || v > 0xffffn) throw valueError(singleValue(text), "a 16-bit hex protocol version like 0x020c", HINT);
  return Number(v);
}

function fourcc(value: number): string {
  let s = "";
  for (let i = 0; i < 4; i++) {
    const c = (value >>> (8 * i)) & 0xff;
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return s;
}
