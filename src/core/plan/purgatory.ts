/**
 * kexec-ts' own purgatory: the few KiB of code the running kernel jumps to
 * after kexec_load's segments have been copied into place. It loads its own
 * GDT and stack, checks a SHA-256 over the segments, and enters the new
 * kernel through its 64-bit or 32-bit entry (purgatory/README.md).
 *
 * The blobs are flat and position-independent (purgatory/build.sh proves it),
 * so "patching" is only filling in the parameter block: no relocations, no
 * symbol table. This module is pure: the SHA-256 is passed in (node:crypto in
 * Node, WebCrypto in a browser), and `sha256` below is a pure fallback.
 */
import { ByteReader } from "../bytes/reader.js";
import { ByteWriter } from "../bytes/writer.js";
import { KexecError } from "../errors.js";
import { hex, size } from "../format.js";
import { PURGATORY_BLOBS, type PurgatoryBlob } from "./purgatory-blobs.js";

export type PurgatoryArch = "x86_64" | "i386";
export type PurgatoryEntryMode = "entry64" | "entry32";
export type Sha256 = (chunks: Uint8Array[]) => Uint8Array;

// ---- struct kxts_params (purgatory/params.h; the test cross-checks every offset) ----

export const KXTS_PARAMS_MAGIC = "KXTSPURG";
export const KXTS_PARAMS_VERSION = 1;
export const KXTS_MAX_REGIONS = 16;
export const KXTS_MODE_ENTRY64 = 0;
export const KXTS_MODE_ENTRY32 = 1;
export const KXTS_MODE_UNSET = 0xffffffff;
export const KXTS_FLAG_SERIAL = 0x1;
export const KXTS_FLAG_SKIP_SHA = 0x2;

export interface ParamsField {
  /** The C field name in struct kxts_params. */
  name: string;
  offset: number;
  size: number;
  what: string;
}

/** Field by field, as params.h lays it out (its KXTS_P_* offsets). */
export const KXTS_PARAMS_LAYOUT: readonly ParamsField[] = [
  { name: "magic", offset: 0x00, size: 8, what: `"${KXTS_PARAMS_MAGIC}"` },
  { name: "version", offset: 0x08, size: 4, what: "layout version" },
  { name: "size", offset: 0x0c, size: 4, what: "sizeof(struct kxts_params)" },
  { name: "entry_mode", offset: 0x10, size: 4, what: "0 = 64-bit entry, 1 = 32-bit entry" },
  { name: "flags", offset: 0x14, size: 4, what: "1 = serial progress, 2 = skip the SHA-256 check" },
  { name: "entry", offset: 0x18, size: 8, what: "physical address of the kernel entry" },
  { name: "boot_params", offset: 0x20, size: 8, what: "physical address of struct boot_params" },
  { name: "region_count", offset: 0x28, size: 4, what: "regions in use (0..16)" },
  { name: "reserved", offset: 0x2c, size: 4, what: "zero" },
  { name: "sha256", offset: 0x30, size: 32, what: "SHA-256 of the regions, in order" },
  { name: "regions", offset: 0x50, size: KXTS_MAX_REGIONS * 16, what: "{u64 start; u64 len;}[16]" },
];
export const KXTS_PARAMS_SIZE = 0x150;

function field(name: string): ParamsField {
  const f = KXTS_PARAMS_LAYOUT.find((x) => x.name === name);
  // A typo here is a bug, not user input.
  if (!f) throw new KexecError("internal", `kxts_params has no field ${name}`, { field: name }, "this is a bug in kexec-ts; please report it");
  return f;
}

// ---- the API ----

/**
 * One segment as the new kernel will find it: `bytes` (the segment's buffer,
 * bufsz long, whole or in pieces) at `start`, then the zeros kexec fills in up
 * to `memsz`. The digest covers the buffer, the bytes the loader handed over:
 * nothing reads the zero fill as zeros (a kernel's [file size, init_size) is its
 * decompressor's scratch, which clears its own bss; the initrd, core header and
 * boot_params are read up to their lengths), and hashing it would double the
 * work of a load (a 64 MiB init_size around an 8 MiB kernel). memsz is checked
 * against the buffer and the limits all the same.
 * Never list the purgatory's own segment: its bytes contain the digest.
 */
export interface PurgatoryRegion {
  /** What the region is, for messages ("the initrd segment"); "region N" otherwise. */
  what?: string;
  start: bigint;
  bytes: Uint8Array[] | Uint8Array;
  /** The segment's memsz; defaults to the buffer's length. Must not be smaller. */
  memsz?: bigint;
}

