/** `kexec-ts snapshot DIR [--root DIR]`: every file `machine` reads, copied into DIR for --root DIR. */
import { KexecError } from "../../core/errors.js";
import { snapshot } from "../../node/snapshot.js";
import type { ParsedArgs } from "../options.js";
import { machineRoot } from "../request.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  const dest = operands[0];
  if (dest === undefined) throw new KexecError("usage", "snapshot needs a destination DIR", {}, "kexec-ts snapshot /tmp/my-machine");
  const result = await snapshot(machineRoot(args), dest);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}
