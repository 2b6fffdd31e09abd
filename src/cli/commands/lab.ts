/**
 * `kexec-ts lab --from A --to B [lab flags]` and `kexec-ts lab suite [NAME...]`
 * (src/lab). Exit 0 when the expected outcome happened, 1 when it did not; a
 * lab that cannot run at all (no QEMU, kernels not cached) is a KexecError("lab").
 */
import { KexecError } from "../../core/errors.js";
import { labAnswer, labScenario, renderLabAnswer, runScenario, runSuite, type LabQuestion } from "../../lab/index.js";
import { has, value, type ParsedArgs } from "../options.js";
import { print } from "../output.js";
import { userspaceFlag } from "../request.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  if (operands[0] === "suite") {
    const r = await runSuite(operands.slice(1), { verbose: has(args, "debug") });
    if (r.failed === 0 && r.passed === 0) {
      throw new KexecError("lab", `no scenario ran (${r.skipped} skipped): the lab is not available here`, { skipped: r.skipped }, "run `bash .ci/setup-debian.sh` to install QEMU and cache the kernels");
    }
    return r.failed === 0 ? 0 : 1;
  }
  const question = labQuestion(args);
  const result = await runScenario(labScenario(question), has(args, "debug") ? { onLine: (l) => process.stderr.write(`  | ${l}\n`) } : {});
  const answer = labAnswer(question, result);
  print(args, () => answer, () => renderLabAnswer(answer));
  return answer.ok ? 0 : 1;
}

function labQuestion(args: ParsedArgs): LabQuestion {
  const from = value(args, "from");
  const to = value(args, "to");
  if (from === undefined || to === undefined) {
    throw new KexecError("usage", "lab needs --from A and --to B (lab kernel names such as amd64-6.1, or paths to bzImages)", { field: from === undefined ? "from" : "to" }, "kexec-ts lab --from amd64-6.1 --to amd64-6.12");
  }
  return {
    from, to,
    crash: has(args, "crash"),
    crashkernel: value(args, "crashkernel"),
    append: value(args, "append"),
    mem: value(args, "mem"),
    cpu: value(args, "cpu"),
    userspace: userspaceFlag(args),
    loadFlags: value(args, "load-flags"),
    withKexecTools: has(args, "with-kexec-tools"),
  };
}
