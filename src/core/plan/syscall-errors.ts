/**
 * What an errno from kexec_load / kexec_file_load / reboot means, in the
 * kernel's terms (kernel/kexec.c, kernel/kexec_file.c, kernel/kexec_core.c,
 * arch/x86/kernel/kexec-bzimage64.c), and what to do about it. Pure: the
 * caller passes what it knows about the machine so the cause can be narrowed.
 */

import { KexecError } from "../errors.js";
import { hex } from "../format.js";

export type KexecSyscall = "kexec_load" | "kexec_file_load" | "kexec_unload" | "reboot";

/** What a refused call was given, as fields a script (or `--json`) can read, not only as text. */
export interface SyscallCall {
  call: KexecSyscall;
  /** The errno's name ("EADDRNOTAVAIL"), and its number when known. */
  errno: string;
  errnoNumber?: number | undefined;
  /** kexec_load's entry and segments; the flags of either call. */
  entry?: bigint | undefined;
  flags?: number | undefined;
  segments?: readonly { mem: bigint; memsz: bigint; bufsz: bigint }[] | undefined;
  /** kexec_file_load's files and command line. */
  kernel?: string | undefined;
  initrd?: string | undefined;
  cmdline?: string | undefined;
}

export interface ErrnoContext {
  lockdown?: string | undefined;       // "none" | "integrity" | "confidentiality"
  loadDisabled?: boolean | undefined;  // /proc/sys/kernel/kexec_load_disabled
  isRoot?: boolean | undefined;
  imageSigned?: boolean | undefined;
  /** Lines the kernel logged during the call (kexec_file_load explains itself there). */
  kernelLog?: string[] | undefined;
}

export interface ErrnoExplanation {
  errno: string;
  cause: string;
  hint: string;
  /** kexec -a may retry with kexec_load after these (kexec-tools' rule). */
  fallbackAllowed: boolean;
}

/**
 * The error for a refused call: the kernel's reason in words (narrowed by what
 * is known about the machine), the call's arguments as structured data, and
 * whether kexec-tools' -a would fall back to kexec_load after it.
 */
export function syscallError(c: SyscallCall, ctx: ErrnoContext = {}): KexecError {
  const why = explainErrno(c.call, c.errno, ctx);
  const details = [
    c.entry !== undefined ? `entry ${hex(c.entry)}` : "",
    c.flags !== undefined ? `flags ${hex(c.flags)}` : "",
    c.segments?.length ? `segments ${c.segments.map((s) => `${hex(s.mem)}+${hex(s.memsz)}`).join(" ")}` : "",
  ].filter(Boolean).join(", ");
  return new KexecError("syscall", `${c.call} failed with ${c.errno}: ${why.cause}${details ? ` (${details})` : ""}`, {
    call: c.call,
    errno: c.errno,
    ...(c.errnoNumber !== undefined ? { errnoNumber: c.errnoNumber } : {}),
    ...(c.entry !== undefined ? { entry: c.entry } : {}),
    ...(c.flags !== undefined ? { flags: c.flags } : {}),
    ...(c.segments !== undefined ? { segments: c.segments.map((s) => ({ mem: s.mem, memsz: s.memsz, bufsz: s.bufsz })) } : {}),
    ...(c.kernel !== undefined ? { kernel: c.kernel } : {}),
    ...(c.initrd !== undefined ? { initrd: c.initrd } : {}),
    ...(c.cmdline !== undefined ? { cmdline: c.cmdline } : {}),
    ...(ctx.kernelLog?.length ? { kernelLog: ctx.kernelLog } : {}),
    fallbackAllowed: why.fallbackAllowed,
  }, why.hint);
}

