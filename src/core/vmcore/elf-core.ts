/**
 * An ELF vmcore (/proc/vmcore, or makedumpfile -E): PT_LOAD segments map
 * physical memory (p_paddr) to file offsets, and p_vaddr to where the crashed
 * kernel saw them; PT_NOTE holds NT_PRSTATUS per CPU and VMCOREINFO
 * (include/uapi/linux/elf.h, kernel/crash_core.c). A segment whose p_filesz is
 * below p_memsz has its tail excluded (makedumpfile's ELF output).
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { ELF32_EHDR, ELF64_EHDR, ELF64_PHDR, ET_CORE, PN_XNUM, PT_LOAD, PT_NOTE, elfHeaderLayout, sectionHeaderLayout, looksLikeElf, parseElf, parseNotes, programHeaderCount, readElfClass, type ElfHeader, type ElfNote } from "../image/elf.js";
import { offsetOf, readStruct } from "../bytes/layout.js";
import { latin1, concatBytes } from "../bytes/reader.js";
import type { PhysRange, PhysicalMemory, RandomAccess } from "./memory.js";
import { parseVmcoreInfo, type VmcoreInfo } from "./vmcoreinfo.js";

export const NT_PRSTATUS = 1;

export interface LoadSegment {
  index: number;
  p_offset: bigint;
  p_vaddr: bigint;
  p_paddr: bigint;
  p_filesz: bigint;
  p_memsz: bigint;
}

export interface ElfCore {
  format: "elf";
  header: ElfHeader;
  machine: "x86_64" | "i386";
  loads: LoadSegment[];
  notes: ElfNote[];
  /** The raw PT_NOTE bytes, all segments concatenated (the kdump writer stores them as they are). */
  noteBytes: Uint8Array;
  cpus: number;
  vmcoreinfo: VmcoreInfo | undefined;
  /** Where each PT_LOAD's data starts and how far the headers run: the first data offset. */
  headerEnd: bigint;
  /** Why the file is shorter than its PT_LOADs say (a copy cut off), or undefined. */
  cutShort: string | undefined;
}

export function looksLikeElfCore(head: Uint8Array): boolean {
  return looksLikeElf(head) && head.length >= 18 && readStruct(ELF32_EHDR, head, 0, { limit: 18 }).e_type === ET_CORE;
}

/** Where a core file's program headers can start: the kernel and makedumpfile write them at 64 (52). */
const MAX_TABLE_OFFSET = 16n << 20n;
/**
 * Program headers of a core: 2^24 (a table of 896 MiB) is a PT_LOAD per 257 pages (one dumped,
 * 256 excluded: makedumpfile's PFN_EXCLUDED) of 16 TiB. Under PN_XNUM the count is sh_info, 32
 * bits: a damaged one must not make the reader allocate GiBs. The ELF writer refuses beyond it.
 */
export const MAX_CORE_PROGRAM_HEADERS = 2 ** 24;
/** All notes of a dump: one per CPU (~0.4 KiB each, 8192 CPUs at most) and VMCOREINFO. */
const MAX_NOTES = 16n << 20n;

/** A core's program header table, from its ELF header (and section header 0 under PN_XNUM). */
export interface CoreProgramHeaderTable {
  /** How many entries: e_phnum, or section header 0's sh_info where e_phnum is PN_XNUM. */
  phnum: number;
  /** Where the table ends, e_phoff + phnum * e_phentsize: the file from 0 to here is all of the ELF header and the table. */
  tableEnd: number;
  /** Whether the count came from section header 0 (e_phnum is PN_XNUM). */
  extended: boolean;
}

/**
 * Where a core's program header table lies, from the few bytes that say so (the ELF header,
 * section header 0 under PN_XNUM), before the table is read: a reader that reads only part of
 * the headers (kdump list) bounds what it reads by it. Throws for a header that no reader takes.
 */
