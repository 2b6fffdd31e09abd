/**
 * The one list of /proc and /sys paths the machine model is built from. The
 * reader (src/node/machine.ts) and the snapshot (src/node/snapshot.ts) both
 * expand this list, so a snapshot always holds exactly what a replay reads.
 * Paths are relative to the root directory ("/" or --root DIR).
 */

import { EFI_RUNTIME_MAP_FILES } from "./efi.js";

export type MachineFileSpec =
  | { kind: "file"; path: string; binary?: true; meaning: string }
  | { kind: "dir"; path: string; meaning: string }
  /**
   * dir/<entry>/<file> for every entry matching the pattern: memmap/N, cpu/cpuN. `sameInEvery`: files
   * the kernel prints the same in every entry, read from the first entry alone.
   */
  | { kind: "glob"; dir: string; entry: RegExp; files: readonly string[]; sameInEvery?: readonly string[]; pattern: string; meaning: string };

export const SECURE_BOOT_VARIABLE = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

export const MACHINE_FILES: readonly MachineFileSpec[] = [
  { kind: "file", path: "proc/iomem", meaning: "no resource map: the memory layout, crash regions and kernel ranges come from elsewhere or are unknown" },
  { kind: "file", path: "proc/cmdline", meaning: "kernel command line unknown: crashkernel= cannot be read" },
  { kind: "file", path: "proc/cpuinfo", meaning: "CPU flags unknown: paging mode unknown" },
  { kind: "file", path: "proc/version", meaning: "kernel version unknown" },
  { kind: "file", path: "proc/meminfo", meaning: "MemTotal unknown" },
  { kind: "file", path: "proc/sys/kernel/arch", meaning: "no utsname machine: the kernel's arch is taken from weaker evidence" },
  { kind: "file", path: "proc/sys/kernel/osrelease", meaning: "kernel release taken from /proc/version" },
  { kind: "file", path: "proc/sys/kernel/kexec_load_disabled", meaning: "whether kexec_load is disabled is unknown" },
  { kind: "file", path: "proc/sys/kernel/kexec_load_limit_panic", meaning: "no limit on crash-kernel loads (the sysctl is Linux 6.7+, and needs kexec)" },
  { kind: "file", path: "proc/sys/kernel/kexec_load_limit_reboot", meaning: "no limit on kexec loads (the sysctl is Linux 6.7+, and needs kexec)" },
  { kind: "file", path: "sys/kernel/address_bits", meaning: "no address_bits (not in 6.1 and older kernels); the arch comes from other files" },
  { kind: "file", path: "sys/kernel/kexec_loaded", meaning: "kexec state unknown (the kernel may lack CONFIG_KEXEC_CORE)" },
  { kind: "file", path: "sys/kernel/kexec_crash_loaded", meaning: "crash-kernel state unknown" },
  { kind: "file", path: "sys/kernel/kexec_crash_size", meaning: "crash region size unknown from sysfs" },
  { kind: "file", path: "sys/kernel/vmcoreinfo", meaning: "vmcoreinfo note address unknown" },
  { kind: "file", path: "sys/kernel/boot_params/data", binary: true, meaning: "no boot_params: the boot loader's e820 table and EFI info are unknown" },
  { kind: "file", path: "sys/kernel/boot_params/version", meaning: "boot protocol version unknown" },
  { kind: "file", path: "sys/kernel/security/lockdown", meaning: "lockdown: unknown (securityfs not mounted, or no lockdown LSM)" },
  { kind: "dir", path: "sys/firmware/efi", meaning: "not booted through EFI" },
  { kind: "file", path: "sys/firmware/efi/fw_platform_size", meaning: "EFI firmware word size unknown" },
  { kind: "file", path: "sys/firmware/efi/systab", meaning: "EFI configuration tables unknown: the ACPI RSDP comes only from boot_params" },
  { kind: "file", path: "sys/firmware/efi/fw_vendor", meaning: "EFI firmware vendor string address unknown: a kexec_load cannot hand EFI runtime services on" },
  { kind: "file", path: "sys/firmware/efi/runtime", meaning: "EFI runtime services table address unknown: a kexec_load cannot hand EFI runtime services on" },
  { kind: "file", path: "sys/firmware/efi/config_table", meaning: "EFI configuration table address unknown: a kexec_load cannot hand EFI runtime services on" },
  { kind: "dir", path: "sys/firmware/efi/runtime-map", meaning: "no EFI runtime map (CONFIG_EFI_RUNTIME_MAP off, efi=noruntime, or a kernel itself kexec'd without EFI): a kernel loaded with kexec_load gets no EFI runtime services" },
  {
    kind: "glob",
    dir: "sys/firmware/efi/runtime-map",
    entry: /^\d+$/,
    files: EFI_RUNTIME_MAP_FILES,
    pattern: "sys/firmware/efi/runtime-map/N/{type,phys_addr,virt_addr,num_pages,attribute}",
    meaning: "the EFI runtime map is empty",
  },
  { kind: "file", path: SECURE_BOOT_VARIABLE, binary: true, meaning: "SecureBoot variable unreadable (efivarfs not mounted, or not EFI)" },
  { kind: "file", path: "sys/devices/system/cpu/possible", meaning: "possible CPUs unknown" },
  { kind: "file", path: "sys/devices/system/cpu/present", meaning: "present CPUs unknown" },
  { kind: "glob", dir: "sys/firmware/memmap", entry: /^\d+$/, files: ["start", "end", "type"], pattern: "sys/firmware/memmap/N/{start,end,type}", meaning: "no firmware memmap (CONFIG_FIRMWARE_MEMMAP)" },
  {
    kind: "glob",
    dir: "sys/devices/system/cpu",
    entry: /^cpu\d+$/,
    files: ["crash_notes"],
    // sizeof(note_buf_t) for every CPU (drivers/base/cpu.c crash_notes_size_show): one read, not one per CPU.
    sameInEvery: ["crash_notes_size"],
    pattern: "sys/devices/system/cpu/cpuN/crash_notes",
    meaning: "no per-CPU crash notes (the kernel may lack CONFIG_CRASH_DUMP)",
  },
];

