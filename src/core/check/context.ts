/**
 * What the rules share, computed once: which syscall will really be used
 * (under -a, kexec_file_load first and kexec_load after a refusal kexec-ts
 * falls back from), the kernel's own verdict on the image for
 * kexec_file_load, and where the segments would go.
 */
import { KexecError } from "../errors.js";
import { hex, size } from "../format.js";
import { initSizeProblem, type BzImage } from "../image/bzimage.js";
import { LOADED_HIGH } from "../image/setup-header.js";
import type { Machine } from "../machine/model.js";
import { Placer, type Bound, type PlacementRecord } from "../plan/placement.js";
import { placeLoad, runningKernelLimit } from "../plan/plan.js";
import { PAGE_SIZE, alignUp } from "../plan/ranges.js";
import type { CheckInput, Request, Evidence, Syscall } from "./types.js";
import { validatedRequest } from "../plan/request.js";

export { GiB, GiB4, LOWMEM_896M, MiB, TiB64 } from "../plan/limits.js";
import { MiB, usablePool } from "../plan/limits.js";
/** "elfcorehdr=0x<16 hex digits> " — room bzImage64_load keeps on every command line (MAX_ELFCOREHDR_STR_LEN). */
export const MAX_ELFCOREHDR_STR_LEN = 30;
/** bootparam.h; protocol 2.12 added xloadflags. */
export { LOADED_HIGH };

/** A refusal the running kernel will give to kexec_file_load, in its own terms. */
export interface FileRefusal {
  errno: "ENOSYS" | "EPERM" | "EFBIG" | "ENOEXEC" | "EKEYREJECTED" | "EINVAL" | "EADDRNOTAVAIL";
  /** Which rule predicts it. */
  rule: string;
  reason: string;
  /** The kernel's pr_err text, when it prints one (kexec-tools does not show it). */
  kernelSays?: string;
  /** kexec-ts -a retries with kexec_load after ENOSYS, EINVAL, ENOEXEC (never after a permission, signature or file-size refusal). */
  fallback: boolean;
}

export interface PlacedSegment {
  kind: string;
  mem: bigint;
  memsz: bigint;
}

/** How control passes to the new kernel once the segments are in place (for the hand-over model). */
export interface EntryFacts {
  /** image->start: the purgatory's entry. */
  entry: bigint;
  entryMode: "entry64" | "entry32";
  kernelEntry: bigint;
  bootParams: bigint;
}

export type Placement =
  | { ok: true; syscall: Syscall; segments: PlacedSegment[]; pool: string; estimated: boolean; entry: EntryFacts; bounds: PlacementRecord[] }
  | { ok: false; syscall: Syscall; message: string; data: Evidence; hint: string };

export interface Context {
  input: CheckInput;
  req: Request;
  machine: Machine;
  /** undefined for an ELF vmlinux. */
  bz: BzImage | undefined;
  /** The syscalls that will be tried, in order. */
  tries: Syscall[];
  /** The one whose outcome decides the load. */
  effective: Syscall;
  /** The first refusal kexec_file_load would meet (null: it would load). */
  fileRefusal: FileRefusal | null;
  placement: () => Placement;
}

export function buildContext(input: CheckInput): Context {
  const req = validatedRequest(input.request);
  const bz = input.image.kind === "bzImage" ? input.image.bzImage : undefined;
  const partial = { input, req, machine: input.machine, bz };
  const fileRefusal = predictFileRefusal(partial);
  let tries: Syscall[];
  if (req.syscall === "kexec_load") tries = ["kexec_load"];
  else if (req.syscall === "kexec_file_load") tries = ["kexec_file_load"];
  else tries = fileRefusal?.fallback ? ["kexec_file_load", "kexec_load"] : ["kexec_file_load"];
  const effective = tries[tries.length - 1]!;
  let cached: Placement | undefined;
  const ctx: Context = {
    ...partial,
    tries,
    effective,
    fileRefusal,
    placement: () => (cached ??= effective === "kexec_load" ? placeWithPlanner(ctx) : placeLikeKernel(ctx)),
  };
  return ctx;
}

/** The syscalls a load would try, in order (kexec_file_load first unless -c, kexec_load when it falls back): what the checks' placement follows. */
export function syscallsTried(input: CheckInput): Syscall[] {
  return buildContext(input).tries;
}

