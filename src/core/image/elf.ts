/**
 * ELF32/ELF64 little-endian reader (include/uapi/linux/elf.h): file header,
 * program headers, and notes. Used for vmlinux images and, later, core files.
 * Every offset the file claims is checked against the file before use.
 */
import { defineLayout, encodeStruct, field, offsetOf, readStruct, writeStruct } from "../bytes/layout.js";
import { latin1 } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";

export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
export const PT_NOTE = 4;
/**
 * e_phnum when the program headers do not fit 16 bits (gABI "Extended numbering", elf.h): the
 * real count is sh_info of section header 0. PN_XNUM itself means "look there", so a count of
 * exactly 0xffff needs it too.
 */
export const PN_XNUM = 0xffff;
export const SHT_NULL = 0;
export const SHN_UNDEF = 0;

export interface ElfHeader {
  elfClass: 32 | 64;
  e_type: number;
  e_machine: number;
  e_version: number;
  e_entry: bigint;
  e_phoff: bigint;
  e_shoff: bigint;
  e_flags: number;
  e_ehsize: number;
  e_phentsize: number;
  e_phnum: number;
  e_shentsize: number;
  e_shnum: number;
  e_shstrndx: number;
}

export interface ProgramHeader {
  index: number;
  p_type: number;
  p_flags: number;
  p_offset: bigint;
  p_vaddr: bigint;
  p_paddr: bigint;
  p_filesz: bigint;
  p_memsz: bigint;
  p_align: bigint;
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
  /** File offset of the note header. */
  offset: number;
}

export interface ElfFile {
  format: "elf";
  header: ElfHeader;
  programHeaders: ProgramHeader[];
  machineName: string;
}

/** e_ident[EI_MAG0..3]: "\x7fELF". */
export const ELF_MAGIC = new Uint8Array([0x7f, 0x45, 0x4c, 0x46]);

export function looksLikeElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.every((b, i) => bytes[i] === b);
}

export function machineName(e_machine: number): string {
  if (e_machine === EM_X86_64) return "x86_64";
  if (e_machine === EM_386) return "i386";
  return `machine ${e_machine}`;
}

