/**
 * `kexec-ts check`: every rule over one input, in a fixed order (who may load,
 * which syscall, the image against the running kernel, placement, the crash
 * region). Pure: `load` and `plan` run the same rules before they act.
 */
import { buildContext, type Context } from "./context.js";
import type { Rule } from "./result.js";
import { entryMode, imageArch, kexecFileAvailable, kexecFileProbe, kexecFileSize, userArch } from "./rules-arch.js";
import { efiRuntime } from "./rules-efi.js";
import { crashRegion, crashRegionReach, crashRegionSize, crashCmdline } from "./rules-crash.js";
import { paging5Level, pagingPhysmemLimit } from "./rules-paging.js";
import { handoverPageTables } from "./rules-handover.js";
import { alreadyLoaded, kexecLoadDisabled, kexecSupported, lockdown, notRoot, secureBoot } from "./rules-policy.js";
import { above4G, cmdlineSize, initrdAddrMax, memBounds, placementHole, protocolVersion, relocatable } from "./rules-placement.js";
import type { CheckInput, CheckResult, CheckSummary, EvidenceValue, Verdict } from "./types.js";

export * from "./types.js";
export { filePlanJson, renderChecks, renderFilePlan, type FilePlanView } from "./render.js";
export { diagnoseNoReservation } from "./rules-crash.js";
export { predictFilePlacement, syscallsTried, type Placement } from "./context.js";
export { handoverFor, handoverInput } from "./rules-handover.js";

export const RULES: readonly Rule[] = [
  kexecSupported,
  notRoot,
  kexecLoadDisabled,
  lockdown,
  secureBoot,
  alreadyLoaded,
  userArch,
  kexecFileAvailable,
  kexecFileProbe,
  kexecFileSize,
  imageArch,
  entryMode,
  paging5Level,
  pagingPhysmemLimit,
  protocolVersion,
  relocatable,
  above4G,
  initrdAddrMax,
  cmdlineSize,
  efiRuntime,
  crashRegion,
  crashRegionSize,
  crashRegionReach,
  crashCmdline,
  memBounds,
  placementHole,
  handoverPageTables,
];

export function runChecks(input: CheckInput): CheckResult[] {
  return checkWithContext(input).results;
}

/** The results and the context they were computed in (its placement, for pictures of the plan). */
export function checkWithContext(input: CheckInput): { results: CheckResult[]; context: Context } {
  const context = buildContext(input);
  return { results: RULES.map((rule) => rule(context)), context };
}

const RANK: Record<Verdict, number> = { ok: 0, warn: 1, fail: 2 };

/** The worst verdict and `check`'s exit code: 0 all ok, 1 warnings only, 2 any fail. */
export function summarize(results: readonly CheckResult[]): CheckSummary {
  const counts: Record<Verdict, number> = { ok: 0, warn: 0, fail: 0 };
  let worst: Verdict = "ok";
  for (const r of results) {
    counts[r.verdict]++;
    if (RANK[r.verdict] > RANK[worst]) worst = r.verdict;
  }
  return { verdict: worst, exitCode: RANK[worst] as 0 | 1 | 2, counts };
}

export type JsonEvidence = string | number | boolean | null | JsonEvidence[] | { [key: string]: JsonEvidence };

/** A result as JSON: bigints become "0x..." strings, because JSON numbers lose 64-bit values. */
export function checkJson(r: CheckResult): { id: string; verdict: Verdict; reason: string; evidence: Record<string, JsonEvidence>; remedy: string } {
  const conv = (v: EvidenceValue): JsonEvidence => {
    if (typeof v === "bigint") return `0x${v.toString(16)}`;
    if (Array.isArray(v)) return v.map(conv);
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, conv(x)]));
    return v;
  };
  return { id: r.id, verdict: r.verdict, reason: r.reason, evidence: Object.fromEntries(Object.entries(r.evidence).map(([k, v]) => [k, conv(v)])), remedy: r.remedy };
}

export function checksJson(results: readonly CheckResult[]): { checks: ReturnType<typeof checkJson>[] } {
  return { checks: results.map(checkJson) };
}
