/** One view over either input format: memory, notes, VMCOREINFO and how the dump was made. */
import { KexecError } from "../errors.js";
import { describeBytes, hex, size } from "../format.js";
import { offsetOf } from "../bytes/layout.js";
import { latin1 } from "../bytes/reader.js";
import { elfCoreMemory, looksLikeElfCore, readCoreProgramHeaderTable, readElfCore, type ElfCore } from "./elf-core.js";
import { KEXEC_TS_NOTE_NAME, NT_KEXEC_TS_INCOMPLETE } from "./elf-writer.js";
import { aliasFinder, kernelMemory, type AliasLookup, type KernelMemory, type VirtualAlias } from "./kernel-memory.js";
import { DISK_DUMP_HEADER_64, DUMP_DH_COMPRESSED_INCOMPLETE, looksLikeKdump, readDiskDumpHeader, readKdump, type KdumpFile, type KdumpReadOptions } from "./kdump.js";
import type { PhysicalMemory, RandomAccess } from "./memory.js";
import type { VmcoreInfo } from "./vmcoreinfo.js";
import { looksLikeFlat } from "./flat.js";

export interface Vmcore {
  format: "elf" | "kdump";
  machine: "x86_64" | "i386";
  memory: PhysicalMemory;
  vmcoreinfo: VmcoreInfo | undefined;
  noteBytes: Uint8Array;
  cpus: number;
  /** Cut short: marked so by its writer, or (cutShort) shorter than its own headers say. */
  incomplete: boolean;
  /** Why the file is shorter than its headers say (a copy cut off), or undefined. */
  cutShort?: string;
  elf?: ElfCore;
  kdump?: KdumpFile;
  /** The text of kexec-ts's own note in an ELF dump it wrote ("complete; dump level 31"). */
  mark?: string;
}

/** The page size of every x86 kernel (i386 and x86_64); huge pages are made of these. */
const X86_PAGE_SIZE = 4096;

/** How a vmcore is read: for a kdump file, how its pages are decoded (KdumpReadOptions). */
export type VmcoreReadOptions = KdumpReadOptions;

export function openVmcore(file: RandomAccess, what = "vmcore", options: VmcoreReadOptions = {}): Vmcore {
  const head = file.read(0n, Number(file.size < 64n ? file.size : 64n));
  if (looksLikeElfCore(head)) {
    const elf = readElfCore(file, what);
    // Every page and struct page offset follows from it: 0 divided by zero, 3 misplaced every range.
    // Said as written: "abc" had been passed over for 4096, 2^53 + 1 printed as 2^53.
    const written = elf.vmcoreinfo?.pageSizeText;
    if (written !== undefined && elf.vmcoreinfo?.pageSize !== X86_PAGE_SIZE) {
      throw new KexecError("parse", `${what}: VMCOREINFO says PAGESIZE=${written}, but x86 kernels have ${X86_PAGE_SIZE}-byte pages`,
        { field: "VMCOREINFO PAGESIZE", expected: String(X86_PAGE_SIZE), actual: written }, "the dump's VMCOREINFO note is damaged");
    }
    const pageSize = X86_PAGE_SIZE;
    const memory = elfCoreMemory(elf, file, pageSize);
    const mark = kexecTsMark(elf);
    const incomplete = mark?.incomplete === true || elf.cutShort !== undefined;
    return { format: "elf", machine: elf.machine, memory, vmcoreinfo: elf.vmcoreinfo, noteBytes: elf.noteBytes, cpus: elf.cpus, incomplete, ...(elf.cutShort ? { cutShort: elf.cutShort } : {}), elf, mark: mark?.text };
  }
  if (looksLikeKdump(head)) {
    const kdump = readKdump(file, what, options);
    const machine = /^i[3-6]86$/.test(kdump.header.utsname.machine) ? "i386" : "x86_64";
    return { format: "kdump", machine, memory: kdump.memory, vmcoreinfo: kdump.vmcoreinfo, noteBytes: kdump.noteBytes, cpus: kdump.header.nr_cpus, incomplete: kdump.incomplete || kdump.cutShort !== undefined, ...(kdump.cutShort ? { cutShort: kdump.cutShort } : {}), kdump };
  }
  if (looksLikeFlat(head)) {
    throw new KexecError("parse", `${what} is in makedumpfile's flattened format, which is a stream, not a file to read in place`, { field: "signature", offset: 0 },
      "turn it into a dump file first: makedumpfile -R out.kdump < file (kexec-ts makedumpfile -R does the same)");
  }
  if (file.size === 0n) {
    // A save that never wrote (a full disk, a capture that died first) leaves this: say so, not what it is not.
    throw new KexecError("parse", `${what}: the file is empty (0 bytes)`, { offset: 0, expected: "an ELF core or a kdump-compressed file", actual: "0 bytes" },
      "the dump was never written: see the save's own log (capture.log, or the kdump service's journal)");
  }
  throw new KexecError("parse", `${what}: neither an ELF core (7f 45 4c 46, e_type 4) nor a kdump-compressed file ("KDUMP   ") at offset 0`, { offset: 0, actual: describeBytes(head) },
    "give /proc/vmcore or a file written by makedumpfile or kexec-ts vmcore save");
}