/** True when the running kernel or the user space cannot call kexec_file_load at all. */
export function fileSyscallMissing(c: Pick<Context, "machine" | "req">): string | null {
  if (c.machine.kernelArch === "i386") return "the running kernel is i386, which has no kexec_file_load (it is not in syscall_32.tbl; kexec_file is x86_64-only)";
  if (c.req.userArch === "i386") return "a 32-bit process cannot call kexec_file_load: the syscall has no entry in syscall_32.tbl, so it gets ENOSYS even on an x86_64 kernel";
  return null;
}

/** The bzImage64 probe of arch/x86/kernel/kexec-bzimage64.c, in its order, with its pr_err strings. */
export function bzImage64Probe(bz: BzImage, machine: Machine): { kernelSays: string; reason: string } | null {
  if (bz.protocol < 0x20c) return { kernelSays: "Must be at least protocol version 2.12", reason: `boot protocol ${protocolText(bz.protocol)} is older than 2.12, which added xloadflags` };
  if ((bz.loadflags & LOADED_HIGH) === 0) return { kernelSays: "zImage not a bzImage", reason: "loadflags lacks LOADED_HIGH: a zImage, loaded at 0x10000" };
  if (!bz.is64) return { kernelSays: "Not a bzImage64. XLF_KERNEL_64 is not set.", reason: `xloadflags ${hex(bz.xloadflags, 2)} lacks XLF_KERNEL_64: the image has no 64-bit entry (a 32-bit kernel)` };
  if (!bz.canBeLoadedAbove4G) return { kernelSays: "XLF_CAN_BE_LOADED_ABOVE_4G is not set.", reason: `xloadflags ${hex(bz.xloadflags, 2)} lacks XLF_CAN_BE_LOADED_ABOVE_4G (set only for relocatable x86_64 builds)` };
  if (machine.efi.booted === true && machine.efi.firmwareBits === 32) {
    return { kernelSays: "EFI is 32 bit. Can't load kernel above 4G. (pr_debug: not in dmesg by default)", reason: "the running kernel uses 32-bit EFI runtime services, which the bzImage64 loader refuses" };
  }
  if (!bz.fiveLevel && machine.pagingLevels === 5) return { kernelSays: "bzImage cannot handle 5-level paging mode.", reason: "the running kernel uses 5-level paging and the image lacks XLF_5LEVEL" };
  return null;
}

export function protocolText(protocol: number): string {
  return `${protocol >> 8}.${(protocol & 0xff).toString().padStart(2, "0")}`;
}

/** Whether a kernel release ("6.1.0-18-amd64", "5.14.0-362.el9.x86_64") is at least major.minor; undefined when it does not start with a version. */
export function versionAtLeast(version: string | null | undefined, major: number, minor: number): boolean | undefined {
  const m = version === undefined || version === null ? null : /^(\d+)\.(\d+)/.exec(version);
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a > major || (a === major && b >= minor);
}

/**
 * kexec_file_load reads the kernel image and the initrd itself, each with kernel_read_file(), which
 * refuses a file longer than the limit it is given with EFBIG (fs/kernel_read_file.c). The limit
 * was INT_MAX until Linux 6.0, and KEXEC_FILE_SIZE_MAX, min(4 GiB, SSIZE_MAX), since (kernel/kexec_file.c,
 * commit f4da7afe0752 "kexec_file: increase maximum file size to 4G"). A file of exactly the limit is read.
 */
export const KEXEC_FILE_SIZE_MAX_BEFORE_6_0 = 0x7fffffff;
export const KEXEC_FILE_SIZE_MAX = 4 * 2 ** 30;

export interface FileSizeLimit {
  /** The most bytes a file may have. */
  most: number;
  /** false: the running kernel's version is unknown, and `most` is the larger (6.0) limit. */
  known: boolean;
  why: string;
}

