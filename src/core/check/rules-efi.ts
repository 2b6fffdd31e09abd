/**
 * Whether the new kernel keeps EFI runtime services (efivars, efibootmgr, EFI reset and RTC).
 * kexec_load gets them only if the loader hands the runtime map and tables on (plan/efi.ts);
 * kexec_file_load's kernel does it itself, from the same runtime map. Losing them does not
 * stop the boot, so it is a warning that says what the new kernel will lack.
 */
import { XLF_EFI_KEXEC } from "../image/setup-header.js";
import { efiHandover } from "../plan/efi.js";
import { ok, syscallEvidence, warn, type Rule } from "./result.js";

export const efiRuntime: Rule = (c) => {
  const id = "efi-runtime";
  const efi = c.machine.efi;
  const h = efiHandover(c.machine, c.bz);
  const evidence = {
    efiBooted: efi.booted,
    runtimeMapRegions: efi.runtimeMap === null ? null : efi.runtimeMap.length,
    imageEfiKexec: c.bz === undefined ? null : (c.bz.xloadflags & XLF_EFI_KEXEC) !== 0,
    ...syscallEvidence(c),
  };
  if (h.kind === "not-efi") return ok(id, h.reason, evidence);
  if (c.effective === "kexec_file_load") {
    // The kernel copies the same runtime map the sysfs directory shows; without it there is nothing to copy.
    if (efi.runtimeMap === null && h.kind === "lost") return warn(id, `kexec_file_load: ${h.reason}`, evidence, h.remedy);
    return ok(id, "kexec_file_load: the running kernel hands its EFI runtime state (runtime map, efi_info, SETUP_EFI) to the new kernel itself", evidence);
  }
  if (h.kind === "lost") return warn(id, h.reason, evidence, h.remedy);
  return ok(id, h.reason, evidence);
};
