/**
 * The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst,
 * arch/x86/include/uapi/asm/bootparam.h). One table drives parsing, writing
 * the header into boot_params, and the debug dump; each field carries the
 * protocol version that introduced it, so an old image is never read for a
 * field it does not have.
 */
import { defineLayout, field, fieldOf, readStruct, writeStruct, type Field } from "../bytes/layout.js";
import type { ByteReader } from "../bytes/reader.js";

export type SetupHeaderFieldName =
  | "setup_sects" | "root_flags" | "syssize" | "ram_size" | "vid_mode" | "root_dev" | "boot_flag"
  | "jump" | "header" | "version" | "realmode_swtch" | "start_sys_seg" | "kernel_version"
  | "type_of_loader" | "loadflags" | "setup_move_size" | "code32_start" | "ramdisk_image"
  | "ramdisk_size" | "bootsect_kludge" | "heap_end_ptr" | "ext_loader_ver" | "ext_loader_type"
  | "cmd_line_ptr" | "initrd_addr_max" | "kernel_alignment" | "relocatable_kernel" | "min_alignment"
  | "xloadflags" | "cmdline_size" | "hardware_subarch" | "hardware_subarch_data" | "payload_offset"
  | "payload_length" | "setup_data" | "pref_address" | "init_size" | "handover_offset"
  | "kernel_info_offset";

/** A setup header field; `since` is the lowest boot protocol version that has it (0: all, including pre-2.00). */
export type HeaderField = Field<SetupHeaderFieldName, "uint" | "u64">;

const f = <const N extends SetupHeaderFieldName, const S extends 1 | 2 | 4 | 8>(name: N, offset: number, size: S, since: number) =>
  field(name, offset, size, (size === 8 ? "u64" : "uint") as S extends 8 ? "u64" : "uint", since);

/**
 * boot.rst "The real-mode kernel header", in file order. Offsets are in the image file, which
 * are also the offsets in struct boot_params (the header sits at 0x1f1 of both).
 */
export const SETUP_HEADER = defineLayout("struct setup_header", 0x26c, "little", [
  f("setup_sects", 0x1f1, 1, 0),
  f("root_flags", 0x1f2, 2, 0),
  // 2 bytes before 2.04, 4 since; the high half is read only for >= 2.04 (see readSetupHeader).
  f("syssize", 0x1f4, 4, 0),
  f("ram_size", 0x1f8, 2, 0),
  f("vid_mode", 0x1fa, 2, 0),
  f("root_dev", 0x1fc, 2, 0),
  f("boot_flag", 0x1fe, 2, 0),
  f("jump", 0x200, 2, 0x200),
  f("header", 0x202, 4, 0x200),
  f("version", 0x206, 2, 0x200),
  f("realmode_swtch", 0x208, 4, 0x200),
  f("start_sys_seg", 0x20c, 2, 0x200),
  f("kernel_version", 0x20e, 2, 0x200),
  f("type_of_loader", 0x210, 1, 0x200),
  f("loadflags", 0x211, 1, 0x200),
  f("setup_move_size", 0x212, 2, 0x200),
  f("code32_start", 0x214, 4, 0x200),
  f("ramdisk_image", 0x218, 4, 0x200),
  f("ramdisk_size", 0x21c, 4, 0x200),
  f("bootsect_kludge", 0x220, 4, 0x200),
  f("heap_end_ptr", 0x224, 2, 0x201),
  f("ext_loader_ver", 0x226, 1, 0x202),
  f("ext_loader_type", 0x227, 1, 0x202),
  f("cmd_line_ptr", 0x228, 4, 0x202),
  f("initrd_addr_max", 0x22c, 4, 0x203),
  f("kernel_alignment", 0x230, 4, 0x205),
  f("relocatable_kernel", 0x234, 1, 0x205),
  f("min_alignment", 0x235, 1, 0x20a),
  f("xloadflags", 0x236, 2, 0x20c),
  f("cmdline_size", 0x238, 4, 0x206),
  f("hardware_subarch", 0x23c, 4, 0x207),
  f("hardware_subarch_data", 0x240, 8, 0x207),
  f("payload_offset", 0x248, 4, 0x208),
  f("payload_length", 0x24c, 4, 0x208),
  f("setup_data", 0x250, 8, 0x209),
  f("pref_address", 0x258, 8, 0x20a),
  f("init_size", 0x260, 4, 0x20a),
  f("handover_offset", 0x264, 4, 0x20b),
  f("kernel_info_offset", 0x268, 4, 0x20f),
]);

export const SETUP_HEADER_FIELDS: readonly HeaderField[] = SETUP_HEADER.fields;

/** "HdrS": marks a header of protocol 2.00 or later. */
export const HDRS_MAGIC = 0x53726448;
export const BOOT_FLAG = 0xaa55;
/** kernel_info's magic "LToP" (arch/x86/boot/compressed/kernel_info.S). */
export const KERNEL_INFO_MAGIC = 0x506f544c;

