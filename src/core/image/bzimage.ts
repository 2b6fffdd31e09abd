/**
 * bzImage reader: the setup header, what it says about loading, where the
 * compressed payload is and what compresses it. Pure: bytes in, data out.
 */
import { ByteReader } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { describeBytes, hex } from "../format.js";
import { detectCompression, type Compression } from "./compression/common.js";
import { readPe, type PeInfo } from "./pe.js";
import {
  BOOT_FLAG, HDRS_MAGIC, KERNEL_INFO_MAGIC, LOADED_HIGH, LOADFLAG_NAMES, XLF_5LEVEL, XLF_5LEVEL_ENABLED,
  XLF_CAN_BE_LOADED_ABOVE_4G, XLF_KERNEL_64, XLOADFLAG_NAMES, flagNames, readSetupHeader, type RawSetupHeader,
} from "./setup-header.js";

export interface KernelInfo {
  offset: number;          // file offset of "LToP"
  size: number;
  sizeTotal: number;
  setupTypeMax: number | undefined;
}

export interface BzImage {
  format: "bzImage";
  /** Boot protocol version, e.g. 0x20f. */
  protocol: number;
  /** Every header field the protocol has, as read. */
  raw: RawSetupHeader;
  /** 0x202 + jump displacement: the end of this image's setup header. */
  headerEnd: number;
  /** setup_sects as used (0 in the file means 4). */
  setupSects: number;
  /** Bytes before the protected-mode kernel: (setup_sects + 1) * 512. */
  setupSize: number;
  /** Length of the protected-mode kernel in the file (everything after the setup). */
  kernelFileSize: number;
  loadflags: number;
  loadflagNames: string[];
  xloadflags: number;
  xloadflagNames: string[];
  /** XLF_KERNEL_64: has the 64-bit entry at +0x200. */
  is64: boolean;
  canBeLoadedAbove4G: boolean;
  fiveLevel: boolean;
  fiveLevelEnabled: boolean;
  relocatable: boolean;
  kernelAlignment: bigint | undefined;
  /** log2 of the minimum alignment (2.10+). */
  minAlignment: number | undefined;
  prefAddress: bigint | undefined;
  /** Memory the kernel needs from its load address before it looks at the memory map. */
  initSize: bigint | undefined;
  /** Highest address the initrd may occupy (inclusive); 0x37ffffff for protocols before 2.03. */
  initrdAddrMax: bigint;
  /** Longest command line in bytes, not counting the NUL; 255 before 2.06. */
  cmdlineSize: number;
  code32Start: bigint | undefined;
  handoverOffset: bigint | undefined;
  hardwareSubarch: bigint | undefined;
  payload: { offset: number; length: number; compression: Compression | "unknown" } | undefined;
  kernelInfo: KernelInfo | undefined;
  version: string | undefined;
  pe: PeInfo;
}

/** Is this plausibly a bzImage (enough to choose the parser; parseBzImage says what is wrong)? */
export function looksLikeBzImage(bytes: Uint8Array): boolean {
  return bytes.length >= 0x206 && bytes[0x202] === 0x48 && bytes[0x203] === 0x64 && bytes[0x204] === 0x72 && bytes[0x205] === 0x53;
}