export interface PurgatoryParams {
  /**
   * entry64: the kernel's 64-bit entry (load address + 0x200) in long mode,
   * %rsi = boot_params. entry32: its 32-bit entry in protected mode with
   * paging off, %esi = boot_params (an i386 kernel, or a 64-bit kernel's
   * startup_32); for the x86_64 blob this forces everything below 4 GiB.
   */
  mode: PurgatoryEntryMode;
  entry: bigint;
  bootParams: bigint;
  /** At most 16, hashed in this order. */
  regions: PurgatoryRegion[];
  /** Print progress and errors on COM1 (0x3f8). */
  serialDebug?: boolean;
  /** Jump without verifying the digest (the regions are still recorded). */
  skipChecksum?: boolean;
}

export interface Purgatory {
  /** The patched blob: the segment's buffer. */
  bytes: Uint8Array;
  /** What the segment must reserve (file, bss and stack), page-aligned. */
  memsz: bigint;
  /** Where the running kernel must jump: segment address + entryOffset is kexec_load's entry. */
  entryOffset: bigint;
  /** Required alignment of the segment's address. */
  alignment: bigint;
  /**
   * The whole segment must lie below 4 GiB: always for i386, and for x86_64
   * in entry32 mode, where the code that turns paging off, its GDT and its
   * stack have to stay addressable with 32-bit addresses. A constraint for
   * the planner; the purgatory itself refuses to run otherwise.
   */
  below4G: boolean;
  /** The digest written into the block (zero when none was computed), and the regions it covers. */
  digest: Uint8Array;
  digested: boolean;
  regions: { start: bigint; len: bigint }[];
}

const PAGE = 4096n;
const GiB4 = 1n << 32n;
const U64_END = 1n << 64n;

/** The committed blob for an arch, decoded and checked to be what params.h describes. */
export function purgatoryBlob(arch: PurgatoryArch): { blob: PurgatoryBlob; bytes: Uint8Array } {
  const blob = PURGATORY_BLOBS[arch];
  const bytes = decodeBase64(blob.base64);
  const what = `${arch} purgatory blob`;
  if (bytes.length !== blob.filesz) {
    throw new KexecError("parse", `${what} decodes to ${bytes.length} bytes, expected ${blob.filesz}`,
      { field: "filesz", expected: String(blob.filesz), actual: String(bytes.length) }, "purgatory-blobs.ts is damaged; rerun purgatory/build.sh");
  }
  const r = new ByteReader(bytes, what);
  const at = blob.paramsOffset;
  const magic = String.fromCharCode(...r.bytes.subarray(at, at + 8));
  const version = r.u32(at + field("version").offset, "kxts_params.version");
  const sz = r.u32(at + field("size").offset, "kxts_params.size");
  if (magic !== KXTS_PARAMS_MAGIC || version !== KXTS_PARAMS_VERSION || sz !== KXTS_PARAMS_SIZE) {
    throw new KexecError("parse",
      `${what}: no kxts_params block at offset ${hex(at)} (magic "${magic}", version ${version}, size ${hex(sz)})`,
      { field: "kxts_params", offset: at, expected: `"${KXTS_PARAMS_MAGIC}" v${KXTS_PARAMS_VERSION} size ${hex(KXTS_PARAMS_SIZE)}`, actual: `"${magic}" v${version} size ${hex(sz)}` },
      "purgatory-blobs.ts and purgatory.ts disagree; rerun purgatory/build.sh and update the layout table");
  }
  return { blob, bytes };
}

/**
 * The planner decides every address, region and entry the purgatory is given, so parameters it
 * cannot take are the planner's mistake, not the user's: an internal error (exit 70), saying why.
 */
function planError(message: string, data: Record<string, unknown>, hint: string): KexecError {
  return new KexecError("internal", `purgatory: ${message}`, data, `${hint}; this is a bug in kexec-ts' plan, please report it with \`kexec-ts snapshot DIR\` and the image`);
}

/**
 * Fill in a copy of the blob's parameter block for one kexec_load. With `sha`
 * null the digest is left zero and nothing is hashed: a purgatory to show in a
 * plan (hashing the initrd costs more than the rest of the plan), never one to
 * load: it would refuse to jump.
 */
