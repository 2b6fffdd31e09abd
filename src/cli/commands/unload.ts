/** `kexec-ts -u [-p] [-s|-c|-a]`: unload, with kexec_file_load's unload first unless -c (as kexec-tools). */
import { isKexecError } from "../../core/errors.js";
import { readMachine } from "../../node/machine.js";
import { kexecFileUnload, kexecUnload } from "../../node/syscalls.js";
import { errnoContext } from "../errno-context.js";
import { has, type ParsedArgs } from "../options.js";
import { machineRoot, syscallRequest } from "../request.js";

export async function run(args: ParsedArgs): Promise<number> {
  const crash = has(args, "load-panic");
  const machine = await readMachine(machineRoot(args));
  const ctx = errnoContext(machine);
  const syscall = syscallRequest(args);
  if (syscall === "kexec_load") {
    kexecUnload(crash, ctx);
    return 0;
  }
  try {
    kexecFileUnload(crash, ctx);
  } catch (e) {
    // Under lockdown kexec_load's unload is refused too, so only a missing file syscall falls back (-a).
    if (!isKexecError(e) || syscall === "kexec_file_load" || e.data.fallbackAllowed !== true) throw e;
    kexecUnload(crash, ctx);
  }
  return 0;
}