export function parseBzImage(bytes: Uint8Array): BzImage {
  const r = new ByteReader(bytes, "bzImage");
  if (bytes.length < 1024) {
    throw new KexecError("parse", `bzImage: the file is ${bytes.length} bytes, too short for a boot sector and setup header (at least 1024)`,
      { field: "length", expected: ">= 1024 bytes", actual: `${bytes.length} bytes` }, "the file looks truncated");
  }
  const bootFlag = r.u16(0x1fe, "boot_flag");
  if (bootFlag !== BOOT_FLAG) {
    throw new KexecError("parse", `bzImage: boot_flag at offset 0x1fe is ${hex(bootFlag, 4)}, expected 0xaa55`,
      { field: "boot_flag", offset: 0x1fe, expected: "0xaa55", actual: hex(bootFlag, 4) }, "this is not an x86 boot image");
  }
  const magic = r.u32(0x202, "header");
  if (magic !== HDRS_MAGIC) {
    throw new KexecError("parse", `bzImage: no "HdrS" at offset 0x202 (found ${describeBytes(bytes.subarray(0x202), 4)}): a boot protocol older than 2.00`,
      { field: "header", offset: 0x202, expected: "HdrS", actual: hex(magic, 8) }, "kernels this old cannot be loaded by kexec; use a bzImage built by Linux 2.4 or later");
  }
  const protocol = r.u16(0x206, "version");
  if (protocol < 0x200) {
    throw new KexecError("parse", `bzImage: boot protocol version ${hex(protocol, 4)} at offset 0x206 is below 2.00`,
      { field: "version", offset: 0x206, expected: ">= 0x0200", actual: hex(protocol, 4) }, "the header is corrupt or the image predates the bzImage format");
  }
  const headerEnd = 0x202 + r.u8(0x201, "jump displacement");
  const raw = readSetupHeader(r, protocol, headerEnd);
  const setupSectsRaw = Number(raw.setup_sects ?? 0n);
  const setupSects = setupSectsRaw === 0 ? 4 : setupSectsRaw;
  const setupSize = (setupSects + 1) * 512;
  if (setupSize > bytes.length) {
    throw new KexecError("parse", `bzImage: setup_sects (${setupSects}) says the real-mode part is ${setupSize} bytes, but the file is ${bytes.length} bytes`,
      { field: "setup_sects", offset: 0x1f1, expected: `<= ${bytes.length} bytes`, actual: `${setupSize} bytes` }, "the image is truncated");
  }
  const loadflags = Number(raw.loadflags ?? 0n);
  const xloadflags = Number(raw.xloadflags ?? 0n);
  const relocatable = (raw.relocatable_kernel ?? 0n) !== 0n;

  let payload: BzImage["payload"];
  if (raw.payload_offset !== undefined && raw.payload_length !== undefined && raw.payload_length > 0n) {
    const offset = setupSize + Number(raw.payload_offset);
    const length = Number(raw.payload_length);
    if (offset + length > bytes.length) {
      throw new KexecError("parse",
        `bzImage: payload (payload_offset ${hex(raw.payload_offset)} + payload_length ${hex(raw.payload_length)} after the setup at ${hex(setupSize)}) ends at ${hex(offset + length)}, past the end of the file at ${hex(bytes.length)}`,
        { field: "payload_length", offset: 0x24c, expected: `end <= ${hex(bytes.length)}`, actual: hex(offset + length) }, "the image is truncated or its header is corrupt");
    }
    payload = { offset, length, compression: detectCompression(bytes.subarray(offset, offset + length)) ?? "unknown" };
  }

  let kernelInfo: KernelInfo | undefined;
  if (raw.kernel_info_offset !== undefined && raw.kernel_info_offset !== 0n) {
    const at = setupSize + Number(raw.kernel_info_offset);
    if (r.has(at, 12) && r.u32(at, "kernel_info header") === KERNEL_INFO_MAGIC) {
      const size = r.u32(at + 4, "kernel_info size");
      kernelInfo = {
        offset: at,
        size,
        sizeTotal: r.u32(at + 8, "kernel_info size_total"),
        setupTypeMax: size >= 16 && r.has(at + 12, 4) ? r.u32(at + 12, "kernel_info setup_type_max") : undefined,
      };
    }
  }

  return {
    format: "bzImage",
    protocol,
    raw,
    headerEnd,
    setupSects,
    setupSize,
    kernelFileSize: bytes.length - setupSize,
    loadflags,
    loadflagNames: flagNames(loadflags, LOADFLAG_NAMES),
    xloadflags,
    xloadflagNames: flagNames(xloadflags, XLOADFLAG_NAMES),
    is64: (xloadflags & XLF_KERNEL_64) !== 0,
    canBeLoadedAbove4G: (xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G) !== 0,
    fiveLevel: (xloadflags & XLF_5LEVEL) !== 0,
    fiveLevelEnabled: (xloadflags & XLF_5LEVEL_ENABLED) !== 0,
    relocatable,
    kernelAlignment: raw.kernel_alignment,
    minAlignment: raw.min_alignment === undefined ? undefined : Number(raw.min_alignment),
    prefAddress: raw.pref_address,
    initSize: raw.init_size,
    initrdAddrMax: raw.initrd_addr_max ?? 0x37ffffffn,
    cmdlineSize: raw.cmdline_size === undefined ? 255 : Number(raw.cmdline_size),
    code32Start: raw.code32_start,
    handoverOffset: raw.handover_offset,
    hardwareSubarch: raw.hardware_subarch,
    payload,
    kernelInfo,
    version: readVersionString(r, raw),
    pe: readPe(bytes),
  };
}

