/** The machine model read from the running system (or a snapshot) through a root directory. */
import { buildMachine } from "../core/machine/build.js";
import type { Machine } from "../core/machine/model.js";
import { collectMachineFiles, underRoot } from "./rootfs.js";

/**
 * Reads /proc and /sys under `root` and builds the model. Missing or
 * unreadable files become facts in the model; a file that exists but does not
 * parse is a KexecError("parse") naming it. `skip`: glob directories a command
 * does not need (UNUSED_BY in core/machine/files.ts), left unread.
 */
export async function readMachine(root = "/", options: { skip?: readonly string[] } = {}): Promise<Machine> {
  const collected = await collectMachineFiles(root, options.skip);
  return buildMachine(collected, { displayPath: (rel) => underRoot(root, rel) });
}