export function readCoreProgramHeaderTable(file: RandomAccess, what = "vmcore"): CoreProgramHeaderTable {
  const ident = file.read(0n, Number(file.size < BigInt(ELF64_EHDR.size) ? file.size : BigInt(ELF64_EHDR.size)));
  const elfClass = readElfClass(ident, what);
  const h = readStruct(elfHeaderLayout(elfClass), ident, 0, { what });
  // The header is read whole from offset 0, so a damaged e_phoff must not make that GiBs.
  if (h.e_phoff > MAX_TABLE_OFFSET) {
    throw new KexecError("parse", `${what}: e_phoff ${hex(h.e_phoff)} puts the program headers beyond any core header (the kernel and makedumpfile put them right after the ELF header)`,
      { field: "e_phoff", offset: offsetOf(ELF64_EHDR, "e_phoff"), expected: `<= ${hex(MAX_TABLE_OFFSET)}`, actual: hex(h.e_phoff) }, "the dump's ELF header is corrupt");
  }
  // More than 65,534 PT_LOADs (a large machine at -d 31) put the count in section header 0 (PN_XNUM).
  const phnum = programHeaderCount({ ...h, elfClass }, file.size, (offset, length) => file.read(offset, length), what);
  // Bytes, not entries: a damaged e_phentsize (up to 65535) multiplies the table as much.
  const tableBytes = phnum * h.e_phentsize;
  if (tableBytes > MAX_CORE_PROGRAM_HEADERS * ELF64_PHDR.size) {
    const field = h.e_phnum === PN_XNUM ? "sh_info" : "e_phnum";
    throw new KexecError("parse", `${what}: ${phnum} program headers of ${h.e_phentsize} bytes${h.e_phnum === PN_XNUM ? " (e_phnum is PN_XNUM; the count is section header 0's sh_info)" : ""} make a table of ${tableBytes} bytes, more than kexec-ts reads (${MAX_CORE_PROGRAM_HEADERS} of ${ELF64_PHDR.size})`,
      { field, offset: field === "sh_info" ? h.e_shoff + BigInt(offsetOf(sectionHeaderLayout(elfClass), "sh_info")) : offsetOf(elfHeaderLayout(elfClass), "e_phnum"), expected: `<= ${MAX_CORE_PROGRAM_HEADERS * ELF64_PHDR.size} bytes`, actual: `${tableBytes} bytes` },
      "the dump's header is corrupt, or its writer split memory into more runs than any machine has");
  }
  const tableEnd = Number(h.e_phoff) + phnum * h.e_phentsize;
  if (BigInt(tableEnd) > file.size) {
    throw new KexecError("parse", `${what}: the program header table ends at ${hex(tableEnd)}, past the end of the file (${hex(file.size)})`,
      { field: "e_phoff", expected: `<= ${hex(file.size)}`, actual: hex(tableEnd) }, "the vmcore is truncated");
  }
  return { phnum, tableEnd, extended: h.e_phnum === PN_XNUM };
}

