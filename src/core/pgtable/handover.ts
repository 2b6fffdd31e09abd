/**
 * The hand-over from the running kernel to the new one, step by step, with the page tables that
 * are live at each step built as real bytes and walked to check what each step relies on.
 *
 * x86_64 (arch/x86/kernel/machine_kexec_64.c, relocate_kernel_64.S): machine_kexec() calls
 * relocate_kernel at its kernel-text address; relocate_kernel loads CR3 with the kexec identity
 * table that init_pgtable() built in control pages (every System RAM range, every segment, the
 * ACPI tables and NVS, 2 MiB leaves or 1 GiB with gbpages, at the running kernel's depth) plus one
 * 4 KiB "transition" mapping of relocate_kernel's virtual address to the control page's copy of it.
 * So the page that switches tables must be mapped at the same virtual address in both tables
 * (seed 003). It then jumps to the identity-mapped copy, copies the segments, and returns into the
 * purgatory with CR4.LA57 kept, so the new kernel is entered in the running kernel's paging mode.
 *
 * i386 (machine_kexec_32.c, relocate_kernel_32.S): a table that maps only the control page, at its
 * direct-map address and at its physical one; after the CR3 switch relocate_kernel turns paging off
 * from the identity-mapped copy and copies with physical addresses.
 *
 * Leaving long mode (and 5-level paging) for a 32-bit entry must happen from an identity-mapped
 * page below 4 GiB: once CR0.PG is clear the next instruction is fetched at the same address,
 * now physical and 32-bit (seed 004; our purgatory's start-x86_64.S does this).
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { end, subtract, type Range } from "../plan/ranges.js";
import { PAGING_FORMATS, type PagingFormat } from "./format.js";
import { PageTableBuilder, pageAllocator, type LeafMapping } from "./build.js";
import { tryWalk } from "./walk.js";

const PAGE = 4096n;
const MiB2 = 0x200000n;
const GiB1 = 0x40000000n;
const GiB4 = 1n << 32n;
const I386_LOWMEM_END = 0x38000000n;

export interface HandoverSegment {
  kind: string;
  mem: bigint;
  memsz: bigint;
}

export interface HandoverInput {
  kernelArch: "x86_64" | "i386";
  /** The running kernel's paging levels (machine.pagingLevels): 5 or 4 on x86_64, 3 (PAE) or 2 on i386. */
  pagingLevels: number | null;
  /** System RAM: what the kernel direct-maps (pfn_mapped) and the kexec table identity-maps. */
  ram: readonly Range[];
  /** ACPI Tables and ACPI Non-volatile Storage (map_acpi_tables). */
  acpi: readonly Range[];
  /** The CPU can map 1 GiB pages (cpuinfo pdpe1gb): init_pgtable then uses them (direct_gbpages). */
  gbpages: boolean;
  /** The running kernel's text mapping and direct map base (plan/crash.ts KernelLayout). */
  text: { vaddr: bigint; paddr: bigint; size: bigint } | undefined;
  pageOffset: bigint;
  crash: boolean;
  /** crashk_res: a crash load's control pages come from it. */
  crashRegion: Range | undefined;
  segments: readonly HandoverSegment[];
  /** image->start: where relocate_kernel returns to (the purgatory's entry). */
  entry: bigint;
  entryMode: "entry64" | "entry32";
  kernelEntry: bigint;
  bootParams: bigint;
  /** Who wrote the purgatory: kexec-ts (kexec_load) or the kernel (kexec_file_load). */
  syscall: "kexec_load" | "kexec_file_load";
}

export type TableId = "kernel" | "kexec";

export interface PageTable {
  id: TableId;
  title: string;
  format: PagingFormat;
  /** CR3. */
  top: bigint;
  pages: Map<bigint, Uint8Array>;
  leaves: (LeafMapping & { pageSize: bigint })[];
  /** What the table's addresses are: where a model stands in for what only the kernel knows. */
  notes: string[];
  builder: PageTableBuilder;
}

