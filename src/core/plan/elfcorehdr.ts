/**
 * The ELF core header a capture kernel reads to build /proc/vmcore (passed
 * as elfcorehdr=). It is an ET_CORE ELF header plus program headers only:
 * PT_NOTEs point at the crashed kernel's per-CPU crash_notes and its
 * vmcoreinfo note, PT_LOADs at its memory. p_offset holds the physical
 * address — the capture kernel reads the old memory there and rewrites the
 * offsets for /proc/vmcore (fs/proc/vmcore.c). ELF64 for an x86_64 running
 * kernel, ELF32 for i386 (as kexec-tools does by default there).
 */
import { fieldOf, offsetOf, writeStruct } from "../bytes/layout.js";
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { EM_386, EM_X86_64, ET_CORE, EV_CURRENT, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, elfHeaderLayout, elfIdent, programHeaderLayout } from "../image/elf.js";

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
  return elfHeaderLayout(elfClass).size + programHeaderLayout(elfClass).size * programHeaders;
}

/**
 * What buildElfCoreHeader refuses, found without building it: too many program headers, or (ELF32)
 * a value past 32 bits, named as the header would have it. Placing the header needs only its size,
 * and `check` places a crash load without ever filling it; the bytes are built once, for the plan.
 */
export function checkElfCoreHeader(input: ElfCoreHeaderInput): void {
  const phnum = input.notes.length + input.loads.length;
  // No extended numbering (PN_XNUM) here: the capture kernel's /proc/vmcore reads e_phnum as the
  // count itself (fs/proc/vmcore.c, parse_crash_elf64_headers/elf32), and the crashed kernel's own
  // header (crash_prepare_elf64_headers) has no section header either.
  if (phnum > 0xffff) throw new KexecError("plan", `${phnum} program headers do not fit an ELF header (at most 65535)`, { field: "e_phnum", actual: String(phnum) }, "the machine has more memory ranges than one core header can list; please report it with `kexec-ts snapshot DIR`");
  // ELF64 holds every 64-bit value; ELF32 is asked with a message that says why.
  if (input.elfClass === 64) return;
  const fits = (field: string, v: bigint) => {
    if (v > 0xffffffffn) throw new KexecError("plan", `${field} ${hex(v)} does not fit an ELF32 core header`, { field, expected: "<= 0xffffffff", actual: hex(v) }, "RAM above 4 GiB needs ELF64 core headers");
  };
  for (const n of input.notes) {
    fits("p_offset", n.address);
    fits("p_filesz", n.size);
  }
  for (const l of input.loads) {
    fits("p_offset", l.paddr);
    if (l.vaddr !== undefined) fits("p_vaddr", l.vaddr);
    fits("p_filesz", l.size);
  }
}

export function buildElfCoreHeader(input: ElfCoreHeaderInput): Uint8Array {
  checkElfCoreHeader(input);
  const phnum = input.notes.length + input.loads.length;
  const E = elfHeaderLayout(input.elfClass);
  const P = programHeaderLayout(input.elfClass);
  const out = new Uint8Array(elfCoreHeaderSize(input.elfClass, phnum));
  writeStruct(E, out, 0, {
    e_ident: elfIdent(input.elfClass), e_type: ET_CORE, e_machine: input.elfClass === 64 ? EM_X86_64 : EM_386, e_version: EV_CURRENT,
    e_phoff: BigInt(E.size), e_ehsize: E.size, e_phentsize: P.size, e_phnum: phnum,
  });
  // A load without a kernel virtual address (i386 highmem) gets all ones.
  const noVaddr = input.elfClass === 64 ? (1n << 64n) - 1n : 0xffffffffn;
  // Field by field at the layout's offsets: a large machine has thousands of program headers,
  // built in commands that run without V8's optimising compiler (bin/kexec-ts.cjs), where a
  // generic writer's per-field dispatch and checks took 5 ms for the 64 TiB model's 5,124 and
  // these writes take 2. checkElfCoreHeader has checked the ELF32 values; p_align stays 0, as
  // the buffer is.
  const little = P.endian === "little";
  const [pType, pFlags, pOffset, pVaddr, pPaddr, pFilesz, pMemsz] = (["p_type", "p_flags", "p_offset", "p_vaddr", "p_paddr", "p_filesz", "p_memsz"] as const).map((name) => offsetOf(P, name));
  const wide = fieldOf(P, "p_offset").size === 8;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let at = E.size;
  const phdr = (p_type: number, p_flags: number, address: bigint, p_vaddr: bigint, size: bigint) => {
    dv.setUint32(at + pType!, p_type, little);
    dv.setUint32(at + pFlags!, p_flags, little);
    // p_offset holds the physical address: the capture kernel reads the old memory there.
    if (wide) {
      dv.setBigUint64(at + pOffset!, address, little);
      dv.setBigUint64(at + pVaddr!, p_vaddr, little);
      dv.setBigUint64(at + pPaddr!, address, little);
      dv.setBigUint64(at + pFilesz!, size, little);
      dv.setBigUint64(at + pMemsz!, size, little);
    } else {
      dv.setUint32(at + pOffset!, Number(address), little);
      dv.setUint32(at + pVaddr!, Number(p_vaddr), little);
      dv.setUint32(at + pPaddr!, Number(address), little);
      dv.setUint32(at + pFilesz!, Number(size), little);
      dv.setUint32(at + pMemsz!, Number(size), little);
    }
    at += P.size;
  };
  for (const n of input.notes) phdr(PT_NOTE, 0, n.address, 0n, n.size);
  for (const l of input.loads) phdr(PT_LOAD, PF_R | PF_W | PF_X, l.paddr, l.vaddr ?? noVaddr, l.size);
  return out;
}
