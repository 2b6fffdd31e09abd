/**
 * Whether the kernel lets this user load anything: CONFIG_KEXEC_CORE, root
 * (CAP_SYS_BOOT), kernel.kexec_load_disabled and the load limits (all checked
 * by kexec_load_permitted() for both syscalls), lockdown (kexec_load is
 * refused outright; kexec_file_load needs a verifiable signature), Secure
 * Boot, and a kernel already loaded.
 */
import { fail, ok, syscallEvidence, warn, type Rule } from "./result.js";

export const kexecSupported: Rule = (c) => {
  const id = "kexec-supported";
  const s = c.machine.kexec.supported;
  if (s === false) return fail(id, "the running kernel has no kexec: /sys/kernel/kexec_loaded is missing (no CONFIG_KEXEC_CORE)", { kexecLoadedFile: false }, "boot a kernel built with CONFIG_KEXEC (and CONFIG_KEXEC_FILE / CONFIG_CRASH_DUMP for -s and -p)");
  if (s === null) return ok(id, "whether the kernel has kexec is unknown (no sysfs in the snapshot)", { kexecLoadedFile: null });
  return ok(id, "the running kernel has kexec (/sys/kernel/kexec_loaded exists)", { kexecLoadedFile: true });
};

export const notRoot: Rule = (c) => {
  const id = "not-root";
  if (c.input.isRoot === false) return fail(id, "not root: both kexec syscalls need CAP_SYS_BOOT and return EPERM without it", { isRoot: false }, "run as root (sudo)");
  if (c.input.isRoot === undefined) return ok(id, "not checked: replaying a snapshot, where the loading user is unknown", { isRoot: null });
  return ok(id, "running as root", { isRoot: true });
};

export const kexecLoadDisabled: Rule = (c) => {
  const id = "kexec-load-disabled";
  const k = c.machine.kexec;
  const limitName = c.req.crash ? "kexec_load_limit_panic" : "kexec_load_limit_reboot";
  const limit = c.req.crash ? k.loadLimitPanic : k.loadLimitReboot;
  const evidence = { kexecLoadDisabled: k.loadDisabled, [limitName]: limit };
  if (k.loadDisabled === true) {
    return fail(id, "kernel.kexec_load_disabled is 1: every kexec load (both syscalls) is refused with EPERM until reboot (the sysctl only goes from 0 to 1)", evidence, "reboot without whatever sets kernel.kexec_load_disabled=1 (a sysctl.d file or a hardening script)");
  }
  if (limit === 0) return fail(id, `${limitName} is 0: no more ${c.req.crash ? "crash-kernel" : "kexec"} loads are allowed until reboot`, evidence, "reboot; the limit can only be lowered");
  if (k.loadDisabled === null) return ok(id, "kexec_load_disabled is unknown (/proc/sys/kernel/kexec_load_disabled unreadable)", evidence);
  return ok(id, `kexec_load_disabled is 0${limit !== null && limit > 0 ? `; ${limit} more load(s) allowed by ${limitName}` : ""}`, evidence);
};

