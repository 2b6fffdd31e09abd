/**
 * The plan: from an image and the machine model to the exact segments, entry
 * and flags that kexec_load will be given. Pure — the same plan is computed on
 * the machine, from a snapshot (--root), in tests and in the browser.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import type { KernelImage } from "../image/index.js";
import { initSizeProblem, kernelAlignmentProblem, type BzImage } from "../image/bzimage.js";
import type { Machine } from "../machine/model.js";
import { Placer, type Bound, type PlacementRecord } from "./placement.js";
import { PAGE_SIZE, alignUp, type Range } from "./ranges.js";
import { buildZeroPage, e820TypeFromName, zeroPageSize, type E820 } from "./zero-page.js";
import { efiHandover, encodeEfiSetupData, encodeRuntimeMap } from "./efi.js";
import { buildPurgatory } from "./purgatory.js";
import { planViolations } from "./invariants.js";
import { GiB4, LOWMEM_896M, MiB, usablePool } from "./limits.js";
import { elfKernel } from "./elf-kernel.js";
import { buildElfCoreHeader, checkElfCoreHeader, elfCoreHeaderSize, type CoreNoteArea, type ElfCoreHeaderInput } from "./elfcorehdr.js";
import { captureKernelE820, coreLoads, crashNoteAreas, defaultKernelLayout, type KernelLayout } from "./crash.js";
import { validatedRequest, type Arch, type Request } from "./request.js";
import { KEXEC_ARCH_386, KEXEC_ARCH_X86_64, KEXEC_ON_CRASH } from "./kexec-abi.js";

export type SegmentKind = "kernel" | "initrd" | "bootparams" | "cmdline" | "purgatory" | "elfcorehdr" | "backup" | "setupdata";
export type { Arch, Syscall } from "./request.js";

/** Where a segment goes; the bytes come later (see PlanSegment). */
export interface PlacedSegment {
  kind: SegmentKind;
  mem: bigint;
  memsz: bigint;
}

export interface PlanSegment extends PlacedSegment {
  /** The bytes copied to mem; the rest of memsz is zero-filled by the kernel. */
  buf: Uint8Array;
}

/** Every decision of a kexec_load plan, with no segment bytes: what `check` needs, computed from sizes alone. */
export interface PlacedLoad {
  syscall: "kexec_load";
  /** A bzImage enters at its boot protocol entries; an ELF vmlinux at its e_entry. */
  imageFormat: "bzImage" | "elf";
  crash: boolean;
  kernelArch: Arch;
  userArch: Arch;
  /** How the purgatory enters the kernel. */
  entryMode: "entry64" | "entry32";
  /** What kexec_load is given as entry: the purgatory's start. */
  entry: bigint;
  /** Where the purgatory jumps: kernel + 0x200 (64-bit) or the kernel's start (32-bit). */
  kernelEntry: bigint;
  bootParams: bigint;
  flags: number;
  cmdline: string;
  segments: PlacedSegment[];
  /** Human notes on choices made (e.g. "e820 from /sys/firmware/memmap"). */
  notes: string[];
  /** For -p: crashk_res and how much of it the segments take. */
  crashRegion?: { start: bigint; size: bigint; used: bigint } | undefined;
  /** Each segment's placement with the bounds that framed its window, in the order they were placed. */
  placements: PlacementRecord[];
}

/** The plan handed to kexec_load: the placement with every segment's bytes. */
export interface Plan extends PlacedLoad {
  segments: PlanSegment[];
  /** Whether the purgatory carries the segments' SHA-256: a plan without it is for showing, not loading. */
  digested: boolean;
}

