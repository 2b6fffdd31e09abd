/**
 * What a crash (kdump) load adds to a plan: the memory the crashed kernel
 * leaves behind (described by the ELF core header) and the memory map the
 * capture kernel may use. These follow the kernel's own kexec_file crash path
 * (arch/x86/kernel/crash.c: prepare_elf_headers, crash_setup_memmap_entries):
 *
 * - The vmcore covers System RAM minus [0, 1 MiB) and minus the crash
 *   regions. Since Linux 5.13 ("x86/setup: Always reserve the first 1M of
 *   RAM") the crashed kernel never allocates below 1 MiB, so that range holds
 *   nothing to save, and the capture kernel may use its RAM freely. That is why
 *   kexec-ts, like the kernel's own loader, copies no 640K "backup region".
 * - The capture kernel sees: the low 1 MiB's System RAM, its crash region(s)
 *   as RAM minus the ELF core header, and the ACPI tables, ACPI NVS and
 *   reserved ranges as they are (it must find the ACPI tables).
 */
import { KexecError } from "../errors.js";
import type { Machine } from "../machine/model.js";
import type { CoreLoad, CoreNoteArea } from "./elfcorehdr.js";
import { clip, end, subtract, type Range } from "./ranges.js";
import { e820TypeFromName, type E820 } from "./zero-page.js";
import { MiB } from "./limits.js";


/** Where the crashed kernel's virtual mappings are, as read from the machine (or the defaults). */
export interface KernelLayout {
  /** Virtual address of the direct map's physical 0 (page_offset_base, KASLR-randomized on x86_64). */
  pageOffset: bigint;
  /** The kernel text mapping: _text's virtual and physical address and _end - _text. */
  text: { vaddr: bigint; paddr: bigint; size: bigint } | undefined;
  /** Where each value came from, e.g. "/proc/kcore", or "default (no KASLR assumed)". */
  source: string;
}

/** 896 MiB: the end of an i386 kernel's direct map (lowmem); above it is highmem. */
const I386_LOWMEM_END = 0x38000000n;

export function crashNoteAreas(machine: Machine): CoreNoteArea[] {
  if (machine.crashNotes.length === 0) {
    throw new KexecError("machine", "no per-CPU crash notes: /sys/devices/system/cpu/cpu*/crash_notes is missing or unreadable",
      { file: "/sys/devices/system/cpu/cpuN/crash_notes" }, "the running kernel needs CONFIG_CRASH_DUMP (and kexec-ts must run as root)");
  }
  if (machine.vmcoreinfo === null) {
    throw new KexecError("machine", "no vmcoreinfo: /sys/kernel/vmcoreinfo is missing or unreadable", { file: "/sys/kernel/vmcoreinfo" },
      "the running kernel needs CONFIG_CRASH_DUMP; without vmcoreinfo makedumpfile cannot read the dump");
  }
  const notes: CoreNoteArea[] = machine.crashNotes.map((n) => ({
    what: `crash_notes of cpu ${n.cpu}`,
    address: n.address,
    // crash_notes_size appeared in 4.x; before it kexec-tools assumed 1024.
    size: n.size ?? 1024n,
  }));
  notes.push({ what: "vmcoreinfo", address: machine.vmcoreinfo.address, size: machine.vmcoreinfo.size });
  return notes;
}

/** System RAM that the dump must cover: all RAM minus the low 1 MiB and the crash regions. */
export function dumpRanges(machine: Machine): Range[] {
  const ram = machine.memory.filter((m) => m.type === "System RAM");
  return subtract(ram, [{ start: 0n, size: MiB }, ...machine.crashRegions]);
}

export function coreLoads(machine: Machine, layout: KernelLayout): CoreLoad[] {
  const ranges = dumpRanges(machine);
  const loads: CoreLoad[] = [];
  if (machine.kernelArch === "x86_64") {
    // The text mapping first, as the kernel's crash_prepare_elf64_headers does; crash(8) and makedumpfile look for it.
    if (layout.text) loads.push({ paddr: layout.text.paddr, size: layout.text.size, vaddr: layout.text.vaddr });
    for (const r of ranges) loads.push({ paddr: r.start, size: r.size, vaddr: layout.pageOffset + r.start });
    return loads;
  }
  // i386: split at the end of lowmem; highmem has no permanent kernel mapping.
  for (const r of ranges) {
    const low = clip([r], { start: 0n, size: I386_LOWMEM_END });
    const high = clip([r], { start: I386_LOWMEM_END, size: (1n << 64n) - I386_LOWMEM_END });
    for (const l of low) loads.push({ paddr: l.start, size: l.size, vaddr: layout.pageOffset + l.start });
    for (const h of high) loads.push({ paddr: h.start, size: h.size, vaddr: undefined });
  }
  return loads;
}

