/*
 * kexec-ts purgatory, i386 entry.
 *
 * Entered by the running 32-bit kernel's relocate_kernel (arch/x86/kernel/
 * relocate_kernel_32.S) with a RET: 32-bit protected mode, paging off
 * (CR0.PG cleared, CR4 and CR3 zeroed), interrupts off, flags clear, general
 * registers zero, %esp at the end of the physical control page. GDTR still
 * holds the old kernel's GDT at a kernel virtual address, which means nothing
 * with paging off: load our own before touching any selector.
 *
 * i386 has no EIP-relative addressing: a call/pop gives the run-time address.
 */
#include "params.h"
#include "x86.h"

	.section .text.start, "ax"
	.code32
	.globl	purgatory_start
purgatory_start:
	cli
	cld
	call	1f                      /* the kernel's stack: physical, still usable */
1:	popl	%ebx

	leal	(gdt32 - 1b)(%ebx), %eax
	movw	$(gdt32_end - gdt32 - 1), (gdt_ptr - 1b)(%ebx)
	movl	%eax, (gdt_ptr + 2 - 1b)(%ebx)
	lgdt	(gdt_ptr - 1b)(%ebx)

	movl	$BOOT_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	leal	(stack_top - 1b)(%ebx), %esp

	pushl	$BOOT_CS
	leal	(2f - 1b)(%ebx), %eax
	pushl	%eax
	lret
2:
	leal	(kxts_params - 1b)(%ebx), %eax
	pushl	%eax
	call	purgatory_main          /* returns only if the kernel may be entered (mode 1) */
	addl	$4, %esp

	leal	(kxts_params - 1b)(%ebx), %eax
	movl	KXTS_P_BOOT_PARAMS(%eax), %esi
	pushl	KXTS_P_ENTRY(%eax)
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%edi, %edi
	xorl	%ebp, %ebp
	ret

	.globl	purgatory_halt
purgatory_halt:
	cli
3:	hlt
	jmp	3b

	.section .rodata.gdt, "a"
	.balign	16
gdt32:
	.quad	0                       /* 0x00 null */
	.quad	0                       /* 0x08 unused */
	.quad	DESC_CODE32             /* 0x10 __BOOT_CS */
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