/** What filling the segments needs beyond the request: the bytes and what the core cannot make itself. */
export interface SegmentBytes {
  /**
   * The initrd, exactly request.initrdSize bytes long (for a plan only shown, sha256 null, a
   * stand-in of that length will do: only sizes are shown); or a reader, called with the address
   * the initrd was placed at, for an edge that lays its buffer out by where the kernel copies it to.
   */
  initrd: Uint8Array | ((destination: bigint) => Uint8Array) | undefined;
  /** 32 random bytes for SETUP_RNG_SEED (the core has no entropy source). */
  rngSeed?: Uint8Array | undefined;
  /** Purgatory prints progress on COM1 (useful in the lab). */
  serialDebug?: boolean | undefined;
  /** Hashes the segments for the purgatory's check; null for a plan that is only shown (hashing the initrd and the kernel's zero fill is most of a plan's time). */
  sha256: ((chunks: Uint8Array[]) => Uint8Array) | null;
}



export function runningKernelLimit(machine: Machine): Bound {
  if (machine.kernelArch === "i386") {
    return { value: GiB4, reason: "an i386 running kernel copies segments with paging off (32-bit physical addresses)" };
  }
  // KEXEC_DESTINATION_MEMORY_LIMIT = MAXMEM - 1: 2^46 with 4-level paging, 2^52 with 5-level.
  if (machine.pagingLevels === 5) return { value: 1n << 52n, reason: "MAXMEM of the running 5-level kernel (4 PiB)" };
  return { value: 1n << 46n, reason: "MAXMEM of the running 4-level kernel (64 TiB)" };
}

/** System RAM (or crashk_res) the plan may use; an error that says why when there is none. */
export function placementPool(machine: Machine, crash: boolean): { pool: Range[]; name: string } {
  const usable = usablePool(machine, crash);
  if (usable) return usable;
  if (crash) {
    throw new KexecError("plan", "no crash region: /proc/iomem has no \"Crash kernel\" range", { field: "crashRegions" },
      machine.cmdline?.includes("crashkernel=") ? "crashkernel= is on the command line but nothing was reserved: see `kexec-ts check -p`" : "boot the running kernel with crashkernel=256M (or more)");
  }
  throw new KexecError("plan", "the machine model has no System RAM ranges", { field: "memory", actual: machine.memorySource ?? "no memory map" },
    machine.iomem?.addressesHidden ? "/proc/iomem shows zeros to non-root users: run as root" : "kexec-ts could not read /proc/iomem or /sys/firmware/memmap");
}

/** The memory map the new kernel receives, from the most faithful source the machine has. */
export function e820ForNewKernel(machine: Machine): { entries: E820[]; source: string } {
  const fromRanges = (ranges: { start: bigint; size: bigint; type: string }[]) =>
    ranges.flatMap((r) => {
      const type = e820TypeFromName(r.type);
      return type === undefined ? [] : [{ addr: r.start, size: r.size, type }];
    });
  if (machine.firmwareMemmap && machine.firmwareMemmap.length) return { entries: fromRanges(machine.firmwareMemmap), source: "/sys/firmware/memmap" };
  if (machine.bootParams && machine.bootParams.e820.length) {
    return { entries: machine.bootParams.e820.map((e) => ({ addr: e.start, size: e.size, type: e.e820Type })), source: "the boot_params e820 table" };
  }
  return { entries: fromRanges(machine.memory), source: "/proc/iomem" };
}

/**
 * Where every segment of a kexec_load goes, from sizes alone: `check` predicts
 * with this, and nothing as big as the initrd is read or allocated for it.
 */
export function placeLoad(image: KernelImage, machine: Machine, request: Request, kernelLayout?: KernelLayout): PlacedLoad {
  return layOut(image, machine, request, kernelLayout).placed;
}

/** The whole plan: the placement, then every segment's bytes and the purgatory's digests over them. */
export function planLoad(image: KernelImage, machine: Machine, request: Request, bytes: SegmentBytes, kernelLayout?: KernelLayout): Plan {
  return layOut(image, machine, request, kernelLayout).fill(bytes);
}

/**
 * One load's kexec_load, laid out once for all who ask: the checks place it (sizes only) and
 * `plan` or -p then fills that same placement with bytes. Each used to lay it all out on its own,
 * and on the 64 TiB model (4,096 RAM ranges, 1,024 CPUs) that was the core header's 4,097 PT_LOADs,
 * the capture kernel's memory map and every hole search twice. The results are those of placeLoad
 * and planLoad with the same arguments.
 */
