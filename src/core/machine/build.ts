/**
 * Builds the Machine model from the files the reader collected. Pure: the
 * same MachineFiles give the same Machine, on the machine itself, from a
 * snapshot, or in a browser.
 */
import { latin1 } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { parseBootParams, parseBootParamsVersion } from "./bootparams.js";
import { parseCpuinfo, type CpuInfo } from "./cpuinfo.js";
import { crashkernelFromCmdline, resolveCrashkernel } from "./crashkernel.js";
import { MACHINE_FILES, SECURE_BOOT_VARIABLE, naturalSort, type MachineFiles } from "./files.js";
import { findIomem, parseIomem } from "./iomem.js";
import {
  archFromMachine,
  archFromVersionText,
  parseAddress,
  parseAddressBits,
  parseByteCount,
  parseCpuList,
  parseFlag,
  parseFwPlatformSize,
  parseInteger,
  parseLockdown,
  parseMeminfo,
  parseProcVersion,
  parseSecureBootVariable,
  parseVmcoreinfo,
  type KernelArch,
} from "./kernelfiles.js";
import { parseEfiRuntimeMap, parseEfiSystabSmbios, type EfiRuntimeRegion } from "./efi.js";
import { parseFirmwareMemmap, type MemoryRange } from "./memmap.js";
import type { Fact, Machine, MemorySource, PagingLevels, Span } from "./model.js";
import { inFile, singleValue } from "./text.js";

export interface BuildOptions {
  /** How to name a file in errors; the edge passes one that includes --root. */
  displayPath?: (relative: string) => string;
}

/** Root is the remedy only when permission was what failed; a directory or a FIFO in a snapshot is said as such. */
function unreadableWhy(errno: string | undefined): string {
  return errno === undefined || errno === "EACCES" || errno === "EPERM" ? "run as root" : errno === "EISDIR" ? "a directory, not a file" : errno;
}

