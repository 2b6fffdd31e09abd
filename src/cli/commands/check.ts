/**
 * `kexec-ts check -l|-p IMAGE [load flags] [--root DIR] [--json]`: the
 * verdicts alone, nothing loaded. Exit 0 all ok, 1 warnings only, 2 any fail.
 */
import { checksJson, renderChecks, summarize } from "../../core/check/index.js";
import { print } from "../output.js";
import type { ParsedArgs } from "../options.js";
import { prepareLoad } from "../prepare.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  const { checks } = await prepareLoad(args, operands, "check");
  print(args, () => checksJson(checks), () => renderChecks(checks));
  return summarize(checks).exitCode;
}