export function readElfCore(file: RandomAccess, what = "vmcore"): ElfCore {
  const { phnum, tableEnd } = readCoreProgramHeaderTable(file, what);
  const headBytes = file.read(0n, tableEnd);
  const elf = parseElf(headBytes, what, phnum);
  if (elf.header.e_type !== ET_CORE) {
    throw new KexecError("parse", `${what}: e_type is ${elf.header.e_type}, expected ${ET_CORE} (ET_CORE)`, { field: "e_type", offset: offsetOf(ELF64_EHDR, "e_type"), expected: "4", actual: String(elf.header.e_type) },
      "this is an ELF file but not a core dump");
  }
  const machine = elf.machineName === "x86_64" || elf.machineName === "i386" ? elf.machineName : undefined;
  if (machine === undefined) {
    throw new KexecError("parse", `${what}: e_machine is ${elf.header.e_machine}, expected 62 (x86_64) or 3 (i386)`, { field: "e_machine", offset: offsetOf(ELF64_EHDR, "e_machine"), expected: "62 or 3", actual: String(elf.header.e_machine) }, "kexec-ts reads x86 (x86_64 and i386) dumps only");
  }
  const loads: LoadSegment[] = [];
  const notes: ElfNote[] = [];
  const noteParts: Uint8Array[] = [];
  let headerEnd = BigInt(tableEnd);
  let noteTotal = 0n;
  for (const ph of elf.programHeaders) {
    if (ph.p_type === PT_LOAD) {
      loads.push({ index: ph.index, p_offset: ph.p_offset, p_vaddr: ph.p_vaddr, p_paddr: ph.p_paddr, p_filesz: ph.p_filesz, p_memsz: ph.p_memsz });
      if (ph.p_filesz > 0n && (headerEnd === BigInt(tableEnd) || ph.p_offset < headerEnd)) headerEnd = ph.p_offset;
    } else if (ph.p_type === PT_NOTE) {
      // Each PT_NOTE and all of them together: 65535 program headers of 16 MiB each would be a TiB to read.
      noteTotal += ph.p_filesz;
      if (ph.p_filesz > MAX_NOTES || noteTotal > MAX_NOTES) {
        throw new KexecError("parse", `${what}: PT_NOTE ${ph.index} claims ${ph.p_filesz} bytes${noteTotal > ph.p_filesz ? ` (${noteTotal} with the PT_NOTEs before it)` : ""}, more than any kernel writes`, { field: `program header ${ph.index} p_filesz`, expected: `<= ${MAX_NOTES} in all`, actual: String(noteTotal) }, "the dump is corrupt: no kernel writes notes that large");
      }
      const area = file.read(ph.p_offset, Number(ph.p_filesz));
      noteParts.push(area);
      notes.push(...parseNotes(area, Number(ph.p_offset), `${what} PT_NOTE ${ph.index}`));
    }
  }
  for (const l of loads) {
    // Physical addresses have 64 bits: an end past them (vmcore info printed a 16 EiB range).
    if (l.p_paddr + l.p_memsz > 1n << 64n) {
      throw new KexecError("parse", `${what}: PT_LOAD ${l.index} at p_paddr ${hex(l.p_paddr)} with p_memsz ${hex(l.p_memsz)} ends past 64 bits`, { field: `program header ${l.index} p_memsz`, expected: `<= ${hex((1n << 64n) - l.p_paddr)}`, actual: hex(l.p_memsz) }, "the dump is corrupt");
    }
    if (l.p_filesz > l.p_memsz) {
      throw new KexecError("parse", `${what}: PT_LOAD ${l.index} has p_filesz ${hex(l.p_filesz)} above p_memsz ${hex(l.p_memsz)}`, { field: `program header ${l.index} p_filesz`, expected: `<= ${hex(l.p_memsz)}`, actual: hex(l.p_filesz) }, "the dump is corrupt");
    }
  }
  const noteBytes = concatBytes(noteParts);
  const infoNote = notes.find((n) => n.name === "VMCOREINFO");
  // The segment whose data reaches furthest must end inside the file: a copy cut off in
  // transfer has no mark of its own.
  const furthest = loads.reduce<LoadSegment | undefined>((f, l) => (f === undefined || l.p_offset + l.p_filesz > f.p_offset + f.p_filesz ? l : f), undefined);
  const cutShort = furthest && furthest.p_offset + furthest.p_filesz > file.size
    ? `the file ends at ${hex(file.size)}, but PT_LOAD ${furthest.index}'s data runs to ${hex(furthest.p_offset + furthest.p_filesz)}` : undefined;
  return {
    format: "elf", header: elf.header, machine, loads, notes, noteBytes,
    cpus: notes.filter((n) => n.name === "CORE" && n.type === NT_PRSTATUS).length,
    vmcoreinfo: infoNote ? parseVmcoreInfo(latin1(infoNote.desc).replace(/\0+$/, "")) : undefined,
    headerEnd, cutShort,
  };
}


/**
 * Physical memory of an ELF core. The kernel's elfcorehdr has one PT_LOAD per
 * System RAM range plus one for the kernel text, which overlaps a RAM range: the
 * RAM ranges are the memory, the text segment only an alias for translation.
 */
