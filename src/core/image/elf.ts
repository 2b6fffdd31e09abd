/**
 * ELF32/ELF64 little-endian reader (include/uapi/linux/elf.h): file header,
 * program headers, and notes. Used for vmlinux images and, later, core files.
 * Every offset the file claims is checked against the file before use.
 */
import { ByteReader, latin1 } from "../bytes/reader.js";
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

export function looksLikeElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

export function machineName(e_machine: number): string {
  if (e_machine === EM_X86_64) return "x86_64";
  if (e_machine === EM_386) return "i386";
  return `machine ${e_machine}`;
}

export const PT_NAMES: Record<number, string> = { 0: "NULL", 1: "LOAD", 2: "DYNAMIC", 3: "INTERP", 4: "NOTE", 5: "SHLIB", 6: "PHDR", 7: "TLS" };

export function parseElf(bytes: Uint8Array, what = "ELF file"): ElfFile {
  const r = new ByteReader(bytes, what);
  if (!looksLikeElf(bytes)) {
    throw new KexecError("parse", `${what}: no ELF magic at offset 0`, { field: "e_ident", offset: 0, expected: "7f 45 4c 46", actual: Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ") }, "give an ELF file: a vmlinux, /proc/kcore or a vmcore");
  }
  const cls = r.u8(4, "e_ident[EI_CLASS]");
  const data = r.u8(5, "e_ident[EI_DATA]");
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) {
    throw new KexecError("parse", `${what}: e_ident[EI_CLASS] at offset 4 is ${cls}, expected 1 (ELF32) or 2 (ELF64)`, { field: "EI_CLASS", offset: 4, expected: "1 or 2", actual: String(cls) }, "the file is corrupt, or not an ELF file");
  }
  if (data !== ELFDATA2LSB) {
    throw new KexecError("parse", `${what}: e_ident[EI_DATA] at offset 5 is ${data}, expected 1 (little-endian)`, { field: "EI_DATA", offset: 5, expected: "1", actual: String(data) }, "x86 ELF files are little-endian; this one is for another architecture");
  }
  const is64 = cls === ELFCLASS64;
  const header: ElfHeader = is64
    ? {
        elfClass: 64,
        e_type: r.u16(16, "e_type"), e_machine: r.u16(18, "e_machine"), e_version: r.u32(20, "e_version"),
        e_entry: r.u64(24, "e_entry"), e_phoff: r.u64(32, "e_phoff"), e_shoff: r.u64(40, "e_shoff"),
        e_flags: r.u32(48, "e_flags"), e_ehsize: r.u16(52, "e_ehsize"), e_phentsize: r.u16(54, "e_phentsize"),
        e_phnum: r.u16(56, "e_phnum"), e_shentsize: r.u16(58, "e_shentsize"), e_shnum: r.u16(60, "e_shnum"),
        e_shstrndx: r.u16(62, "e_shstrndx"),
      }
    : {
        elfClass: 32,
        e_type: r.u16(16, "e_type"), e_machine: r.u16(18, "e_machine"), e_version: r.u32(20, "e_version"),
        e_entry: BigInt(r.u32(24, "e_entry")), e_phoff: BigInt(r.u32(28, "e_phoff")), e_shoff: BigInt(r.u32(32, "e_shoff")),
        e_flags: r.u32(36, "e_flags"), e_ehsize: r.u16(40, "e_ehsize"), e_phentsize: r.u16(42, "e_phentsize"),
        e_phnum: r.u16(44, "e_phnum"), e_shentsize: r.u16(46, "e_shentsize"), e_shnum: r.u16(48, "e_shnum"),
        e_shstrndx: r.u16(50, "e_shstrndx"),
      };
  const minEntSize = is64 ? 56 : 32;
  if (header.e_phnum > 0 && header.e_phentsize < minEntSize) {
    throw new KexecError("parse", `${what}: e_phentsize is ${header.e_phentsize}, smaller than an ELF${header.elfClass} program header (${minEntSize})`, { field: "e_phentsize", offset: is64 ? 54 : 42, expected: `>= ${minEntSize}`, actual: String(header.e_phentsize) }, "the file is corrupt: its program header entries are shorter than the ELF class needs");
  }
  const tableEnd = header.e_phoff + BigInt(header.e_phnum) * BigInt(header.e_phentsize);
  if (header.e_phnum > 0 && tableEnd > BigInt(bytes.length)) {
    throw new KexecError("parse",
      `${what}: the program header table (e_phoff ${hex(header.e_phoff)}, ${header.e_phnum} × ${header.e_phentsize} bytes) ends at ${hex(tableEnd)}, past the end of the file at ${hex(bytes.length)}`,
      { field: "e_phoff", offset: is64 ? 32 : 28, expected: `table end <= ${hex(bytes.length)}`, actual: hex(tableEnd) }, "the file is truncated or its header is corrupt");
  }
  const programHeaders: ProgramHeader[] = [];
  for (let i = 0; i < header.e_phnum; i++) {
    const at = Number(header.e_phoff) + i * header.e_phentsize;
    const field = (name: string) => `program header ${i} ${name}`;
    programHeaders.push(
      is64
        ? {
            index: i, p_type: r.u32(at, field("p_type")), p_flags: r.u32(at + 4, field("p_flags")),
            p_offset: r.u64(at + 8, field("p_offset")), p_vaddr: r.u64(at + 16, field("p_vaddr")),
            p_paddr: r.u64(at + 24, field("p_paddr")), p_filesz: r.u64(at + 32, field("p_filesz")),
            p_memsz: r.u64(at + 40, field("p_memsz")), p_align: r.u64(at + 48, field("p_align")),
          }
        : {
            index: i, p_type: r.u32(at, field("p_type")), p_offset: BigInt(r.u32(at + 4, field("p_offset"))),
            p_vaddr: BigInt(r.u32(at + 8, field("p_vaddr"))), p_paddr: BigInt(r.u32(at + 12, field("p_paddr"))),
            p_filesz: BigInt(r.u32(at + 16, field("p_filesz"))), p_memsz: BigInt(r.u32(at + 20, field("p_memsz"))),
            p_flags: r.u32(at + 24, field("p_flags")), p_align: BigInt(r.u32(at + 28, field("p_align"))),
          },
    );
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
  const r = new ByteReader(area, what);
  const notes: ElfNote[] = [];
  let at = 0;
  while (at + 12 <= area.length) {
    const namesz = r.u32(at, "n_namesz");
    const descsz = r.u32(at + 4, "n_descsz");
    const type = r.u32(at + 8, "n_type");
    // A zero header marks unused space (crash_notes buffers are zero-padded).
    if (namesz === 0 && descsz === 0 && type === 0) break;
    const nameAt = at + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (next > area.length + 3 || descAt + descsz > area.length) {
      throw new KexecError("parse", `${what}: note at offset ${hex(baseOffset + at)} (namesz ${namesz}, descsz ${descsz}) runs past the end of the segment (${area.length} bytes)`,
        { field: "n_descsz", offset: baseOffset + at, expected: `<= ${area.length - descAt}`, actual: String(descsz) }, "the file is truncated or corrupt");
    }
    let name = latin1(area.subarray(nameAt, nameAt + namesz));
    if (name.endsWith("\0")) name = name.slice(0, -1);
    notes.push({ name, type, desc: area.subarray(descAt, descAt + descsz), offset: baseOffset + at });
    at = next;
  }
  return notes;
}

function align4(n: number): number {
  return (n + 3) & ~3;
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
