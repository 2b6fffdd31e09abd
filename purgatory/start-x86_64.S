/*
 * kexec-ts purgatory, x86_64 entry.
 *
 * Entered by the running kernel's relocate_kernel (arch/x86/kernel/
 * relocate_kernel_64.S) with a RET: 64-bit long mode, paging on with an
 * identity map of RAM and of every segment (machine_kexec_64.c init_pgtable),
 * interrupts off, flags clear, all general registers zero, %rsp in the
 * kernel's control page. The GDTR and the segment registers still describe
 * the old kernel's GDT at a virtual address that the identity map may not
 * cover, so nothing here may load a selector before our own lgdt.
 *
 * Everything is PC-relative: the blob runs wherever kexec-ts put it.
 */
#include "params.h"
#include "x86.h"

	.section .text.start, "ax"
	.code64
	.globl	purgatory_start
purgatory_start:
	cli
	cld
	leaq	stack_top(%rip), %rsp

	leaq	gdt64(%rip), %rax
	movw	$(gdt64_end - gdt64 - 1), gdt_ptr(%rip)
	movq	%rax, gdt_ptr+2(%rip)
	lgdt	gdt_ptr(%rip)

	movl	$BOOT_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	/* Reload CS: a far return is the PC-relative way to do a far jump. */
	pushq	$BOOT_CS
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:
	leaq	kxts_params(%rip), %rdi
	call	purgatory_main          /* returns only if the kernel may be entered */

	leaq	kxts_params(%rip), %rbx
	cmpl	$KXTS_MODE_ENTRY64, KXTS_P_ENTRY_MODE(%rbx)
	jne	leave_long_mode

	/* Mode 0: 64-bit entry. RET to it so that every GPR but %rsi can be zero. */
	movq	KXTS_P_BOOT_PARAMS(%rbx), %rsi
	pushq	KXTS_P_ENTRY(%rbx)
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%edi, %edi
	xorl	%ebp, %ebp
	xorl	%r8d, %r8d
	xorl	%r9d, %r9d
	xorl	%r10d, %r10d
	xorl	%r11d, %r11d
	xorl	%r12d, %r12d
	xorl	%r13d, %r13d
	xorl	%r14d, %r14d
	xorl	%r15d, %r15d
	ret

/*
 * Mode 1: from long mode to 32-bit protected mode with paging off (Intel SDM
 * vol. 3, 10.8.5 "Initializing IA-32e Mode", the leaving direction): run in
 * compatibility mode from an identity-mapped page, clear CR0.PG (the CPU
 * clears EFER.LMA), clear EFER.LME, then CR4. purgatory_main has checked that
 * the blob (code, GDT, stack), the entry and boot_params all lie below 4 GiB.
 */
leave_long_mode:
	movl	KXTS_P_BOOT_PARAMS(%rbx), %esi
	movl	KXTS_P_ENTRY(%rbx), %edi

	/*
	 * While still in long mode, drop every CR4 bit but PAE and LA57:
	 * clearing CR0.PG with CR4.PCIDE set is a #GP, and PAE/LA57 cannot be
	 * cleared until paging is off. relocate_kernel already masks CR4 this
	 * way; older or other kernels may not.
	 */
	movq	%cr4, %rax
	andl	$(X86_CR4_PAE | X86_CR4_LA57), %eax
	movq	%rax, %cr4

	pushq	$COMPAT_CS
	leaq	compat32(%rip), %rax
	pushq	%rax
	lretq

	.code32
compat32:
	movl	%cr0, %eax
	andl	$~X86_CR0_PG, %eax
	movl	%eax, %cr0              /* leaves IA-32e mode */

	movl	$MSR_EFER, %ecx
	rdmsr
	andl	$~EFER_LME, %eax
	wrmsr

	xorl	%eax, %eax
	movl	%eax, %cr4              /* PAE, LA57: legal to clear now that PG=0 */

	/*
	 * The 32-bit boot protocol wants __BOOT_CS = 0x10 as a 32-bit code
	 * segment, but in the long-mode GDT 0x10 is 64-bit code: switch tables.
	 */
	call	2f
2:	popl	%ebx
	leal	(gdt32 - 2b)(%ebx), %eax
	movw	$(gdt32_end - gdt32 - 1), (gdt_ptr - 2b)(%ebx)
	movl	%eax, (gdt_ptr + 2 - 2b)(%ebx)
	lgdt	(gdt_ptr - 2b)(%ebx)

	movl	$BOOT_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	pushl	$BOOT_CS
	leal	(3f - 2b)(%ebx), %eax
	pushl	%eax
	lret
3:
	pushl	%edi                    /* the 32-bit entry */
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%edi, %edi
	xorl	%ebp, %ebp
	ret

	.code64
	.globl	purgatory_halt
purgatory_halt:
	cli
4:	hlt
	jmp	4b

	.section .rodata.gdt, "a"
	.balign	16
gdt64:
	.quad	0                       /* 0x00 null */
	.quad	0                       /* 0x08 unused */
	.quad	DESC_CODE64             /* 0x10 __BOOT_CS, long mode */
	.quad	DESC_DATA               /* 0x18 __BOOT_DS */
	.quad	DESC_CODE32             /* 0x20 compatibility mode, the way out */
gdt64_end:
	.balign	16
gdt32:
	.quad	0                       /* 0x00 null */
	.quad	0                       /* 0x08 unused */
	.quad	DESC_CODE32             /* 0x10 __BOOT_CS, 32-bit */
	.quad	DESC_DATA               /* 0x18 __BOOT_DS */
gdt32_end:

	.section .bss.purgatory, "aw", @nobits
	.balign	16
gdt_ptr:
	.skip	16

	.section .stack, "aw", @nobits
	.balign	16
stack:
	.skip	STACK_SIZE
stack_top:
