/** One view over either input format: memory, notes, VMCOREINFO and how the dump was made. */
import { KexecError } from "../errors.js";
import { describeBytes } from "../format.js";
import { latin1 } from "../bytes/reader.js";
import { elfCoreMemory, looksLikeElfCore, readElfCore, type ElfCore } from "./elf-core.js";
import { KEXEC_TS_NOTE_NAME, NT_KEXEC_TS_INCOMPLETE } from "./elf-writer.js";
import { kernelMemory, type KernelMemory } from "./kernel-memory.js";
import { looksLikeKdump, readKdump, type KdumpFile } from "./kdump.js";
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

export function openVmcore(file: RandomAccess, what = "vmcore"): Vmcore {
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
    // ELF has no "incomplete" flag of its own; kexec-ts's writer leaves a note that says so (elf-writer.ts).
    const mark = elf.notes.find((n) => n.name === KEXEC_TS_NOTE_NAME);
    const markText = mark ? latin1(mark.desc).replace(/\0+$/, "") : undefined;
    const incomplete = mark?.type === NT_KEXEC_TS_INCOMPLETE || elf.cutShort !== undefined;
    return { format: "elf", machine: elf.machine, memory, vmcoreinfo: elf.vmcoreinfo, noteBytes: elf.noteBytes, cpus: elf.cpus, incomplete, ...(elf.cutShort ? { cutShort: elf.cutShort } : {}), elf, mark: markText };
  }
  if (looksLikeKdump(head)) {
    const kdump = readKdump(file, what);
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

export function vmcoreKernelMemory(core: Vmcore): KernelMemory {
  if (!core.vmcoreinfo) {
    throw new KexecError("parse", "the vmcore has no VMCOREINFO note, so kernel structures cannot be found", { field: "VMCOREINFO" }, "the crashed kernel was built without CONFIG_CRASH_CORE or the note area is damaged");
  }
  const aliases = core.elf ? core.elf.loads.map((l) => ({ vaddr: l.p_vaddr, paddr: l.p_paddr, size: l.p_memsz })) : [];
  return kernelMemory(core.memory, { machine: core.machine, vmcoreinfo: core.vmcoreinfo, aliases });
}
