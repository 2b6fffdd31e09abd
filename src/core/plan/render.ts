/**
 * A plan for people and for programs: the text `plan` and `-d` print, and the
 * stable JSON (DESIGN.md) that other tools and the web page read. Pure, next to
 * the data, so the web page renders exactly what the command line prints.
 */
import { hex, size, table } from "../format.js";
import type { Plan } from "./plan.js";

export function renderPlan(plan: Plan): string {
  const rows = [["  kind", "mem", "memsz", "bufsz", ""]];
  for (const s of plan.segments) rows.push([`  ${s.kind}`, hex(s.mem), hex(s.memsz), hex(s.buf.length), size(s.memsz)]);
  return [
    `${plan.syscall}: ${plan.crash ? "crash kernel" : "kernel"} for a ${plan.kernelArch} running kernel from a ${plan.userArch} user space`,
    `  entry ${hex(plan.entry)} (purgatory) → ${plan.entryMode === "entry64" ? "64-bit entry" : "32-bit entry"} ${hex(plan.kernelEntry)}, boot_params at ${hex(plan.bootParams)}`,
    `  flags ${hex(plan.flags)}`,
    `  command line: ${plan.cmdline || "(empty)"}`,
    table(rows, [false, true, true, true, false]),
    ...(plan.crashRegion ? [`  crash region ${hex(plan.crashRegion.start)}+${hex(plan.crashRegion.size)} (${size(plan.crashRegion.size)}): segments use ${size(plan.crashRegion.used)}, ${size(plan.crashRegion.size - plan.crashRegion.used)} left for the capture kernel to run in`] : []),
    ...plan.notes.map((n) => `  note: ${n}`),
  ].join("\n");
}

/** The plan as stable JSON (DESIGN.md): hex strings for addresses and sizes. */
export function planJson(plan: Plan, checks: unknown[] = []): Record<string, unknown> {
  return {
    ...(plan.crashRegion ? { crashRegion: { start: hex(plan.crashRegion.start), size: hex(plan.crashRegion.size), used: hex(plan.crashRegion.used), free: hex(plan.crashRegion.size - plan.crashRegion.used) } } : {}),
    syscall: plan.syscall,
    crash: plan.crash,
    kernelArch: plan.kernelArch,
    userArch: plan.userArch,
    entry: hex(plan.entry),
    entryMode: plan.entryMode,
    kernelEntry: hex(plan.kernelEntry),
    bootParams: hex(plan.bootParams),
    flags: hex(plan.flags),
    cmdline: plan.cmdline,
    segments: plan.segments.map((s) => ({ kind: s.kind, mem: hex(s.mem), memsz: hex(s.memsz), bufsz: hex(s.buf.length) })),
    notes: plan.notes,
    checks,
  };
}