export function buildPurgatory(arch: PurgatoryArch, params: PurgatoryParams, sha: Sha256 | null): Purgatory {
  const { blob, bytes: pristine } = purgatoryBlob(arch);
  const below4G = arch === "i386" || params.mode === "entry32";

  if (arch === "i386" && params.mode === "entry64") {
    throw planError("an i386 running kernel cannot start a kernel through its 64-bit entry",
      { field: "mode", expected: "entry32", actual: "entry64" },
      "relocate_kernel_32 enters the purgatory in 32-bit protected mode with paging off, and switching to long mode " +
      "would need page tables built there; enter the kernel through its 32-bit entry (code32_start) instead");
  }
  if (params.regions.length > KXTS_MAX_REGIONS) {
    throw planError(`${params.regions.length} regions to verify, the parameter block holds ${KXTS_MAX_REGIONS}`,
      { field: "regions", expected: `<= ${KXTS_MAX_REGIONS}`, actual: String(params.regions.length) },
      "kexec_load takes at most 16 segments anyway (KEXEC_SEGMENT_MAX); merge adjacent segments");
  }
  const limit = below4G ? GiB4 : U64_END;
  const limitWhy = arch === "i386" ? "an i386 running kernel works with paging off" : "the 32-bit entry runs with paging off";
  for (const [name, value] of [["entry", params.entry], ["bootParams", params.bootParams]] as const) {
    if (value < 0n || value >= limit) {
      throw planError(`${name} ${hex(value)} is not below ${hex(limit)}`,
        { field: name, expected: `< ${hex(limit)}`, actual: hex(value) },
        below4G ? `${limitWhy}: place the kernel and boot_params below 4 GiB` : "addresses are 64-bit physical addresses");
    }
  }

  const regions: { start: bigint; len: bigint }[] = [];
  const chunks: Uint8Array[] = [];
  params.regions.forEach((region, i) => {
    const pieces = region.bytes instanceof Uint8Array ? [region.bytes] : region.bytes;
    const bufsz = pieces.reduce((n, p) => n + BigInt(p.length), 0n);
    const len = region.memsz ?? bufsz;
    const what = region.what ?? `region ${i}`;
    if (len < bufsz) {
      throw planError(`${what} at ${hex(region.start)} has a ${size(bufsz)} buffer but memsz ${hex(len)}`,
        { field: `regions[${i}].memsz`, expected: `>= ${hex(bufsz)}`, actual: hex(len) },
        "memsz is the segment's size in memory and cannot be smaller than its buffer");
    }
    if (region.start < 0n || region.start + len > limit) {
      throw planError(`${what} [${hex(region.start)}, ${hex(region.start + len)}) does not end below ${hex(limit)}`,
        { field: `regions[${i}]`, expected: `end <= ${hex(limit)}`, actual: hex(region.start + len) },
        below4G ? `${limitWhy}: every segment must lie below 4 GiB` : "the region wraps around the address space");
    }
    regions.push({ start: region.start, len: bufsz });
    if (sha !== null) for (const p of pieces) chunks.push(p);
  });
  const digest = sha === null ? new Uint8Array(32) : sha(chunks);
  if (digest.length !== 32) {
    throw planError(`the SHA-256 function returned ${digest.length} bytes`, { field: "sha256", expected: "32", actual: String(digest.length) },
      "pass a SHA-256 implementation (node:crypto createHash(\"sha256\") or sha256 from purgatory.ts)");
  }

  const out = pristine.slice();
  const w = new ByteWriter(out);
  const at = blob.paramsOffset;
  let flags = 0;
  if (params.serialDebug) flags |= KXTS_FLAG_SERIAL;
  if (params.skipChecksum) flags |= KXTS_FLAG_SKIP_SHA;
  w.u32(at + field("entry_mode").offset, params.mode === "entry64" ? KXTS_MODE_ENTRY64 : KXTS_MODE_ENTRY32, "kxts_params.entry_mode");
  w.u32(at + field("flags").offset, flags, "kxts_params.flags");
  w.u64(at + field("entry").offset, params.entry, "kxts_params.entry");
  w.u64(at + field("boot_params").offset, params.bootParams, "kxts_params.boot_params");
  w.u32(at + field("region_count").offset, regions.length, "kxts_params.region_count");
  w.bytesAt(at + field("sha256").offset, digest, "kxts_params.sha256");
  regions.forEach((r, i) => {
    const o = at + field("regions").offset + i * 16;
    w.u64(o, r.start, `kxts_params.regions[${i}].start`);
    w.u64(o + 8, r.len, `kxts_params.regions[${i}].len`);
  });

  return {
    bytes: out,
    memsz: (BigInt(blob.memsz) + PAGE - 1n) / PAGE * PAGE,
    entryOffset: BigInt(blob.entryOffset),
    alignment: PAGE,
    below4G,
    digest,
    digested: sha !== null,
    regions,
  };
}

export interface PurgatoryParamsRead {
  magic: string;
  version: number;
  size: number;
  entryMode: number;
  flags: number;
  entry: bigint;
  bootParams: bigint;
  regionCount: number;
  sha256: Uint8Array;
  regions: { start: bigint; len: bigint }[];
}