/** loadflags bits (boot.rst). */
export const LOADED_HIGH = 1 << 0;
export const KASLR_FLAG = 1 << 1;
export const QUIET_FLAG = 1 << 5;
export const KEEP_SEGMENTS = 1 << 6;
export const CAN_USE_HEAP = 1 << 7;

/** xloadflags bits (bootparam.h). */
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
export const XLF_EFI_HANDOVER_32 = 1 << 2;
export const XLF_EFI_HANDOVER_64 = 1 << 3;
export const XLF_EFI_KEXEC = 1 << 4;
export const XLF_5LEVEL = 1 << 5;
export const XLF_5LEVEL_ENABLED = 1 << 6;
/** Set by the decompressor at run time from mem_encrypt=; not a capability a loader may read. */
export const XLF_MEM_ENCRYPTION = 1 << 7;

export const XLOADFLAG_NAMES: readonly (readonly [number, string])[] = [
  [XLF_KERNEL_64, "XLF_KERNEL_64"],
  [XLF_CAN_BE_LOADED_ABOVE_4G, "XLF_CAN_BE_LOADED_ABOVE_4G"],
  [XLF_EFI_HANDOVER_32, "XLF_EFI_HANDOVER_32"],
  [XLF_EFI_HANDOVER_64, "XLF_EFI_HANDOVER_64"],
  [XLF_EFI_KEXEC, "XLF_EFI_KEXEC"],
  [XLF_5LEVEL, "XLF_5LEVEL"],
  [XLF_5LEVEL_ENABLED, "XLF_5LEVEL_ENABLED"],
  [XLF_MEM_ENCRYPTION, "XLF_MEM_ENCRYPTION"],
];

export const LOADFLAG_NAMES: readonly (readonly [number, string])[] = [
  [LOADED_HIGH, "LOADED_HIGH"],
  [KASLR_FLAG, "KASLR_FLAG"],
  [QUIET_FLAG, "QUIET_FLAG"],
  [KEEP_SEGMENTS, "KEEP_SEGMENTS"],
  [CAN_USE_HEAP, "CAN_USE_HEAP"],
];

export function flagNames(value: number, table: readonly (readonly [number, string])[]): string[] {
  const names = table.filter(([bit]) => (value & bit) !== 0).map(([, name]) => name);
  let known = 0;
  for (const [bit] of table) known |= bit;
  const unknown = value & ~known;
  for (let bit = 0; bit < 32; bit++) if (unknown & (1 << bit)) names.push(`bit${bit}`);
  return names;
}

/** Raw field values exactly as found; absent fields (protocol too old) are missing from the record. */
export type RawSetupHeader = Partial<Record<SetupHeaderFieldName, bigint>>;

/**
 * Protocol 2.14 was "burnt" by a patch later reverted (boot.rst); images that
 * claim it are treated as 2.13 for deciding which fields exist.
 */
export function effectiveProtocol(version: number): number {
  return version === 0x20e ? 0x20d : version;
}

/**
 * Read the fields that the image's protocol version and its header length
 * both say are present. `headerEnd` is 0x202 + the jump's displacement byte:
 * a field past it is not part of this image's header whatever the version says.
 */
export function readSetupHeader(reader: ByteReader, protocol: number, headerEnd: number): RawSetupHeader {
  const proto = effectiveProtocol(protocol);
  // Fields from 2.00 on that lie past the header's end are not part of this image's header,
  // whatever the version says; the pre-2.00 ones are always there.
  const values = readStruct(SETUP_HEADER, reader.bytes, 0, { what: reader.what, version: proto, limit: Math.max(headerEnd, 0x200) });
  const raw: RawSetupHeader = {};
  for (const [name, v] of Object.entries(values) as [SetupHeaderFieldName, number | bigint][]) raw[name] = BigInt(v);
  if (proto < 0x204 && raw.syssize !== undefined) raw.syssize &= 0xffffn;
  return raw;
}

/** The bytes a loader copies from the image into boot_params: [0x1f1, headerEnd). */
export function headerBytes(image: Uint8Array, headerEnd: number): Uint8Array {
  return image.subarray(0x1f1, Math.min(headerEnd, image.length));
}

/** Write a field into a boot_params buffer (or an image's first page) by its kernel name. */
export function writeHeaderField(bootParams: Uint8Array, name: SetupHeaderFieldName, value: bigint): void {
  const field = fieldOf(SETUP_HEADER, name);
  writeStruct(SETUP_HEADER, bootParams, 0, { [name]: field.kind === "u64" ? value : Number(value) } as Partial<Record<SetupHeaderFieldName, never>>);
}

export function fieldByName(name: SetupHeaderFieldName): HeaderField {
  return fieldOf(SETUP_HEADER, name);
}

