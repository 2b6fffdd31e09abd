/** What the syscall layer is told about the machine, to say why the kernel refused. */
import type { KernelImage } from "../core/image/index.js";
import type { Machine } from "../core/machine/model.js";
import type { ErrnoContext } from "../core/plan/syscall-errors.js";

export function errnoContext(machine: Machine, image?: KernelImage): ErrnoContext {
  return {
    lockdown: machine.lockdown ?? undefined,
    loadDisabled: machine.kexec.loadDisabled ?? undefined,
    isRoot: typeof process.getuid === "function" ? process.getuid() === 0 : undefined,
    imageSigned: image?.kind === "bzImage" ? image.bzImage.pe.signed : undefined,
  };
}
