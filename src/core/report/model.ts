/**
 * What the report page shows, as one JSON-safe object: the machine's memory map, the plan with
 * the bounds that framed each segment, the checks and what each is about, the image's header,
 * the hand-over with its page tables (bytes included, so the page can walk them), and a vmcore's
 * summary. `kexec-ts report` builds it in Node and embeds it in the page; the web app builds the
 * same object in the browser from a dropped snapshot and image. Views only read it.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { checkJson, checkWithContext, summarize, type JsonEvidence, type Verdict } from "../check/index.js";
import type { Request } from "../plan/request.js";
import { handoverFor } from "../check/rules-handover.js";
import { inspectJson } from "../image/describe.js";
import type { KernelImage } from "../image/index.js";
import { SETUP_HEADER_FIELDS, XLOADFLAG_NAMES } from "../image/setup-header.js";
import type { IomemEntry } from "../machine/iomem.js";
import type { Machine } from "../machine/model.js";
import { runningKernelLimit } from "../plan/plan.js";
import type { Handover } from "../pgtable/handover.js";
import type { KernelLayout } from "../plan/crash.js";
import { linksFor, type CheckLink } from "./links.js";
import type { VmcoreReport } from "./vmcore.js";

export const REPORT_VERSION = 1;

/** A range on the map; addresses are hex strings, the end exclusive. */
export interface MapRange {
  id: string;
  start: string;
  end: string;
  name: string;
  kind: "iomem" | "ram" | "reserved" | "firmware" | "crash" | "kernel" | "other";
  depth: number;
  children: MapRange[];
}

export interface BoundJson {
  value: string;
  reason: string;
}

export interface SegmentJson {
  kind: string;
  mem: string;
  end: string;
  memsz: string;
  /** The window the planner searched, and the bounds that set its two ends; absent for a fixed address. */
  window?: { min: BoundJson; limit: BoundJson; mins: BoundJson[]; limits: BoundJson[]; align: string; topDown: boolean };
}

export interface PlanJson {
  mode: "-l" | "-p";
  syscall: string;
  /** kexec_file_load's placement is the kernel's, predicted (sizes of its purgatory and core header estimated). */
  estimated: boolean;
  pool: string;
  segments: SegmentJson[];
  entry?: { entry: string; entryMode: string; kernelEntry: string; bootParams: string };
  /** The limits drawn across the map: every distinct bound of every window. */
  limits: BoundJson[];
  /** When nothing could be placed: the planner's reason, and the window it could not fill. */
  error?: { message: string; hint: string; window?: { what: string; min: BoundJson; limit: BoundJson; size: string } };
}

export interface CheckJson {
  id: string;
  verdict: Verdict;
  reason: string;
  evidence: Record<string, JsonEvidence>;
  remedy: string;
  links: CheckLink[];
}

export interface HeaderFieldJson {
  name: string;
  offset: string;
  size: number;
  value: string | null;
  since: string;
}

export interface ImageJson {
  name: string;
  summary: Record<string, unknown>;
  fields: HeaderFieldJson[];
  xloadflags: { bit: number; name: string; set: boolean; meaning: string }[] | null;
}

export interface PageTableJson {
  id: string;
  title: string;
  format: string;
  top: string;
  /** Table pages by physical address, base64: the page walks them itself. */
  pages: Record<string, string>;
  leaves: { vaddr: string; paddr: string; size: string; pageSize: string }[];
  notes: string[];
}

export interface HandoverJson {
  format: string;
  controlPage: string;
  steps: { id: string; title: string; runsAt: { vaddr: string; what: string }; table: string | null; switchesTo?: string | null; detail: string }[];
  invariants: { id: string; holds: boolean; reason: string; address: string; step: string }[];
  tables: PageTableJson[];
  notes: string[];
}

export interface ReportData {
  version: number;
  title: string;
  /** Where the machine model came from ("--root testdata/...", "this machine", "snapshot.tar"). */
  source: string;
  machine: {
    kernelArch: string | null;
    kernelRelease: string | null;
    pagingLevels: number | null;
    pagingEvidence: string;
    memorySource: string | null;
    systemRam: string | null;
    cmdline: string | null;
    map: MapRange[];
    crashRegions: { start: string; end: string }[];
    /** The running kernel's destination limit (MAXMEM) and 4 GiB: lines on the map. */
    limits: BoundJson[];
    facts: { path: string; meaning: string }[];
  };
  image?: ImageJson;
  request?: { crash: boolean; syscall: string; cmdline: string; initrdSize: number | null; userArch: string };
  plan?: PlanJson;
  checks: CheckJson[];
  summary?: { verdict: Verdict; exitCode: number; counts: Record<Verdict, number> };
  handover?: HandoverJson;
  vmcore?: VmcoreReport;
  /** Inputs that could not be read, said as the CLI says them; the rest of the page still shows. */
  errors: { what: string; message: string; hint: string | null }[];
}