export function explainErrno(call: KexecSyscall, errno: string, ctx: ErrnoContext = {}): ErrnoExplanation {
  const log = ctx.kernelLog?.length ? ` The kernel said: "${ctx.kernelLog.join(" / ")}".` : "";
  const e = (cause: string, hint: string, fallbackAllowed = false): ErrnoExplanation => ({ errno, cause: cause + log, hint, fallbackAllowed });
  switch (errno) {
    case "EPERM":
      if (ctx.isRoot === false) return e(`${call} needs CAP_SYS_BOOT`, "run as root");
      if (ctx.loadDisabled) return e("kexec loading is disabled (kernel.kexec_load_disabled = 1; it cannot be turned back on until reboot)", "reboot without setting kernel.kexec_load_disabled");
      if (call === "kexec_load" && ctx.lockdown && ctx.lockdown !== "none") {
        return e(`the kernel is locked down (${ctx.lockdown}): kexec_load of unsigned images is refused`, "use kexec_file_load (-s) with a signed image");
      }
      if (call === "kexec_file_load" && ctx.lockdown && ctx.lockdown !== "none") {
        return e(`the kernel is locked down (${ctx.lockdown}) and the image's signature could not be verified${ctx.imageSigned === false ? " (the image carries no signature)" : ""}`,
          "load a kernel signed with a key the running kernel trusts: one built into it, or on an EFI boot one in the platform keyring (UEFI db, shim's MokList)");
      }
      return e(`${call} was refused (no CAP_SYS_BOOT, kexec_load_disabled, the kexec_load_limit sysctl, lockdown or an LSM)`, "check kernel.kexec_load_disabled, kexec_load_limit_reboot/panic and /sys/kernel/security/lockdown");
    case "EKEYREJECTED":
    case "ENOKEY":
    case "EBADMSG":
    case "ENODATA":
      return e(`the kernel rejected the image's signature (${errno})${ctx.imageSigned === false ? ": the image is not signed" : ""}`, "use a kernel signed with a trusted key, or kexec_load (-c) where lockdown allows it");
    case "EBUSY":
      return e("another kexec load or exec is in progress (the kexec lock is held)", "wait for it to finish and retry");
    case "EINVAL":
      if (call === "kexec_file_load") return e("the kernel's kexec_file loader refused the arguments (command line too long or not NUL-terminated, bad flags, or a segment problem)", "see the kernel's message above; kexec-ts check -s predicts most of these", true);
      if (call === "reboot") return e("nothing is loaded", "load a kernel with -l first");
      return e("the kernel refused the segment list (more than 16 segments, overlapping segments, bufsz > memsz, or a segment larger than half of RAM)", "run kexec-ts plan to see the segments");
    case "ENOEXEC":
      return e("the kernel's kexec_file loader did not accept the image (not a bzImage64 it can load)", "see the kernel's message above; kexec-ts check -s names the reason", true);
    case "ENOSYS":
    case "ENOTSUP":
    case "EOPNOTSUPP":
      return e(`this kernel does not provide ${call} (CONFIG_KEXEC${call === "kexec_file_load" ? "_FILE" : ""} is off, or the platform forbids it)`, call === "kexec_file_load" ? "use kexec_load (-c)" : "the running kernel was built without kexec support", true);
    case "EADDRNOTAVAIL":
      return e("a segment lies outside the memory the kernel allows (not page aligned, past the destination limit, outside the crash region for -p, or no hole for kexec_file_load)", "run kexec-ts plan and kexec-ts machine to compare the segments with the memory map");
    case "EFBIG":
      // kernel_read_file() in kimage_file_prepare_segments(); kexec-tools' -a does not fall back after it.
      if (call === "kexec_file_load") {
        return e("the kernel image or the initrd is larger than kexec_file_load reads (KEXEC_FILE_SIZE_MAX: 4 GiB since Linux 6.0, INT_MAX, 2 GiB - 1 byte, before)",
          "load with kexec_load (-c), which kexec-ts hands the files' bytes, or use a smaller initrd; kexec-ts check -s names the file");
      }
      return e(`${call} failed with EFBIG`, "see dmesg for the kernel's side");
    case "ENOMEM":
      return e("the kernel could not allocate memory for the image (control pages or segment copies)", "free memory, or use a smaller initrd");
    case "EFAULT":
    case "EOVERFLOW":
      return e("the kernel could not read the segment list from user space", "this is a bug in kexec-ts; please report it");
    default:
      return e(`${call} failed with ${errno}`, "see dmesg for the kernel's side");
  }
}
