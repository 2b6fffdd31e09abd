/**
 * `kexec-ts snapshot DIR | --tar FILE [--root DIR]`: every file `machine` reads, copied into DIR
 * for --root DIR, or into one tar archive that the web app opens in the browser.
 */
import { KexecError } from "../../core/errors.js";
import { snapshot, snapshotTar } from "../../node/snapshot.js";
import { value, type ParsedArgs } from "../options.js";
import { machineRoot } from "../request.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  const dest = operands[0];
  const tar = value(args, "tar");
  if (tar !== undefined) {
    if (dest !== undefined) throw new KexecError("usage", "snapshot takes a DIR or --tar FILE, not both", { actual: dest }, "kexec-ts snapshot --tar /tmp/my-machine.tar");
    process.stdout.write(`${JSON.stringify(await snapshotTar(machineRoot(args), tar))}\n`);
    return 0;
  }
  if (dest === undefined) throw new KexecError("usage", "snapshot needs a destination DIR (or --tar FILE)", {}, "kexec-ts snapshot /tmp/my-machine, or kexec-ts snapshot --tar /tmp/my-machine.tar");
  const result = await snapshot(machineRoot(args), dest);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}
