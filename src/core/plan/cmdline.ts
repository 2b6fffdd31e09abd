/** The new kernel's command line from the flags, shared by the CLI and the web app. */
import type { Machine } from "../machine/model.js";

/** --reuse-cmdline's part (the running kernel's, without BOOT_IMAGE= and, for -p, crashkernel=), then --append, joined by one space as kexec-tools does. */
export function newKernelCommandLine(machine: Machine, options: { reuse: boolean; append: string | undefined; crash: boolean }): string {
  const parts: string[] = [];
  if (options.reuse) {
    const reused = (machine.cmdline ?? "")
      .split(/\s+/)
      .filter((w) => w && !w.startsWith("BOOT_IMAGE=") && !(options.crash && w.startsWith("crashkernel=")));
    parts.push(reused.join(" "));
  }
  if (options.append !== undefined) parts.push(options.append);
  return parts.filter(Boolean).join(" ");
}