/** kernel_version points at a NUL-terminated string 0x200 bytes before where it says (boot.rst). */
function readVersionString(r: ByteReader, raw: RawSetupHeader): string | undefined {
  const pointer = raw.kernel_version;
  if (pointer === undefined || pointer === 0n) return undefined;
  const at = Number(pointer) + 0x200;
  if (!r.has(at, 1)) return undefined;
  const text = r.cstring(at, 256, "kernel version string");
  if (text === undefined || !/^[\x20-\x7e]+$/.test(text)) return undefined;
  return text;
}

/**
 * What is wrong with a relocatable image's kernel_alignment (setup header offset 0x230), if
 * anything. The decompressor rounds its load address up with it as a mask (head_64.S, head_32.S:
 * add alignment - 1, and with its complement), so anything but a power of two moves the kernel
 * over memory it was not given; and min_alignment (2.10+) is the least the kernel can run at.
 * Every Debian kernel has 2 MiB (amd64) or 16 MiB (686) with min_alignment 2 MiB or 8 KiB. A
 * value outside that is a damaged header: the planner cannot honour it (a zero once made it
 * divide by zero), and the kernel would not boot from it.
 */
export function kernelAlignmentProblem(bz: BzImage): { message: string; data: Record<string, string | number>; hint: string } | undefined {
  const align = bz.kernelAlignment;
  if (!bz.relocatable || align === undefined) return undefined;
  const hint = "the image's setup header is damaged: install or copy the kernel image again";
  if (align === 0n || (align & (align - 1n)) !== 0n) {
    return { message: `the image's kernel_alignment ${hex(align)} (setup header offset 0x230) is not a power of two: the kernel rounds its load address up with it as a mask`, data: { field: "kernel_alignment", offset: 0x230, expected: "a power of two", actual: hex(align) }, hint };
  }
  const min = bz.minAlignment;
  if (min !== undefined && min !== 0 && (min > 63 || 1n << BigInt(min) > align)) {
    return { message: `the image's kernel_alignment ${hex(align)} is below its own min_alignment (2^${min}, setup header offset 0x235), the least alignment the kernel can run at`, data: { field: "kernel_alignment", offset: 0x230, expected: `>= 2^${min}`, actual: hex(align) }, hint };
  }
  return undefined;
}

/**
 * What is wrong with init_size (setup header offset 0x260, 2.10+), if anything: the memory the
 * decompressor needs from the kernel's load address, always more than the protected-mode kernel
 * in the file. Less (a zero) is a damaged header: kexec_file_load makes the kernel segment
 * init_size long, shorter than its bytes (EINVAL), and a kexec_load plan would give it too little.
 */
export function initSizeProblem(bz: BzImage): { message: string; data: Record<string, string | number>; hint: string } | undefined {
  const fileSize = BigInt(bz.kernelFileSize);
  if (bz.initSize === undefined || bz.initSize >= fileSize) return undefined;
  return {
    message: `the image's init_size ${hex(bz.initSize)} (setup header offset 0x260) is less than the ${hex(fileSize)} bytes of protected-mode kernel in the file, which the decompressor needs at least`,
    data: { field: "init_size", offset: 0x260, expected: `>= ${hex(fileSize)}`, actual: hex(bz.initSize) },
    hint: "the image's setup header is damaged: install or copy the kernel image again",
  };
}

/** Whether the image has LOADED_HIGH: a zImage (loaded at 0x10000) cannot be kexec'd by us. */
export function isLoadedHigh(image: BzImage): boolean {
  return (image.loadflags & LOADED_HIGH) !== 0;
}

