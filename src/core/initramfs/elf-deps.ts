/**
 * Just enough ELF to copy a dynamically linked program into an initramfs: its machine, its
 * program interpreter (PT_INTERP) and the libraries it names (DT_NEEDED); and a kernel
 * module's .modinfo. Reading these from the file, instead of running ldd, works for the
 * 32-bit Node too, whose loader is not installed on the host. Pure: bytes in; the walk over
 * a file tree is src/node/initramfs/libraries.ts. Layouts from core/image/elf.ts.
 */
import { offsetOf, readStruct } from "../bytes/layout.js";
import { ByteReader } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { ELF32_DYN, ELF32_SHDR, ELF64_DYN, ELF64_EHDR, ELF64_SHDR, EM_386, EM_X86_64, PT_DYNAMIC, PT_INTERP, PT_LOAD, elfHeaderLayout, parseElf, readElfClass } from "../image/elf.js";
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

export function readDynamicInfo(bytes: Uint8Array, what = "ELF file"): DynamicInfo {
  const elf = parseElf(bytes, what);
  const arch: UserArch | undefined = elf.header.e_machine === EM_X86_64 ? "x86_64" : elf.header.e_machine === EM_386 ? "i386" : undefined;
  if (arch === undefined) {
    throw new KexecError("parse", `${what}: e_machine ${elf.header.e_machine} is not x86 (EM_386 3 or EM_X86_64 62)`, { field: "e_machine", offset: offsetOf(ELF64_EHDR, "e_machine"), actual: String(elf.header.e_machine) }, "give the x86 build of the program");
  }
  const r = new ByteReader(bytes, what);
  const segments = elf.programHeaders;
  const interpSegment = segments.find((s) => s.p_type === PT_INTERP);
  const interpreter = interpSegment === undefined ? undefined : r.cstring(Number(interpSegment.p_offset), Number(interpSegment.p_filesz), "PT_INTERP");

  const dynamic = segments.find((s) => s.p_type === PT_DYNAMIC);
  const needed: string[] = [];
  if (dynamic !== undefined) {
    const D = elf.header.elfClass === 64 ? ELF64_DYN : ELF32_DYN;
    const neededOffsets: bigint[] = [];
    let strtab: bigint | undefined;
    const start = Number(dynamic.p_offset);
    for (let at = start; at + D.size <= start + Number(dynamic.p_filesz); at += D.size) {
      const { d_tag, d_val } = readStruct(D, bytes, at, { what: `${what} PT_DYNAMIC` });
      if (d_tag === DT_NULL) break;
      if (d_tag === DT_NEEDED) neededOffsets.push(d_val);
      if (d_tag === DT_STRTAB) strtab = d_val;
    }
    if (neededOffsets.length > 0) {
      if (strtab === undefined) throw new KexecError("parse", `${what}: DT_NEEDED entries but no DT_STRTAB`, { field: "DT_STRTAB" }, "the file is corrupt");
      // DT_STRTAB is a virtual address; the PT_LOAD that contains it says where it is in the file.
      const load = segments.find((s) => s.p_type === PT_LOAD && strtab! >= s.p_vaddr && strtab! < s.p_vaddr + s.p_filesz);
      if (load === undefined) throw new KexecError("parse", `${what}: DT_STRTAB 0x${strtab.toString(16)} is in no PT_LOAD segment`, { field: "DT_STRTAB" }, "the file is corrupt");
      const strtabOffset = Number(load.p_offset + (strtab - load.p_vaddr));
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
  const elfClass = readElfClass(bytes, what);
  const h = readStruct(elfHeaderLayout(elfClass), bytes, 0, { what });
  const S = elfClass === 64 ? ELF64_SHDR : ELF32_SHDR;
  const section = (i: number) => readStruct(S, bytes, Number(h.e_shoff) + i * h.e_shentsize, { what: `${what} section header ${i}` });
  const r = new ByteReader(bytes, what);
  const names = section(h.e_shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < h.e_shnum; i++) {
    const s = section(i);
    if (r.cstring(Number(names.sh_offset) + s.sh_name, 64, "sh_name") !== ".modinfo") continue;
    const text = new TextDecoder().decode(r.slice(Number(s.sh_offset), Number(s.sh_size), ".modinfo"));
    for (const entry of text.split("\0")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      out.set(key, [...(out.get(key) ?? []), entry.slice(eq + 1)]);
    }
  }
  return out;
}
