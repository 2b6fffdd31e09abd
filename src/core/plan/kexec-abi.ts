/**
 * The kexec syscalls' flag and limit values (include/uapi/linux/kexec.h,
 * include/linux/kexec.h), defined once for the planner, its checker and the
 * syscall layer.
 */

/** kexec_load flags: the low 16 bits. */
export const KEXEC_ON_CRASH = 0x1;
export const KEXEC_PRESERVE_CONTEXT = 0x2;
/** kexec_load's arch field (bits 16-31): the running kernel's arch, not the caller's. */
export const KEXEC_ARCH_386 = 3 << 16;
export const KEXEC_ARCH_X86_64 = 62 << 16;
/** kexec_file_load flags. */
export const KEXEC_FILE_UNLOAD = 0x1;
export const KEXEC_FILE_ON_CRASH = 0x2;
export const KEXEC_FILE_NO_INITRAMFS = 0x4;
/** The most segments kexec_load takes. */
export const KEXEC_SEGMENT_MAX = 16;

/** The flags kexec_file_load is given for a load. */
export function kexecFileFlags(crash: boolean, hasInitrd: boolean): number {
  return (crash ? KEXEC_FILE_ON_CRASH : 0) | (hasInitrd ? 0 : KEXEC_FILE_NO_INITRAMFS);
}
