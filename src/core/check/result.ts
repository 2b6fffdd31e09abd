/** Small constructors so each rule reads as its verdicts. */
import type { CheckResult, Evidence } from "./types.js";
import type { Context } from "./context.js";

export type Rule = (c: Context) => CheckResult;

export function ok(id: string, reason: string, evidence: Evidence = {}): CheckResult {
  return { id, verdict: "ok", reason, evidence, remedy: "" };
}

export function warn(id: string, reason: string, evidence: Evidence, remedy: string): CheckResult {
  return { id, verdict: "warn", reason, evidence, remedy };
}

export function fail(id: string, reason: string, evidence: Evidence, remedy: string): CheckResult {
  return { id, verdict: "fail", reason, evidence, remedy };
}

/** "kexec_file_load", or "kexec_file_load, then kexec_load" under -a after a refusal. */
export function syscallEvidence(c: Context): Evidence {
  return { syscall: c.tries.join(" then "), requested: c.req.syscall };
}