export const PT_NAMES: Record<number, string> = { 0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB", 6: "PHDR", 7: "TLS" };

/**
 * The ELF layouts (include/uapi/linux/elf.h: struct elf32_hdr/elf64_hdr, elf32_phdr/elf64_phdr,
 * elf32_note/elf64_note). Fields keep one name in both classes; addresses and offsets are `u64`
 * (4 bytes in ELF32), so code above the tables does not care which class it reads.
 */
export const E_IDENT = defineLayout("e_ident", 16, "little", [
  field("EI_MAG", 0, 4, "bytes"),
  field("EI_CLASS", 4, 1, "uint"),
  field("EI_DATA", 5, 1, "uint"),
  field("EI_VERSION", 6, 1, "uint"),
  field("EI_OSABI", 7, 1, "uint"),
]);

export const ELF64_EHDR = defineLayout("struct elf64_hdr", 64, "little", [
  field("e_ident", 0, 16, "bytes"),
  field("e_type", 16, 2, "uint"),
  field("e_machine", 18, 2, "uint"),
  field("e_version", 20, 4, "uint"),
  field("e_entry", 24, 8, "u64"),
  field("e_phoff", 32, 8, "u64"),
  field("e_shoff", 40, 8, "u64"),
  field("e_flags", 48, 4, "uint"),
  field("e_ehsize", 52, 2, "uint"),
  field("e_phentsize", 54, 2, "uint"),
  field("e_phnum", 56, 2, "uint"),
  field("e_shentsize", 58, 2, "uint"),
  field("e_shnum", 60, 2, "uint"),
  field("e_shstrndx", 62, 2, "uint"),
]);

export const ELF32_EHDR = defineLayout("struct elf32_hdr", 52, "little", [
  field("e_ident", 0, 16, "bytes"),
  field("e_type", 16, 2, "uint"),
  field("e_machine", 18, 2, "uint"),
  field("e_version", 20, 4, "uint"),
  field("e_entry", 24, 4, "u64"),
  field("e_phoff", 28, 4, "u64"),
  field("e_shoff", 32, 4, "u64"),
  field("e_flags", 36, 4, "uint"),
  field("e_ehsize", 40, 2, "uint"),
  field("e_phentsize", 42, 2, "uint"),
  field("e_phnum", 44, 2, "uint"),
  field("e_shentsize", 46, 2, "uint"),
  field("e_shnum", 48, 2, "uint"),
  field("e_shstrndx", 50, 2, "uint"),
]);

/** ELF64 puts p_flags second, for alignment; ELF32 puts it after p_memsz. */
export const ELF64_PHDR = defineLayout("struct elf64_phdr", 56, "little", [
  field("p_type", 0, 4, "uint"),
  field("p_flags", 4, 4, "uint"),
  field("p_offset", 8, 8, "u64"),
  field("p_vaddr", 16, 8, "u64"),
  field("p_paddr", 24, 8, "u64"),
  field("p_filesz", 32, 8, "u64"),
  field("p_memsz", 40, 8, "u64"),
  field("p_align", 48, 8, "u64"),
]);

export const ELF32_PHDR = defineLayout("struct elf32_phdr", 32, "little", [
  field("p_type", 0, 4, "uint"),
  field("p_offset", 4, 4, "u64"),
  field("p_vaddr", 8, 4, "u64"),
  field("p_paddr", 12, 4, "u64"),
  field("p_filesz", 16, 4, "u64"),
  field("p_memsz", 20, 4, "u64"),
  field("p_flags", 24, 4, "uint"),
  field("p_align", 28, 4, "u64"),
]);

/** struct elf64_shdr / elf32_shdr. */
export const ELF64_SHDR = defineLayout("struct elf64_shdr", 64, "little", [
  field("sh_name", 0, 4, "uint"),
  field("sh_type", 4, 4, "uint"),
  field("sh_flags", 8, 8, "u64"),
  field("sh_addr", 16, 8, "u64"),
  field("sh_offset", 24, 8, "u64"),
  field("sh_size", 32, 8, "u64"),
  field("sh_link", 40, 4, "uint"),
  field("sh_info", 44, 4, "uint"),
  field("sh_addralign", 48, 8, "u64"),
  field("sh_entsize", 56, 8, "u64"),
]);

export const ELF32_SHDR = defineLayout("struct elf32_shdr", 40, "little", [
  field("sh_name", 0, 4, "uint"),
  field("sh_type", 4, 4, "uint"),
  field("sh_flags", 8, 4, "u64"),
  field("sh_addr", 12, 4, "u64"),
  field("sh_offset", 16, 4, "u64"),
  field("sh_size", 20, 4, "u64"),
  field("sh_link", 24, 4, "uint"),
  field("sh_info", 28, 4, "uint"),
  field("sh_addralign", 32, 4, "u64"),
  field("sh_entsize", 36, 4, "u64"),
]);

/** struct elf32_note and elf64_note are the same 12 bytes; name and desc follow, each 4-byte aligned. */
export const ELF_NHDR = defineLayout("struct elf64_note", 12, "little", [
  field("n_namesz", 0, 4, "uint"),
  field("n_descsz", 4, 4, "uint"),
  field("n_type", 8, 4, "uint"),
]);

/** Elf32_Dyn / Elf64_Dyn: d_tag, then d_un (d_val or d_ptr). */
export const ELF64_DYN = defineLayout("Elf64_Dyn", 16, "little", [field("d_tag", 0, 8, "u64"), field("d_val", 8, 8, "u64")]);
export const ELF32_DYN = defineLayout("Elf32_Dyn", 8, "little", [field("d_tag", 0, 4, "u64"), field("d_val", 4, 4, "u64")]);

export const EV_CURRENT = 1;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

export function elfHeaderLayout(elfClass: 32 | 64): typeof ELF64_EHDR | typeof ELF32_EHDR {
  return elfClass === 64 ? ELF64_EHDR : ELF32_EHDR;
}
export function programHeaderLayout(elfClass: 32 | 64): typeof ELF64_PHDR | typeof ELF32_PHDR {
  return elfClass === 64 ? ELF64_PHDR : ELF32_PHDR;
}
export function sectionHeaderLayout(elfClass: 32 | 64): typeof ELF64_SHDR | typeof ELF32_SHDR {
  return elfClass === 64 ? ELF64_SHDR : ELF32_SHDR;
}

/**
 * How many program headers the file has: e_phnum, or with e_phnum = PN_XNUM, sh_info of section
 * header 0 at e_shoff. `read(offset, length)` reads the file, `fileSize` bounds it: the section
 * header may lie anywhere in it (the kernel's core writer puts it after the data, makedumpfile
 * and kexec-ts right after the program headers).
 */
export function programHeaderCount(header: ElfHeader, fileSize: bigint, read: (offset: bigint, length: number) => Uint8Array, what = "ELF file"): number {
  if (header.e_phnum !== PN_XNUM) return header.e_phnum;
  const E = elfHeaderLayout(header.elfClass);
  const S = sectionHeaderLayout(header.elfClass);
  const hint = "the file is truncated or its header is corrupt: e_phnum 0xffff (PN_XNUM) says the program header count is in section header 0, which is not there";
  if (header.e_shoff === 0n) {
    throw new KexecError("parse", `${what}: e_phnum is 0xffff (PN_XNUM), but e_shoff is 0: the file has no section header 0 to hold the program header count`,
      { field: "e_shoff", offset: offsetOf(E, "e_shoff"), expected: "the offset of section header 0", actual: hex(header.e_shoff) }, hint);
  }
  if (header.e_shentsize < S.size) {
    throw new KexecError("parse", `${what}: e_phnum is 0xffff (PN_XNUM), but e_shentsize is ${header.e_shentsize}, smaller than an ELF${header.elfClass} section header (${S.size})`,
      { field: "e_shentsize", offset: offsetOf(E, "e_shentsize"), expected: `>= ${S.size}`, actual: String(header.e_shentsize) }, hint);
  }
  const end = header.e_shoff + BigInt(S.size);
  if (end > fileSize) {
    throw new KexecError("parse", `${what}: e_phnum is 0xffff (PN_XNUM), but section header 0 (e_shoff ${hex(header.e_shoff)}, ${S.size} bytes) ends at ${hex(end)}, past the end of the file at ${hex(fileSize)}`,
      { field: "e_shoff", offset: offsetOf(E, "e_shoff"), expected: `section header end <= ${hex(fileSize)}`, actual: hex(end) }, hint);
  }
  const sh = readStruct(S, read(header.e_shoff, S.size), 0, { what: `${what} section header 0` });
  // sh_info below PN_XNUM would have fitted e_phnum: no writer puts it there, so the header is damaged.
  if (sh.sh_info < PN_XNUM) {
    throw new KexecError("parse", `${what}: e_phnum is 0xffff (PN_XNUM), but sh_info of section header 0 at ${hex(header.e_shoff)} is ${sh.sh_info}, a count e_phnum would have held`,
      { field: "sh_info", offset: header.e_shoff + BigInt(offsetOf(S, "sh_info")), expected: `>= ${PN_XNUM}`, actual: String(sh.sh_info) }, "the file's header is corrupt: e_phnum or e_shoff is damaged");
  }
  return sh.sh_info;
}

/** The identification bytes of a little-endian x86 ELF file of the given class. */
export function elfIdent(elfClass: 32 | 64): Uint8Array {
  return encodeStruct(E_IDENT, { EI_MAG: ELF_MAGIC, EI_CLASS: elfClass === 64 ? ELFCLASS64 : ELFCLASS32, EI_DATA: ELFDATA2LSB, EI_VERSION: EV_CURRENT });
}

/** Which class the identification says, after checking the magic, the class and the byte order. */
export function readElfClass(bytes: Uint8Array, what: string): 32 | 64 {
  if (!looksLikeElf(bytes)) {
    throw new KexecError("parse", `${what}: no ELF magic at offset 0`, { field: "e_ident", offset: 0, expected: "7f 45 4c 46", actual: Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ") }, "give an ELF file: a vmlinux, /proc/kcore or a vmcore");
  }
  const id = readStruct(E_IDENT, bytes, 0, { what, limit: 8 });
  const cls = id.EI_CLASS;
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) {
    throw new KexecError("parse", `${what}: e_ident[EI_CLASS] at offset 4 is ${cls}, expected 1 (ELF32) or 2 (ELF64)`, { field: "EI_CLASS", offset: 4, expected: "1 or 2", actual: String(cls) }, "the file is corrupt, or not an ELF file");
  }
  if (id.EI_DATA !== ELFDATA2LSB) {
    throw new KexecError("parse", `${what}: e_ident[EI_DATA] at offset 5 is ${id.EI_DATA}, expected 1 (little-endian)`, { field: "EI_DATA", offset: 5, expected: "1", actual: String(id.EI_DATA) }, "x86 ELF files are little-endian; this one is for another architecture");
  }
  return cls === ELFCLASS64 ? 64 : 32;
}

/** `bytes` holds the file from offset 0 at least to the end of the program header table (and, for PN_XNUM, to section header 0, unless `phnum` gives the count). */
export function parseElf(bytes: Uint8Array, what = "ELF file", phnum?: number): ElfFile {
  const elfClass = readElfClass(bytes, what);
  const E = elfHeaderLayout(elfClass);
  const h = readStruct(E, bytes, 0, { what });
  const header: ElfHeader = {
    elfClass, e_type: h.e_type, e_machine: h.e_machine, e_version: h.e_version, e_entry: h.e_entry, e_phoff: h.e_phoff, e_shoff: h.e_shoff,
    e_flags: h.e_flags, e_ehsize: h.e_ehsize, e_phentsize: h.e_phentsize, e_phnum: h.e_phnum, e_shentsize: h.e_shentsize, e_shnum: h.e_shnum, e_shstrndx: h.e_shstrndx,
  };
  const count = phnum ?? programHeaderCount(header, BigInt(bytes.length), (offset, length) => bytes.subarray(Number(offset), Number(offset) + length), what);
  const P = programHeaderLayout(elfClass);
  if (count > 0 && header.e_phentsize < P.size) {
    throw new KexecError("parse", `${what}: e_phentsize is ${header.e_phentsize}, smaller than an ELF${elfClass} program header (${P.size})`, { field: "e_phentsize", offset: offsetOf(E, "e_phentsize"), expected: `>= ${P.size}`, actual: String(header.e_phentsize) }, "the file is corrupt: its program header entries are shorter than the ELF class needs");
  }
  const tableEnd = header.e_phoff + BigInt(count) * BigInt(header.e_phentsize);
  if (count > 0 && tableEnd > BigInt(bytes.length)) {
    throw new KexecError("parse",
      `${what}: the program header table (e_phoff ${hex(header.e_phoff)}, ${count} × ${header.e_phentsize} bytes) ends at ${hex(tableEnd)}, past the end of the file at ${hex(bytes.length)}`,
      { field: "e_phoff", offset: offsetOf(E, "e_phoff"), expected: `table end <= ${hex(bytes.length)}`, actual: hex(tableEnd) }, "the file is truncated or its header is corrupt");
  }
  const programHeaders: ProgramHeader[] = [];
  for (let i = 0; i < count; i++) {
    const p = readStruct(P, bytes, Number(header.e_phoff) + i * header.e_phentsize, { what: `${what} program header ${i}` });
    programHeaders.push({ index: i, p_type: p.p_type, p_flags: p.p_flags, p_offset: p.p_offset, p_vaddr: p.p_vaddr, p_paddr: p.p_paddr, p_filesz: p.p_filesz, p_memsz: p.p_memsz, p_align: p.p_align });
  }
  return { format: "elf", header, programHeaders, machineName: machineName(header.e_machine) };
}

/** The file bytes of a segment, checked to lie inside the file. */
export function segmentBytes(bytes: Uint8Array, ph: ProgramHeader, what = "ELF file"): Uint8Array {
  const end = ph.p_offset + ph.p_filesz;
  if (end > BigInt(bytes.length)) {
    throw new KexecError("parse",
      `${what}: program header ${ph.index} (p_offset ${hex(ph.p_offset)}, p_filesz ${hex(ph.p_filesz)}) ends at ${hex(end)}, past the end of the file at ${hex(bytes.length)}`,
      { field: `program header ${ph.index} p_filesz`, expected: `end <= ${hex(bytes.length)}`, actual: hex(end) }, "the file is truncated");
  }
  return bytes.subarray(Number(ph.p_offset), Number(end));
}

/** Parse a note area (Elf32_Nhdr/Elf64_Nhdr share a layout; name and desc are 4-byte aligned). */
export function parseNotes(area: Uint8Array, baseOffset = 0, what = "note segment"): ElfNote[] {
  const notes: ElfNote[] = [];
  let at = 0;
  while (at + ELF_NHDR.size <= area.length) {
    const h = readStruct(ELF_NHDR, area, at, { what });
    // A zero header marks unused space (crash_notes buffers are zero-padded).
    if (h.n_namesz === 0 && h.n_descsz === 0 && h.n_type === 0) break;
    const nameAt = at + ELF_NHDR.size;
    const descAt = nameAt + align4(h.n_namesz);
    const next = descAt + align4(h.n_descsz);
    if (next > area.length + 3 || descAt + h.n_descsz > area.length) {
      throw new KexecError("parse", `${what}: note at offset ${hex(baseOffset + at)} (namesz ${h.n_namesz}, descsz ${h.n_descsz}) runs past the end of the segment (${area.length} bytes)`,
        { field: "n_descsz", offset: baseOffset + at, expected: `<= ${area.length - descAt}`, actual: String(h.n_descsz) }, "the file is truncated or corrupt");
    }
    let name = latin1(area.subarray(nameAt, nameAt + h.n_namesz));
    if (name.endsWith("\0")) name = name.slice(0, -1);
    notes.push({ name, type: h.n_type, desc: area.subarray(descAt, descAt + h.n_descsz), offset: baseOffset + at });
    at = next;
  }
  return notes;
}

/** A note: header, the name with its NUL, the desc, each padded to 4 bytes. */
export function encodeNote(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nameBytes = name.length + 1;
  const out = new Uint8Array(ELF_NHDR.size + align4(nameBytes) + align4(desc.length));
  writeStruct(ELF_NHDR, out, 0, { n_namesz: nameBytes, n_descsz: desc.length, n_type: type });
  for (let i = 0; i < name.length; i++) out[ELF_NHDR.size + i] = name.charCodeAt(i) & 0xff;
  out.set(desc, ELF_NHDR.size + align4(nameBytes));
  return out;
}

function align4(n: number): number {
  // Not (n + 3) & ~3: sizes are u32, and 32-bit bitwise arithmetic turns 0xfffffffd into 0.
  return Math.ceil(n / 4) * 4;
}

/** Every PT_NOTE's notes. */
export function readNotes(bytes: Uint8Array, elf: ElfFile, what = "ELF file"): ElfNote[] {
  const notes: ElfNote[] = [];
  for (const ph of elf.programHeaders) {
    if (ph.p_type !== PT_NOTE) continue;
    notes.push(...parseNotes(segmentBytes(bytes, ph, what), Number(ph.p_offset), `${what} PT_NOTE ${ph.index}`));
  }
  return notes;
}
