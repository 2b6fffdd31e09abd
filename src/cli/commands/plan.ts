/**
 * `kexec-ts plan -l|-p IMAGE [load flags] [--json]`: the exact segments,
 * entry and flags kexec_load would be given, and the checks; nothing is
 * loaded. With -s, the kernel's own kexec_file_load placement as predicted.
 * Exit 0/1/2 as `check`; 3 when no kexec_load plan can be made.
 */
import { checksJson, filePlanJson, predictFilePlacement, renderChecks, renderFilePlan, summarize, type FilePlanView } from "../../core/check/index.js";
import { EXIT_STATUS, isKexecError, type KexecError } from "../../core/errors.js";
import { kexecFileFlags } from "../../core/plan/kexec-abi.js";
import type { Plan } from "../../core/plan/plan.js";
import { planJson, renderPlan } from "../../core/plan/render.js";
import { print } from "../output.js";
import type { ParsedArgs } from "../options.js";
import { fillPlan, prepareLoad, type PreparedLoad } from "../prepare.js";
import { loaderIsRoot } from "../request.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  const p = await prepareLoad(args, operands, "plan");
  if (p.request.syscall === "kexec_file_load") return planFile(p, args);
  let plan: Plan | undefined;
  let planError: KexecError | undefined;
  try {
    plan = await fillPlan(p, "show");
  } catch (e) {
    // No room (or a command line too long) is an answer to `plan`, shown with the checks that explain it.
    if (!isKexecError(e) || e.code !== "plan") throw e;
    planError = e;
  }
  const checks = checksJson(p.checks).checks;
  print(args,
    () => (plan ? planJson(plan, checks) : { error: planError?.toJSON(), checks }),
    () => `${plan ? renderPlan(plan) : `no kexec_load plan: ${planError?.message}`}\n\n${renderChecks(p.checks)}`);
  if (planError) return EXIT_STATUS.plan;
  return summarize(p.checks).exitCode;
}

/**
 * `plan -s`: with kexec_file_load the kernel parses and places the image
 * itself; what can be shown is its placement as predicted (the same top-down
 * hole search in System RAM or crashk_res, with the kernel's minimums), marked
 * as an estimate where the kernel's own sizes (its purgatory, the core header) are not known.
 */
function planFile(p: PreparedLoad, args: ParsedArgs): number {
  const view: FilePlanView = {
    placement: predictFilePlacement({ image: p.image, machine: p.machine, request: p.request, isRoot: loaderIsRoot(args) }),
    crash: p.request.crash,
    kernelArch: p.machine.kernelArch,
    userArch: p.request.userArch,
    flags: kexecFileFlags(p.request.crash, p.initrdPath !== undefined),
    cmdline: p.request.cmdline,
  };
  print(args, () => filePlanJson(view, checksJson(p.checks).checks), () => `${renderFilePlan(view)}\n\n${renderChecks(p.checks)}`);
  return view.placement.ok ? summarize(p.checks).exitCode : EXIT_STATUS.plan;
}