export interface Invariant {
  id: "cr3-switch-mapped-in-both" | "control-page-identity" | "segment-identity" | "entry-identity" | "leave-paging-below-4g" | "kernel-entry-mapped" | "table-conflict";
  holds: boolean;
  /** One line: what must hold and whether it does, with the address. */
  reason: string;
  /** The address (virtual = physical for identity checks) it is about. */
  address: bigint;
  /** The step it belongs to. */
  step: StepId;
}

export type StepId = "machine_kexec" | "relocate_kernel" | "identity_mapped" | "copy_segments" | "purgatory" | "leave_long_mode" | "kernel_entry";

export interface HandoverStep {
  id: StepId;
  title: string;
  /** Where the code of this step runs: its (virtual) address and what lies there. */
  runsAt: { vaddr: bigint; what: string };
  /** The table in CR3 while the step runs; null with paging off. */
  table: TableId | null;
  /** The table after the step, when it changes it. */
  switchesTo?: TableId | null;
  detail: string;
}

export interface Handover {
  arch: "x86_64" | "i386";
  format: PagingFormat;
  tables: PageTable[];
  steps: HandoverStep[];
  invariants: Invariant[];
  /** The control page (relocate_kernel's copy) and the page-table pages the kexec table uses. */
  controlPage: bigint;
  notes: string[];
}

/** The physical address where relocate_kernel's copy lives, as the kernel allocates control pages. */
function controlPages(input: HandoverInput): { control: bigint; allocate: () => bigint; note: string } {
  const taken = input.segments.map((s) => ({ start: s.mem, size: s.memsz }));
  // x86_64: KEXEC_CONTROL_PAGE_SIZE is two pages (the pgd and the code), order-1 aligned; i386 one page.
  const controlSize = input.kernelArch === "x86_64" ? 2n * PAGE : PAGE;
  const withTables = (at: bigint, rest: Range[]) => ({
    control: input.kernelArch === "x86_64" ? at + PAGE : at,
    allocate: input.kernelArch === "x86_64" ? firstThen(at, pageAllocator(rest, "the kexec page tables")) : pageAllocator(rest, "the kexec page tables"),
  });
  if (input.crash && input.crashRegion) {
    // kimage_alloc_crash_control_pages: the lowest aligned hole in crashk_res that no segment uses.
    const free = subtract([input.crashRegion], taken);
    for (const r of free) {
      const at = ((r.start + controlSize - 1n) / controlSize) * controlSize;
      if (at + controlSize <= end(r)) {
        return { ...withTables(at, subtract(free, [{ start: r.start, size: at + controlSize - r.start }])), note: "control pages from the crash region, lowest free first (kimage_alloc_crash_control_pages)" };
      }
    }
  } else {
    // Normal loads take whatever page the page allocator gives that is no destination, below
    // KEXEC_CONTROL_MEMORY_LIMIT. Which one is not known ahead of time: the model takes the top
    // of the highest free RAM, clear of the segments and of the running kernel's own image.
    // KEXEC_CONTROL_MEMORY_LIMIT: lowmem on i386, MAXMEM on x86_64 (64 TiB 4-level, 4 PiB 5-level).
    const limit = input.kernelArch === "i386" ? I386_LOWMEM_END : input.pagingLevels === 5 ? 1n << 52n : 1n << 46n;
    const image = input.text ? [{ start: input.text.paddr, size: input.text.size }] : [];
    const usable = input.ram.flatMap((r) => {
      const s0 = r.start > 0x1000000n ? r.start : 0x1000000n;
      const e0 = end(r) < limit ? end(r) : limit;
      return e0 > s0 ? [{ start: s0, size: e0 - s0 }] : [];
    });
    const free = subtract(usable, [...taken, ...image]);
    // Room for the control pages and a few dozen table pages after them; a machine of many TiB
    // needs more, which continue in the other free ranges, highest first.
    const room = controlSize + 64n * PAGE;
    const highestFirst = [...free].reverse();
    for (const r of highestFirst) {
      const at = ((end(r) - room) / controlSize) * controlSize;
      if (at >= r.start) {
        const after = { start: at + controlSize, size: end(r) - at - controlSize };
        const others = highestFirst.filter((x) => x !== r);
        return { ...withTables(at, [after, { start: r.start, size: at - r.start }, ...others]), note: "control pages: the kernel's page allocator picks any page that is no destination; modelled at the top of the highest free RAM" };
      }
    }
  }
  throw new KexecError("plan", `no free page for kexec's control page in ${input.crash ? "the crash region" : "System RAM"} once the segments are placed`, { field: "control page" },
    input.crash ? "reserve a larger crash region (crashkernel=)" : "the segments fill all of RAM");
}