/** The e820 map the capture kernel boots with. `exclude` are ranges it must not use (the core header). */
export function captureKernelE820(machine: Machine, exclude: Range[]): E820[] {
  const out: E820[] = [];
  const lowRam = clip(machine.memory.filter((m) => m.type === "System RAM"), { start: 0n, size: MiB });
  for (const r of lowRam) out.push({ addr: r.start, size: r.size, type: 1 });
  for (const m of machine.memory) {
    if (m.type === "System RAM") continue;
    const type = e820TypeFromName(m.type);
    // ACPI tables, NVS and reserved ranges as they are; RAM-like types other than the crash region stay out.
    if (type === 3 || type === 4 || type === 2) out.push({ addr: m.start, size: m.size, type });
  }
  for (const piece of subtract(machine.crashRegions, exclude)) {
    // Pieces under a page are useless to the capture kernel and the kernel's own loader drops them too.
    if (piece.size >= 0x1000n) out.push({ addr: piece.start, size: piece.size, type: 1 });
  }
  return normalizeE820(out);
}

function normalizeE820(entries: E820[]): E820[] {
  const sorted = entries.slice().sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  const out: E820[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && last.type === e.type && last.addr + last.size === e.addr) last.size += e.size;
    else out.push({ ...e });
  }
  return out;
}

/** Where a snapshot keeps what /proc/kcore said, next to SNAPSHOT.json. */
export const KERNEL_LAYOUT_FILE = "kernel-layout.json";

/** A snapshot's kernel-layout.json (hex strings, as every kexec-ts JSON); undefined when it says nothing usable. */
export function parseSavedKernelLayout(text: string): KernelLayout | undefined {
  let raw: { pageOffset?: unknown; text?: { vaddr?: unknown; paddr?: unknown; size?: unknown } | null; source?: unknown };
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return undefined;
  }
  const big = (v: unknown) => (typeof v === "string" && /^0x[0-9a-f]+$/i.test(v) ? BigInt(v) : undefined);
  const pageOffset = big(raw.pageOffset);
  if (pageOffset === undefined) return undefined;
  const t = raw.text;
  const vaddr = big(t?.vaddr), paddr = big(t?.paddr), size = big(t?.size);
  const mapped = vaddr !== undefined && paddr !== undefined && size !== undefined ? { vaddr, paddr, size } : undefined;
  return { pageOffset, text: mapped, source: `${typeof raw.source === "string" ? raw.source : "/proc/kcore"} when the snapshot was taken (${KERNEL_LAYOUT_FILE})` };
}

/** __START_KERNEL_map and KERNEL_IMAGE_SIZE (with KASLR): the kernel image's virtual window on x86_64. */
const START_KERNEL_MAP = 0xffffffff80000000n;
const KERNEL_IMAGE_SIZE = 1n << 30n;
/** __START_KERNEL: the text's virtual address at CONFIG_PHYSICAL_START (16 MiB). */
const START_KERNEL = 0xffffffff81000000n;

/**
 * The text's virtual address when nothing says it: as far from __START_KERNEL as the text is
 * from 16 MiB physically (true without KASLR). KASLR picks the physical and the virtual offset
 * independently, and a text placed above 1 GiB physically (seen: a 4 GiB guest) would land
 * past the image window, or past 2^64; then __START_KERNEL itself is the guess.
 */
export function assumedTextVaddr(paddr: bigint, size: bigint): bigint {
  const vaddr = START_KERNEL + (paddr - 0x1000000n);
  return vaddr >= START_KERNEL_MAP && vaddr + size <= START_KERNEL_MAP + KERNEL_IMAGE_SIZE ? vaddr : START_KERNEL;
}

export function defaultKernelLayout(machine: Machine): KernelLayout {
  if (machine.kernelArch === "i386") return { pageOffset: 0xc0000000n, text: undefined, source: "i386 PAGE_OFFSET 0xc0000000" };
  const pageOffset = machine.pagingLevels === 5 ? 0xff11000000000000n : 0xffff888000000000n;
  const code = machine.kernelImage.code;
  const end_ = machine.kernelImage.bss ?? machine.kernelImage.data ?? code;
  const text = code && end_ ? { vaddr: assumedTextVaddr(code.start, end(end_) - code.start), paddr: code.start, size: end(end_) - code.start } : undefined;
  return { pageOffset, text, source: "defaults: page_offset_base and the text mapping assume no KASLR (run as root on the machine to read /proc/kcore and /proc/kallsyms)" };
}

