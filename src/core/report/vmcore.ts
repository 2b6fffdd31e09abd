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
import { clearBit, excludeByPageFlags, presentBitmaps, testBit, type ExclusionCounts } from "../vmcore/exclude.js";
import { summarizeVmcore, type VmcoreSummary } from "../vmcore/info.js";
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

const LOG_LINES = 60;
const RANGES_PER_TYPE = 2000;

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

export function vmcoreReport(core: Vmcore, file: string): VmcoreReport {
  const summary = summarizeVmcore(core);
  const problems: string[] = [];
  const ps = core.memory.pageSize;
  const toRanges = (runs: { start: number; end: number }[]) => runs.slice(0, RANGES_PER_TYPE).map((r) => ({ start: hex(BigInt(r.start) * BigInt(ps)), end: hex(BigInt(r.end) * BigInt(ps)) }));

  // What the file holds, page by page where the format has a bitmap; ELF says it per PT_LOAD.
  const bitmaps = presentBitmaps(core.memory.ranges, ps);
  const dumped = new RunList();
  const missing = bitmaps.dumpable;
  const maxPfn = Number(bitmaps.maxPfn);
  const has = core.memory.hasPage?.bind(core.memory);
  if (has) {
    for (const [first, end] of bitmaps.present.runs) for (let p = first; p < end; p++) {
      if (has(BigInt(p))) {
        dumped.add(p, 1);
        clearBit(missing, p);
      }
    }
  } else {
    // ELF: a page is stored when it starts inside a PT_LOAD's file part; worked out per segment,
    // not per page (a sparse 1 TiB core took 11 s page by page, and a web page's tab with it).
    for (const [first, end] of storedElfRuns(core.elf?.loads ?? [], bitmaps.present.runs, ps)) {
      dumped.add(first, end - first);
      for (let p = first; p < end; p++) {
        if ((p & 7) === 0 && p + 8 <= end) { missing[p >>> 3] = 0; p += 7; } else clearBit(missing, p);
      }
    }
  }
  const byType = new Map<LeftOutType, RunList>();
  const list = (t: LeftOutType) => byType.get(t) ?? byType.set(t, new RunList()).get(t)!;
  let log: VmcoreReport["log"] = [];
  // The page-flag scan and the log each need only the crashed kernel's memory: read apart, so a
  // dump whose VMCOREINFO lacks what one needs (SIZE(page)) still shows the other (the panic).
  const said = (what: string, read: () => void): void => {
    try {
      read();
    } catch (e) {
      if (!(e instanceof KexecError)) throw e;
      problems.push(`${what}: ${e.message}`);
    }
  };
  let mem: ReturnType<typeof vmcoreKernelMemory> | undefined;
  said("the crashed kernel's memory (why pages are missing, the log)", () => { mem = vmcoreKernelMemory(core); });
  if (mem !== undefined) {
    const kernel = mem;
    // 30: cache, private cache, user, free: every reason struct page can tell.
    said("why pages are missing", () => excludeByPageFlags(kernel, core.vmcoreinfo!, bitmaps, 30, ps, (pfn, n, key) => list(key).add(pfn, n)));
    said("the log", () => {
      log = readLockless(kernel, core.vmcoreinfo!).slice(-LOG_LINES).map((r) => {
        const secs = r.tsNsec / 1000000000n;
        const micros = (r.tsNsec % 1000000000n) / 1000n;
        return { time: `${secs}.${micros.toString().padStart(6, "0")}`, text: r.text, panic: /Kernel panic|BUG:|Oops|sysrq: Trigger a crash|RIP:/.test(r.text) };
      });
    });
  }
  // What struct page does not explain: zero pages when the dump level drops them (bit 1), else a hole.
  const rest: LeftOutType = (summary.dumpLevel ?? 0) & 1 ? "zero" : "unknown";
  // A byte at a time where it is all clear or all set: a sparse core has billions of such pages.
  const restList = list(rest);
  for (let p = 0; p < maxPfn; p++) {
    if ((p & 7) === 0 && p + 8 <= maxPfn) {
      const b = missing[p >>> 3]!;
      if (b === 0) { p += 7; continue; }
      if (b === 0xff) { restList.add(p, 8); p += 7; continue; }
    }
    if (testBit(missing, p)) restList.add(p, 1);
  }
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
