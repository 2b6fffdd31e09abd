/**
 * Kernel image type detection: a bzImage, an ELF vmlinux, or either of those
 * inside a whole-file compression wrapper (vmlinux.xz, as kexec-tools also
 * accepts). Anything else is "not a kernel image", with the first bytes shown.
 *
 * The codecs are a parameter here (index.ts passes them all): an image that needs none, which
 * is every bzImage a load or a check reads, is read without loading them (see codecsNeeded).
 */
import { KexecError } from "../errors.js";
import { describeBytes } from "../format.js";
import { looksLikeBzImage, parseBzImage, type BzImage } from "./bzimage.js";
import { detectCompression, type Compression } from "./compression/common.js";
import type { DecompressOptions } from "./compression/index.js";
import { looksLikeElf, parseElf, readNotes, type ElfFile, type ElfNote } from "./elf.js";

export interface Vmlinux {
  elf: ElfFile;
  notes: ElfNote[];
  /** "Linux version ..." banner found in the image, if any. */
  banner: string | undefined;
  size: number;
}

export type KernelImage =
  | { kind: "bzImage"; bzImage: BzImage; bytes: Uint8Array; wrapper: Compression | undefined; vmlinux: Vmlinux | undefined; vmlinuxBytes: Uint8Array | undefined }
  | { kind: "elf"; vmlinux: Vmlinux; bytes: Uint8Array; wrapper: Compression | undefined };

export interface ReadImageOptions {
  /** Decompress a bzImage's payload and read the vmlinux inside (slower: seconds for xz). */
  decompressPayload?: boolean;
}

/** compression/index.ts decompress, or a stand-in for it in tests. */
export type Decompress = (kind: Compression, bytes: Uint8Array, options?: DecompressOptions) => Uint8Array;

/** Whether reading `input` with `options` decompresses anything: a wrapped image, or a payload asked for. */
export function codecsNeeded(input: Uint8Array, options: ReadImageOptions = {}): boolean {
  return options.decompressPayload === true || (!looksLikeBzImage(input) && !looksLikeElf(input) && detectCompression(input) !== undefined);
}

/** readKernelImage with the codecs given; `decompress` may be left out when codecsNeeded says none are. */
export function readKernelImageWith(input: Uint8Array, options: ReadImageOptions, decompress: Decompress | undefined): KernelImage {
  const codec = (kind: Compression, bytes: Uint8Array, o?: DecompressOptions): Uint8Array => {
    if (decompress === undefined) throw new KexecError("internal", `the ${kind} codec was needed but not given`, { field: "decompress" }, "this is a bug in kexec-ts (codecsNeeded said no codec); please report it");
    return decompress(kind, bytes, o);
  };
  let bytes = input;
  let wrapper: Compression | undefined;
  if (!looksLikeBzImage(bytes) && !looksLikeElf(bytes)) {
    wrapper = detectCompression(bytes);
    if (wrapper !== undefined) bytes = codec(wrapper, bytes);
  }
  if (looksLikeBzImage(bytes)) {
    const bzImage = parseBzImage(bytes);
    let vmlinux: Vmlinux | undefined;
    let vmlinuxBytes: Uint8Array | undefined;
    if (options.decompressPayload) ({ vmlinux, bytes: vmlinuxBytes } = readPayloadWithBytes(bytes, bzImage, codec));
    return { kind: "bzImage", bzImage, bytes, wrapper, vmlinux, vmlinuxBytes };
  }
  if (looksLikeElf(bytes)) return { kind: "elf", vmlinux: readVmlinux(bytes, "vmlinux"), bytes, wrapper };
  throw notAKernel(input, wrapper);
}

function notAKernel(bytes: Uint8Array, wrapper: Compression | undefined): KexecError {
  const guess = guessFileKind(bytes);
  return new KexecError(
    "not-a-kernel",
    `not a kernel image${wrapper ? ` (after ${wrapper} decompression)` : ""}: no bzImage "HdrS" at offset 0x202 and no ELF magic at offset 0; the first bytes are ${describeBytes(bytes)}${guess ? ` (${guess})` : ""}`,
    { field: "magic", offset: 0, expected: '"HdrS" at 0x202 or 7f 45 4c 46 at 0', actual: describeBytes(bytes) },
    "pass a bzImage (e.g. /boot/vmlinuz-*) or an uncompressed vmlinux",
  );
}

