/** The machine model read from the running system (or a snapshot) through a root directory. */
import { buildMachine } from "../core/machine/build.js";
import type { Machine } from "../core/machine/model.js";
import { collectMachineFiles, underRoot } from "./rootfs.js";

/**
 * Reads /proc and /sys under `root` and builds the model. Missing or
 * unreadable files become facts in the model; a file that exists but does not
 * parse is a KexecError("parse") naming it.
 */
export async function readMachine(root = "/"): Promise<Machine> {
  const collected = await collectMachineFiles(root);
  return buildMachine(collected, { displayPath: (rel) => underRoot(root, rel) });
}