export interface ReportInput {
  machine: Machine;
  source: string;
  image?: { image: KernelImage; name: string } | undefined;
  request?: Request | undefined;
  isRoot?: boolean | undefined;
  vmcore?: VmcoreReport | undefined;
  /** The running kernel's layout from /proc/kcore or a snapshot's kernel-layout.json (KASLR); defaults without. */
  kernelLayout?: KernelLayout | undefined;
  errors?: ReportData["errors"];
}

/** What each xloadflags bit promises a loader (boot.rst), beside the names in setup-header.ts. */
const XLF_MEANING: Readonly<Record<string, string>> = {
  XLF_KERNEL_64: "has the 64-bit entry at load address + 0x200",
  XLF_CAN_BE_LOADED_ABOVE_4G: "kernel, boot_params, command line and initrd may lie above 4 GiB",
  XLF_EFI_HANDOVER_32: "32-bit EFI handover entry",
  XLF_EFI_HANDOVER_64: "64-bit EFI handover entry",
  XLF_EFI_KEXEC: "can be kexec'd with EFI runtime services kept",
  XLF_5LEVEL: "can be entered with 5-level paging on (switches itself if needed)",
  XLF_5LEVEL_ENABLED: "built with 5-level paging (CONFIG_X86_5LEVEL)",
  XLF_MEM_ENCRYPTION: "set by the decompressor from mem_encrypt=: not a capability a loader may read",
};

function mapKind(name: string): MapRange["kind"] {
  if (name === "System RAM") return "ram";
  if (name === "Crash kernel") return "crash";
  if (/^Kernel (code|rodata|data|bss)$/.test(name)) return "kernel";
  if (/^(ACPI|Reserved|reserved|RAM buffer|Unknown E820|Persistent|soft reserved)/i.test(name)) return /ACPI/.test(name) ? "firmware" : "reserved";
  if (/(BIOS|ROM|EFI|firmware)/i.test(name)) return "firmware";
  return "iomem";
}

function mapTree(entries: readonly IomemEntry[], prefix: string): MapRange[] {
  return entries.map((e, i) => {
    const id = `${prefix}${i}`;
    return { id, start: hex(e.start), end: hex(e.start + e.size), name: e.name, kind: mapKind(e.name), depth: e.depth, children: mapTree(e.children, `${id}.`) };
  });
}

function boundJson(b: { value: bigint; reason: string }): BoundJson {
  return { value: hex(b.value), reason: b.reason };
}

function machineJson(machine: Machine): ReportData["machine"] {
  const map = machine.iomem && machine.iomem.tree.length
    ? mapTree(machine.iomem.tree, "r")
    : machine.memory.map((m, i) => ({ id: `r${i}`, start: hex(m.start), end: hex(m.start + m.size), name: m.type, kind: mapKind(m.type), depth: 0, children: [] }));
  const limits: BoundJson[] = [{ value: hex(1n << 32n), reason: "4 GiB: the end of 32-bit physical addresses (a 32-bit entry, a 32-bit kexec_load, paging off)" }];
  if (machine.kernelArch !== null) limits.push(boundJson(runningKernelLimit(machine)));
  return {
    kernelArch: machine.kernelArch,
    kernelRelease: machine.kernelRelease,
    pagingLevels: machine.pagingLevels,
    pagingEvidence: machine.pagingEvidence,
    memorySource: machine.memorySource,
    systemRam: machine.systemRam === null ? null : hex(machine.systemRam),
    cmdline: machine.cmdline,
    map,
    crashRegions: machine.crashRegions.map((c) => ({ start: hex(c.start), end: hex(c.start + c.size) })),
    limits,
    facts: machine.facts.map((f) => ({ path: f.path, meaning: f.meaning })),
  };
}

