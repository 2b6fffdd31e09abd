/**
 * `kexec-ts -l|-p IMAGE [load flags]`: the drop-in for `kexec -l` / `kexec -p`.
 * The checks run first and a failing one stops the load unless --force. The
 * syscall choice follows kexec-tools: -s file only, -c kexec_load only, -a
 * (default) file first and kexec_load when the kernel lacks or refuses the
 * file loader in a way kexec_load might not (ENOSYS, EINVAL, ENOEXEC, ENOTSUP) —
 * never after a permission or signature refusal, which kexec_load would only repeat.
 */
import { readFileSync } from "node:fs";
import { renderChecks, summarize } from "../../core/check/index.js";
import { KexecError, isKexecError } from "../../core/errors.js";
import { kexecFileFlags } from "../../core/plan/kexec-abi.js";
import { renderPlan } from "../../core/plan/render.js";
import { kexecFileLoad, kexecLoad } from "../../node/syscalls.js";
import { errnoContext } from "../errno-context.js";
import { has, type ParsedArgs } from "../options.js";
import { fillPlan, prepareLoad } from "../prepare.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  const p = await prepareLoad(args, operands);
  const summary = summarize(p.checks);
  if (summary.exitCode === 2 && !has(args, "force")) {
    process.stderr.write(`${renderChecks(p.checks.filter((c) => c.verdict !== "ok"))}\n`);
    const failed = p.checks.filter((c) => c.verdict === "fail");
    throw new KexecError("check", `not loading: ${failed.map((c) => `${c.id} (${c.reason})`).join("; ")}`, { checks: failed.map((c) => c.id) }, "fix the cause named above, or add --force to load anyway");
  }
  for (const c of p.checks.filter((x) => x.verdict === "warn")) process.stderr.write(`kexec-ts: warning: ${c.id}: ${c.reason}\n`);
  const ctx = errnoContext(p.machine, p.image);
  try {
    await syscalls(p, args, ctx);
  } catch (e) {
    throw p.request.crash ? withCrashKernelState(e, p.machine.kexec.crashLoaded) : e;
  }
  return 0;
}

async function syscalls(p: Awaited<ReturnType<typeof prepareLoad>>, args: ParsedArgs, ctx: ReturnType<typeof errnoContext>): Promise<void> {
  if (p.request.syscall !== "kexec_load") {
    try {
      kexecFileLoad(p.imagePath, p.initrdPath, p.request.cmdline, kexecFileFlags(p.request.crash, p.initrdPath !== undefined), ctx);
      if (has(args, "debug")) process.stderr.write(`kexec-ts: loaded ${p.imagePath} with kexec_file_load\n`);
      return;
    } catch (e) {
      if (!isKexecError(e) || p.request.syscall === "kexec_file_load") throw e;
      if (e.data.fallbackAllowed !== true) {
        // -a: say why kexec_load is not tried, so nobody reaches for -c expecting another outcome.
        const lockedDown = p.machine.lockdown !== null && p.machine.lockdown !== "none";
        const why = lockedDown ? `lockdown=${p.machine.lockdown} refuses kexec_load outright`
          : e.data.errno === "EFBIG" ? "-a falls back only after ENOSYS, EINVAL, ENOEXEC or ENOTSUP, as kexec-tools' does (-c loads with kexec_load)"
          : "kexec_load would meet the same permission or signature refusal";
        throw new KexecError(e.code, `${e.message}; not falling back to kexec_load: ${why}`, e.data, e.hint);
      }
      process.stderr.write(`kexec-ts: ${e.message}\nkexec-ts: falling back to kexec_load\n`);
    }
  }
  const plan = await fillPlan(p, "load");
  if (has(args, "debug")) process.stderr.write(`${renderPlan(plan)}\n`);
  kexecLoad(plan.entry, plan.segments, plan.flags, ctx);
}

/**
 * The kernel frees the armed crash kernel before it loads a new one (kexec_load and
 * kexec_file_load alike), so a -p the kernel refuses leaves nothing armed. Say so, with what to
 * run, instead of letting a failed reload look harmless.
 */
function withCrashKernelState(e: unknown, armedBefore: boolean | null): unknown {
  if (!isKexecError(e) || armedBefore !== true) return e;
  try {
    if (readFileSync("/sys/kernel/kexec_crash_loaded", "utf8").trim() === "1") return e;
  } catch {
    return e;
  }
  return new KexecError(e.code, `${e.message}; the crash kernel that was armed before is gone (the kernel frees it before loading a new one): kdump is not armed now`, e.data,
    `${e.hint ?? "fix the cause"}; then load a crash kernel again (kdump-config load, or the -p command that armed it)`);
}
