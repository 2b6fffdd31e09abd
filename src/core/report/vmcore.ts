/**
 * A vmcore on the report page: the ranges the file holds, the pages it left out and why, and the
 * crashed kernel's last log lines with the panic. Neither format records why a page is missing,
 * so the reason is read again from the crashed kernel's struct pages (exclude.ts's classification,
 * run over the missing pages only); a missing page none of those explain was a zero page when the
 * dump level excludes zero pages.
 */
import { KexecError } from "../errors.js";
import { hex } from "../format.js";
import { readLockless } from "../vmcore/dmesg.js";
import { WINDOW_PAGES, windowSpan } from "../vmcore/dump-writer.js";
import { PresentPages, clearBit, emptyCounts, excludeByPageFlags, testBit, type DumpBitmaps, type ExclusionCounts } from "../vmcore/exclude.js";
import { summarizeVmcore, type VmcoreSummary } from "../vmcore/info.js";
import { REPORT_LIMIT } from "../vmcore/page-frame-limits.js";
import { vmcoreKernelMemory, type Vmcore } from "../vmcore/vmcore.js";

export type LeftOutType = keyof ExclusionCounts | "unknown";

export interface VmcoreReport {
  file: string;
  summary: VmcoreSummary;
  /** Stored in the file. */
  dumped: { start: string; end: string }[];
  /** Missing from the file, by why. */
  leftOut: { type: LeftOutType; pages: number; ranges: { start: string; end: string }[] }[];
  /** The last lines of the crashed kernel's log; `panic` marks the panic and oops lines. */
  log: { time: string; text: string; panic: boolean }[];
  /** What could not be read (a log without VMCOREINFO, struct pages not in the dump...). */
  problems: string[];
}

export interface VmcoreReportOptions {
  /**
   * Page frames per window of the missing pages' bitmap: a positive multiple of 8; WINDOW_PAGES
   * by default. Tests give a few pages: the report is the one-window report wherever no free
   * block or compound page crosses a window's edge (the scan cuts its run there, as a kdump
   * writer's window does; WINDOW_PAGES is a multiple of the scan's groups, which none crosses).
   */
  windowPages?: number;
}

const LOG_LINES = 60;
const RANGES_PER_TYPE = 2000;

/** Page frame runs added in ascending order, a run touching the last one merged into it (across windows too). */
class RunList {
  readonly runs: { start: number; end: number }[] = [];
  pages = 0;
  add(pfn: number, n: number): void {
    this.pages += n;
    const last = this.runs[this.runs.length - 1];
    if (last && last.end === pfn) last.end += n;
    else this.runs.push({ start: pfn, end: pfn + n });
  }
}

/**
 * The runs of sorted, disjoint `runs` clipped to [first, end), from index `cursor.at` on, which
 * moves past the runs that end before `end`: windows come in ascending order, and a run that
 * crosses a window's edge is visited in both.
 */
function* runsInWindow(runs: readonly (readonly [number, number])[], first: number, end: number, cursor: { at: number }): Generator<[number, number]> {
  while (cursor.at < runs.length && runs[cursor.at]![1] <= first) cursor.at++;
  for (let i = cursor.at; i < runs.length && runs[i]![0] < end; i++) {
    const a = Math.max(first, runs[i]![0]);
    const b = Math.min(end, runs[i]![1]);
    if (b > a) yield [a, b];
  }
}

/**
 * The report is made a window of page frames at a time, as the kdump writer makes its 2nd bitmap
 * (dump-writer.ts): a bitmap of every page frame held whole was 32 MiB per TiB, and stopped at
 * 8 TiB (page frame 2^31), where a machine with a NUMA node placed at 12 TiB has its memory. Only
 * the run lists grow with the machine; windows without a present page are passed over.
 */
