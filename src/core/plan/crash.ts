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
import { describeJsonValue, hex } from "../format.js";
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

/** __START_KERNEL_map and KERNEL_IMAGE_SIZE (with KASLR): the kernel image's virtual window on x86_64. */
const START_KERNEL_MAP = 0xffffffff80000000n;
const KERNEL_IMAGE_SIZE = 1n << 30n;
/** __START_KERNEL: the text's virtual address at CONFIG_PHYSICAL_START (16 MiB). */
const START_KERNEL = 0xffffffff81000000n;

/** Where a snapshot keeps what /proc/kcore said, next to SNAPSHOT.json. */
export const KERNEL_LAYOUT_FILE = "kernel-layout.json";

/**
 * What the kernel can have in each field of kernel-layout.json, checked when it is read: the file
 * comes from a snapshot anyone can hand over, and its values become the core header's and the
 * hand-over's virtual addresses (seen: `null`, a TypeError; a pageOffset of 0x1, a 4 s report
 * of 11 MB, every direct-map page a 4 KiB one; a pageOffset wider than 64 bits, taken).
 */
const PAGE = 0x1000n;
/** x86_64: page_offset_base is __PAGE_OFFSET_BASE_L4/_L5 moved by KASLR in PUD_SIZE steps (arch/x86/mm/kaslr.c). */
const PUD_SIZE = 1n << 30n;
/** The kernel half of the address space, where page_offset_base lies: with 4-level and 5-level paging. */
const X86_64_KERNEL_HALF: Readonly<Record<4 | 5, bigint>> = { 4: 0xffff800000000000n, 5: 0xff00000000000000n };
/** CPU_ENTRY_AREA_BASE: KASLR's vaddr_end; the direct map and all it maps lie below it. */
const CPU_ENTRY_AREA_BASE = 0xfffffe0000000000n;
/** i386: PAGE_OFFSET is CONFIG_PAGE_OFFSET, one of the VMSPLIT choices (arch/x86/Kconfig); /proc/kcore shows it, no KASLR. */
const I386_PAGE_OFFSETS: readonly bigint[] = [0x40000000n, 0x78000000n, 0x80000000n, 0xb0000000n, 0xc0000000n];
/** x86_64's largest physical address width (MAXPHYADDR 52). */
const MAX_PHYSICAL = 1n << 52n;
const U64_END = 1n << 64n;
const DAMAGED_LAYOUT = `the snapshot's ${KERNEL_LAYOUT_FILE} is damaged or was edited: take the snapshot again as root, or delete the file to plan with the defaults (no KASLR)`;

function layoutError(field: string | undefined, message: string, expected: string, actual: string): KexecError {
  return new KexecError("parse", `${field === undefined ? "" : `${field} `}${message}`, { ...(field === undefined ? {} : { field }), expected, actual }, DAMAGED_LAYOUT);
}

/** A hex string below 2^64, as kexec-ts writes every address in JSON. */
function savedU64(value: unknown, field: string): bigint {
  if (typeof value !== "string" || !/^0x[0-9a-f]+$/i.test(value)) throw layoutError(field, `is ${describeJsonValue(value)}, expected a hex string`, "a hex string (0x...)", describeJsonValue(value));
  const v = BigInt(value);
  if (v >= U64_END) throw layoutError(field, `${value} is wider than 64 bits`, "below 2^64", value);
  return v;
}

/** Where page_offset_base or PAGE_OFFSET can be: an x86_64 kernel's or an i386 one's (the file says which by its value). */
function checkPageOffset(v: bigint): void {
  const expected = `an x86_64 page_offset_base (a multiple of 1 GiB in ${hex(X86_64_KERNEL_HALF[5])}-${hex(CPU_ENTRY_AREA_BASE)}) or an i386 PAGE_OFFSET (${I386_PAGE_OFFSETS.map(hex).join(", ")})`;
  const fits = (v >= X86_64_KERNEL_HALF[5] && v < CPU_ENTRY_AREA_BASE && v % PUD_SIZE === 0n) || I386_PAGE_OFFSETS.includes(v);
  if (!fits) throw layoutError("pageOffset", `${hex(v)} is no kernel's direct-map base`, expected, hex(v));
}

