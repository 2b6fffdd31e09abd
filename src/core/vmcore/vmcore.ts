/** One view over either input format: memory, notes, VMCOREINFO and how the dump was made. */
import { KexecError } from "../errors.js";
import { describeBytes } from "../format.js";
import { dedupeLoads, elfCoreMemory, looksLikeElfCore, readElfCore, type ElfCore } from "./elf-core.js";
import { kernelMemory, type KernelMemory } from "./kernel-memory.js";
import { looksLikeKdump, readKdump, type KdumpFile } from "./kdump.js";
import type { PhysicalMemory, RandomAccess } from "./memory.js";
import type { VmcoreInfo } from "./vmcoreinfo.js";

export interface Vmcore {
  format: "elf" | "kdump";
  machine: "x86_64" | "i386";
  memory: PhysicalMemory;
  vmcoreinfo: VmcoreInfo | undefined;
  noteBytes: Uint8Array;
  cpus: number;
  incomplete: boolean;
  elf?: ElfCore;
  kdump?: KdumpFile;
}

export function openVmcore(file: RandomAccess, what = "vmcore"): Vmcore {
  const head = file.read(0n, Number(file.size < 64n ? file.size : 64n));
  if (looksLikeElfCore(head)) {
    const elf = readElfCore(file, what);
    const pageSize = elf.vmcoreinfo?.pageSize ?? 4096;
    const memory = elfCoreMemory(elf, file, pageSize);
    // makedumpfile -E marks a cut-short ELF dump by an e_flags bit? No: it has no flag; kexec-ts writes a note (see elf-writer).
    const incomplete = elf.notes.some((n) => n.name === "KEXEC-TS" && n.type === 0x494e43);
    return { format: "elf", machine: elf.machine, memory, vmcoreinfo: elf.vmcoreinfo, noteBytes: elf.noteBytes, cpus: elf.cpus, incomplete, elf };
  }
  if (looksLikeKdump(head)) {
    const kdump = readKdump(file, what);
    const machine = kdump.header.utsname.machine === "i686" || kdump.header.utsname.machine === "i386" ? "i386" : "x86_64";
    return { format: "kdump", machine, memory: kdump.memory, vmcoreinfo: kdump.vmcoreinfo, noteBytes: kdump.noteBytes, cpus: kdump.header.nr_cpus, incomplete: kdump.incomplete, kdump };
  }
  if (head.length >= 12 && String.fromCharCode(...head.subarray(0, 12)) === "makedumpfile") {
    throw new KexecError("parse", `${what} is in makedumpfile's flattened format, which is a stream, not a file to read in place`, { field: "signature", offset: 0 },
      "turn it into a dump file first: makedumpfile -R out.kdump < file, or kexec-ts vmcore save --from-flat");
  }
  throw new KexecError("parse", `${what}: neither an ELF core (7f 45 4c 46, e_type 4) nor a kdump-compressed file ("KDUMP   ") at offset 0`, { offset: 0, actual: describeBytes(head) },
    "give /proc/vmcore or a file written by makedumpfile or kexec-ts vmcore save");
}

export function vmcoreKernelMemory(core: Vmcore): KernelMemory {
  if (!core.vmcoreinfo) {
    throw new KexecError("parse", "the vmcore has no VMCOREINFO note, so kernel structures cannot be found", { field: "VMCOREINFO" }, "the crashed kernel was built without CONFIG_CRASH_CORE or the note area is damaged");
  }
  const aliases = core.elf ? dedupeLoadsForAliases(core.elf) : [];
  return kernelMemory(core.memory, { machine: core.machine, vmcoreinfo: core.vmcoreinfo, aliases });
}

function dedupeLoadsForAliases(elf: ElfCore) {
  void dedupeLoads;
  return elf.loads.map((l) => ({ vaddr: l.p_vaddr, paddr: l.p_paddr, size: l.p_memsz }));
}