export function elfCoreMemory(core: ElfCore, file: RandomAccess, pageSize: number): PhysicalMemory & { segments: LoadSegment[] } {
  const ps = BigInt(pageSize);
  const segments = dedupeLoads(core.loads);
  const ranges: PhysRange[] = segments.map((s) => ({ start: s.p_paddr, end: s.p_paddr + s.p_memsz }));
  let last = 0;
  // The file parts of the segments in plain numbers, for the per-run lookup (files < 2^53 bytes).
  const fileParts = segments.filter((s) => s.p_filesz > 0n).map((s) => ({ paddr: Number(s.p_paddr), fileEnd: Number(s.p_paddr + s.p_filesz), offset: Number(s.p_offset) }));
  const findPart = spanFinder(fileParts.map((s) => s.paddr), fileParts.map((s) => s.fileEnd));
  const findSegment = spanFinder(segments.map((s) => s.p_paddr), segments.map((s) => s.p_paddr + s.p_memsz));
  // Searched on every call, without remembering the last part found: the search then runs from
  // the first call, and TurboFan, which inlines this into the dump writer's readBatch, has its
  // type feedback. With a part remembered, only the few runs that enter another part searched,
  // and the first of them threw readBatch's optimised code away.
  const fileRun = (pfn: number, max: number): { offset: number; pages: number } | undefined => {
    const paddr = pfn * pageSize;
    const i = findPart(paddr, paddr + pageSize);
    if (i < 0) return undefined;
    const part = fileParts[i]!;
    return { offset: part.offset + (paddr - part.paddr), pages: Math.min(max, Math.floor((part.fileEnd - paddr) / pageSize)) };
  };
  return {
    pageSize, ranges, segments, fileRun,
    readRun(pfn: bigint, count: number): Uint8Array | undefined {
      const run = fileRun(Number(pfn), count);
      return run && run.pages === count ? file.read(BigInt(run.offset), count * pageSize) : undefined;
    },
    readRunInto(pfn: bigint, count: number, dst: Uint8Array, at: number): boolean {
      const run = fileRun(Number(pfn), count);
      if (!run || run.pages < count) return false;
      if (file.readInto) file.readInto(BigInt(run.offset), dst, at, count * pageSize);
      else dst.set(file.read(BigInt(run.offset), count * pageSize), at);
      return true;
    },
    ...(file.view === undefined ? {} : {
      view(paddr: bigint, length: number) {
        const pfn = Number(paddr / ps);
        const within = Number(paddr % ps);
        const pages = Math.ceil((within + length) / pageSize);
        const run = fileRun(pfn, pages);
        if (!run || run.pages < pages) return undefined;
        const seen = file.view!(run.offset + within, length);
        return seen !== undefined && seen.length === length ? seen : undefined;
      },
    }),
    readPage(pfn: bigint): Uint8Array | undefined {
      const paddr = pfn * ps;
      let seg = segments[last];
      if (!seg || paddr < seg.p_paddr || paddr >= seg.p_paddr + seg.p_memsz) {
        const i = findSegment(paddr, paddr + 1n);
        if (i < 0) return undefined;
        last = i;
        seg = segments[i]!;
      }
      const within = paddr - seg.p_paddr;
      // Past p_filesz the segment reads as zeros (ELF semantics, and what makedumpfile and crash
      // return): makedumpfile -E leaves excluded pages there, zero pages among them.
      if (within + ps > seg.p_filesz) {
        const out = new Uint8Array(pageSize);
        if (within < seg.p_filesz) out.set(file.read(seg.p_offset + within, Number(seg.p_filesz - within)));
        return out;
      }
      return file.read(seg.p_offset + within, pageSize);
    },
  };
}

/** PT_LOADs without the ones wholly inside another (the kernel text alias), sorted by address. */
export function dedupeLoads(loads: readonly LoadSegment[]): LoadSegment[] {
  const sorted = [...loads].sort((a, b) => (a.p_paddr < b.p_paddr ? -1 : a.p_paddr > b.p_paddr ? 1 : b.p_memsz > a.p_memsz ? 1 : -1));
  const out: LoadSegment[] = [];
  // Every one kept so far starts at or below this one: it is inside one of them when the furthest
  // end reaches its end. (Tested against each kept one, 70,000 PT_LOADs took 25 s.)
  let reach = 0n;
  for (const s of sorted) {
    const end = s.p_paddr + s.p_memsz;
    if (out.length > 0 && reach >= end) continue;
    out.push(s);
    if (end > reach) reach = end;
  }
  return out;
}

/**
 * Over spans [start[i], end[i]) sorted by start: the index of the first that holds [from, to), or
 * -1. A binary search for the last span starting at or below `from`, then back while a span before
 * it still reaches `to`. A search of every span, for each page not in the last one found, took
 * 0.1 ms a page over 70,000 PT_LOADs.
 */
export function spanFinder<T extends number | bigint>(start: readonly T[], end: readonly T[]): (from: T, to: T) => number {
  // reach[i]: the furthest end of spans 0..i.
  const reach: T[] = [];
  end.forEach((e, i) => reach.push(i > 0 && reach[i - 1]! > e ? reach[i - 1]! : e));
  return (from, to) => {
    let lo = 0;
    let hi = start.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (start[mid]! <= from) lo = mid + 1;
      else hi = mid;
    }
    let found = -1;
    for (let i = lo - 1; i >= 0 && reach[i]! >= to; i--) if (end[i]! >= to) found = i;
    return found;
  };
}