export interface KexecLoadPlanner {
  readonly image: KernelImage;
  readonly machine: Machine;
  readonly request: Request;
  place(kernelLayout?: KernelLayout): PlacedLoad;
  plan(bytes: SegmentBytes, kernelLayout?: KernelLayout): Plan;
}

export function kexecLoadPlanner(image: KernelImage, machine: Machine, request: Request): KexecLoadPlanner {
  let last: LaidOut | undefined;
  const laidOut = (kernelLayout: KernelLayout | undefined): LaidOut => {
    const shared = last === undefined ? undefined : relaidOut(last, machine, kernelLayout);
    return shared ?? (last = layOut(image, machine, request, kernelLayout));
  };
  return { image, machine, request, place: (kernelLayout) => laidOut(kernelLayout).placed, plan: (bytes, kernelLayout) => laidOut(kernelLayout).fill(bytes) };
}

/**
 * A laid-out load under another kernel layout, when nothing but its core header's contents and
 * note change. The layout is read nowhere else in layOut, and what comes before the core header
 * there (the image, the pool, the crash notes) succeeded for `last`: so with a core header of the
 * same size every placement is the same. undefined when the size differs (a text mapping on one
 * side only): then the load is laid out anew. Throws what layOut would throw for the header.
 */
function relaidOut(last: LaidOut, machine: Machine, kernelLayout: KernelLayout | undefined): LaidOut | undefined {
  const before = last.coreHeader;
  // Only a crash load reads the layout.
  if (before === undefined) return last;
  const layout = kernelLayout ?? defaultKernelLayout(machine);
  const header = sameMappings(layout, before.layout)
    ? { ...before, layout, note: coreHeaderNote(before.input, layout) }
    : crashCoreHeader(machine, before.input.elfClass, layout, before.input.notes);
  if (header.input.notes.length + header.input.loads.length !== before.input.notes.length + before.input.loads.length) return undefined;
  return last.withCoreHeader(header);
}

/** Whether two layouts give every PT_LOAD the same virtual address: where they came from may differ. */
function sameMappings(a: KernelLayout, b: KernelLayout): boolean {
  if (a.pageOffset !== b.pageOffset) return false;
  if (a.text === undefined || b.text === undefined) return a.text === b.text;
  return a.text.vaddr === b.text.vaddr && a.text.paddr === b.text.paddr && a.text.size === b.text.size;
}

/** A crash load's ELF core header before its bytes: what it lists, under which kernel layout, and the plan's note on it. */
interface CoreHeaderPlan {
  input: ElfCoreHeaderInput;
  layout: KernelLayout;
  note: string;
}

/** Checked as buildElfCoreHeader will check it (its bytes are built only when the plan is filled). */
function crashCoreHeader(machine: Machine, elfClass: 32 | 64, layout: KernelLayout, notes: CoreNoteArea[] = crashNoteAreas(machine)): CoreHeaderPlan {
  const input: ElfCoreHeaderInput = { elfClass, notes, loads: coreLoads(machine, layout) };
  checkElfCoreHeader(input);
  return { input, layout, note: coreHeaderNote(input, layout) };
}

function coreHeaderNote(input: ElfCoreHeaderInput, layout: KernelLayout): string {
  return `ELF${input.elfClass} core header: ${input.notes.length} notes, ${input.loads.length} PT_LOADs; kernel layout from ${layout.source}`;
}

interface LaidOut {
  placed: PlacedLoad;
  fill: (bytes: SegmentBytes) => Plan;
  /** A crash load's: its note is the first of placed.notes. */
  coreHeader: CoreHeaderPlan | undefined;
  /** The same placement with another core header of the same size. */
  withCoreHeader: (header: CoreHeaderPlan) => LaidOut;
}