export function buildMachine(input: MachineFiles, options: BuildOptions = {}): Machine {
  const display = options.displayPath ?? ((rel: string) => `/${rel}`);
  const unreadable = new Set(input.unreadable ?? []);
  const facts: Fact[] = [];
  const bytes = (rel: string): Uint8Array | undefined => input.files[rel];
  const text = (rel: string): string | undefined => {
    const b = bytes(rel);
    return b === undefined ? undefined : latin1(b);
  };
  /** Parse a file if present; its absence is recorded as a fact by the spec loop below. */
  const parse = <T>(rel: string, f: (t: string) => T): T | null => {
    const t = text(rel);
    return t === undefined ? null : inFile(() => display(rel), () => f(t));
  };
  const parseBinary = <T>(rel: string, f: (b: Uint8Array) => T): T | null => {
    const b = bytes(rel);
    return b === undefined ? null : inFile(() => display(rel), () => f(b));
  };
  // Listed once: a machine with thousands of memory ranges and CPUs has as many files.
  const paths = Object.keys(input.files);
  const sysfsMounted = paths.some((k) => k.startsWith("sys/")) || input.dirs.some((d) => d.startsWith("sys/"));

  // Under a directory that is a fact by its absence (no /sys/firmware/efi), the files in it say nothing more.
  const absentDirs = MACHINE_FILES.filter((s) => s.kind === "dir" && !input.dirs.includes(s.path)).map((s) => `${(s as { path: string }).path}/`);
  for (const spec of MACHINE_FILES) {
    if ((spec.kind === "file" || spec.kind === "dir") && absentDirs.some((d) => spec.path.startsWith(d)) && sysfsMounted) continue;
    if (spec.kind === "file" && bytes(spec.path) === undefined) {
      facts.push({ path: `/${spec.path}`, meaning: unreadable.has(spec.path) ? `unreadable (${unreadableWhy(input.errors?.[spec.path])}): ${spec.meaning}` : spec.meaning });
    } else if (spec.kind === "dir" && !input.dirs.includes(spec.path) && sysfsMounted) {
      facts.push({ path: `/${spec.path}`, meaning: spec.meaning });
    } else if (spec.kind === "glob" && absentDirs.some((d) => `${spec.dir}/`.startsWith(d)) && sysfsMounted) {
      continue;
    } else if (spec.kind === "glob" && !input.notRead?.includes(spec.dir) && !paths.some((k) => k.startsWith(`${spec.dir}/`) && spec.entry.test(k.slice(spec.dir.length + 1).split("/")[0]!))) {
      facts.push({ path: `/${spec.pattern}`, meaning: spec.meaning });
    }
  }

  // Kernel identity.
  const version = parse("proc/version", parseProcVersion);
  const osrelease = parse("proc/sys/kernel/osrelease", singleValue);
  const release = osrelease ?? version?.release ?? null;
  const addressBits = parse("sys/kernel/address_bits", parseAddressBits);
  const cpu = parse("proc/cpuinfo", parseCpuinfo);
  const { arch, evidence: archEvidence } = kernelArch(parse("proc/sys/kernel/arch", singleValue), addressBits, release, version?.banner ?? null);
  if (arch === null) facts.push({ path: "/proc/sys/kernel/arch", meaning: "the running kernel's architecture could not be told from the files present" });
  const paging = pagingLevels(arch, cpu, release, version?.banner ?? null);
  if (paging.levels === null && arch !== null) facts.push({ path: "/proc/cpuinfo", meaning: `paging levels unknown: ${paging.evidence}` });

  // Memory maps.
  const iomem = parse("proc/iomem", parseIomem);
  if (iomem?.addressesHidden) {
    facts.push({ path: "/proc/iomem", meaning: "addresses hidden (every range reads 00000000-00000000): run as root to see the memory map and crash regions" });
  }
  const firmwareMemmap = readFirmwareMemmap(input, paths, display);
  const bootParams = parseBinary("sys/kernel/boot_params/data", parseBootParams);
  const bootParamsVersion = parse("sys/kernel/boot_params/version", parseBootParamsVersion);
  const usableIomem = iomem && !iomem.addressesHidden ? iomem : null;
  let memory: MemoryRange[] = [];
  let memorySource: MemorySource | null = null;
  if (usableIomem) {
    memory = usableIomem.roots.map((e) => ({ start: e.start, size: e.size, type: e.name }));
    memorySource = "iomem";
  } else if (firmwareMemmap) {
    memory = firmwareMemmap;
    memorySource = "firmware-memmap";
  } else if (bootParams) {
    memory = bootParams.e820.map(({ start, size, type }) => ({ start, size, type }));
    memorySource = "boot-params-e820";
  } else {
    facts.push({ path: "/proc/iomem", meaning: "no memory map from any source (iomem, firmware memmap, boot_params)" });
  }
  const systemRam = memorySource === null ? null : memory.filter((m) => m.type === "System RAM").reduce((a, m) => a + m.size, 0n);
  const meminfo = parse("proc/meminfo", parseMeminfo);

  // Crash regions and the kernel's own ranges.
  const spans = (name: string): Span[] => (usableIomem ? findIomem(usableIomem, name).map(({ start, size }) => ({ start, size })) : []);
  const one = (name: string): Span | null => spans(name)[0] ?? null;

  // Command line and crashkernel=.
  // UTF-8, not latin1 as the other files: --reuse-cmdline hands it back to the new kernel with --append, both as UTF-8 bytes.
  const cmdlineFile = bytes("proc/cmdline");
  const cmdline = cmdlineFile === undefined ? null : inFile(() => display("proc/cmdline"), () => singleValue(new TextDecoder().decode(cmdlineFile)));
  let crashkernel: Machine["crashkernel"] = null;
  if (cmdline !== null) {
    try {
      const spec = crashkernelFromCmdline(cmdline);
      // No System RAM at all (an empty /proc/iomem in a snapshot) is no size to resolve against:
      // as unknown, not as a machine of 0 bytes that every size is too large for.
      if (spec) crashkernel = { spec, resolution: systemRam === null || systemRam === 0n ? null : resolveCrashkernel(spec, systemRam), error: null };
    } catch (e) {
      if (!(e instanceof KexecError)) throw e;
      // The kernel only warns about a bad crashkernel= and boots without a reservation; so do we.
      crashkernel = {
        spec: { plain: null, high: null, low: null, cma: null, occurrences: [] },
        resolution: null,
        error: { message: e.message, hint: e.hint ?? null },
      };
    }
  }

  // kexec state.
  const kexecLoaded = parse("sys/kernel/kexec_loaded", parseFlag);
  const kexec: Machine["kexec"] = {
    supported: kexecLoaded !== null ? true : sysfsMounted && !unreadable.has("sys/kernel/kexec_loaded") ? false : null,
    loaded: kexecLoaded,
    crashLoaded: parse("sys/kernel/kexec_crash_loaded", parseFlag),
    crashSize: parse("sys/kernel/kexec_crash_size", parseByteCount),
    loadDisabled: parse("proc/sys/kernel/kexec_load_disabled", parseFlag),
    loadLimitPanic: parse("proc/sys/kernel/kexec_load_limit_panic", parseInteger),
    loadLimitReboot: parse("proc/sys/kernel/kexec_load_limit_reboot", parseInteger),
  };

  // Firmware and security.
  const efiDir = input.dirs.includes("sys/firmware/efi");
  const efi: Machine["efi"] = {
    booted: sysfsMounted ? efiDir : null,
    firmwareBits: parse("sys/firmware/efi/fw_platform_size", parseFwPlatformSize),
    acpiRsdp: parse("sys/firmware/efi/systab", parseEfiSystabRsdp),
    fwVendor: parse("sys/firmware/efi/fw_vendor", parseAddress),
    runtimeServices: parse("sys/firmware/efi/runtime", parseAddress),
    configTable: parse("sys/firmware/efi/config_table", parseAddress),
    smbios: parse("sys/firmware/efi/systab", parseEfiSystabSmbios),
    runtimeMap: input.dirs.includes("sys/firmware/efi/runtime-map") ? readEfiRuntimeMap(input, paths, display) : null,
  };
  const variable = bytes(SECURE_BOOT_VARIABLE);
  let secureBoot: boolean | null = null;
  let secureBootEvidence: string | null = null;
  if (variable !== undefined) {
    secureBoot = parseBinary(SECURE_BOOT_VARIABLE, parseSecureBootVariable);
    secureBootEvidence = "SecureBoot EFI variable";
  } else if (bootParams && (bootParams.secureBoot === "enabled" || bootParams.secureBoot === "disabled")) {
    secureBoot = bootParams.secureBoot === "enabled";
    secureBootEvidence = "boot_params secure_boot (set by the EFI stub)";
  } else if (efi.booted === false) {
    // Secure boot is an EFI feature: a BIOS boot cannot have it.
    secureBoot = false;
    secureBootEvidence = "not booted through EFI";
  }

  // Per-CPU crash notes; crash_notes_size is the same for every CPU (files.ts sameInEvery), read from the first that has it.
  const crashNotes: Machine["crashNotes"] = [];
  const cpuDirs: string[] = [];
  let noteSizeFile: string | undefined;
  for (const k of paths) {
    const m = /^sys\/devices\/system\/cpu\/(cpu\d+)\/(crash_notes(?:_size)?)$/.exec(k);
    if (m?.[2] === "crash_notes") cpuDirs.push(m[1]!);
    else if (m && noteSizeFile === undefined) noteSizeFile = k;
  }
  const noteSize = noteSizeFile === undefined ? null : parse(noteSizeFile, parseByteCount);
  for (const dir of naturalSort(cpuDirs)) {
    crashNotes.push({
      cpu: Number(dir.slice(3)),
      address: parse(`sys/devices/system/cpu/${dir}/crash_notes`, parseAddress)!,
      size: noteSize,
    });
  }

  return {
    kernelArch: arch,
    kernelArchEvidence: archEvidence,
    kernelRelease: release,
    kernelVersion: version?.banner ?? null,
    addressBits,
    pagingLevels: paging.levels,
    pagingEvidence: paging.evidence,
    cpu,
    memory,
    memorySource,
    systemRam,
    memTotal: meminfo?.["MemTotal"] ?? null,
    iomem: iomem === null ? null : { addressesHidden: iomem.addressesHidden, lineCount: iomem.lineCount, tree: iomem.roots, flat: iomem.flat },
    firmwareMemmap,
    bootParams,
    bootParamsVersion,
    crashRegions: spans("Crash kernel"),
    kernelImage: { code: one("Kernel code"), rodata: one("Kernel rodata"), data: one("Kernel data"), bss: one("Kernel bss") },
    cmdline,
    crashkernel,
    kexec,
    lockdown: parse("sys/kernel/security/lockdown", parseLockdown),
    efi,
    secureBoot,
    secureBootEvidence,
    cpus: { possible: parse("sys/devices/system/cpu/possible", parseCpuList), present: parse("sys/devices/system/cpu/present", parseCpuList) },
    crashNotes,
    vmcoreinfo: parse("sys/kernel/vmcoreinfo", parseVmcoreinfo),
    facts,
  };
}

