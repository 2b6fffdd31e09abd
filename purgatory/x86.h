/* Architectural constants (Intel SDM vol. 3, ch. 2 and 9) used by the entry code. */
#ifndef KXTS_X86_H
#define KXTS_X86_H

#define X86_CR0_PG      0x80000000
#define X86_CR4_PAE     0x00000020
#define X86_CR4_LA57    0x00001000
#define MSR_EFER        0xc0000080
#define EFER_LME        0x00000100

/* Selectors: the boot protocol's __BOOT_CS / __BOOT_DS (Documentation/arch/x86/boot.rst). */
#define BOOT_CS         0x10
#define BOOT_DS         0x18
/* Only in the x86_64 blob's long-mode GDT: the way out to 32-bit code. */
#define COMPAT_CS       0x20

/* Flat 4 GiB descriptors, accessed bit preset so the CPU never writes to the GDT. */
#define DESC_CODE64     0x00af9b000000ffff   /* L=1, D=0, DPL0, execute/read */
#define DESC_CODE32     0x00cf9b000000ffff   /* D=1, G=1, DPL0, execute/read */
#define DESC_DATA       0x00cf93000000ffff   /* B=1, G=1, DPL0, read/write */

#define STACK_SIZE      4096

#endif
