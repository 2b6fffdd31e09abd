/**
 * /sys/kernel/boot_params/data: the zero page the running kernel was booted
 * with (struct boot_params, arch/x86/include/uapi/asm/bootparam.h). It is the
 * only place user space can see the e820 table and the EFI hand-over as the
 * boot loader gave them, which a kexec loader has to reproduce.
 */
import { readStruct, offsetOf, type FieldName } from "../bytes/layout.js";
import { KexecError } from "../errors.js";
import { BOOT_E820_ENTRY, BOOT_PARAMS, E820_MAX_ENTRIES_ZEROPAGE, e820TypeName } from "../image/boot-params.js";
import { HDRS_MAGIC } from "../image/setup-header.js";
import type { MemoryRange } from "./memmap.js";
import { parseHex, singleValue, valueError } from "./text.js";

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
  /** The fields kexec-ts uses, as found (kept in snapshots' machine JSON). */
  raw: Record<ReportedField, bigint>;
}

/** What `raw` reports, in this order (machine --json and the snapshot goldens). */
const REPORTED_FIELDS = [
  "acpi_rsdp_addr", "ext_ramdisk_image", "ext_ramdisk_size", "ext_cmd_line_ptr", "efi_loader_signature", "efi_systab",
  "efi_memdesc_size", "efi_memdesc_version", "efi_memmap", "efi_memmap_size", "efi_systab_hi", "efi_memmap_hi",
  "e820_entries", "secure_boot", "header", "version", "type_of_loader", "loadflags", "ramdisk_image", "ramdisk_size",
  "cmd_line_ptr", "xloadflags", "hardware_subarch", "setup_data",
] as const satisfies readonly FieldName<typeof BOOT_PARAMS>[];
type ReportedField = (typeof REPORTED_FIELDS)[number];

const HINT = "boot_params/data is the kernel's 4096-byte zero page; copy it with `kexec-ts snapshot` (cp of a sysfs binary file can truncate it)";

export function parseBootParams(bytes: Uint8Array): BootParams {
  const raw = readStruct(BOOT_PARAMS, bytes, 0, { what: "boot_params" });
  const reported = Object.fromEntries(REPORTED_FIELDS.map((name) => [name, BigInt(raw[name])])) as Record<ReportedField, bigint>;

  const count = raw.e820_entries;
  if (count > E820_MAX_ENTRIES_ZEROPAGE) {
    const at = offsetOf(BOOT_PARAMS, "e820_entries");
    throw new KexecError(
      "parse",
      `boot_params: e820_entries at offset 0x${at.toString(16)} is ${count}, expected at most ${E820_MAX_ENTRIES_ZEROPAGE}`,
      { field: "e820_entries", offset: at, expected: `<= ${E820_MAX_ENTRIES_ZEROPAGE}`, actual: String(count) },
      HINT,
    );
  }
  const e820: E820Entry[] = [];
  for (let i = 0; i < count; i++) {
    const e = readStruct(BOOT_E820_ENTRY, raw.e820_table, i * BOOT_E820_ENTRY.size, { what: `boot_params e820_table[${i}]` });
    e820.push({ start: e.addr, size: e.size, type: e820TypeName(e.type), e820Type: e.type });
  }

  const high = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);
  const signature = raw.efi_loader_signature;
  const efi: BootParamsEfi | null =
    signature === 0
      ? null
      : {
          loaderSignature: fourcc(signature),
          systab: high(raw.efi_systab_hi, raw.efi_systab),
          memdescSize: raw.efi_memdesc_size,
          memdescVersion: raw.efi_memdesc_version,
          memmap: high(raw.efi_memmap_hi, raw.efi_memmap),
          memmapSize: raw.efi_memmap_size,
        };

  const sb = raw.secure_boot;
  return {
    version: raw.version,
    headerMagic: raw.header === HDRS_MAGIC,
    typeOfLoader: raw.type_of_loader,
    loadflags: raw.loadflags,
    xloadflags: raw.xloadflags,
    hardwareSubarch: raw.hardware_subarch,
    cmdLinePtr: high(raw.ext_cmd_line_ptr, raw.cmd_line_ptr),
    ramdiskImage: high(raw.ext_ramdisk_image, raw.ramdisk_image),
    ramdiskSize: high(raw.ext_ramdisk_size, raw.ramdisk_size),
    setupData: raw.setup_data,
    acpiRsdpAddr: raw.acpi_rsdp_addr,
    secureBoot: SECURE_BOOT_MODES[sb] ?? `unknown value ${sb}`,
    efi,
    e820,
    raw: reported,
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
