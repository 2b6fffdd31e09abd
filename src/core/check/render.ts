/**
 * The human view: one line per rule that is not ok, its evidence indented
 * under it, the remedy last — failures first, then warnings, each in rule
 * order; then one summary line. Ok rules are counted, not listed — the JSON
 * has all of them. Also the kexec_file_load placement `plan -s` shows.
 */
import { hex, table } from "../format.js";
import type { Placement } from "./context.js";
import type { Arch, CheckResult, EvidenceValue } from "./types.js";

function show(v: EvidenceValue): string {
  if (typeof v === "bigint") return `0x${v.toString(16)}`;
  if (Array.isArray(v)) return v.length ? v.map(show).join(", ") : "(none)";
  if (v !== null && typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}=${show(x)}`).join(" ");
  return String(v);
}

export function renderChecks(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  const shown = [...results.filter((r) => r.verdict === "fail"), ...results.filter((r) => r.verdict === "warn")];
  for (const r of shown) {
    lines.push(`${r.verdict.toUpperCase()} ${r.id}: ${r.reason}`);
    for (const [k, v] of Object.entries(r.evidence)) lines.push(`    ${k}: ${show(v)}`);
    if (r.remedy) lines.push(`  remedy: ${r.remedy}`);
  }
  const fails = results.filter((r) => r.verdict === "fail").length;
  const warns = results.filter((r) => r.verdict === "warn").length;
  const oks = results.length - fails - warns;
  const verdict = fails ? "FAIL" : warns ? "WARN" : "OK";
  lines.push(`${verdict}: ${results.length} checks, ${oks} ok, ${warns} warn${warns === 1 ? "" : "s"}, ${fails} fail${fails === 1 ? "" : "s"}${fails ? " — this load would not work" : warns ? "" : " — nothing stands in the way"}`);
  return lines.join("\n");
}

/** What `plan -s` knows: the request it predicts for, and the kernel's placement as predicted. */
export interface FilePlanView {
  placement: Placement;
  crash: boolean;
  kernelArch: Arch | null;
  userArch: Arch;
  /** kexec_file_load's flags for this load. */
  flags: number;
  cmdline: string;
}

export function renderFilePlan(v: FilePlanView): string {
  const p = v.placement;
  if (!p.ok) return `kexec_file_load would refuse or find no room: ${p.message}`;
  const rows = [["  kind", "mem", "memsz"]];
  for (const s of p.segments) rows.push([`  ${s.kind}`, hex(s.mem), hex(s.memsz)]);
  return `kexec_file_load: the kernel places the image itself; its placement in ${p.pool}, as predicted${p.estimated ? " (sizes of the kernel's purgatory and core header estimated)" : ""}:\n  command line: ${v.cmdline || "(empty)"}\n${table(rows, [false, true, true])}`;
}

export function filePlanJson(v: FilePlanView, checks: unknown[]): Record<string, unknown> {
  const p = v.placement;
  if (!p.ok) return { syscall: "kexec_file_load", predicted: true, error: { message: p.message, hint: p.hint }, checks };
  return {
    syscall: "kexec_file_load", predicted: true, estimated: p.estimated, crash: v.crash, kernelArch: v.kernelArch, userArch: v.userArch, flags: hex(v.flags), cmdline: v.cmdline,
    segments: p.segments.map((s) => ({ kind: s.kind, mem: hex(s.mem), memsz: hex(s.memsz) })), checks,
  };
}