/** An allocator that hands out `first` once (the pgd in the control pages), then from `rest`. */
function firstThen(first: bigint, rest: () => bigint): () => bigint {
  let used = false;
  return () => {
    if (used) return rest();
    used = true;
    return first;
  };
}

/**
 * The running kernel's own table, as far as the hand-over depends on it: the direct map of RAM and
 * the kernel text mapping. Its pages are modelled inside the kernel's data (init_top_pgt and
 * swapper_pg_dir are kernel data); the walk is real, the addresses of those pages are not.
 */
function kernelTable(input: HandoverInput, format: PagingFormat, wholeRam?: readonly Range[]): PageTable {
  const notes: string[] = [];
  // Model pages: from just above the highest RAM address, so they never alias a real page in the picture.
  // i386: in the 32-bit hole below 4 GiB, where CR3 can point and RAM rarely is.
  const topRam = input.ram.reduce((m, r) => (end(r) > m ? end(r) : m), 0n);
  const base = input.kernelArch === "i386" ? 0xfe000000n : ((topRam + GiB1 - 1n) / GiB1) * GiB1;
  let next = base;
  const builder = new PageTableBuilder(format, () => ((next += PAGE), next - PAGE));
  notes.push(`modelled: the kernel's own table pages live in its data (init_top_pgt / swapper_pg_dir); here they are placed at ${hex(base)} for the walk`);
  if (input.kernelArch === "x86_64") {
    // Rounded out as kexec's identity map rounds (1 GiB with gbpages, else 2 MiB): the hand-over
    // relies on none of the direct map's edges, and a machine with thousands of small RAM ranges
    // would otherwise need a table page for each.
    const round = input.gbpages ? GiB1 : MiB2;
    const directMap = (r: Range) => {
      const { start, end: stop } = roundOut(r, round);
      const whole = wholeOf(r);
      return { va: input.pageOffset + start, pa: start, size: stop - start, options: { what: `direct map of System RAM ${hex(whole.start)}-${hex(end(whole))}`, maxPageSize: round } };
    };
    // Given pieces: every whole range is first checked as mapping it would check it, in the same
    // order, so the model throws what the full one throws.
    const all = wholeRam && span(wholeRam, round);
    if (wholeRam && all && !builder.allMappable(input.pageOffset + all.start, input.pageOffset + all.end, all.end)) {
      for (const r of wholeRam) {
        const m = directMap(r);
        builder.assertMappable(m.va, m.pa, m.size, m.options);
      }
    }
    for (const r of input.ram) {
      const m = directMap(r);
      builder.map(m.va, m.pa, m.size, m.options);
    }
    if (input.text) {
      // level2_kernel_pgt maps the kernel image with 2 MiB pages.
      const vaddr = input.text.vaddr & ~(MiB2 - 1n);
      const paddr = input.text.paddr - (input.text.vaddr - vaddr);
      builder.map(vaddr, paddr, ((input.text.size + (input.text.vaddr - vaddr) + MiB2 - 1n) / MiB2) * MiB2, { what: "kernel text mapping", maxPageSize: MiB2 });
    }
    notes.push(`direct map at ${hex(input.pageOffset)} (page_offset_base), each RAM range rounded out to ${input.gbpages ? "1 GiB" : "2 MiB"}; text mapping at ${input.text ? hex(input.text.vaddr) : "unknown"}`);
  } else {
    for (const r of input.ram) {
      if (r.start >= I386_LOWMEM_END) continue;
      const size = end(r) > I386_LOWMEM_END ? I386_LOWMEM_END - r.start : r.size;
      builder.map(input.pageOffset + r.start, r.start, size, { what: `lowmem direct map ${hex(r.start)}-${hex(r.start + size)}` });
    }
    notes.push(`lowmem direct map at PAGE_OFFSET ${hex(input.pageOffset)} up to 896 MiB`);
  }
  return pageTable({ id: "kernel", title: "the running kernel's page table", format, notes }, builder);
}

