/**
 * ELF core output (what makedumpfile -E writes): ELF64 header, program headers
 * (PT_NOTE first, then PT_LOADs), the notes, then page data. Excluded pages at
 * the end of a PT_LOAD are absent from the file: p_filesz < p_memsz.
 * Layouts from include/uapi/linux/elf.h.
 */
import { ByteWriter } from "../bytes/writer.js";
import { EM_386, EM_X86_64, ET_CORE, PT_LOAD, PT_NOTE } from "../image/elf.js";

export interface OutputLoad {
  p_vaddr: bigint;
  p_paddr: bigint;
  p_offset: bigint;
  p_filesz: bigint;
  p_memsz: bigint;
}

const EHDR = 64;
const PHDR = 56;

export function elfHeaderSize(loads: number): number {
  return EHDR + (1 + loads) * PHDR;
}

/** The headers plus the note area; PT_LOAD offsets must already be final. */
export function encodeElfCoreHeader(machine: "x86_64" | "i386", loads: readonly OutputLoad[], notes: Uint8Array): Uint8Array {
  const noteOffset = elfHeaderSize(loads.length);
  const w = new ByteWriter(noteOffset + notes.length);
  // ELF64 even for i386 dumps, as the kernel's own /proc/vmcore does on 64-bit; i386 readers accept ELF64 cores.
  [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1].forEach((b, i) => w.u8(i, b));
  w.u16(16, ET_CORE);
  w.u16(18, machine === "x86_64" ? EM_X86_64 : EM_386);
  w.u32(20, 1);
  w.u64(32, BigInt(EHDR));
  w.u16(52, EHDR);
  w.u16(54, PHDR);
  w.u16(56, 1 + loads.length);
  let at = EHDR;
  w.u32(at, PT_NOTE);
  w.u64(at + 8, BigInt(noteOffset));
  w.u64(at + 32, BigInt(notes.length));
  w.u64(at + 40, BigInt(notes.length));
  for (const l of loads) {
    at += PHDR;
    w.u32(at, PT_LOAD);
    w.u32(at + 4, 7); // RWE, as the kernel writes them
    w.u64(at + 8, l.p_offset);
    w.u64(at + 16, l.p_vaddr);
    w.u64(at + 24, l.p_paddr);
    w.u64(at + 32, l.p_filesz);
    w.u64(at + 40, l.p_memsz);
  }
  w.bytesAt(noteOffset, notes);
  return w.finish();
}

/** A note (Elf64_Nhdr + name + desc, 4-byte aligned) for kexec-ts's own marks. */
export function encodeNote(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nameBytes = name.length + 1;
  const pad = (n: number) => (n + 3) & ~3;
  const w = new ByteWriter(12 + pad(nameBytes) + pad(desc.length));
  w.u32(0, nameBytes);
  w.u32(4, desc.length);
  w.u32(8, type);
  for (let i = 0; i < name.length; i++) w.u8(12 + i, name.charCodeAt(i));
  w.bytesAt(12 + pad(nameBytes), desc);
  return w.finish();
}

/** Note type of kexec-ts's "this dump is incomplete" note ("INC"); its desc says what is missing. */
export const NT_KEXEC_TS_INCOMPLETE = 0x494e43;
/** The same note while the dump is complete (reserved space, rewritten in place on a fault). */
export const NT_KEXEC_TS_COMPLETE = 0x4f4b;
export const KEXEC_TS_NOTE_NAME = "KEXEC-TS";
export const KEXEC_TS_NOTE_DESC = 128;
