/**
 * The human view: one line per rule that is not ok, its evidence indented
 * under it, the remedy last — failures first, then warnings, each in rule
 * order; then one summary line. Ok rules are counted, not listed — the JSON
 * has all of them.
 */
import type { CheckResult, EvidenceValue } from "./types.js";

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
