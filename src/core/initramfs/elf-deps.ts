/**
 * Just enough ELF to copy a dynamically linked program into an initramfs: its machine, its
 * program interpreter (PT_INTERP) and the libraries it names (DT_NEEDED); and a kernel
 * module's .modinfo. Reading these from the file, instead of running ldd, works for the
 * 32-bit Node too, whose loader is not installed on the host. Pure: bytes in; the walk over
 * a file tree is src/node/initramfs/libraries.ts. Layouts from include/uapi/linux/elf.h.
 */
import { ByteReader } from "../bytes/reader.js";
import { KexecError } from "../errors.js";

const EM_386 = 3;
const EM_X86_64 = 62;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

export type UserArch = "x86_64" | "i386";

export interface DynamicInfo {
  arch: UserArch;
  /** "/lib64/ld-linux-x86-64.so.2"; undefined for a static program. */
  interpreter: string | undefined;
  needed: string[];
}

interface Segment {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

export function readDynamicInfo(bytes: Uint8Array, what = "ELF file"): DynamicInfo {
  const r = new ByteReader(bytes, what);
  if (r.u32be(0, "e_ident[EI_MAG]") !== 0x7f454c46) {
    throw new KexecError("parse", `${what}: not an ELF file`, { field: "e_ident", offset: 0, expected: "\\x7fELF" }, "give a program or a shared library");
  }
  const elfClass = r.u8(4, "e_ident[EI_CLASS]");
  if (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) {
    throw new KexecError("parse", `${what}: EI_CLASS ${elfClass} is neither ELFCLASS32 nor ELFCLASS64`, { field: "e_ident[EI_CLASS]", offset: 4 }, "the file is corrupt");
  }
  const is64 = elfClass === ELFCLASS64;
  const machine = r.u16(18, "e_machine");
  const arch: UserArch | undefined = machine === EM_X86_64 ? "x86_64" : machine === EM_386 ? "i386" : undefined;
  if (arch === undefined) {
    throw new KexecError("parse", `${what}: e_machine ${machine} is not x86 (EM_386 3 or EM_X86_64 62)`, { field: "e_machine", offset: 18, actual: String(machine) }, "give the x86 build of the program");
  }
  const phoff = is64 ? Number(r.u64(32, "e_phoff")) : r.u32(28, "e_phoff");
  const phentsize = r.u16(is64 ? 54 : 42, "e_phentsize");
  const phnum = r.u16(is64 ? 56 : 44, "e_phnum");
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    segments.push(
      is64
        ? { type: r.u32(at, "p_type"), offset: Number(r.u64(at + 8, "p_offset")), vaddr: r.u64(at + 16, "p_vaddr"), filesz: Number(r.u64(at + 32, "p_filesz")) }
        : { type: r.u32(at, "p_type"), offset: r.u32(at + 4, "p_offset"), vaddr: BigInt(r.u32(at + 8, "p_vaddr")), filesz: r.u32(at + 16, "p_filesz") },
    );
  }
  const interpSegment = segments.find((s) => s.type === PT_INTERP);
  const interpreter = interpSegment === undefined ? undefined : r.cstring(interpSegment.offset, interpSegment.filesz, "PT_INTERP");

  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  const needed: string[] = [];
  if (dynamic !== undefined) {
    const entrySize = is64 ? 16 : 8;
    const neededOffsets: bigint[] = [];
    let strtab: bigint | undefined;
    for (let at = dynamic.offset; at + entrySize <= dynamic.offset + dynamic.filesz; at += entrySize) {
      const tag = is64 ? r.u64(at, "d_tag") : BigInt(r.u32(at, "d_tag"));
      const value = is64 ? r.u64(at + 8, "d_val") : BigInt(r.u32(at + 4, "d_val"));
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) neededOffsets.push(value);
      if (tag === DT_STRTAB) strtab = value;
    }
    if (neededOffsets.length > 0) {
      if (strtab === undefined) throw new KexecError("parse", `${what}: DT_NEEDED entries but no DT_STRTAB`, { field: "DT_STRTAB" }, "the file is corrupt");
      // DT_STRTAB is a virtual address; the PT_LOAD that contains it says where it is in the file.
      const load = segments.find((s) => s.type === PT_LOAD && strtab! >= s.vaddr && strtab! < s.vaddr + BigInt(s.filesz));
      if (load === undefined) throw new KexecError("parse", `${what}: DT_STRTAB 0x${strtab.toString(16)} is in no PT_LOAD segment`, { field: "DT_STRTAB" }, "the file is corrupt");
      const strtabOffset = load.offset + Number(strtab - load.vaddr);
      for (const o of neededOffsets) {
        const name = r.cstring(strtabOffset + Number(o), 4096, "DT_NEEDED");
        if (name === undefined) throw new KexecError("parse", `${what}: DT_NEEDED string at 0x${o.toString(16)} is not terminated`, { field: "DT_NEEDED" }, "the file is corrupt");
        needed.push(name);
      }
    }
  }
  return { arch, interpreter, needed };
}

/**
 * The .modinfo section of a kernel module: NUL-separated "key=value" strings (depends=,
 * name=, vermagic=...). Debian's kernel packages ship no modules.dep (depmod writes it at
 * install time), so the lab reads dependencies from here.
 */
export function readModinfo(bytes: Uint8Array, what = "kernel module"): Map<string, string[]> {
  const r = new ByteReader(bytes, what);
  if (r.u32be(0, "e_ident[EI_MAG]") !== 0x7f454c46) {
    throw new KexecError("parse", `${what}: not an ELF file`, { field: "e_ident", offset: 0, expected: "\\x7fELF" }, "give a program or a shared library");
  }
  const is64 = r.u8(4, "e_ident[EI_CLASS]") === ELFCLASS64;
  const shoff = is64 ? Number(r.u64(40, "e_shoff")) : r.u32(32, "e_shoff");
  const shentsize = r.u16(is64 ? 58 : 46, "e_shentsize");
  const shnum = r.u16(is64 ? 60 : 48, "e_shnum");
  const shstrndx = r.u16(is64 ? 62 : 50, "e_shstrndx");
  const section = (i: number): { name: number; offset: number; size: number } => {
    const at = shoff + i * shentsize;
    return is64
      ? { name: r.u32(at, "sh_name"), offset: Number(r.u64(at + 24, "sh_offset")), size: Number(r.u64(at + 32, "sh_size")) }
      : { name: r.u32(at, "sh_name"), offset: r.u32(at + 16, "sh_offset"), size: r.u32(at + 20, "sh_size") };
  };
  const names = section(shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (r.cstring(names.offset + s.name, 64, "sh_name") !== ".modinfo") continue;
    const text = new TextDecoder().decode(r.slice(s.offset, s.size, ".modinfo"));
    for (const entry of text.split("\0")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      out.set(key, [...(out.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }
  return out;
}
