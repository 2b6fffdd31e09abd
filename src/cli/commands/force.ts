/** `kexec-ts -f IMAGE [load flags]`: kexec-tools' "load and jump now", without systemd's shutdown. */
import type { ParsedArgs } from "../options.js";
import { run as load } from "./load.js";
import { run as exec } from "./exec.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  args.flags.set("load", [""]);
  const code = await load(args, operands);
  return code === 0 ? exec(args) : code;
}
