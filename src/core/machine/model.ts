/**
 * The machine model: everything kexec-ts knows about the running system, as
 * one plain object. Unknowns are null and listed in `facts`, never guessed.
 * `toMachineJson` is the stable `kexec-ts machine --json` form: addresses and
 * sizes become hex strings, because JSON numbers lose 64-bit values.
 */
import type { EfiRuntimeRegion } from "./efi.js";
import type { BootParams } from "./bootparams.js";
import type { CpuInfo } from "./cpuinfo.js";
import type { CrashkernelResolution, CrashkernelSpec } from "./crashkernel.js";
import type { IomemEntry } from "./iomem.js";
import type { KernelArch, LockdownMode } from "./kernelfiles.js";
import type { MemoryRange } from "./memmap.js";

/** A half-open physical range [start, start + size). */
export interface Span {
  start: bigint;
  size: bigint;
}

/** Something the model could not learn, and what that means. */
export interface Fact {
  /** The absolute path as seen on the machine ("/proc/iomem"), not including --root. */
  path: string;
  meaning: string;
}

export type MemorySource = "iomem" | "firmware-memmap" | "boot-params-e820";
export type PagingLevels = 2 | 3 | 4 | 5;

export interface Machine {
  kernelArch: KernelArch | null;
  /** Which file said so, e.g. "/proc/sys/kernel/arch = x86_64". */
  kernelArchEvidence: string | null;
  kernelRelease: string | null;
  /** The /proc/version banner. */
  kernelVersion: string | null;
  /** BITS_PER_LONG from /sys/kernel/address_bits. */
  addressBits: 32 | 64 | null;
  pagingLevels: PagingLevels | null;
  pagingEvidence: string;
  cpu: CpuInfo | null;

  /** Top-level /proc/iomem entries, else the firmware memmap, else the boot_params e820. */
  memory: MemoryRange[];
  memorySource: MemorySource | null;
  /** Sum of "System RAM" in `memory`: the nearest outside view of what crashkernel= compares against. */
  systemRam: bigint | null;
  /** MemTotal from /proc/meminfo (RAM minus what the kernel keeps for itself). */
  memTotal: bigint | null;
  iomem: { addressesHidden: boolean; lineCount: number; tree: IomemEntry[]; flat: IomemEntry[] } | null;
  firmwareMemmap: MemoryRange[] | null;
  bootParams: BootParams | null;
  bootParamsVersion: number | null;

  /** Every "Crash kernel" resource; a ,high reservation and its ,low part give two. */
  crashRegions: Span[];
  /** The running kernel's own ranges from /proc/iomem. */
  kernelImage: { code: Span | null; rodata: Span | null; data: Span | null; bss: Span | null };

  cmdline: string | null;
  crashkernel: {
    spec: CrashkernelSpec;
    /** null when the RAM size is unknown: no memory map, or one that lists no System RAM. */
    resolution: CrashkernelResolution | null;
    /** Set when the winning value does not parse: the kernel warned and reserved nothing. */
    error: { message: string; hint: string | null } | null;
  } | null;

  kexec: {
    /** false when sysfs is there but /sys/kernel/kexec_loaded is not: no CONFIG_KEXEC_CORE. */
    supported: boolean | null;
    loaded: boolean | null;
    crashLoaded: boolean | null;
    crashSize: bigint | null;
    loadDisabled: boolean | null;
    loadLimitPanic: number | null;
    loadLimitReboot: number | null;
  };
  lockdown: LockdownMode | null;
  /**
   * acpiRsdp: the "ACPI20=" (else "ACPI=") line of /sys/firmware/efi/systab, where an EFI boot
   * records the RSDP. The rest is what a kexec_load hands on so the next kernel keeps EFI
   * runtime services (efi.ts); runtimeMap is null when the kernel publishes none.
   */
  efi: {
    booted: boolean | null;
    firmwareBits: 32 | 64 | null;
    acpiRsdp: bigint | null;
    fwVendor: bigint | null;
    runtimeServices: bigint | null;
    configTable: bigint | null;
    smbios: bigint | null;
    runtimeMap: EfiRuntimeRegion[] | null;
  };
  secureBoot: boolean | null;
  secureBootEvidence: string | null;
  cpus: { possible: number[] | null; present: number[] | null };
  crashNotes: { cpu: number; address: bigint; size: bigint | null }[];
  vmcoreinfo: { address: bigint; size: bigint } | null;

  facts: Fact[];
}

/** The JSON shape of a value: bigints become "0x..." strings. */
export type Jsonified<T> = T extends bigint
  ? string
  : T extends (infer U)[]
    ? Jsonified<U>[]
    : T extends object
      ? { [K in keyof T]: Jsonified<T[K]> }
      : T;

export type MachineJson = Omit<Jsonified<Machine>, "iomem"> & {
  iomem: { addressesHidden: boolean; lineCount: number; tree: IomemJson[] } | null;
};

export interface IomemJson {
  start: string;
  size: string;
  name: string;
  children: IomemJson[];
}

export function toMachineJson(machine: Machine): MachineJson {
  const { iomem, ...rest } = machine;
  const iomemTree = (entries: IomemEntry[]): IomemJson[] =>
    entries.map((e) => ({ start: hexString(e.start), size: hexString(e.size), name: e.name, children: iomemTree(e.children) }));
  return {
    ...(jsonify(rest) as Omit<MachineJson, "iomem">),
    // The tree alone: the flat view is the same entries again.
    iomem: iomem === null ? null : { addressesHidden: iomem.addressesHidden, lineCount: iomem.lineCount, tree: iomemTree(iomem.tree) },
  };
}

function hexString(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function jsonify(value: unknown): unknown {
  if (typeof value === "bigint") return hexString(value);
  if (Array.isArray(value)) return value.map(jsonify);
  if (value instanceof RegExp) return value.source;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = jsonify(v);
    return out;
  }
  return value;
}

// The CLI takes the model, its JSON and its text view from one place.
export { renderMachine } from "./render.js";