/** ELF has no "incomplete" flag of its own; kexec-ts's writer leaves a note that says so (elf-writer.ts). */
function kexecTsMark(elf: ElfCore): { incomplete: boolean; text: string } | undefined {
  const mark = elf.notes.find((n) => n.name === KEXEC_TS_NOTE_NAME);
  return mark === undefined ? undefined : { incomplete: mark.type === NT_KEXEC_TS_INCOMPLETE, text: latin1(mark.desc).replace(/\0+$/, "") };
}

/**
 * The most of an ELF dump's headers (its ELF header and program header table) `kdump list`
 * reads to find kexec-ts's note; the notes after them are bounded as for every reader (16 MiB).
 * 32 MiB is 599,185 program headers: the writer starts a PT_LOAD after no fewer than 256
 * excluded pages (ELF_MIN_GAP), so that many cover 587 GiB at its most fragmented, and far more
 * memory as real machines fragment. The reader's own bound (MAX_CORE_PROGRAM_HEADERS, 896 MiB
 * of table) is for one dump read on purpose: each program header read costs ~0.25 KiB of heap
 * and ~3 µs, GiBs and most of a minute at that bound, for every dump a list shows. Past this
 * one the list says it did not read them, not that the dump is damaged. Never the page data: a
 * list of dumps of GiBs each must stay quick.
 */
export const DUMP_LIST_HEADER_BYTES = 32 << 20;

/** What a dump's own header says of its completeness. */
export interface DumpHeaderMark {
  format: "kdump" | "elf" | "flattened" | null;
  /** "unknown": the header does not say (a flattened stream, an ELF core without kexec-ts's note, a file that does not parse or cannot be read). */
  says: "complete" | "incomplete" | "unknown";
  detail: string;
}

/**
 * The completeness a dump's header records: DUMP_DH_COMPRESSED_INCOMPLETE in a kdump file's
 * status, kexec-ts's note in an ELF core. Reads from `file` only the headers that say it: the
 * kdump header, or the ELF header, section header 0 under PN_XNUM, the program header table (up
 * to DUMP_LIST_HEADER_BYTES) and the PT_NOTE segments. Never throws for what `file` holds or
 * fails to read (a KexecError): a dump that cannot be read this way is of unknown completeness,
 * not a failed list.
 */
