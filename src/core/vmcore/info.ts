/** `vmcore info`: what a dump is, as plain data and as text. */
import { hex, size, table } from "../format.js";
import type { Vmcore } from "./vmcore.js";
import { codecOf } from "./kdump.js";
import type { PhysRange } from "./memory.js";
import { describeDumpLevel } from "./exclude.js";

export interface VmcoreSummary {
  format: "elf" | "kdump";
  incomplete: boolean;
  /** Why the file is shorter than its headers say (a copy cut off), when it is. */
  cutShort?: string;
  arch: string;
  kernelVersion: string | undefined;
  buildId: string | undefined;
  pageSize: number;
  pagingLevels: number | undefined;
  cpus: number;
  crashTime: string | undefined;
  kaslrOffset: string | undefined;
  physBase: string | undefined;
  memory: { start: string; end: string; size: string }[];
  memoryTotal: string;
  compression: string;
  dumpLevel: number | undefined;
  excluded: string[];
  pagesPresent: string | undefined;
  pagesDumped: string | undefined;
  /** kexec-ts's own note in an ELF dump it wrote. */
  note: string | undefined;
}

export function summarizeVmcore(core: Vmcore): VmcoreSummary {
  const info = core.vmcoreinfo;
  const total = core.memory.ranges.reduce((n, r) => n + (r.end - r.start), 0n);
  // i386: 3 levels with PAE (VMCOREINFO says CONFIG_X86_PAE=y), else 2.
  const levels = core.machine === "x86_64" ? (info?.numbers.get("pgtable_l5_enabled") === 1n ? 5 : 4) : info === undefined ? undefined : info.other.get("CONFIG_X86_PAE") === "y" ? 3 : 2;
  const crash = info?.crashTime;
  const dumpLevel = core.kdump?.header.dump_level;
  let excluded: string[] = [];
  const markedLevel = core.mark ? /dump level (\d+)/.exec(core.mark) : null;
  if (dumpLevel !== undefined) excluded = describeDumpLevel(dumpLevel);
  else if (markedLevel) excluded = describeDumpLevel(Number(markedLevel[1]));
  else if (core.elf) {
    const cut = core.elf.loads.filter((l) => l.p_filesz < l.p_memsz).reduce((n, l) => n + (l.p_memsz - l.p_filesz), 0n);
    excluded = cut > 0n ? [`${size(cut)} of memory not in the file (p_filesz < p_memsz); the ELF format does not record why`] : [];
  }
  const physBase = info?.numbers.get("phys_base");
  return {
    format: core.format,
    incomplete: core.incomplete,
    ...(core.cutShort ? { cutShort: core.cutShort } : {}),
    arch: core.machine,
    kernelVersion: info?.osRelease ?? core.kdump?.header.utsname.release,
    buildId: info?.buildId,
    pageSize: core.memory.pageSize,
    pagingLevels: levels,
    cpus: core.cpus,
    crashTime: crash === undefined ? undefined : new Date(Number(crash) * 1000).toISOString(),
    kaslrOffset: info?.kernelOffset === undefined ? undefined : hex(info.kernelOffset),
    physBase: physBase === undefined ? undefined : hex(BigInt.asUintN(64, physBase)),
    memory: mergeRanges(core.memory.ranges).map((r) => ({ start: hex(r.start), end: hex(r.end), size: size(r.end - r.start) })),
    memoryTotal: size(total),
    compression: core.kdump ? codecOf(core.kdump.header.status) ?? "none" : "none (ELF)",
    dumpLevel: dumpLevel ?? (markedLevel ? Number(markedLevel[1]) : undefined),
    excluded,
    note: core.mark,
    pagesPresent: core.kdump ? String(core.kdump.presentPages) : undefined,
    pagesDumped: core.kdump ? String(core.kdump.dumpedPages) : core.elf ? String(core.elf.loads.filter((l) => l.p_filesz > 0n).length) + " PT_LOAD segments with data" : undefined,
  };
}

export function renderVmcoreSummary(s: VmcoreSummary, file: string): string {
  const rows: string[][] = [
    ["file", file],
    ["format", `${s.format === "elf" ? "ELF core" : "kdump-compressed (makedumpfile)"}${s.incomplete ? "  — INCOMPLETE: the dump was cut short" : ""}`],
    ...(s.cutShort ? [["cut short", `${s.cutShort} (copied or written only in part)`]] : []),
    ["kernel", s.kernelVersion ?? "unknown (no VMCOREINFO)"],
    ["arch", s.arch + (s.pagingLevels ? `, ${s.pagingLevels}-level paging${s.arch === "i386" && s.pagingLevels === 3 ? " (PAE)" : ""}` : "")],
    ["page size", String(s.pageSize)],
    ["CPUs", String(s.cpus)],
    ["crash time", s.crashTime ?? "unknown"],
    ["KASLR offset", s.kaslrOffset ?? "unknown"],
    ["phys_base", s.physBase ?? "unknown"],
    ["memory", `${s.memoryTotal} in ${s.memory.length} range${s.memory.length === 1 ? "" : "s"}`],
    ["compression", s.compression],
  ];
  if (s.buildId) rows.push(["build id", s.buildId]);
  if (s.dumpLevel !== undefined) rows.push(["dump level", `${s.dumpLevel}`]);
  if (s.note) rows.push(["kexec-ts note", s.note]);
  if (s.pagesPresent !== undefined) rows.push(["pages", `${s.pagesDumped} dumped of ${s.pagesPresent} present`]);
  const lines = [table(rows)];
  lines.push("", "memory ranges:");
  for (const r of s.memory) lines.push(`  [${r.start}, ${r.end})  ${r.size}`);
  if (s.excluded.length) {
    lines.push("", "excluded:");
    for (const e of s.excluded) lines.push(`  ${e}`);
  }
  return lines.join("\n");
}

/** Touching ranges as one (an ELF dump splits memory into a PT_LOAD per run of dumped pages). */
function mergeRanges(ranges: readonly PhysRange[]): PhysRange[] {
  const out: PhysRange[] = [];
  for (const r of [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1))) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = r.end > last.end ? r.end : last.end;
    else out.push({ ...r });
  }
  return out;
}