export function kexecFileSizeLimit(machine: Machine): FileSizeLimit {
  const release = machine.kernelRelease;
  const since60 = versionAtLeast(release, 6, 0);
  if (since60 === true) return { most: KEXEC_FILE_SIZE_MAX, known: true, why: `KEXEC_FILE_SIZE_MAX, 4 GiB since Linux 6.0; the running kernel is ${release}` };
  if (since60 === false) return { most: KEXEC_FILE_SIZE_MAX_BEFORE_6_0, known: true, why: `INT_MAX, 2 GiB - 1 byte before Linux 6.0; the running kernel is ${release}` };
  return { most: KEXEC_FILE_SIZE_MAX, known: false, why: "KEXEC_FILE_SIZE_MAX, 4 GiB since Linux 6.0 (INT_MAX before); the running kernel's version is unknown" };
}

/** A file kexec_file_load would read, with its size. */
export interface FileRead {
  what: "kernel image" | "initrd";
  /** Its path, when the caller gave one (CheckInput.files). */
  file: string | undefined;
  bytes: number;
}

/**
 * The files kexec_file_load reads, in the kernel's order (kimage_file_prepare_segments: the image,
 * then the initrd). A compressed image's file is not measured: its bytes here are the decompressed ones.
 */
export function filesKexecFileReads(c: Pick<Context, "input" | "req">): FileRead[] {
  const out: FileRead[] = [];
  const image = c.input.image;
  if (image.wrapper === undefined) out.push({ what: "kernel image", file: c.input.files?.image, bytes: image.bytes.length });
  if (c.req.initrdSize !== undefined) out.push({ what: "initrd", file: c.input.files?.initrd, bytes: c.req.initrdSize });
  return out;
}

/** "/boot/initrd.img: the initrd", or "the initrd" when its path is not known. */
export function namedFile(f: FileRead): string {
  return f.file === undefined ? `the ${f.what}` : `${f.file}: the ${f.what}`;
}

function fileTooBig(c: Pick<Context, "input" | "req" | "machine">, what: FileRead["what"]): FileRefusal | null {
  const limit = kexecFileSizeLimit(c.machine);
  const f = filesKexecFileReads(c).find((x) => x.what === what);
  if (f === undefined || f.bytes <= limit.most) return null;
  return { errno: "EFBIG", rule: "kexec-file-size", reason: `${namedFile(f)} is ${size(f.bytes)} (${hex(f.bytes)} bytes), more than kexec_file_load reads (${limit.why})`, fallback: false };
}

/** Bytes of command line as kexec_file_load counts them: cmdline_len includes the NUL. */
export function fileCmdlineLength(cmdline: string): number {
  return new TextEncoder().encode(cmdline).length + 1;
}

function predictFileRefusal(c: Pick<Context, "input" | "req" | "machine" | "bz">): FileRefusal | null {
  const missing = fileSyscallMissing(c);
  if (missing) return { errno: "ENOSYS", rule: "kexec-file-available", reason: missing, fallback: true };
  // kexec_load_permitted() runs first: CAP_SYS_BOOT, kexec_load_disabled, the load limits.
  if (c.input.isRoot === false) return { errno: "EPERM", rule: "not-root", reason: "not root: no CAP_SYS_BOOT", fallback: false };
  if (c.machine.kexec.loadDisabled === true) return { errno: "EPERM", rule: "kexec-load-disabled", reason: "kernel.kexec_load_disabled is 1", fallback: false };
  const limit = c.req.crash ? c.machine.kexec.loadLimitPanic : c.machine.kexec.loadLimitReboot;
  if (limit === 0) return { errno: "EPERM", rule: "kexec-load-disabled", reason: `the ${c.req.crash ? "kexec_load_limit_panic" : "kexec_load_limit_reboot"} sysctl is 0`, fallback: false };
  // kimage_file_prepare_segments() reads the image before it probes it, and the initrd after the signature check.
  const imageTooBig = fileTooBig(c, "kernel image");
  if (imageTooBig) return imageTooBig;
  if (!c.bz) return { errno: "ENOEXEC", rule: "kexec-file-probe", reason: "an ELF vmlinux: x86's kexec_file_load has only the bzImage64 loader", kernelSays: "(no loader accepts the image)", fallback: true };
  // The probe comes before the signature check in kimage_file_prepare_segments().
  const probe = bzImage64Probe(c.bz, c.machine);
  if (probe) return { errno: "ENOEXEC", rule: probe.kernelSays.startsWith("bzImage cannot handle") ? "paging-5level" : "kexec-file-probe", reason: probe.reason, kernelSays: probe.kernelSays, fallback: true };
  if (c.machine.lockdown !== null && c.machine.lockdown !== "none" && !c.bz.pe.signed) {
    return { errno: "EPERM", rule: "lockdown", reason: `lockdown=${c.machine.lockdown} and the image carries no signature`, fallback: false };
  }
  const initrdTooBig = fileTooBig(c, "initrd");
  if (initrdTooBig) return initrdTooBig;
  const len = fileCmdlineLength(c.req.cmdline);
  if (len > c.bz.cmdlineSize) return { errno: "EINVAL", rule: "cmdline-size", reason: `command line of ${len} bytes (with its NUL) exceeds cmdline_size ${c.bz.cmdlineSize}`, kernelSays: "Kernel command line too long", fallback: true };
  if (len + MAX_ELFCOREHDR_STR_LEN > c.bz.cmdlineSize) {
    return { errno: "EINVAL", rule: "cmdline-size", reason: `command line of ${len} bytes + ${MAX_ELFCOREHDR_STR_LEN} kept for elfcorehdr= exceeds cmdline_size ${c.bz.cmdlineSize}`, kernelSays: "Appending elfcorehdr=<addr> to command line exceeds maximum allowed length", fallback: true };
  }
  return null;
}

