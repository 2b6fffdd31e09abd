/**
 * The ELF core header a capture kernel reads to build /proc/vmcore (passed
 * as elfcorehdr=). It is an ET_CORE ELF header plus program headers only:
 * PT_NOTEs point at the crashed kernel's per-CPU crash_notes and its
 * vmcoreinfo note, PT_LOADs at its memory. p_offset holds the physical
 * address — the capture kernel reads the old memory there and rewrites the
 * offsets for /proc/vmcore (fs/proc/vmcore.c). ELF64 for an x86_64 running
 * kernel, ELF32 for i386 (as kexec-tools does by default there).
 */
import { ByteWriter } from "../bytes/writer.js";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { EM_386, EM_X86_64, ET_CORE, PT_LOAD, PT_NOTE } from "../image/elf.js";

const PF_X = 1;
const PF_W = 2;
const PF_R = 4;

export interface CoreNoteArea {
  /** What it is, for messages: "crash_notes of cpu 3", "vmcoreinfo". */
  what: string;
  address: bigint;
  size: bigint;
}

export interface CoreLoad {
  paddr: bigint;
  size: bigint;
  /** Kernel virtual address of paddr, or undefined where there is none (i386 highmem). */
  vaddr: bigint | undefined;
}

export interface ElfCoreHeaderInput {
  elfClass: 32 | 64;
  notes: CoreNoteArea[];
  /** The kernel text mapping first (x86_64), then every RAM range. */
  loads: CoreLoad[];
}

export function elfCoreHeaderSize(elfClass: 32 | 64, programHeaders: number): number {
  return elfClass === 64 ? 64 + 56 * programHeaders : 52 + 32 * programHeaders;
}

export function buildElfCoreHeader(input: ElfCoreHeaderInput): Uint8Array {
  const phnum = input.notes.length + input.loads.length;
  if (phnum > 0xffff) throw new KexecError("plan", `${phnum} program headers do not fit an ELF header (at most 65535)`, { field: "e_phnum", actual: String(phnum) }, "the machine has more memory ranges than one core header can list; please report it with `kexec-ts snapshot DIR`");
  const is64 = input.elfClass === 64;
  const w = new ByteWriter(elfCoreHeaderSize(input.elfClass, phnum));
  // e_ident: magic, class, little-endian, EV_CURRENT, System V ABI.
  w.bytesAt(0, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1, 0]));
  w.u16(16, ET_CORE, "e_type");
  w.u16(18, is64 ? EM_X86_64 : EM_386, "e_machine");
  w.u32(20, 1, "e_version");
  if (is64) {
    w.u64(24, 0n, "e_entry");
    w.u64(32, 64n, "e_phoff");
    w.u64(40, 0n, "e_shoff");
    w.u32(48, 0, "e_flags");
    w.u16(52, 64, "e_ehsize");
    w.u16(54, 56, "e_phentsize");
    w.u16(56, phnum, "e_phnum");
  } else {
    w.u32(24, 0, "e_entry");
    w.u32(28, 52, "e_phoff");
    w.u32(32, 0, "e_shoff");
    w.u32(36, 0, "e_flags");
    w.u16(40, 52, "e_ehsize");
    w.u16(42, 32, "e_phentsize");
    w.u16(44, phnum, "e_phnum");
  }
  let at = is64 ? 64 : 52;
  const phdr = (type: number, flags: number, offset: bigint, vaddr: bigint, paddr: bigint, size: bigint, align: bigint) => {
    if (is64) {
      w.u32(at, type, "p_type");
      w.u32(at + 4, flags, "p_flags");
      w.u64(at + 8, offset, "p_offset");
      w.u64(at + 16, vaddr, "p_vaddr");
      w.u64(at + 24, paddr, "p_paddr");
      w.u64(at + 32, size, "p_filesz");
      w.u64(at + 40, size, "p_memsz");
      w.u64(at + 48, align, "p_align");
      at += 56;
    } else {
      const u32 = (v: bigint, field: string) => {
        if (v > 0xffffffffn) throw new KexecError("plan", `${field} ${hex(v)} does not fit an ELF32 core header`, { field, actual: hex(v) }, "RAM above 4 GiB needs ELF64 core headers");
        return Number(v);
      };
      w.u32(at, type, "p_type");
      w.u32(at + 4, u32(offset, "p_offset"), "p_offset");
      w.u32(at + 8, u32(vaddr, "p_vaddr"), "p_vaddr");
      w.u32(at + 12, u32(paddr, "p_paddr"), "p_paddr");
      w.u32(at + 16, u32(size, "p_filesz"), "p_filesz");
      w.u32(at + 20, u32(size, "p_memsz"), "p_memsz");
      w.u32(at + 24, flags, "p_flags");
      w.u32(at + 28, Number(align), "p_align");
      at += 32;
    }
  };
  for (const n of input.notes) phdr(PT_NOTE, 0, n.address, 0n, n.address, n.size, 0n);
  const noVaddr = is64 ? (1n << 64n) - 1n : 0xffffffffn;
  for (const l of input.loads) phdr(PT_LOAD, PF_R | PF_W | PF_X, l.paddr, l.vaddr ?? noVaddr, l.paddr, l.size, 0n);
  return w.finish();
}
