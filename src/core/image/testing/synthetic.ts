/**
 * A test-only builder of small synthetic bzImages: a boot sector, a setup
 * header with chosen fields, a version string and a payload. Real images
 * prove the reader against the kernel; these cover what real ones do not
 * (old protocols, odd flags, corruption).
 */
import { ByteWriter } from "../../bytes/writer.js";
import { asciiBytes } from "../../bytes/reader.js";
import { BOOT_FLAG, HDRS_MAGIC, SETUP_HEADER_FIELDS, writeHeaderField, type SetupHeaderFieldName } from "../setup-header.js";

export interface SyntheticOptions {
  protocol?: number;
  setupSects?: number;
  fields?: Partial<Record<SetupHeaderFieldName, bigint | number>>;
  version?: string;
  /** Bytes of the compressed payload placed right after the setup (payload_offset 0x100). */
  payload?: Uint8Array;
  /** Extra bytes of protected-mode kernel after the payload. */
  tail?: number;
  /** Prefix an "MZ"/"PE" stub like the EFI stub does; with a certificate table if signed. */
  pe?: { signed: boolean };
}

export function buildBzImage(options: SyntheticOptions = {}): Uint8Array {
  const protocol = options.protocol ?? 0x20f;
  const setupSects = options.setupSects ?? 4;
  const setupSize = (setupSects + 1) * 512;
  const payload = options.payload ?? new Uint8Array(0);
  const payloadOffset = 0x100;
  const total = setupSize + payloadOffset + payload.length + (options.tail ?? 0x100);
  const w = new ByteWriter(total);
  const defaults: Partial<Record<SetupHeaderFieldName, bigint | number>> = {
    setup_sects: setupSects,
    boot_flag: BOOT_FLAG,
    // Short jump whose displacement ends the header after the last field of this protocol.
    jump: 0xeb | ((protocol >= 0x20f ? 0x6a : 0x66) << 8),
    header: HDRS_MAGIC,
    version: protocol,
    loadflags: 1,
    kernel_version: 0x400 - 0x200,
    initrd_addr_max: 0x7fffffff,
    kernel_alignment: 0x200000,
    relocatable_kernel: 1,
    min_alignment: 21,
    xloadflags: 0x7f,
    cmdline_size: 2047,
    payload_offset: payloadOffset,
    payload_length: payload.length,
    pref_address: 0x1000000,
    init_size: 0x2000000,
    code32_start: 0x100000,
  };
  const fields = { ...defaults, ...(options.fields ?? {}) };
  for (const field of SETUP_HEADER_FIELDS) {
    const v = fields[field.name];
    if (v === undefined) continue;
    if (field.since > protocol) continue;
    writeHeaderField(w.bytes, field.name, BigInt(v));
  }
  const version = options.version ?? "6.1.0-synthetic (builder@test) #1 SMP";
  w.bytesAt(0x400, asciiBytes(`${version}\0`));
  w.bytesAt(setupSize + payloadOffset, payload);
  if (options.pe) {
    w.u16(0, 0x5a4d);
    w.u32(0x3c, 0x80);
    w.u32(0x80, 0x00004550);
    w.u16(0x84, 0x8664);
    w.u16(0x94, 0xf0); // SizeOfOptionalHeader: PE32+ with 16 directories
    w.u16(0x98, 0x20b);
    w.u32(0x98 + 108, 16); // NumberOfRvaAndSizes
    if (options.pe.signed) {
      const certAt = total - 0x40;
      w.u32(0x98 + 112 + 4 * 8, certAt);
      w.u32(0x98 + 112 + 4 * 8 + 4, 0x40);
    }
  }
  return w.finish();
}
