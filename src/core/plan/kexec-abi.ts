/**
 * The kexec syscalls' flags and limits (include/uapi/linux/kexec.h, include/linux/kexec.h),
 * shared by the planner, its checks and the syscall layer.
 */

/** kexec_load flags: the low 16 bits are flags, the high 16 the running kernel's arch (EM_*). */
export const KEXEC_ON_CRASH = 0x1;
export const KEXEC_PRESERVE_CONTEXT = 0x2;
export const KEXEC_ARCH_386 = 3 << 16;
export const KEXEC_ARCH_X86_64 = 62 << 16;

/** kexec_file_load flags. */
export const KEXEC_FILE_UNLOAD = 0x1;
export const KEXEC_FILE_ON_CRASH = 0x2;
export const KEXEC_FILE_NO_INITRAMFS = 0x4;

/** The most segments kexec_load takes. */
export const KEXEC_SEGMENT_MAX = 16;