/** A few common look-alikes, so the error says what the file probably is. */
function guessFileKind(b: Uint8Array): string | undefined {
  const starts = (...sig: number[]) => sig.every((v, i) => b[i] === v);
  if (starts(0x30, 0x37, 0x30, 0x37, 0x30)) return "looks like a cpio archive: an initramfs, not a kernel";
  if (starts(0x21, 0x3c, 0x61, 0x72, 0x63, 0x68, 0x3e)) return "looks like an ar archive: a .deb? extract boot/vmlinuz-* from it";
  if (starts(0x4d, 0x5a)) return "a PE/EFI executable without a Linux setup header: a UKI or another EFI program";
  if (starts(0x23, 0x21)) return "a script";
  if (b.length === 0) return "the file is empty";
  return undefined;
}

export function readPayloadWith(bytes: Uint8Array, bz: BzImage, decompress: Decompress): Vmlinux {
  return readPayloadWithBytes(bytes, bz, decompress).vmlinux;
}

function readPayloadWithBytes(bytes: Uint8Array, bz: BzImage, decompress: Decompress): { vmlinux: Vmlinux; bytes: Uint8Array } {
  if (!bz.payload) {
    throw new KexecError("parse", "bzImage: the setup header has no payload_offset/payload_length (protocol < 2.08), so the compressed kernel cannot be located",
      { field: "payload_offset", offset: 0x248, expected: "protocol >= 0x208", actual: `0x${bz.protocol.toString(16)}` }, "a kernel this old (before 2.6.26) has no payload fields; inspect it without --vmlinux");
  }
  if (bz.payload.compression === "unknown") {
    const head = bytes.subarray(bz.payload.offset, bz.payload.offset + 16);
    throw new KexecError("decompress", `bzImage: the payload at offset 0x${bz.payload.offset.toString(16)} has no known compression magic (found ${describeBytes(head)})`,
      { field: "payload", offset: bz.payload.offset, expected: "gzip, bzip2, lzma, xz, lzo, lz4 or zstd magic", actual: describeBytes(head) }, "the image is corrupt or uses a compression kexec-ts does not know");
  }
  const compressed = bytes.subarray(bz.payload.offset, bz.payload.offset + bz.payload.length);
  // The kernel build appends the uncompressed size as the payload's last 4 bytes.
  const tail = compressed.length >= 4 ? new DataView(compressed.buffer, compressed.byteOffset + compressed.length - 4, 4).getUint32(0, true) : undefined;
  const vmlinuxBytes = decompress(bz.payload.compression, compressed, tail !== undefined && tail > 0 ? { expectedSize: tail } : {});
  return { vmlinux: readVmlinux(vmlinuxBytes, "vmlinux (bzImage payload)"), bytes: vmlinuxBytes };
}

export function readVmlinux(bytes: Uint8Array, what: string): Vmlinux {
  const elf = parseElf(bytes, what);
  let notes: ElfNote[] = [];
  try {
    notes = readNotes(bytes, elf, what);
  } catch (e) {
    if (!(e instanceof KexecError)) throw e;
    // Notes are informational; an odd note segment must not hide the rest of the image.
  }
  return { elf, notes, banner: findBanner(bytes), size: bytes.length };
}

const BANNER = [0x4c, 0x69, 0x6e, 0x75, 0x78, 0x20, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x20]; // "Linux version "

/** The kernel's linux_banner ("Linux version 6.1.0 (...) #1 SMP ..."), the first one that is followed by a digit. */
export function findBanner(bytes: Uint8Array): string | undefined {
  const first = BANNER[0]!;
  for (let i = bytes.indexOf(first); i >= 0 && i < bytes.length - BANNER.length; i = bytes.indexOf(first, i + 1)) {
    let match = true;
    for (let k = 1; k < BANNER.length; k++) if (bytes[i + k] !== BANNER[k]) { match = false; break; }
    if (!match) continue;
    const next = bytes[i + BANNER.length];
    if (next === undefined || next < 0x30 || next > 0x39) continue;
    let end = i;
    while (end < bytes.length && end - i < 512 && bytes[end] !== 0 && bytes[end] !== 0x0a) end++;
    return String.fromCharCode(...bytes.subarray(i, end));
  }
  return undefined;
}

export type { BzImage } from "./bzimage.js";
export type { ElfFile } from "./elf.js";