function readEfiRuntimeMap(input: MachineFiles, paths: readonly string[], display: (rel: string) => string): EfiRuntimeRegion[] {
  const dir = "sys/firmware/efi/runtime-map";
  const byIndex = new Map<string, Record<string, string>>();
  for (const k of paths) {
    const m = /^sys\/firmware\/efi\/runtime-map\/(\d+)\/([a-z_]+)$/.exec(k);
    if (!m) continue;
    const files = byIndex.get(m[1]!) ?? {};
    files[m[2]!] = latin1(input.files[k]!);
    byIndex.set(m[1]!, files);
  }
  const entries = naturalSort([...byIndex.keys()]).map((index) => ({ index, files: byIndex.get(index)! }));
  return parseEfiRuntimeMap(entries, display(dir));
}

function readFirmwareMemmap(input: MachineFiles, paths: readonly string[], display: (rel: string) => string): MemoryRange[] | null {
  const indexes = new Set<string>();
  for (const k of paths) {
    const m = /^sys\/firmware\/memmap\/(\d+)\/[a-z]+$/.exec(k);
    if (m) indexes.add(m[1]!);
  }
  if (indexes.size === 0) return null;
  const unreadable = new Set(input.unreadable ?? []);
  const entries = naturalSort([...indexes]).map((index) => {
    const get = (f: string): string => {
      const rel = `sys/firmware/memmap/${index}/${f}`;
      const b = input.files[rel];
      if (b === undefined) {
        // The kernel makes the three files of an entry together: one gone is damage to the copy
        // (a data error, 65, as a start that does not parse), not something this machine lacks (69).
        const why = unreadable.has(rel) ? `unreadable (${unreadableWhy(input.errors?.[rel])})` : "missing";
        throw new KexecError(
          "parse",
          `${display(rel)}: ${why}, but ${display(`sys/firmware/memmap/${index}`)} has other files`,
          { file: display(rel), field: f, expected: "start, end and type", actual: ["start", "end", "type"].filter((g) => input.files[`sys/firmware/memmap/${index}/${g}`] !== undefined).join(" and ") },
          "every firmware memmap entry has start, end and type (drivers/firmware/memmap.c): re-take the snapshot, or copy the file from the machine's /sys/firmware/memmap",
        );
      }
      return latin1(b);
    };
    return { index, start: get("start"), end: get("end"), type: get("type") };
  });
  return parseFirmwareMemmap(entries, display("sys/firmware/memmap"));
}

