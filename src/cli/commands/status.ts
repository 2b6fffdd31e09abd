/** `kexec-ts -S [-l]`: exit 1 when loaded, 0 when not (kexec-tools: -S alone asks about the crash kernel). */
import { readMachine } from "../../node/machine.js";
import { has, type ParsedArgs } from "../options.js";
import { machineRoot } from "../request.js";

export async function run(args: ParsedArgs): Promise<number> {
  const machine = await readMachine(machineRoot(args));
  const loaded = has(args, "load") ? machine.kexec.loaded : machine.kexec.crashLoaded;
  return loaded ? 1 : 0;
}