export function vmcoreReport(core: Vmcore, file: string, opts: VmcoreReportOptions = {}): VmcoreReport {
  const summary = summarizeVmcore(core);
  const problems: string[] = [];
  const ps = core.memory.pageSize;
  const toRanges = (runs: { start: number; end: number }[]) => runs.slice(0, RANGES_PER_TYPE).map((r) => ({ start: hex(BigInt(r.start) * BigInt(ps)), end: hex(BigInt(r.end) * BigInt(ps)) }));

  let present: PresentPages;
  try {
    present = new PresentPages(core.memory.ranges, ps, REPORT_LIMIT);
  } catch (e) {
    throw e instanceof KexecError ? e.inFile(file) : e;
  }
  const maxPfn = present.maxPfn;
  const span = windowSpan(maxPfn, opts.windowPages ?? WINDOW_PAGES);
  const buffer = new Uint8Array(Math.ceil(Math.min(span, maxPfn) / 8));
  // The window's missing pages: set where a page is present and not in the file; the scan then
  // clears those struct page explains, and what is left is the rest.
  const bitmaps: DumpBitmaps = { present, dumpable: buffer, dumpableFirst: 0, maxPfn: BigInt(maxPfn), counts: emptyCounts(), presentPages: BigInt(present.count) };

  const dumped = new RunList();
  const has = core.memory.hasPage?.bind(core.memory);
  // ELF: a page is stored when it starts inside a PT_LOAD's file part; worked out per segment,
  // not per page (a sparse 1 TiB core took 11 s page by page, and a web page's tab with it).
  const elfStored = has ? [] : storedElfRuns(core.elf?.loads ?? [], present.runs, ps);
  const byType = new Map<LeftOutType, RunList>();
  const list = (t: LeftOutType) => byType.get(t) ?? byType.set(t, new RunList()).get(t)!;
  let log: VmcoreReport["log"] = [];
  // The page-flag scan and the log each need only the crashed kernel's memory: read apart, so a
  // dump whose VMCOREINFO lacks what one needs (SIZE(page)) still shows the other (the panic).
  const said = (what: string, read: () => void): boolean => {
    try {
      read();
      return true;
    } catch (e) {
      if (!(e instanceof KexecError)) throw e;
      problems.push(`${what}: ${e.message}`);
      return false;
    }
  };
  let mem: ReturnType<typeof vmcoreKernelMemory> | undefined;
  said("the crashed kernel's memory (why pages are missing, the log)", () => { mem = vmcoreKernelMemory(core); });
  // A scan that failed in one window is not tried again in the next: it is said once, and the
  // pages from there on are the rest, as when the scan ran over the whole bitmap at once.
  let scanning = mem !== undefined;
  // What struct page does not explain: zero pages when the dump level drops them (bit 1), else a
  // hole. Listed after the scan's reasons (the scan never says "zero": that needs the page data).
  const rest: LeftOutType = (summary.dumpLevel ?? 0) & 1 ? "zero" : "unknown";
  const restList = new RunList();
  const presentAt = { at: 0 };
  const storedAt = { at: 0 };
  for (let first = 0; first < maxPfn; first += span) {
    const end = Math.min(maxPfn, first + span);
    // A window without a present page (most of a machine with a node at 12 TiB) holds nothing to list.
    if (!present.anyIn(first, end - first)) continue;
    const missing = (bitmaps.dumpable = buffer.subarray(0, Math.ceil((end - first) / 8)));
    bitmaps.dumpableFirst = first;
    present.bytesInto(missing, first / 8);
    if (has) {
      for (const [a, b] of runsInWindow(present.runs, first, end, presentAt)) for (let p = a; p < b; p++) {
        if (has(BigInt(p))) {
          dumped.add(p, 1);
          clearBit(missing, p - first);
        }
      }
    } else {
      for (const [a, b] of runsInWindow(elfStored, first, end, storedAt)) {
        dumped.add(a, b - a);
        for (let q = a - first; q < b - first; q++) {
          if ((q & 7) === 0 && q + 8 <= b - first) { missing[q >>> 3] = 0; q += 7; } else clearBit(missing, q);
        }
      }
    }
    if (scanning) {
      const kernel = mem!;
      // 30: cache, private cache, user, free: every reason struct page can tell.
      scanning = said("why pages are missing", () => excludeByPageFlags(kernel, core.vmcoreinfo!, bitmaps, 30, ps, (pfn, n, key) => list(key).add(pfn, n)));
    }
    // A byte at a time where it is all clear or all set: a sparse core has billions of such pages.
    const bits = end - first;
    for (let q = 0; q < bits; q++) {
      if ((q & 7) === 0 && q + 8 <= bits) {
        const b = missing[q >>> 3]!;
        if (b === 0) { q += 7; continue; }
        if (b === 0xff) { restList.add(first + q, 8); q += 7; continue; }
      }
      if (testBit(missing, q)) restList.add(first + q, 1);
    }
  }
  bitmaps.scanBuffer = undefined;
  if (mem !== undefined) {
    const kernel = mem;
    said("the log", () => {
      log = readLockless(kernel, core.vmcoreinfo!).slice(-LOG_LINES).map((r) => {
        const secs = r.tsNsec / 1000000000n;
        const micros = (r.tsNsec % 1000000000n) / 1000n;
        return { time: `${secs}.${micros.toString().padStart(6, "0")}`, text: r.text, panic: /Kernel panic|BUG:|Oops|sysrq: Trigger a crash|RIP:/.test(r.text) };
      });
    });
  }
  if (!byType.has(rest)) byType.set(rest, restList);
  const leftOut = [...byType].filter(([, r]) => r.pages > 0).map(([type, r]) => ({ type, pages: r.pages, ranges: toRanges(r.runs) }));
  return { file, summary, dumped: toRanges(dumped.runs), leftOut, log, problems };
}

/** The page frame runs [first, end) of `present` whose pages start inside some PT_LOAD's file part, sorted and merged. */
export function storedElfRuns(loads: readonly { p_paddr: bigint; p_filesz: bigint }[], present: readonly (readonly [number, number])[], pageSize: number): [number, number][] {
  const ps = BigInt(pageSize);
  const spans = loads.filter((l) => l.p_filesz > 0n)
    .map((l) => [Number((l.p_paddr + ps - 1n) / ps), Number((l.p_paddr + l.p_filesz + ps - 1n) / ps)] as [number, number])
    .filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of spans) {
    const last = merged[merged.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  const out: [number, number][] = [];
  let i = 0;
  for (const [first, end] of present) {
    while (i < merged.length && merged[i]![1] <= first) i++;
    for (let j = i; j < merged.length && merged[j]![0] < end; j++) {
      const a = Math.max(first, merged[j]![0]);
      const b = Math.min(end, merged[j]![1]);
      if (b > a) out.push([a, b]);
    }
  }
  return out;
}