function layOut(image: KernelImage, machine: Machine, request: Request, kernelLayout: KernelLayout | undefined): LaidOut {
  const req = validatedRequest(request);
  const kernelArch = machine.kernelArch;
  if (kernelArch === null) {
    throw new KexecError("machine", "cannot tell whether the running kernel is x86_64 or i386", { field: "kernelArch" }, "kexec-ts needs /proc/version or /proc/sys/kernel/arch; with --root, make sure the snapshot has them");
  }
  const elf = image.kind === "elf" ? elfKernel(image.vmlinux, image.bytes) : undefined;
  const bz = image.kind === "bzImage" ? image.bzImage : elf!.header;
  const headerSource = elf ? elf.headerBytes : image.bytes;
  const entryMode = chooseEntryMode(bz, kernelArch, req);
  const notes: string[] = [];

  const { pool, name } = placementPool(machine, req.crash);
  const placer = new Placer(pool, name);
  const globalMins: Bound[] = [{ value: MiB, reason: "the first 1 MiB holds BIOS data and the real-mode trampoline" }];
  if (req.memMin !== undefined) globalMins.push({ value: req.memMin, reason: "--mem-min" });
  const globalLimits: Bound[] = [runningKernelLimit(machine)];
  if (req.memMax !== undefined) globalLimits.push({ value: req.memMax + 1n, reason: "--mem-max" });
  if (req.userArch === "i386") globalLimits.push({ value: GiB4, reason: "a 32-bit kexec_load passes 32-bit destination addresses (compat_kexec_segment)" });
  if (entryMode === "entry32") globalLimits.push({ value: GiB4, reason: "the 32-bit entry runs with paging off" });

  // kdump: the ELF core header goes first, at the bottom of the crash region as the
  // kernel's own loader puts it, and is cut out of the capture kernel's memory map.
  let coreHeader: { mem: bigint; memsz: bigint; plan: CoreHeaderPlan } | undefined;
  let cmdline = req.cmdline;
  if (req.crash) {
    const elfClass = req.coreHeaderClass ?? (kernelArch === "x86_64" ? 64 : 32);
    // Placing needs the size only; the bytes are built when the plan is filled, which `check` never does
    // (4,099 program headers were 5-10 ms of a 64 TiB machine's `check -p`, and `plan -p` built them twice).
    const header = crashCoreHeader(machine, elfClass, kernelLayout ?? defaultKernelLayout(machine));
    const at = placer.place({ what: "ELF core header", size: BigInt(elfCoreHeaderSize(elfClass, header.input.notes.length + header.input.loads.length)), align: PAGE_SIZE, mins: globalMins, limits: globalLimits, topDown: false });
    coreHeader = { ...at, plan: header };
    // Prefixed, as the kernel's loader does: words after "--" belong to init, so a suffix could be lost.
    cmdline = `elfcorehdr=${hex(at.mem)} ${req.cmdline}`.trimEnd();
    // First of the notes: withCoreHeader replaces it.
    notes.push(header.note);
  }

  // The purgatory goes first and highest, like kexec-tools' bzImage64 loader; its
  // size is known before the addresses it will be patched with (and the digests, so none is computed here).
  const purgatoryArch: Arch = kernelArch;
  const probe = buildPurgatory(purgatoryArch, { mode: entryMode, entry: 0n, bootParams: 0n, regions: [] }, () => new Uint8Array(32));
  const purgatoryLimits = [...globalLimits];
  if (probe.below4G) purgatoryLimits.push({ value: GiB4, reason: "the purgatory leaves long mode from an identity-mapped page below 4 GiB" });
  const purgatoryAt = placer.place({ what: "purgatory", size: probe.memsz, align: probe.alignment, mins: globalMins, limits: purgatoryLimits, topDown: true });

  // Bytes, as the zero page holds them (UTF-8, as kexec_file_load is handed them): `--append=日本` is 6, not 2.
  const cmdlineLength = new TextEncoder().encode(cmdline).length;
  const cmdlineBytes = cmdlineLength + 1;
  if (cmdlineLength > bz.cmdlineSize) {
    throw new KexecError("plan", `the command line is ${cmdlineLength} bytes${req.crash ? " with elfcorehdr= added" : ""}, longer than the image's cmdline_size (${bz.cmdlineSize})`,
      { field: "cmdline_size", expected: `<= ${bz.cmdlineSize}`, actual: String(cmdlineLength) }, "shorten --append");
  }
  const is32BitImage = !bz.is64;
  const lowLimit: Bound[] = [];
  if (is32BitImage) lowLimit.push({ value: LOWMEM_896M, reason: "a 32-bit kernel reads its boot data from low memory (below 896 MiB)" });
  else if (!bz.canBeLoadedAbove4G || entryMode === "entry32") lowLimit.push({ value: GiB4, reason: bz.canBeLoadedAbove4G ? "the 32-bit entry" : "the image lacks XLF_CAN_BE_LOADED_ABOVE_4G" });
  const e820 = coreHeader
    ? { entries: captureKernelE820(machine, [{ start: coreHeader.mem, size: coreHeader.memsz }]), source: "the crash region(s), the low 1 MiB and the ACPI/NVS/reserved ranges of /proc/iomem (the capture kernel's view)" }
    : e820ForNewKernel(machine);
  // EFI runtime services go with the boot parameters (efi.ts), as the kernel's own loader carries them.
  const efi = image.kind === "bzImage" ? efiHandover(machine, bz) : undefined;
  const efiInput = efi?.kind === "handover"
    ? { loaderSignature: efi.data.loaderSignature, systab: efi.data.systab, memdescVersion: efi.data.memdescVersion, memmap: encodeRuntimeMap(efi.data.runtimeMap), setupEfi: encodeEfiSetupData(efi.data) }
    : undefined;
  if (efi !== undefined && efi.kind !== "not-efi") notes.push(efi.reason);
  // boot_params + command line + EFI runtime map + setup_data: one segment with 4 KiB of setup_data
  // room, or what the EFI runtime map and the e820 entries beyond 128 need (zeroPageSize).
  const needed = zeroPageSize(cmdlineBytes - 1, e820.entries.length, true, efiInput?.memmap.length);
  const bootParamsSize = alignUp(BigInt(Math.max(4096 + cmdlineBytes + 16 + 4096, needed)), PAGE_SIZE);
  // A 32-bit kernel goes low, first fit, as kexec-tools' i386 loader does: observed in
  // the lab, a 686-pae kernel placed just under 896 MiB on a 1 GiB guest hangs before
  // printing anything (its early page tables and brk live past _end, beyond lowmem).
  const lowFirst = is32BitImage;
  const bootParamsAt = placer.place({ what: "boot parameters", size: bootParamsSize, align: PAGE_SIZE, mins: globalMins, limits: [...globalLimits, ...lowLimit], topDown: !lowFirst });

  const kernel = elf
    ? placer.reserveFixed("kernel (the vmlinux's PT_LOADs at their p_paddr)", elf.mem, elf.memsz)
    : placeKernel(placer, bz, entryMode, globalMins, globalLimits, notes);
  if (elf) notes.push(`ELF vmlinux: PT_LOADs at ${hex(elf.mem)}-${hex(elf.mem + elf.memsz)}, entry e_entry ${hex(elf.entry)}`);

  let initrdAt: { mem: bigint; memsz: bigint } | undefined;
  if (req.initrdSize !== undefined) {
    const initrdLimits = [...globalLimits, ...lowLimit];
    if (is32BitImage || !bz.canBeLoadedAbove4G) initrdLimits.push({ value: bz.initrdAddrMax + 1n, reason: `initrd_addr_max of the image (${hex(bz.initrdAddrMax)})` });
    initrdAt = placer.place({ what: "initrd", size: BigInt(req.initrdSize), align: PAGE_SIZE, mins: [...globalMins, { value: 16n * MiB, reason: "initrds start at 16 MiB or above (as the kernel's own loader)" }], limits: initrdLimits, topDown: true });
  }

  notes.push(`memory map for the new kernel from ${e820.source}`);

  const segments: PlacedSegment[] = [
    { kind: "bootparams", mem: bootParamsAt.mem, memsz: bootParamsAt.memsz },
    { kind: "kernel", mem: kernel.mem, memsz: kernel.memsz },
  ];
  if (initrdAt) segments.push({ kind: "initrd", mem: initrdAt.mem, memsz: initrdAt.memsz });
  if (coreHeader) segments.push({ kind: "elfcorehdr", mem: coreHeader.mem, memsz: coreHeader.memsz });
  segments.push({ kind: "purgatory", mem: purgatoryAt.mem, memsz: purgatoryAt.memsz });
  segments.sort((a, b) => (a.mem < b.mem ? -1 : 1));

  const kernelEntry = elf ? elf.entry : entryMode === "entry64" ? kernel.mem + 0x200n : kernel.mem;
  const placed: PlacedLoad = {
    syscall: "kexec_load",
    imageFormat: image.kind,
    crash: req.crash,
    kernelArch,
    userArch: req.userArch,
    entryMode,
    entry: purgatoryAt.mem + probe.entryOffset,
    kernelEntry,
    bootParams: bootParamsAt.mem,
    flags: (kernelArch === "x86_64" ? KEXEC_ARCH_X86_64 : KEXEC_ARCH_386) | (req.crash ? KEXEC_ON_CRASH : 0),
    cmdline,
    segments,
    notes,
    crashRegion: req.crash && pool[0] ? { start: pool[0].start, size: pool[0].size, used: segments.reduce((n, x) => n + x.memsz, 0n) } : undefined,
    placements: placer.log,
  };
  // Checked on its own, so a placement bug can never reach the kernel as a plan that "worked".
  assertPlanInvariants(placed, bz, machine, req);

  const fillWith = (bytes: SegmentBytes, placed: PlacedLoad, header: CoreHeaderPlan | undefined): Plan => {
    const initrd = typeof bytes.initrd === "function" ? (initrdAt ? bytes.initrd(initrdAt.mem) : undefined) : bytes.initrd;
    if (initrd?.length !== req.initrdSize) {
      throw new KexecError("io", `the initrd is ${initrd?.length ?? "absent"} bytes now, ${req.initrdSize ?? "absent"} when it was placed: it changed while kexec-ts read it`,
        { field: "initrd", expected: String(req.initrdSize), actual: String(initrd?.length) }, "run the load again once nothing is rewriting the initrd");
    }
    const zeroPage = buildZeroPage({
      image: bz,
      imageBytes: headerSource,
      address: bootParamsAt.mem,
      cmdline,
      initrd: initrdAt && initrd ? { address: initrdAt.mem, size: BigInt(initrd.length) } : undefined,
      e820: e820.entries,
      // An EFI boot leaves acpi_rsdp_addr 0 and publishes the RSDP in the EFI system table instead.
      acpiRsdp: machine.bootParams?.acpiRsdpAddr || machine.efi.acpiRsdp || undefined,
      hardwareSubarch: machine.bootParams ? BigInt(machine.bootParams.hardwareSubarch) : undefined,
      rngSeed: bytes.rngSeed,
      kernelAddress: kernel.mem,
      efi: efiInput,
    });
    const filledNotes = [...placed.notes];
    if (zeroPage.e820InSetupData) filledNotes.push(`${zeroPage.e820InSetupData} e820 entries beyond 128 passed as SETUP_E820_EXT`);
    const buffers: Partial<Record<SegmentKind, Uint8Array>> = {
      bootparams: zeroPage.bytes,
      kernel: elf ? elf.buf : image.bytes.subarray(bz.setupSize),
      initrd,
      elfcorehdr: header ? buildElfCoreHeader(header.input) : undefined,
    };
    const verified = placed.segments.filter((s) => s.kind !== "purgatory").map((s) => ({ ...s, buf: buffers[s.kind]! }));
    const purgatory = buildPurgatory(purgatoryArch, {
      mode: entryMode,
      entry: kernelEntry,
      bootParams: bootParamsAt.mem,
      regions: verified.map((s) => ({ what: `the ${s.kind} segment`, start: s.mem, bytes: s.buf, memsz: s.memsz })),
      serialDebug: bytes.serialDebug ?? false,
    }, bytes.sha256);
    const plan: Plan = {
      ...placed,
      entry: purgatoryAt.mem + purgatory.entryOffset,
      notes: filledNotes,
      digested: purgatory.digested,
      segments: placed.segments.map((s) => ({ ...s, buf: s.kind === "purgatory" ? purgatory.bytes : buffers[s.kind]! })),
    };
    assertPlanInvariants(plan, bz, machine, req);
    return plan;
  };
  const laidOut = (placedAs: PlacedLoad, header: CoreHeaderPlan | undefined): LaidOut => ({
    placed: placedAs,
    fill: (bytes) => fillWith(bytes, placedAs, header),
    coreHeader: header,
    withCoreHeader: (other) => laidOut({ ...placedAs, notes: [other.note, ...placedAs.notes.slice(1)] }, other),
  });
  return laidOut(placed, coreHeader?.plan);
}