/**
 * A built table; its leaves are listed when first asked for (the report draws them), since
 * walking every table page is most of the model's time and the invariants never need it.
 */
function pageTable(fields: Pick<PageTable, "id" | "title" | "format" | "notes">, builder: PageTableBuilder): PageTable {
  let leaves: PageTable["leaves"] | undefined;
  return {
    ...fields,
    top: builder.top,
    pages: builder.pages,
    get leaves() {
      return (leaves ??= builder.leaves());
    },
    builder,
  };
}

/** CONFIG_PHYSICAL_START and __START_KERNEL: where an x86_64 kernel's text is when nothing says otherwise. */
const DEFAULT_TEXT = { vaddr: 0xffffffff81000000n, paddr: 0x1000000n, size: MiB2 };

/**
 * "full": both tables as the kernel builds them, every System RAM range in each (what the report
 * draws; a 4 PiB machine has millions of 1 GiB entries). "invariants": on x86_64, only the parts
 * of RAM in the blocks (1 GiB or 2 MiB) that hold a segment, the control pages or the entry, which
 * are all that the invariants walk; the rest could only add mappings nobody looks at, or fail to
 * be mappable, and that is still checked for every whole range. The invariants come out the same;
 * `check` uses this.
 */
export type HandoverTables = "full" | "invariants";

/** Part of a range, with the whole range it was cut from (named in messages as the whole). */
type Piece = Range & { of: Range };

function wholeOf(r: Range): Range {
  return (r as Partial<Piece>).of ?? r;
}

/**
 * The parts of `ranges` inside the windows of `round`-aligned blocks that hold the addresses.
 * Mapped with `round` pages, a part gives exactly the leaves its whole range gives there, and a
 * walk of an address never leaves its window.
 */
function piecesNear(ranges: readonly Range[], addresses: readonly Range[], round: bigint): Piece[] {
  const windows: { start: bigint; end: bigint }[] = [];
  for (const a of [...addresses].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0))) {
    const { start, end: stop } = roundOut(a, round);
    const last = windows[windows.length - 1];
    if (last && start <= last.end) {
      if (stop > last.end) last.end = stop;
    } else windows.push({ start, end: stop });
  }
  if (windows.length === 0) return [];
  const lo = windows[0]!.start;
  const hi = windows[windows.length - 1]!.end;
  const pieces: Piece[] = [];
  for (const r of ranges) {
    if (r.start >= hi || end(r) <= lo) continue;
    for (const w of windows) {
      const start = r.start > w.start ? r.start : w.start;
      const stop = end(r) < w.end ? end(r) : w.end;
      if (stop > start) pieces.push({ start, size: stop - start, of: r });
    }
  }
  return pieces;
}

/** The lowest start and the highest end of `ranges`, rounded out to `round`; undefined for none. */
function span(ranges: readonly Range[], round: bigint): { start: bigint; end: bigint } | undefined {
  if (ranges.length === 0) return undefined;
  let lo = ranges[0]!.start;
  let hi = end(ranges[0]!);
  for (const r of ranges) {
    if (r.start < lo) lo = r.start;
    if (end(r) > hi) hi = end(r);
  }
  return roundOut({ start: lo, size: hi - lo }, round);
}

/** A range rounded out to multiples of `round`, as kexec's identity map rounds what it maps. */
function roundOut(r: Range, round: bigint): { start: bigint; end: bigint } {
  return { start: r.start - (r.start % round), end: ((end(r) + round - 1n) / round) * round };
}