/**
 * The running kernel's arch, from the strongest evidence present. Never the
 * Node process's arch: a 32-bit user space on a 64-bit kernel is the case that
 * matters most, and there the kernel's arch decides kexec_load's flags.
 */
function kernelArch(
  machine: string | null,
  addressBits: 32 | 64 | null,
  release: string | null,
  banner: string | null,
): { arch: KernelArch | null; evidence: string | null } {
  if (machine !== null) {
    const arch = archFromMachine(machine);
    if (arch) return { arch, evidence: `/proc/sys/kernel/arch = ${machine}` };
  }
  if (addressBits !== null) return { arch: addressBits === 64 ? "x86_64" : "i386", evidence: `/sys/kernel/address_bits = ${addressBits}` };
  if (release !== null) {
    const arch = archFromVersionText(release);
    if (arch) return { arch, evidence: `kernel release ${release}` };
  }
  if (banner !== null) {
    const arch = archFromVersionText(banner);
    if (arch) return { arch, evidence: "/proc/version" };
  }
  return { arch: null, evidence: null };
}

/**
 * Paging levels of the running kernel. la57 in cpuinfo is the authority for
 * 5-level: the kernel clears it when it runs 4-level (no5lvl), while "address
 * sizes" keeps saying 57 bits virtual, so the latter is never used here.
 */
function pagingLevels(arch: KernelArch | null, cpu: CpuInfo | null, release: string | null, banner: string | null): { levels: PagingLevels | null; evidence: string } {
  if (arch === null) return { levels: null, evidence: "the kernel's arch is unknown" };
  if (cpu === null) return { levels: null, evidence: "no /proc/cpuinfo" };
  const has = (f: string): boolean => cpu.flags.includes(f);
  if (arch === "x86_64") {
    return has("la57") ? { levels: 5, evidence: "la57 in the cpuinfo flags" } : { levels: 4, evidence: "64-bit kernel without la57 in the cpuinfo flags" };
  }
  if (!has("pae")) return { levels: 2, evidence: "32-bit kernel on a CPU without pae" };
  const words = `${release ?? ""} ${banner ?? ""}`;
  if (/pae/i.test(words)) return { levels: 3, evidence: "32-bit PAE kernel build (\"pae\" in the release or /proc/version) on a CPU with pae" };
  // Debian names its non-PAE i386 flavour "686" (and "486" before it).
  if (release !== null && /-[4-6]86$/.test(release)) return { levels: 2, evidence: `32-bit non-PAE kernel build (release ${release})` };
  return { levels: null, evidence: "32-bit kernel on a CPU with pae, but nothing says whether the kernel is a PAE build" };
}

/**
 * /sys/firmware/efi/systab lists the EFI configuration tables as NAME=0xADDR
 * lines. On an EFI boot boot_params.acpi_rsdp_addr is usually 0 and the RSDP is
 * found through these tables, so a kexec'd kernel without EFI must be told
 * where it is (kexec-tools reads the same lines). ACPI 2.0's entry wins.
 */
export function parseEfiSystabRsdp(text: string): bigint | null {
  let acpi1: bigint | null = null;
  for (const line of text.split("\n")) {
    const m = /^(ACPI20|ACPI)=(0x[0-9a-fA-F]+)\s*$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "ACPI20") return BigInt(m[2]!);
    acpi1 = BigInt(m[2]!);
  }
  return acpi1;
}