function assertPlanInvariants(plan: PlacedLoad | Plan, bz: BzImage, machine: Machine, req: Request): void {
  const violations = planViolations(plan, bz, machine, { memMin: req.memMin, memMax: req.memMax });
  if (violations.length) {
    throw new KexecError("internal", `the plan breaks its own invariants: ${violations.join("; ")}`, { violations }, "this is a bug in kexec-ts; please report it with the output of `kexec-ts snapshot DIR` and the image");
  }
}

function chooseEntryMode(bz: BzImage, kernelArch: Arch, req: Request): "entry64" | "entry32" {
  if (req.entry32 || !bz.is64) return "entry32";
  if (kernelArch === "i386") {
    // An i386 running kernel hands over with paging off: no long mode to enter a 64-bit entry from.
    return "entry32";
  }
  return "entry64";
}

function placeKernel(placer: Placer, bz: BzImage, entryMode: "entry64" | "entry32", mins: Bound[], limits: Bound[], notes: string[]) {
  if (bz.initSize === undefined) {
    throw new KexecError("plan", `the image's boot protocol ${hex(bz.protocol)} has no init_size (needs 2.10), so the memory it needs cannot be known`,
      { field: "init_size", expected: "protocol >= 0x20a", actual: hex(bz.protocol) }, "use a kernel newer than 2.6.31");
  }
  const badHeader = kernelAlignmentProblem(bz) ?? initSizeProblem(bz);
  if (badHeader) throw new KexecError("plan", badHeader.message, badHeader.data, badHeader.hint);
  // The kernel needs init_size bytes from its (aligned) start, not just its file size.
  const memsz = alignUp(bz.initSize > BigInt(bz.kernelFileSize) ? bz.initSize : BigInt(bz.kernelFileSize), PAGE_SIZE);
  if (!bz.relocatable) {
    const at = bz.prefAddress ?? MiB;
    notes.push(`the image is not relocatable: kernel fixed at ${hex(at)}`);
    return placer.reserveFixed("kernel", at, memsz);
  }
  const kernelMins = [...mins];
  if (bz.prefAddress !== undefined && bz.prefAddress > MiB) {
    kernelMins.push({ value: bz.prefAddress, reason: `pref_address of the image (${hex(bz.prefAddress)}): a kernel loaded lower relocates itself up over memory it was not given` });
  }
  const kernelLimits = [...limits];
  if (!bz.is64) kernelLimits.push({ value: LOWMEM_896M, reason: "a 32-bit kernel must lie in low memory (896 MiB)" });
  else if (!bz.canBeLoadedAbove4G) kernelLimits.push({ value: GiB4, reason: "the image lacks XLF_CAN_BE_LOADED_ABOVE_4G" });
  else if (entryMode === "entry32") kernelLimits.push({ value: GiB4, reason: "the 32-bit entry" });
  const align = bz.kernelAlignment ?? 0x200000n;
  return placer.place({ what: "kernel", size: memsz, align, mins: kernelMins, limits: kernelLimits, topDown: bz.is64 });
}