export function modelHandover(given: HandoverInput, tables: HandoverTables = "full"): Handover {
  const full = given.kernelArch === "x86_64" && !given.text ? { ...given, text: DEFAULT_TEXT } : given;
  const format: PagingFormat = full.kernelArch === "x86_64" ? (full.pagingLevels === 5 ? "x86_64-5level" : "x86_64-4level") : full.pagingLevels === 2 ? "i386-2level" : "i386-pae";
  const spec = PAGING_FORMATS[format];
  const notes: string[] = [];
  if (full !== given) notes.push("the kernel text's place is unknown (no \"Kernel code\" in /proc/iomem): assumed at 16 MiB, mapped at 0xffffffff81000000");
  const { control, allocate, note } = controlPages(full);
  notes.push(note);
  const walked = [...full.segments.map((x) => ({ start: x.mem, size: x.memsz })), { start: control & ~(2n * PAGE - 1n), size: 2n * PAGE }, { start: full.entry, size: 1n }];
  const roundBy = full.kernelArch === "x86_64" && full.gbpages ? GiB1 : MiB2;
  // i386 maps at most 896 MiB of lowmem and only the control page in kexec's table: nothing to leave out.
  const scoped = tables === "invariants" && full.kernelArch === "x86_64";
  const input = scoped ? { ...full, ram: piecesNear(full.ram, walked, roundBy), acpi: piecesNear(full.acpi, walked, roundBy) } : full;
  if (scoped) notes.push(`only the ${roundBy === GiB1 ? "1 GiB" : "2 MiB"} blocks of RAM that hold a segment, the control pages or the entry are mapped (${input.ram.length} parts of ${full.ram.length} ranges): the invariants walk nothing else`);
  const kernel = kernelTable(input, format, scoped ? full.ram : undefined);
  const invariants: Invariant[] = [];
  const kexec = new PageTableBuilder(format, allocate);
  const kexecNotes: string[] = [];
  const purgatory = input.segments.find((s) => s.kind === "purgatory");
  const kernelSeg = input.segments.find((s) => s.kind === "kernel");
  const bootParamsSeg = input.segments.find((s) => s.kind === "bootparams");

  /** Map, turning "cannot be mapped in this format" into a broken invariant instead of an exception. */
  const tryMap = (f: () => void, step: StepId, address: bigint): void => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof KexecError) || e.data.notTranslatable !== true) throw e;
      invariants.push({ id: "segment-identity", holds: false, reason: e.message, address, step });
    }
  };

  let switchVa: bigint;
  let switchWhat: string;
  if (input.kernelArch === "x86_64") {
    const round = input.gbpages ? GiB1 : MiB2;
    /**
     * The identity map of RAM or ACPI ranges. With pieces, each whole range is first checked as
     * mapping it would check it, in the same order, and only the pieces of those that pass are
     * mapped: the broken invariants, and their order, are the full model's.
     */
    const identityMap = (ranges: readonly Range[], wholes: readonly Range[], what: (r: Range) => string) => {
      let mappable = (_r: Range) => true;
      const all = span(wholes, round);
      if (scoped && all && !kexec.allMappable(all.start, all.end, all.end)) {
        const failed = new Set<Range>();
        for (const r of wholes) {
          const { start: s, end: e } = roundOut(r, round);
          const before = invariants.length;
          tryMap(() => kexec.assertMappable(s, s, e - s, { get what() { return what(r); } }), "identity_mapped", r.start);
          if (invariants.length > before) failed.add(r);
        }
        mappable = (r) => !failed.has(r);
      }
      for (const r of ranges) {
        const whole = wholeOf(r);
        if (mappable(whole)) tryMap(() => kexec.identity(r.start, r.size, { round, maxPageSize: round, what: what(whole) }), "identity_mapped", whole.start);
      }
    };
    identityMap(input.ram, full.ram, (r) => `System RAM ${hex(r.start)}-${hex(end(r))}`);
    for (const s of input.segments) tryMap(() => kexec.identity(s.mem, s.memsz, { round, maxPageSize: round, what: `${s.kind} segment` }), "copy_segments", s.mem);
    identityMap(input.acpi, full.acpi, (r) => `ACPI ${hex(r.start)}`);
    // The transition mapping: relocate_kernel's virtual address -> the control page's copy (4 KiB).
    switchVa = input.text!.vaddr & ~(PAGE - 1n);
    switchWhat = "relocate_kernel in the kernel text";
    kexec.map(switchVa, control, PAGE, { what: "relocate_kernel's virtual address (init_transition_pgtable)", maxPageSize: PAGE });
    kexecNotes.push(`identity map of System RAM, every segment and the ACPI ranges in ${input.gbpages ? "1 GiB" : "2 MiB"} pages (init_pgtable), plus relocate_kernel's virtual address -> the control page in a 4 KiB page`);
    notes.push(`relocate_kernel's offset in the text is not in a snapshot: the model puts it on the text's first page, ${hex(switchVa)}`);
  } else {
    // machine_kexec_page_table_set_one, twice: the control page at its direct-map address and at its physical one.
    switchVa = input.pageOffset + control;
    switchWhat = "the control page, at its direct-map address";
    kexec.map(switchVa, control, PAGE, { what: "the control page at its kernel virtual address", maxPageSize: PAGE });
    kexec.map(control, control, PAGE, { what: "the control page, identity", maxPageSize: PAGE });
    kexecNotes.push("only the control page, at its kernel virtual address and at its physical address (machine_kexec_page_table_set_one)");
  }
  for (const c of kexec.conflicts) {
    invariants.push({ id: "table-conflict", holds: false, reason: `${c.what}: virtual ${hex(c.vaddr)} already maps ${hex(c.existing)}, cannot also map ${hex(c.wanted)}`, address: c.vaddr, step: "relocate_kernel" });
  }
  const kexecTable = pageTable({ id: "kexec", title: input.kernelArch === "x86_64" ? "kexec's identity table (image->arch.pgd)" : "kexec's control-page table", format, notes: kexecNotes }, kexec);

  // Seed 003: the CR3 write runs at switchVa under the old table; the next fetch is under the new one.
  const inKernel = tryWalk(format, kernel.top, switchVa, kernel.builder.readEntry);
  const inKexec = tryWalk(format, kexec.top, switchVa, kexec.readEntry);
  invariants.push({
    id: "cr3-switch-mapped-in-both",
    holds: inKernel !== undefined && inKexec !== undefined,
    reason: inKernel && inKexec
      ? `the page that loads CR3 (${hex(switchVa)}) is mapped in both tables: to ${hex(inKernel.paddr)} in the kernel's and to the control page copy ${hex(inKexec.paddr)} in kexec's`
      : `the page that loads CR3 (${hex(switchVa)}) is not mapped in ${inKernel ? "kexec's table" : "the running kernel's table"}: the instruction after the switch would fault`,
    address: switchVa, step: "relocate_kernel",
  });

  const identity = (pa: bigint): boolean => tryWalk(format, kexec.top, pa, kexec.readEntry)?.paddr === pa;
  /** The first page of [start, start+size) that is not identity-mapped, walking leaf by leaf. */
  const firstUnmapped = (start: bigint, size: bigint): bigint | undefined => {
    let at = start & ~(PAGE - 1n);
    while (at < start + size) {
      const t = tryWalk(format, kexec.top, at, kexec.readEntry);
      if (!t || t.paddr !== at) return at;
      at = (at & ~(t.pageSize - 1n)) + t.pageSize;
    }
    return undefined;
  };
  const pagingOffCopy = input.kernelArch === "i386";
  invariants.push({
    id: "control-page-identity",
    holds: identity(control),
    reason: identity(control) ? `the control page ${hex(control)} is identity-mapped in kexec's table` : `the control page ${hex(control)} is not identity-mapped in kexec's table: the jump to identity_mapped would fault`,
    address: control, step: "identity_mapped",
  });
  for (const s of input.segments) {
    if (pagingOffCopy) {
      const ok = end({ start: s.mem, size: s.memsz }) <= GiB4;
      invariants.push({ id: "segment-identity", holds: ok, reason: ok ? `${s.kind} ${hex(s.mem)}-${hex(s.mem + s.memsz)} is below 4 GiB, where the paging-off copy reaches` : `${s.kind} ${hex(s.mem)}-${hex(s.mem + s.memsz)} ends above 4 GiB: relocate_kernel_32 copies with paging off and 32-bit physical addresses`, address: s.mem, step: "copy_segments" });
      continue;
    }
    const bad = firstUnmapped(s.mem, s.memsz);
    invariants.push({ id: "segment-identity", holds: bad === undefined, reason: bad === undefined ? `${s.kind} ${hex(s.mem)}-${hex(s.mem + s.memsz)} is identity-mapped` : `${s.kind}: destination page ${hex(bad)} is not identity-mapped in kexec's table: the copy would fault`, address: bad ?? s.mem, step: "copy_segments" });
  }
  const entryOk = pagingOffCopy ? input.entry < GiB4 : identity(input.entry & ~(PAGE - 1n));
  invariants.push({ id: "entry-identity", holds: entryOk, reason: entryOk ? `the purgatory entry ${hex(input.entry)} is ${pagingOffCopy ? "below 4 GiB (paging is off)" : "identity-mapped"}` : `the purgatory entry ${hex(input.entry)} is not reachable when relocate_kernel returns to it`, address: input.entry, step: "purgatory" });

  const steps: HandoverStep[] = [];
  const levels = format === "x86_64-5level" ? "5-level" : format === "x86_64-4level" ? "4-level" : format === "i386-pae" ? "PAE" : "2-level";
  if (input.kernelArch === "x86_64") {
    steps.push({ id: "machine_kexec", title: "machine_kexec()", runsAt: { vaddr: switchVa, what: "kernel text" }, table: "kernel", detail: `the running kernel, interrupts off, calls relocate_kernel at its text address; ${levels} paging (${spec.cr4})` });
    steps.push({ id: "relocate_kernel", title: "relocate_kernel: load CR3", runsAt: { vaddr: switchVa, what: switchWhat }, table: "kernel", switchesTo: "kexec", detail: `saves CR0/CR3/CR4 and loads CR3 with kexec's table at ${hex(kexec.top)}; the next instruction is fetched through the new table at the same virtual address` });
    steps.push({ id: "identity_mapped", title: "identity_mapped", runsAt: { vaddr: control, what: "the control page (identity-mapped)" }, table: "kexec", detail: `jumps to the control page's physical address, keeps CR4.PAE${format === "x86_64-5level" ? " and CR4.LA57" : ""}, reloads CR3 to flush the TLB` });
    steps.push({ id: "copy_segments", title: "copy the segments", runsAt: { vaddr: control, what: "the control page" }, table: "kexec", detail: input.crash ? "a crash load's segments are already in place in the crash region: nothing is copied" : "walks the indirection list: each source page to its destination, 4 KiB at a time, through the identity map" });
    steps.push({ id: "purgatory", title: input.syscall === "kexec_load" ? "kexec-ts purgatory" : "the kernel's purgatory", runsAt: { vaddr: input.entry, what: "the purgatory segment" }, table: "kexec", detail: input.syscall === "kexec_load" ? "loads its own GDT, verifies the SHA-256 of every segment, refuses to jump on a mismatch" : "verifies the SHA-256 of the segments (kexec_file's purgatory)" });
    if (input.entryMode === "entry32") {
      const purg = purgatory ?? { mem: input.entry & ~(PAGE - 1n), memsz: PAGE };
      const bad = firstUnmapped(purg.mem, purg.memsz);
      const below = end({ start: purg.mem, size: purg.memsz }) <= GiB4;
      invariants.push({
        id: "leave-paging-below-4g", holds: bad === undefined && below,
        reason: bad !== undefined ? `the page that leaves long mode (${hex(bad)}) is not identity-mapped: clearing CR0.PG would fetch the next instruction from another page`
          : !below ? `the purgatory ${hex(purg.mem)}-${hex(purg.mem + purg.memsz)} that leaves long mode${format === "x86_64-5level" ? " and LA57" : ""} is above 4 GiB: with paging off the CPU fetches from a 32-bit address`
          : `the purgatory that leaves long mode${format === "x86_64-5level" ? " and LA57" : ""} is identity-mapped and below 4 GiB (${hex(purg.mem)}-${hex(purg.mem + purg.memsz)})`,
        address: purg.mem, step: "leave_long_mode",
      });
      steps.push({ id: "leave_long_mode", title: `leave long mode${format === "x86_64-5level" ? " and 5-level paging" : ""}`, runsAt: { vaddr: purg.mem, what: "the purgatory (identity-mapped, below 4 GiB)" }, table: "kexec", switchesTo: null, detail: "far return to a 32-bit code segment, clear CR0.PG, then EFER.LME and CR4.PAE/LA57: from here addresses are physical" });
    }
  } else {
    steps.push({ id: "machine_kexec", title: "machine_kexec()", runsAt: { vaddr: switchVa, what: "kernel" }, table: "kernel", detail: `copies relocate_kernel into the control page ${hex(control)} and calls it at its direct-map address ${hex(switchVa)}; ${levels} paging` });
    steps.push({ id: "relocate_kernel", title: "relocate_kernel: load CR3", runsAt: { vaddr: switchVa, what: switchWhat }, table: "kernel", switchesTo: "kexec", detail: `loads CR3 with the control-page table at ${hex(kexec.top)}: the next instruction comes through it at the same virtual address` });
    const ok = identity(control) && control + PAGE <= GiB4;
    invariants.push({ id: "leave-paging-below-4g", holds: ok, reason: ok ? `the page that turns paging off (the control page ${hex(control)}) is identity-mapped and below 4 GiB` : `the control page ${hex(control)} that turns paging off is not identity-mapped below 4 GiB`, address: control, step: "identity_mapped" });
    steps.push({ id: "identity_mapped", title: "identity_mapped: paging off", runsAt: { vaddr: control, what: "the control page (identity-mapped)" }, table: "kexec", switchesTo: null, detail: "jumps to the control page's physical address and clears CR0.PG, CR4 and CR3" });
    steps.push({ id: "copy_segments", title: "copy the segments", runsAt: { vaddr: control, what: "the control page, physical" }, table: null, detail: input.crash ? "a crash load's segments are already in place: nothing is copied" : "copies each source page to its destination with 32-bit physical addresses" });
    steps.push({ id: "purgatory", title: input.syscall === "kexec_load" ? "kexec-ts purgatory" : "the kernel's purgatory", runsAt: { vaddr: input.entry, what: "the purgatory segment" }, table: null, detail: "verifies the SHA-256 of every segment with paging off" });
  }
  // The boot protocol: a 64-bit entry needs [kernel, kernel+init_size), the zero page and the command line identity-mapped; a 32-bit one runs with paging off below 4 GiB.
  const entryNeeds = [kernelSeg, bootParamsSeg].filter((s): s is HandoverSegment => s !== undefined);
  if (input.entryMode === "entry64") {
    const bad = entryNeeds.map((s) => ({ s, at: firstUnmapped(s.mem, s.memsz) })).find((x) => x.at !== undefined);
    invariants.push({ id: "kernel-entry-mapped", holds: bad === undefined, reason: bad ? `${bad.s.kind} page ${hex(bad.at!)} is not identity-mapped at the 64-bit entry (boot.rst: the kernel, zero page and command line must be)` : "the kernel (init_size), boot_params and command line are identity-mapped at the 64-bit entry", address: bad?.at ?? input.kernelEntry, step: "kernel_entry" });
  } else {
    const bad = entryNeeds.find((s) => end({ start: s.mem, size: s.memsz }) > GiB4);
    invariants.push({ id: "kernel-entry-mapped", holds: bad === undefined, reason: bad ? `${bad.kind} ${hex(bad.mem)} lies above 4 GiB: the 32-bit entry runs with paging off` : "the kernel and boot_params lie below 4 GiB for the 32-bit entry (paging off)", address: bad?.mem ?? input.kernelEntry, step: "kernel_entry" });
  }
  const pagingOn = input.kernelArch === "x86_64" && input.entryMode === "entry64";
  steps.push({
    id: "kernel_entry", title: input.entryMode === "entry64" ? "the new kernel: startup_64" : "the new kernel: 32-bit entry",
    runsAt: { vaddr: input.kernelEntry, what: input.entryMode === "entry64" ? "kernel + 0x200" : "code32_start" }, table: pagingOn ? "kexec" : null,
    detail: input.entryMode === "entry64" ? `%rsi = boot_params ${hex(input.bootParams)}; the kernel builds its own tables next, in ${levels} paging unless it switches through its own trampoline below 1 MiB` : `%esi = boot_params ${hex(input.bootParams)}, paging off; the kernel enables paging itself`,
  });
  return { arch: input.kernelArch, format, tables: [kernel, kexecTable], steps, invariants, controlPage: control, notes };
}