/** The text mapping, [_text, _end) as /proc/kcore's KCORE_TEXT entry gives it: inside the kernel image's window. */
function checkText(text: { vaddr: bigint; paddr: bigint; size: bigint }): void {
  const windowEnd = START_KERNEL_MAP + KERNEL_IMAGE_SIZE;
  const window = `${hex(START_KERNEL_MAP)}-${hex(windowEnd)} (__START_KERNEL_map + KERNEL_IMAGE_SIZE)`;
  if (text.vaddr < START_KERNEL_MAP || text.vaddr % PAGE !== 0n) throw layoutError("text.vaddr", `${hex(text.vaddr)} is not a page in the kernel image's window ${window}`, `a page-aligned address in ${window}`, hex(text.vaddr));
  if (text.size === 0n || text.vaddr + text.size > windowEnd) throw layoutError("text.size", `${hex(text.size)} does not fit the kernel image's window from ${hex(text.vaddr)}`, `1 to ${hex(windowEnd - text.vaddr)} bytes`, hex(text.size));
  if (text.paddr % PAGE !== 0n || text.paddr + text.size > MAX_PHYSICAL) throw layoutError("text.paddr", `${hex(text.paddr)} is not a page-aligned physical address of a ${hex(text.size)}-byte kernel`, `page-aligned, the kernel below ${hex(MAX_PHYSICAL)} (52-bit physical addresses)`, hex(text.paddr));
}

/** A snapshot's kernel-layout.json (hex strings, as every kexec-ts JSON), each field held to what the kernel can have; `file` names it in errors. */
export function parseSavedKernelLayout(text: string, file: string = KERNEL_LAYOUT_FILE): KernelLayout {
  try {
    return savedKernelLayout(text);
  } catch (e) {
    throw e instanceof KexecError ? e.inFile(file) : e;
  }
}

function savedKernelLayout(text: string): KernelLayout {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw layoutError(undefined, "is not JSON", "a JSON object", JSON.stringify(text.slice(0, 40)));
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw layoutError(undefined, `holds ${describeJsonValue(raw)}, expected a JSON object`, "an object with pageOffset", describeJsonValue(raw));
  const r = raw as Record<string, unknown>;
  const pageOffset = savedU64(r.pageOffset, "pageOffset");
  checkPageOffset(pageOffset);
  let mapped: KernelLayout["text"];
  if (r.text !== undefined && r.text !== null) {
    if (typeof r.text !== "object" || Array.isArray(r.text)) throw layoutError("text", `is ${describeJsonValue(r.text)}, expected an object or null`, "{ vaddr, paddr, size } or null", describeJsonValue(r.text));
    const t = r.text as Record<string, unknown>;
    mapped = { vaddr: savedU64(t.vaddr, "text.vaddr"), paddr: savedU64(t.paddr, "text.paddr"), size: savedU64(t.size, "text.size") };
    checkText(mapped);
  }
  if (r.source !== undefined && typeof r.source !== "string") throw layoutError("source", `is ${describeJsonValue(r.source)}, expected a string`, "a string", describeJsonValue(r.source));
  return { pageOffset, text: mapped, source: `${r.source ?? "/proc/kcore"} when the snapshot was taken (${KERNEL_LAYOUT_FILE})` };
}

/**
 * A saved layout held to the machine it is replayed with: an x86_64 kernel's page_offset_base lies in
 * the kernel half its paging levels give (4-level: from 0xffff800000000000). Only x86_64 uses it.
 */
export function savedLayoutForMachine(layout: KernelLayout, machine: Machine, file: string = KERNEL_LAYOUT_FILE): KernelLayout {
  if (machine.kernelArch !== "x86_64") return layout;
  const levels = machine.pagingLevels === 5 ? 5 : machine.pagingLevels === 4 ? 4 : undefined;
  const lowest = levels === undefined ? X86_64_KERNEL_HALF[5] : X86_64_KERNEL_HALF[levels];
  // The whole direct map of RAM must fit below CPU_ENTRY_AREA_BASE, as KASLR places it.
  const topRam = machine.memory.filter((m) => m.type === "System RAM").reduce((top, m) => (end(m) > top ? end(m) : top), 0n);
  const highest = CPU_ENTRY_AREA_BASE - topRam;
  if (layout.pageOffset < lowest || layout.pageOffset > highest) {
    const kernel = levels === undefined ? "an x86_64 kernel" : `the ${levels}-level x86_64 kernel`;
    throw layoutError("pageOffset", `${hex(layout.pageOffset)} is not ${kernel}'s page_offset_base`,
      `${hex(lowest)}-${hex(highest)} (the kernel half, the direct map of RAM up to ${hex(topRam)} below ${hex(CPU_ENTRY_AREA_BASE)})`, hex(layout.pageOffset)).inFile(file);
  }
  return layout;
}


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

