/**
 * The check contract: every rule looks at the same input (an image, the
 * machine model and what the user asked for) and returns one verdict with the
 * numbers it used. Pure data in and out, so `check`, `plan`, `load`, the
 * tests and the web page all get the same answers.
 */
import type { KernelImage } from "../image/index.js";
import type { Machine } from "../machine/model.js";
import type { Request } from "../plan/request.js";
import type { KexecLoadPlanner } from "../plan/plan.js";

export type { Arch, Request, Syscall, SyscallRequest } from "../plan/request.js";
export type Verdict = "ok" | "warn" | "fail";

export type EvidenceValue = string | number | boolean | bigint | null | EvidenceValue[] | { [key: string]: EvidenceValue };
export type Evidence = Record<string, EvidenceValue>;

export interface CheckResult {
  /** Stable, kebab-case: scripts and the web page key on it. */
  id: string;
  verdict: Verdict;
  /** One line: what holds, or what goes wrong and where. */
  reason: string;
  /** The numbers and strings the verdict was computed from. */
  evidence: Evidence;
  /** What a user can do about a warn or fail; empty for ok. */
  remedy: string;
}

export interface CheckInput {
  image: KernelImage;
  machine: Machine;
  request: Request;
  /** Whether the loader runs with CAP_SYS_BOOT (root); undefined when not known (a snapshot replay). */
  isRoot?: boolean | undefined;
  /** The files' paths, for verdicts that name them; the checks never open them. */
  files?: { image?: string | undefined; initrd?: string | undefined } | undefined;
  /**
   * The kexec_load placement a plan of this load will fill (plan.ts kexecLoadPlanner), so that the
   * checks and the plan lay the load out once; used when it was made for this image, machine and request.
   */
  kexecLoad?: KexecLoadPlanner | undefined;
}

export interface CheckSummary {
  verdict: Verdict;
  exitCode: 0 | 1 | 2;
  counts: Record<Verdict, number>;
}