/** kexec-ts' own planner (kexec_load): the exact segments, or the planner's reason. */
function placeWithPlanner(c: Context): Placement {
  try {
    // Sizes only: no initrd is read and no digest computed to predict where the segments go.
    const shared = c.input.kexecLoad;
    const plan = shared && shared.image === c.input.image && shared.machine === c.machine && shared.request === c.req ? shared.place() : placeLoad(c.input.image, c.machine, c.req);
    return {
      ok: true, syscall: "kexec_load", segments: plan.segments.map((s) => ({ kind: s.kind, mem: s.mem, memsz: s.memsz })), pool: c.req.crash ? "the crash region" : "System RAM", estimated: false,
      entry: { entry: plan.entry, entryMode: plan.entryMode, kernelEntry: plan.kernelEntry, bootParams: plan.bootParams }, bounds: plan.placements,
    };
  } catch (e) {
    // No room or missing machine facts are a verdict; a broken invariant is a bug and must reach exit 70.
    if (!(e instanceof KexecError) || e.code === "internal") throw e;
    return { ok: false, syscall: "kexec_load", message: e.message, data: errorEvidence(e), hint: e.hint ?? "" };
  }
}

function errorEvidence(e: KexecError): Evidence {
  const out: Evidence = {};
  for (const [k, v] of Object.entries(e.data)) {
    if (v === undefined) continue;
    out[k] = toEvidence(v);
  }
  return out;
}

function toEvidence(v: unknown): Evidence[string] {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return v;
  if (Array.isArray(v)) return v.map(toEvidence);
  if (typeof v === "object") {
    const o: Evidence = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) if (x !== undefined) o[k] = toEvidence(x);
    return o;
  }
  return String(v);
}

/** Sizes kexec_file's bzImage64 loader asks for; the purgatory and core header are estimates. */
export const KERNEL_PURGATORY_ESTIMATE = 0x6000n;
/**
 * With CRASH_HOTPLUG (Debian's 6.x configs) the core header is sized for
 * NR_CPUS_DEFAULT (64) + CRASH_MAX_MEMORY_RANGES (8192) program headers of 56
 * bytes plus the ELF header; without it, it is much smaller.
 */
export const ELFCOREHDR_ESTIMATE = alignUp(64n + (2n + 64n + 8192n) * 56n, PAGE_SIZE);

export interface FileSegmentSize {
  kind: string;
  size: bigint;
  align: bigint;
  min: Bound;
  topDown: boolean;
}