export function readDumpHeaderMark(file: RandomAccess, what = "vmcore"): DumpHeaderMark {
  const unknown = (format: DumpHeaderMark["format"], detail: string): DumpHeaderMark => ({ format, says: "unknown", detail });
  // Enough to tell the formats apart, and all of a kdump header (the 64-bit one is the larger).
  let head: Uint8Array = new Uint8Array(0);
  try {
    head = file.read(0n, Number(file.size < BigInt(DISK_DUMP_HEADER_64.size) ? file.size : BigInt(DISK_DUMP_HEADER_64.size)));
    if (looksLikeKdump(head)) {
      const { fields, layout } = readDiskDumpHeader(head, what);
      const flag = `status ${hex(fields.status)} at offset ${offsetOf(layout.header, "status")}`;
      return (fields.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0
        ? { format: "kdump", says: "incomplete", detail: `its header's ${flag} has DUMP_DH_COMPRESSED_INCOMPLETE: the writer stopped before the end` }
        : { format: "kdump", says: "complete", detail: `its header's ${flag} lacks DUMP_DH_COMPRESSED_INCOMPLETE` };
    }
    if (looksLikeElfCore(head)) {
      const table = readCoreProgramHeaderTable(file, what);
      if (table.tableEnd > DUMP_LIST_HEADER_BYTES) {
        return unknown("elf", `its ELF header and ${table.phnum} program headers${table.extended ? " (PN_XNUM: the count in section header 0)" : ""} take ${table.tableEnd} bytes (${size(table.tableEnd)}), more than kdump list reads of a dump (${size(DUMP_LIST_HEADER_BYTES)}): kexec-ts vmcore info reads them all and says whether it is complete`);
      }
      const elf = readElfCore(file, what);
      const mark = kexecTsMark(elf);
      if (mark?.incomplete) return { format: "elf", says: "incomplete", detail: `its ${KEXEC_TS_NOTE_NAME} note says "${mark.text}"` };
      if (elf.cutShort !== undefined) return { format: "elf", says: "incomplete", detail: elf.cutShort };
      if (mark !== undefined) return { format: "elf", says: "complete", detail: `its ${KEXEC_TS_NOTE_NAME} note says "${mark.text}"` };
      return unknown("elf", `an ELF core without kexec-ts's ${KEXEC_TS_NOTE_NAME} note, whose header does not record completeness`);
    }
    if (looksLikeFlat(head)) return unknown("flattened", "makedumpfile's flattened format (a stream saved as it came), whose header does not record completeness (makedumpfile -R makes a dump file of it)");
    return unknown(null, file.size === 0n ? "the file is empty" : `neither an ELF core nor a kdump-compressed file at offset 0 (${describeBytes(head.subarray(0, 16))})`);
  } catch (e) {
    if (!(e instanceof KexecError)) throw e;
    const said = e.message.startsWith(`${what}: `) ? e.message.slice(what.length + 2) : e.message;
    const format = looksLikeKdump(head) ? "kdump" : looksLikeElfCore(head) ? "elf" : null;
    // A read that failed (EIO on a failing disk) says nothing of the header: said as what it is.
    return unknown(format, e.code === "io" ? `cannot read it: ${said}` : `its header does not parse: ${said}`);
  }
}

/**
 * Each ELF core's aliases and their lookup, by its PT_LOAD list: made once, not for every window
 * of page frames the dump writers read (a KernelMemory each).
 */
const aliasesOfLoads = new WeakMap<ElfCore["loads"], { aliases: VirtualAlias[]; aliasLookup: AliasLookup }>();

export function vmcoreKernelMemory(core: Vmcore): KernelMemory {
  if (!core.vmcoreinfo) {
    throw new KexecError("parse", "the vmcore has no VMCOREINFO note, so kernel structures cannot be found", { field: "VMCOREINFO" }, "the crashed kernel was built without CONFIG_CRASH_CORE or the note area is damaged");
  }
  const loads = core.elf?.loads;
  let made = loads && aliasesOfLoads.get(loads);
  if (loads && !made) {
    const aliases = loads.map((l) => ({ vaddr: l.p_vaddr, paddr: l.p_paddr, size: l.p_memsz }));
    made = { aliases, aliasLookup: aliasFinder(aliases) };
    aliasesOfLoads.set(loads, made);
  }
  return kernelMemory(core.memory, { machine: core.machine, vmcoreinfo: core.vmcoreinfo, aliases: made?.aliases ?? [], aliasLookup: made?.aliasLookup });
}
