/** What `inspect` prints: a stable JSON shape and a human view of the same facts. */
import { hex, size, table } from "../format.js";
import { PT_LOAD, PT_NAMES } from "./elf.js";
import type { KernelImage, Vmlinux } from "./index.js";
import { SETUP_HEADER_FIELDS } from "./setup-header.js";

type Json = Record<string, unknown>;

const hexOrNull = (v: bigint | number | undefined): string | null => (v === undefined ? null : hex(v));

function vmlinuxJson(v: Vmlinux): Json {
  return {
    class: `ELF${v.elf.header.elfClass}`,
    machine: v.elf.machineName,
    entry: hex(v.elf.header.e_entry),
    size: hex(v.size),
    banner: v.banner ?? null,
    programHeaders: v.elf.programHeaders.map((p) => ({
      type: PT_NAMES[p.p_type] ?? hex(p.p_type),
      offset: hex(p.p_offset), vaddr: hex(p.p_vaddr), paddr: hex(p.p_paddr),
      filesz: hex(p.p_filesz), memsz: hex(p.p_memsz), flags: p.p_flags, align: hex(p.p_align),
    })),
    notes: v.notes.map((n) => ({ name: n.name, type: n.type, size: n.desc.length })),
  };
}

export function inspectJson(image: KernelImage): Json {
  if (image.kind === "elf") {
    const v = image.vmlinux;
    return {
      format: "elf",
      wrapper: image.wrapper ?? null,
      is64: v.elf.header.elfClass === 64 && v.elf.machineName === "x86_64",
      arch: v.elf.machineName,
      version: v.banner?.replace(/^Linux version (\S+).*$/, "$1") ?? null,
      entry: hex(v.elf.header.e_entry),
      vmlinux: vmlinuxJson(v),
    };
  }
  const b = image.bzImage;
  const fields: Json = {};
  for (const f of SETUP_HEADER_FIELDS) {
    const value = b.raw[f.name];
    if (value !== undefined) fields[f.name] = hex(value);
  }
  return {
    format: "bzImage",
    wrapper: image.wrapper ?? null,
    protocol: hex(b.protocol),
    is64: b.is64,
    version: b.version ?? null,
    xloadflags: b.xloadflagNames,
    loadflags: b.loadflagNames,
    relocatable: b.relocatable,
    kernelAlignment: hexOrNull(b.kernelAlignment),
    minAlignment: b.minAlignment === undefined ? null : hex(1n << BigInt(b.minAlignment)),
    prefAddress: hexOrNull(b.prefAddress),
    initSize: hexOrNull(b.initSize),
    initrdAddrMax: hex(b.initrdAddrMax),
    cmdlineSize: b.cmdlineSize,
    code32Start: hexOrNull(b.code32Start),
    handoverOffset: hexOrNull(b.handoverOffset),
    setupSects: b.setupSects,
    setupSize: hex(b.setupSize),
    kernelFileSize: hex(b.kernelFileSize),
    payload: b.payload
      ? { offset: hex(b.payload.offset), length: hex(b.payload.length), compression: b.payload.compression }
      : null,
    kernelInfo: b.kernelInfo
      ? { offset: hex(b.kernelInfo.offset), size: b.kernelInfo.size, sizeTotal: b.kernelInfo.sizeTotal, setupTypeMax: hexOrNull(b.kernelInfo.setupTypeMax) }
      : null,
    efiStub: b.pe.present,
    signed: b.pe.signed,
    header: fields,
    vmlinux: image.vmlinux ? vmlinuxJson(image.vmlinux) : null,
  };
}

export function renderInspect(image: KernelImage, name: string): string {
  const out: string[] = [];
  if (image.kind === "elf") {
    const v = image.vmlinux;
    out.push(`${name}: ELF${v.elf.header.elfClass} vmlinux for ${v.elf.machineName}${image.wrapper ? ` (${image.wrapper}-compressed file)` : ""}`);
    out.push(table([
      ["version", v.banner ?? "(no Linux version banner found)"],
      ["entry", hex(v.elf.header.e_entry)],
    ]));
    out.push("", renderSegments(v));
    return out.join("\n");
  }
  const b = image.bzImage;
  const proto = `${b.protocol >> 8}.${(b.protocol & 0xff).toString().padStart(2, "0")}`;
  out.push(`${name}: bzImage, boot protocol ${proto}, ${b.is64 ? "64-bit (XLF_KERNEL_64)" : "32-bit entry only"}${image.wrapper ? ` (${image.wrapper}-compressed file)` : ""}`);
  const rows: string[][] = [
    ["version", b.version ?? "(no version string)"],
    ["xloadflags", b.xloadflagNames.length ? `${hex(b.xloadflags)} ${b.xloadflagNames.join(" ")}` : b.protocol >= 0x20c ? "0x0 (none)" : "(protocol < 2.12: no xloadflags)"],
    ["loadflags", `${hex(b.loadflags)} ${b.loadflagNames.join(" ")}`],
    ["relocatable", b.relocatable ? "yes" : "no"],
    ["kernel_alignment", b.kernelAlignment === undefined ? "-" : `${hex(b.kernelAlignment)} (${size(b.kernelAlignment)})`],
    ["pref_address", b.prefAddress === undefined ? "-" : hex(b.prefAddress)],
    ["init_size", b.initSize === undefined ? "-" : `${hex(b.initSize)} (${size(b.initSize)})`],
    ["initrd_addr_max", hex(b.initrdAddrMax)],
    ["cmdline_size", String(b.cmdlineSize)],
    ["setup", `${b.setupSects} sectors + boot sector = ${hex(b.setupSize)} bytes`],
    ["protected-mode kernel", `${hex(b.kernelFileSize)} bytes in the file (${size(b.kernelFileSize)})`],
    ["payload", b.payload ? `${b.payload.compression}, ${size(b.payload.length)} at file offset ${hex(b.payload.offset)}` : "-"],
    ["handover_offset", b.handoverOffset === undefined ? "-" : hex(b.handoverOffset)],
    ["kernel_info", b.kernelInfo ? `at ${hex(b.kernelInfo.offset)}, size ${b.kernelInfo.size}/${b.kernelInfo.sizeTotal}` : "-"],
    ["EFI stub", b.pe.present ? `yes${b.pe.signed ? ", Authenticode-signed" : ", unsigned"}` : "no"],
  ];
  out.push(table(rows.map(([k, v]) => [`  ${k}`, v ?? ""])));
  if (image.vmlinux) out.push("", `vmlinux inside: ELF${image.vmlinux.elf.header.elfClass} ${image.vmlinux.elf.machineName}, ${size(image.vmlinux.size)}`, renderSegments(image.vmlinux));
  return out.join("\n");
}

function renderSegments(v: Vmlinux): string {
  const rows = [["  type", "paddr", "vaddr", "filesz", "memsz"]];
  for (const p of v.elf.programHeaders) {
    if (p.p_type !== PT_LOAD && PT_NAMES[p.p_type] === undefined) continue;
    rows.push([`  ${PT_NAMES[p.p_type] ?? hex(p.p_type)}`, hex(p.p_paddr), hex(p.p_vaddr), hex(p.p_filesz), hex(p.p_memsz)]);
  }
  return table(rows, [false, true, true, true, true]);
}