/**
 * What the reader found, as plain data: the core builds the model from this
 * alone, so the same bytes give the same model on any machine or in a browser.
 */
export interface MachineFiles {
  /** Contents by relative path ("proc/iomem"); globbed files appear only when present. */
  files: Record<string, Uint8Array>;
  /** The "dir" specs that exist. */
  dirs: string[];
  /** Paths that exist but could not be read (EACCES as non-root), so facts can say why. */
  unreadable?: string[];
  /** Why, by path, where known: the errno ("EACCES", "EISDIR") or the kind of a file that is not one ("a pipe (FIFO)"). */
  errors?: Record<string, string>;
  /** Glob directories left unread on purpose (UNUSED_BY): their absence is no fact about the machine. */
  notRead?: string[];
}

/**
 * The globbed files one kind of load never uses, so `-l`, `-p`, `check` and `plan` need not
 * read them (on a machine with thousands of memory ranges and CPUs they are most of the files):
 * a crash load's memory map is the capture kernel's view from /proc/iomem, never the firmware
 * memmap; only a crash load's ELF core header points at the CPUs' crash notes. And a load through
 * kexec_file_load uses neither: its kernel writes the new kernel's e820 and the core header itself,
 * so both are read only where kexec-ts plans a kexec_load (src/cli/prepare.ts).
 */
export const UNUSED_BY: Readonly<Record<"kexec" | "crash" | "fileLoad", readonly string[]>> = {
  kexec: ["sys/devices/system/cpu"],
  crash: ["sys/firmware/memmap"],
  fileLoad: ["sys/firmware/memmap", "sys/devices/system/cpu"],
};

/** The relative paths a glob spec yields for one directory listing: the first entry's `sameInEvery` files, then every entry's `files`. */
export function expandGlob(spec: Extract<MachineFileSpec, { kind: "glob" }>, entries: readonly string[]): string[] {
  const sorted = naturalSort(entries.filter((e) => spec.entry.test(e)));
  const out: string[] = [];
  if (sorted.length > 0) for (const f of spec.sameInEvery ?? []) out.push(`${spec.dir}/${sorted[0]}/${f}`);
  for (const e of sorted) for (const f of spec.files) out.push(`${spec.dir}/${e}/${f}`);
  return out;
}

/**
 * Sorted as naturalCompare sorts, each name's number parsed once: a comparator that runs two
 * regular expressions per comparison was ~3 ms for 1,024 CPUs' directories.
 */
export function naturalSort(names: readonly string[]): string[] {
  const keyed = names.map((name) => {
    const m = /\d+$/.exec(name);
    return { name, prefix: m ? name.slice(0, m.index) : undefined, number: m ? Number(m[0]) : 0 };
  });
  keyed.sort((a, b) => {
    if (a.prefix !== undefined && a.prefix === b.prefix) return a.number - b.number;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  return keyed.map((k) => k.name);
}

/** "cpu2" < "cpu10": compare the digit runs as numbers. */
export function naturalCompare(a: string, b: string): number {
  const na = /\d+$/.exec(a);
  const nb = /\d+$/.exec(b);
  if (na && nb && a.slice(0, na.index) === b.slice(0, nb.index)) return Number(na[0]) - Number(nb[0]);
  return a < b ? -1 : a > b ? 1 : 0;
}