function imageJson(image: KernelImage, name: string): ImageJson {
  const summary = inspectJson(image) as Record<string, unknown>;
  if (image.kind !== "bzImage") return { name, summary, fields: [], xloadflags: null };
  const b = image.bzImage;
  const fields = SETUP_HEADER_FIELDS.map((f) => {
    const value = b.raw[f.name];
    return { name: f.name, offset: hex(f.offset), size: f.size, value: value === undefined ? null : hex(value), since: f.since ? `${f.since >> 8}.${(f.since & 0xff).toString().padStart(2, "0")}` : "all" };
  });
  const xloadflags = b.protocol >= 0x20c ? XLOADFLAG_NAMES.map(([mask, name]) => ({ bit: Math.log2(mask), name, set: (b.xloadflags & mask) !== 0, meaning: XLF_MEANING[name] ?? "" })) : null;
  return { name, summary, fields, xloadflags };
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function handoverJson(h: Handover): HandoverJson {
  return {
    format: h.format,
    controlPage: hex(h.controlPage),
    steps: h.steps.map((s) => ({ id: s.id, title: s.title, runsAt: { vaddr: hex(s.runsAt.vaddr), what: s.runsAt.what }, table: s.table, ...(s.switchesTo !== undefined ? { switchesTo: s.switchesTo } : {}), detail: s.detail })),
    invariants: h.invariants.map((i) => ({ id: i.id, holds: i.holds, reason: i.reason, address: hex(i.address), step: i.step })),
    tables: h.tables.map((t) => ({
      id: t.id, title: t.title, format: t.format, top: hex(t.top),
      pages: Object.fromEntries([...t.pages].map(([pa, bytes]) => [hex(pa), base64(bytes)])),
      leaves: t.leaves.map((l) => ({ vaddr: hex(l.vaddr), paddr: hex(l.paddr), size: hex(l.size), pageSize: hex(l.pageSize) })),
      notes: t.notes,
    })),
    notes: h.notes,
  };
}

export function buildReport(input: ReportInput): ReportData {
  const { machine } = input;
  const data: ReportData = {
    version: REPORT_VERSION,
    title: `kexec-ts report: ${machine.kernelRelease ?? "unknown kernel"} (${machine.kernelArch ?? "unknown arch"})${input.image ? ` → ${input.image.name}` : ""}`,
    source: input.source,
    machine: machineJson(machine),
    checks: [],
    errors: [...(input.errors ?? [])],
  };
  if (input.vmcore) data.vmcore = input.vmcore;
  if (!input.image || !input.request) return data;
  const { image, name } = input.image;
  const request = input.request;
  data.image = imageJson(image, name);
  data.request = { crash: request.crash, syscall: request.syscall, cmdline: request.cmdline, initrdSize: request.initrdSize ?? null, userArch: request.userArch };
  const checkInput = { image, machine, request, isRoot: input.isRoot };
  const { results, context: ctx } = checkWithContext(checkInput);
  data.summary = summarize(results);
  const placement = ctx.placement();
  const mode = request.crash ? "-p" : "-l";
  if (placement.ok) {
    const bySegment = new Map(placement.bounds.map((b) => [b.mem, b]));
    const limits = new Map<string, BoundJson>();
    const segments = placement.segments.map((s): SegmentJson => {
      const b = bySegment.get(s.mem);
      const seg: SegmentJson = { kind: s.kind, mem: hex(s.mem), end: hex(s.mem + s.memsz), memsz: hex(s.memsz) };
      if (b && !b.fixed) {
        seg.window = { min: boundJson(b.min), limit: boundJson(b.limit), mins: b.mins.map(boundJson), limits: b.limits.map(boundJson), align: hex(b.align), topDown: b.topDown };
        // One line per address: bounds at the same address share it, their reasons joined.
        for (const x of [...b.mins, ...b.limits]) {
          if (x.value <= 0n || x.value >= 1n << 60n) continue;
          const key = hex(x.value);
          const had = limits.get(key);
          if (!had) limits.set(key, boundJson(x));
          else if (!had.reason.split("; ").includes(x.reason)) had.reason = `${had.reason}; ${x.reason}`;
        }
      }
      return seg;
    });
    const e = placement.entry;
    data.plan = {
      mode, syscall: placement.syscall, estimated: placement.estimated, pool: placement.pool, segments,
      entry: { entry: hex(e.entry), entryMode: e.entryMode, kernelEntry: hex(e.kernelEntry), bootParams: hex(e.bootParams) },
      limits: [...limits.values()],
    };
  } else {
    const d = placement.data;
    const str = (k: string) => (typeof d[k] === "string" ? (d[k] as string) : undefined);
    const min = str("min");
    const limit = str("limit");
    const window = min !== undefined && limit !== undefined
      ? { what: str("field") ?? "segment", min: { value: min, reason: str("minReason") ?? "" }, limit: { value: limit, reason: str("limitReason") ?? "" }, size: str("size") ?? "0x0" }
      : undefined;
    data.plan = { mode, syscall: placement.syscall, estimated: placement.syscall === "kexec_file_load", pool: request.crash ? "the crash region" : "System RAM", segments: [], limits: window ? [window.min, window.limit] : [], error: { message: placement.message, hint: placement.hint, ...(window ? { window } : {}) } };
  }
  const handover = handoverFor(ctx, "full", input.machine.kernelArch === "x86_64" ? input.kernelLayout : undefined);
  if (handover && !("error" in handover)) data.handover = handoverJson(handover);
  data.checks = results.map((r) => ({ ...checkJson(r), links: linksFor(r, data) }));
  return data;
}

/** An input the page could not use, as the CLI would say it. */
export function reportError(what: string, e: unknown): ReportData["errors"][number] {
  if (e instanceof KexecError) return { what, message: e.message, hint: e.hint ?? null };
  throw e;
}
