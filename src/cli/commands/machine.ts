/** `kexec-ts machine [--root DIR] [--json]`: the machine model. */
import { renderMachine, toMachineJson } from "../../core/machine/model.js";
import { readMachine } from "../../node/machine.js";
import type { ParsedArgs } from "../options.js";
import { print } from "../output.js";
import { machineRoot } from "../request.js";

export async function run(args: ParsedArgs): Promise<number> {
  const machine = await readMachine(machineRoot(args));
  print(args, () => toMachineJson(machine), () => renderMachine(machine));
  return 0;
}