export const lockdown: Rule = (c) => {
  const id = "lockdown";
  const mode = c.machine.lockdown;
  const signed = c.bz ? c.bz.pe.signed : false;
  const evidence = { lockdown: mode, imageSigned: signed, certificateTable: c.bz?.pe.certificateTable ? { offset: c.bz.pe.certificateTable.offset, size: c.bz.pe.certificateTable.size } : null, ...syscallEvidence(c) };
  if (mode === null) return ok(id, "lockdown state unknown (no /sys/kernel/security/lockdown)", evidence);
  if (mode === "none") return ok(id, "lockdown is off", evidence);
  if (c.effective === "kexec_load") {
    const via = c.tries.length > 1 ? "kexec_file_load refuses the image and the fallback, " : "";
    return fail(id, `lockdown=${mode}: ${via}kexec_load is refused with EPERM under any lockdown ("kexec of unsigned images")`, evidence, signed ? "use kexec_file_load (-s): the image carries a signature the kernel can verify" : "use kexec_file_load (-s) with a signed image (the distribution's signed linux-image package, or one signed with sbsign by a key in the kernel's keyring)");
  }
  // -a falls back only after refusals kexec_load might not repeat; lockdown refuses kexec_load outright.
  const noFallback = c.req.syscall === "auto" ? "; -a does not fall back to kexec_load, which lockdown refuses outright" : "";
  if (!signed) {
    return fail(id, `lockdown=${mode}: kexec_file_load needs a signature the kernel can verify, and this image carries none (no Authenticode certificate table in its PE header); the kernel refuses it (EPERM or EKEYREJECTED)${noFallback}`, evidence, "use the distribution's signed kernel image, or sign this one with sbsign using a key the kernel trusts (.builtin_trusted_keys, .secondary or .platform keyring)");
  }
  // kexec_file_load checks the signature against the built-in and secondary keyrings, then the
  // platform keyring, which only an EFI boot fills (UEFI db, shim's MokList): a distribution's
  // Secure Boot signature verifies through the latter. Seen in the lab: Debian's signed 6.12 is
  // refused by Debian's 6.1 booted through SeaBIOS with lockdown=integrity.
  if (c.machine.efi.booted === false) {
    return warn(id, `lockdown=${mode}: the image is signed, but this boot has no EFI platform keyring (UEFI db, shim's MokList), so kexec_file_load accepts it only if its key is built into the running kernel; a distribution kernel signed for Secure Boot is usually refused (EPERM, "kexec of unsigned images is restricted")${noFallback}`, evidence,
      "boot through EFI with Secure Boot (shim puts the distribution's key in the platform keyring), or sign the image with a key built into the running kernel");
  }
  return ok(id, `lockdown=${mode}: kexec_file_load verifies the image's signature, and the image carries one (whether its key is trusted is only known to the kernel)${noFallback}`, evidence);
};

export const secureBoot: Rule = (c) => {
  const id = "secure-boot";
  const sb = c.machine.secureBoot;
  const signed = c.bz ? c.bz.pe.signed : false;
  const evidence = { secureBoot: sb, secureBootEvidence: c.machine.secureBootEvidence, imageSigned: signed, lockdown: c.machine.lockdown, ...syscallEvidence(c) };
  if (sb !== true) return ok(id, sb === false ? "Secure Boot is off" : "Secure Boot state unknown", evidence);
  if (c.machine.lockdown !== null && c.machine.lockdown !== "none") return ok(id, "Secure Boot is on, and lockdown is active (see lockdown)", evidence);
  if (c.effective === "kexec_load") {
    return warn(id, "Secure Boot is on: kernels with IMA's secure-boot policy refuse kexec_load (\"impossible to appraise a kernel image without a file descriptor\")", evidence, "prefer kexec_file_load (-s) with a signed image");
  }
  if (!signed) return warn(id, "Secure Boot is on and the image is unsigned: kernels built with KEXEC_SIG_FORCE or IMA's secure-boot policy refuse it", evidence, "use the distribution's signed kernel image");
  return ok(id, "Secure Boot is on and the image carries a signature", evidence);
};

export const alreadyLoaded: Rule = (c) => {
  const id = "already-loaded";
  const loaded = c.req.crash ? c.machine.kexec.crashLoaded : c.machine.kexec.loaded;
  const file = c.req.crash ? "/sys/kernel/kexec_crash_loaded" : "/sys/kernel/kexec_loaded";
  if (loaded === true) return warn(id, `a ${c.req.crash ? "crash kernel" : "kexec kernel"} is already loaded (${file} is 1): this load replaces it`, { [file]: 1 }, `nothing to do if replacing it is intended; -u${c.req.crash ? " -p" : ""} unloads it`);
  return ok(id, loaded === false ? `nothing loaded yet (${file} is 0)` : `${file} unknown`, { [file]: loaded === null ? null : 0 });
};
