/**
 * ELF core output (what makedumpfile -E writes): ELF64 header, program headers
 * (PT_NOTE first, then PT_LOADs), the notes, then page data. Excluded pages at
 * the end of a PT_LOAD are absent from the file: p_filesz < p_memsz.
 * Layouts from include/uapi/linux/elf.h.
 *
 * From PN_XNUM (0xffff) program headers on, e_phnum says PN_XNUM and the count is sh_info of a
 * section header table of one SHT_NULL entry (gABI extended numbering). makedumpfile -E (since
 * 1.6.8, makedumpfile.c) puts that entry right after the program headers, before the notes; so
 * does this writer, so the header keeps one size formula and the data offsets follow from it.
 * (The kernel's process core writer, fs/binfmt_elf.c fill_extnum_info, puts it after the data.)
 */
import { writeStruct } from "../bytes/layout.js";
import { KexecError } from "../errors.js";
import { ELF64_EHDR, ELF64_PHDR, ELF64_SHDR, EM_386, EM_X86_64, ET_CORE, EV_CURRENT, PF_R, PF_W, PF_X, PN_XNUM, PT_LOAD, PT_NOTE, SHN_UNDEF, SHT_NULL, elfIdent } from "../image/elf.js";
import { MAX_CORE_PROGRAM_HEADERS } from "./elf-core.js";

export { encodeNote } from "../image/elf.js";

export interface OutputLoad {
  p_vaddr: bigint;
  p_paddr: bigint;
  p_offset: bigint;
  p_filesz: bigint;
  p_memsz: bigint;
}

/** Whether `phnum` program headers need extended numbering: PN_XNUM itself means "see sh_info". */
export function needsExtendedNumbering(phnum: number): boolean {
  return phnum >= PN_XNUM;
}

/** The ELF header, the program headers (PT_NOTE and `loads` PT_LOADs) and, with PN_XNUM, section header 0: where the notes start. */
export function elfHeaderSize(loads: number): number {
  const phnum = 1 + loads;
  if (phnum > MAX_CORE_PROGRAM_HEADERS) {
    throw new KexecError("usage", `the ELF dump would need ${phnum} program headers (one PT_LOAD per run of dumped pages), more than the ${MAX_CORE_PROGRAM_HEADERS} kexec-ts reads back`,
      { field: "e_phnum", expected: `<= ${MAX_CORE_PROGRAM_HEADERS}`, actual: String(phnum) },
      "save it in the kdump-compressed format (vmcore save's default --format kdump, or makedumpfile without -E), whose size does not grow with the number of runs");
  }
  return ELF64_EHDR.size + phnum * ELF64_PHDR.size + (needsExtendedNumbering(phnum) ? ELF64_SHDR.size : 0);
}

/** The headers plus the note area; PT_LOAD offsets must already be final. */
export function encodeElfCoreHeader(machine: "x86_64" | "i386", loads: readonly OutputLoad[], notes: Uint8Array): Uint8Array {
  const phnum = 1 + loads.length;
  const noteOffset = elfHeaderSize(loads.length);
  const out = new Uint8Array(noteOffset + notes.length);
  const tableEnd = ELF64_EHDR.size + phnum * ELF64_PHDR.size;
  const extended = needsExtendedNumbering(phnum);
  // ELF64 even for i386 dumps, as the kernel's own /proc/vmcore does on 64-bit; i386 readers accept ELF64 cores.
  writeStruct(ELF64_EHDR, out, 0, {
    e_ident: elfIdent(64), e_type: ET_CORE, e_machine: machine === "x86_64" ? EM_X86_64 : EM_386, e_version: EV_CURRENT,
    e_phoff: BigInt(ELF64_EHDR.size), e_ehsize: ELF64_EHDR.size, e_phentsize: ELF64_PHDR.size, e_phnum: extended ? PN_XNUM : phnum,
    ...(extended ? { e_shoff: BigInt(tableEnd), e_shentsize: ELF64_SHDR.size, e_shnum: 1, e_shstrndx: SHN_UNDEF } : {}),
  });
  if (extended) {
    // sh_size and sh_link as the kernel (fill_extnum_info) and makedumpfile -E fill them: e_shnum (1) and
    // e_shstrndx (SHN_UNDEF). The gABI wants sh_size 0 while e_shnum is not 0; readers look at it only when
    // e_shnum is 0, and makedumpfile's bytes are what the drop-in matches.
    writeStruct(ELF64_SHDR, out, tableEnd, { sh_type: SHT_NULL, sh_size: 1n, sh_link: SHN_UNDEF, sh_info: phnum });
  }
  let at = ELF64_EHDR.size;
  writeStruct(ELF64_PHDR, out, at, { p_type: PT_NOTE, p_offset: BigInt(noteOffset), p_filesz: BigInt(notes.length), p_memsz: BigInt(notes.length) });
  for (const l of loads) {
    at += ELF64_PHDR.size;
    // RWE, as the kernel writes them.
    writeStruct(ELF64_PHDR, out, at, { p_type: PT_LOAD, p_flags: PF_R | PF_W | PF_X, ...l });
  }
  out.set(notes, noteOffset);
  return out;
}

/** Note type of kexec-ts's "this dump is incomplete" note ("INC"); its desc says what is missing. */
export const NT_KEXEC_TS_INCOMPLETE = 0x494e43;
/** The same note while the dump is complete (reserved space, rewritten in place on a fault). */
export const NT_KEXEC_TS_COMPLETE = 0x4f4b;
export const KEXEC_TS_NOTE_NAME = "KEXEC-TS";
export const KEXEC_TS_NOTE_DESC = 128;