/** Read the parameter block back from a (patched) blob: for dumps and tests. */
export function readPurgatoryParams(bytes: Uint8Array, offset = 0, what = "purgatory"): PurgatoryParamsRead {
  const r = new ByteReader(bytes, what);
  const o = (name: string): number => offset + field(name).offset;
  r.need(offset, KXTS_PARAMS_SIZE, "kxts_params");
  const regionCount = r.u32(o("region_count"), "kxts_params.region_count");
  const regions: { start: bigint; len: bigint }[] = [];
  for (let i = 0; i < Math.min(regionCount, KXTS_MAX_REGIONS); i++) {
    regions.push({ start: r.u64(o("regions") + i * 16, `regions[${i}].start`), len: r.u64(o("regions") + i * 16 + 8, `regions[${i}].len`) });
  }
  return {
    magic: String.fromCharCode(...bytes.subarray(o("magic"), o("magic") + 8)),
    version: r.u32(o("version"), "kxts_params.version"),
    size: r.u32(o("size"), "kxts_params.size"),
    entryMode: r.u32(o("entry_mode"), "kxts_params.entry_mode"),
    flags: r.u32(o("flags"), "kxts_params.flags"),
    entry: r.u64(o("entry"), "kxts_params.entry"),
    bootParams: r.u64(o("boot_params"), "kxts_params.boot_params"),
    regionCount,
    sha256: bytes.slice(o("sha256"), o("sha256") + 32),
    regions,
  };
}

// ---- base64 (atob is not in every runtime the core targets with the same types) ----

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Each ASCII char's value in B64, -1 for none: a lookup per char, not a search of the alphabet (the blobs are ~10 KB, decoded on every plan). */
const B64_VALUE = Int8Array.from({ length: 128 }, (_, c) => B64.indexOf(String.fromCharCode(c)));

function decodeBase64(text: string): Uint8Array {
  const clean = text.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c]! : -1;
    if (v < 0) throw new KexecError("parse", `base64: unexpected character at ${i}`, { offset: i }, "purgatory-blobs.ts is damaged; rerun purgatory/build.sh");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

// ---- SHA-256 (FIPS 180-4), pure, for the browser and for tests ----

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function compress(h: Uint32Array, w: Uint32Array, block: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++) {
    const j = at + 4 * i;
    w[i] = ((block[j]! << 24) | (block[j + 1]! << 16) | (block[j + 2]! << 8) | block[j + 3]!) >>> 0;
  }
  for (let i = 16; i < 64; i++) {
    const a = w[i - 15]!, b = w[i - 2]!;
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0;
  }
  let a = h[0]!, b = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, k = h[7]!;
  for (let i = 0; i < 64; i++) {
    const t1 = (k + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) >>> 0;
    const t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
    k = g; g = f; f = e; e = (d + t1) >>> 0;
    d = c; c = b; b = a; a = (t1 + t2) >>> 0;
  }
  h[0] = (h[0]! + a) >>> 0; h[1] = (h[1]! + b) >>> 0; h[2] = (h[2]! + c) >>> 0; h[3] = (h[3]! + d) >>> 0;
  h[4] = (h[4]! + e) >>> 0; h[5] = (h[5]! + f) >>> 0; h[6] = (h[6]! + g) >>> 0; h[7] = (h[7]! + k) >>> 0;
}

/** SHA-256 of the concatenation of chunks; a drop-in for the injected function. */
export function sha256(chunks: Uint8Array[]): Uint8Array {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const block = new Uint8Array(64);
  let fill = 0;
  let total = 0;
  for (const chunk of chunks) {
    total += chunk.length;
    let i = 0;
    if (fill > 0) {
      const n = Math.min(64 - fill, chunk.length);
      block.set(chunk.subarray(0, n), fill);
      fill += n;
      i = n;
      if (fill < 64) continue;
      compress(h, w, block, 0);
      fill = 0;
    }
    for (; i + 64 <= chunk.length; i += 64) compress(h, w, chunk, i);
    block.set(chunk.subarray(i), 0);
    fill = chunk.length - i;
  }
  block[fill++] = 0x80;
  if (fill > 56) {
    block.fill(0, fill);
    compress(h, w, block, 0);
    fill = 0;
  }
  block.fill(0, fill, 56);
  const bits = BigInt(total) * 8n;
  for (let i = 0; i < 8; i++) block[56 + i] = Number((bits >> BigInt(56 - 8 * i)) & 0xffn);
  compress(h, w, block, 0);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    out[4 * i] = h[i]! >>> 24;
    out[4 * i + 1] = (h[i]! >>> 16) & 0xff;
    out[4 * i + 2] = (h[i]! >>> 8) & 0xff;
    out[4 * i + 3] = h[i]! & 0xff;
  }
  return out;
}