/** The segments bzImage64_load adds, in its order. */
export function fileSegments(bz: BzImage, req: Request): FileSegmentSize[] {
  const out: FileSegmentSize[] = [];
  if (req.crash) out.push({ kind: "elfcorehdr", size: ELFCOREHDR_ESTIMATE, align: PAGE_SIZE, min: { value: 0n, reason: "the crash region's start" }, topDown: false });
  out.push({ kind: "purgatory", size: KERNEL_PURGATORY_ESTIMATE, align: PAGE_SIZE, min: { value: 0x3000n, reason: "MIN_PURGATORY_ADDR" }, topDown: true });
  const params = alignUp(BigInt(4096 + fileCmdlineLength(req.cmdline) + MAX_ELFCOREHDR_STR_LEN), 16n) + 256n;
  out.push({ kind: "bootparams", size: params, align: PAGE_SIZE, min: { value: 0x3000n, reason: "MIN_BOOTPARAM_ADDR" }, topDown: true });
  const pref = bz.prefAddress ?? 0n;
  const kernelMin: Bound = pref > MiB ? { value: pref, reason: `pref_address ${hex(pref)}` } : { value: MiB, reason: "MIN_KERNEL_LOAD_ADDR (1 MiB)" };
  out.push({ kind: "kernel", size: alignUp(bz.initSize ?? BigInt(bz.kernelFileSize), PAGE_SIZE), align: bz.kernelAlignment ?? 0x200000n, min: kernelMin, topDown: true });
  if (req.initrdSize !== undefined) out.push({ kind: "initrd", size: BigInt(req.initrdSize), align: PAGE_SIZE, min: { value: 16n * MiB, reason: "MIN_INITRD_LOAD_ADDR (16 MiB)" }, topDown: true });
  return out;
}

/** What `plan -s` shows: the kernel's own kexec_file_load placement, as predicted. */
export function predictFilePlacement(input: CheckInput): Placement {
  return placeLikeKernel(buildContext({ ...input, request: { ...input.request, syscall: "kexec_file_load" } }));
}

/** kexec_file_load's placement, as the kernel would do it (kexec_locate_mem_hole, top-down). */
function placeLikeKernel(c: Context): Placement {
  if (!c.bz) return { ok: false, syscall: "kexec_file_load", message: "an ELF vmlinux cannot be loaded with kexec_file_load on x86", data: { format: "elf" }, hint: "give the bzImage (vmlinuz)" };
  const badInitSize = initSizeProblem(c.bz);
  if (badInitSize) return { ok: false, syscall: "kexec_file_load", message: `${badInitSize.message}: the kernel segment would be shorter than its bytes (EINVAL)`, data: badInitSize.data, hint: badInitSize.hint };
  const pool = usablePool(c.machine, c.req.crash);
  if (!pool) {
    return c.req.crash
      ? { ok: false, syscall: "kexec_file_load", message: "no crash region: /proc/iomem has no \"Crash kernel\" range", data: { crashRegions: 0 }, hint: "see crash-region" }
      : { ok: false, syscall: "kexec_file_load", message: "the machine model has no System RAM ranges", data: { memorySource: c.machine.memorySource }, hint: "run as root so /proc/iomem shows addresses" };
  }
  const placer = new Placer(pool.pool, pool.name);
  const limit = runningKernelLimit(c.machine);
  const segments: PlacedSegment[] = [];
  try {
    for (const s of fileSegments(c.bz, c.req)) {
      const at = placer.place({ what: s.kind, size: s.size, align: s.align, mins: [s.min], limits: [{ value: limit.value, reason: `KEXEC_DESTINATION_MEMORY_LIMIT: ${limit.reason}` }], topDown: s.topDown });
      segments.push({ kind: s.kind, mem: at.mem, memsz: at.memsz });
    }
  } catch (e) {
    if (!(e instanceof KexecError)) throw e;
    return { ok: false, syscall: "kexec_file_load", message: e.message, data: errorEvidence(e), hint: e.hint ?? "" };
  }
  const kernel = segments.find((s) => s.kind === "kernel")!;
  const purgatory = segments.find((s) => s.kind === "purgatory")!;
  const bootParams = segments.find((s) => s.kind === "bootparams")!;
  // The kernel's purgatory always enters the 64-bit entry (purgatory/entry64.S).
  const entry: EntryFacts = { entry: purgatory.mem, entryMode: "entry64", kernelEntry: kernel.mem + 0x200n, bootParams: bootParams.mem };
  return { ok: true, syscall: "kexec_file_load", segments, pool: pool.name, estimated: true, entry, bounds: placer.log };
}
