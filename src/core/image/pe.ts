/**
 * Just enough of PE/COFF to answer "does this bzImage carry an EFI stub, and
 * is it Authenticode-signed?" — kexec_file_load under lockdown needs a signed
 * image, and a check should say whether this one is. (PE format: the MS-DOS
 * header's e_lfanew at 0x3c points at "PE\0\0"; the certificate table is data
 * directory 4 of the optional header.)
 */
import { ByteReader } from "../bytes/reader.js";

export interface PeInfo {
  /** An "MZ" header pointing at a valid "PE\0\0" signature. */
  present: boolean;
  /** IMAGE_FILE_MACHINE_* (0x8664 x86-64, 0x14c i386). */
  machine?: number;
  /** 0x10b PE32, 0x20b PE32+. */
  optionalMagic?: number;
  /** Certificate table (Authenticode) file offset and size; size 0 means unsigned. */
  certificateTable?: { offset: number; size: number };
  signed: boolean;
}

const IMAGE_DIRECTORY_ENTRY_SECURITY = 4;

export function readPe(bytes: Uint8Array): PeInfo {
  const r = new ByteReader(bytes, "PE header");
  if (!r.has(0, 0x40) || bytes[0] !== 0x4d || bytes[1] !== 0x5a) return { present: false, signed: false };
  const lfanew = r.u32(0x3c, "e_lfanew");
  if (!r.has(lfanew, 24) || r.u32(lfanew, "PE signature") !== 0x00004550) return { present: false, signed: false };
  const machine = r.u16(lfanew + 4, "Machine");
  const optSize = r.u16(lfanew + 20, "SizeOfOptionalHeader");
  const opt = lfanew + 24;
  if (!r.has(opt, Math.max(optSize, 2))) return { present: true, machine, signed: false };
  const optionalMagic = r.u16(opt, "optional header Magic");
  // Data directories start after the fixed part, whose length differs by PE32/PE32+.
  const dirBase = optionalMagic === 0x20b ? opt + 112 : opt + 96;
  const countOffset = dirBase - 4;
  const count = r.has(countOffset, 4) ? r.u32(countOffset, "NumberOfRvaAndSizes") : 0;
  let certificateTable: PeInfo["certificateTable"];
  const entry = dirBase + IMAGE_DIRECTORY_ENTRY_SECURITY * 8;
  if (count > IMAGE_DIRECTORY_ENTRY_SECURITY && entry + 8 <= opt + optSize && r.has(entry, 8)) {
    // For the security directory the "RVA" is a plain file offset.
    certificateTable = { offset: r.u32(entry, "certificate table offset"), size: r.u32(entry + 4, "certificate table size") };
  }
  const signed =
    certificateTable !== undefined &&
    certificateTable.size >= 8 &&
    certificateTable.offset + certificateTable.size <= bytes.length;
  return { present: true, machine, optionalMagic, ...(certificateTable ? { certificateTable } : {}), signed };
}
