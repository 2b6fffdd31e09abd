/**
 * ELF core output (what makedumpfile -E writes): ELF64 header, program headers
 * (PT_NOTE first, then PT_LOADs), the notes, then page data. Excluded pages at
 * the end of a PT_LOAD are absent from the file: p_filesz < p_memsz.
 * Layouts from include/uapi/linux/elf.h.
 */
import { writeStruct } from "../bytes/layout.js";
import { ELF64_EHDR, ELF64_PHDR, EM_386, EM_X86_64, ET_CORE, EV_CURRENT, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, elfIdent } from "../image/elf.js";

export { encodeNote } from "../image/elf.js";

export interface OutputLoad {
  p_vaddr: bigint;
  p_paddr: bigint;
  p_offset: bigint;
  p_filesz: bigint;
  p_memsz: bigint;
}

export function elfHeaderSize(loads: number): number {
  return ELF64_EHDR.size + (1 + loads) * ELF64_PHDR.size;
}

/** The headers plus the note area; PT_LOAD offsets must already be final. */
export function encodeElfCoreHeader(machine: "x86_64" | "i386", loads: readonly OutputLoad[], notes: Uint8Array): Uint8Array {
  const noteOffset = elfHeaderSize(loads.length);
  const out = new Uint8Array(noteOffset + notes.length);
  // ELF64 even for i386 dumps, as the kernel's own /proc/vmcore does on 64-bit; i386 readers accept ELF64 cores.
  writeStruct(ELF64_EHDR, out, 0, {
    e_ident: elfIdent(64), e_type: ET_CORE, e_machine: machine === "x86_64" ? EM_X86_64 : EM_386, e_version: EV_CURRENT,
    e_phoff: BigInt(ELF64_EHDR.size), e_ehsize: ELF64_EHDR.size, e_phentsize: ELF64_PHDR.size, e_phnum: 1 + loads.length,
  });
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
