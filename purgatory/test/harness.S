/*
 * QEMU harness for the kexec-ts purgatory (purgatory/test/qemu.mjs).
 *
 * A multiboot (v1) ELF32 that QEMU loads with -kernel. It plays the part of
 * the running kernel's relocate_kernel: it copies the segments listed in a
 * load list (the multiboot module) to their addresses, puts the CPU in the
 * state relocate_kernel leaves it in, and returns into the purgatory. It also
 * provides the "kernels": two stubs that report the state they were entered
 * in on COM1 and end QEMU through isa-debug-exit.
 *
 * Load list: u32 magic 'KXLL', u32 cpu mode (0 = long mode 4-level, 1 = long
 * mode 5-level (LA57), 2 = 32-bit protected mode, paging off), u64 purgatory
 * entry, then records {u64 dest; u64 len; bytes, padded to 8} until len = 0.
 *
 * Not position-independent and not part of kexec-ts: a test fixture.
 */
#define MB_MAGIC    0x1badb002
#define MB_FLAGS    0x0
#define COM1        0x3f8
#define DEBUG_EXIT  0xf4

/* Send %al on COM1 once the transmitter is empty: QEMU drops bytes written
 * into a full FIFO when the host side (a pipe to node) is slow. */
.macro TX
	movb	%al, %ah
	movw	$COM1 + 5, %dx
99:	inb	%dx, %al
	testb	$0x20, %al
	jz	99b
	movb	%ah, %al
	movw	$COM1, %dx
	outb	%al, %dx
.endm

	.text
	/* First in .text, so within the first 8 KiB of the file as multiboot requires. */
	.balign 4
	.long	MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.code32
	.globl	_start
_start:
	cli
	movl	$stack_top, %esp
	lgdt	harness_gdt_ptr
	ljmp	$0x08, $1f
1:	movl	$0x10, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	/* mbi->mods_count (+20), mods_addr (+24); module 0 = load list */
	cmpl	$1, 20(%ebx)
	jb	no_module
	movl	24(%ebx), %eax
	movl	(%eax), %esi            /* mod_start */
	movl	%esi, loadlist
	cmpl	$0x4c4c584b, (%esi)     /* 'KXLL' */
	jne	no_module
	movl	4(%esi), %eax
	movl	%eax, cpumode
	movl	8(%esi), %eax
	movl	%eax, target
	movl	12(%esi), %eax
	movl	%eax, target+4

	movl	$msg_hello, %esi
	call	puts32

	cmpl	$2, cpumode
	je	stay32

	/* Identity map 0..512 GiB with 1 GiB pages (QEMU -cpu max has pdpe1gb). */
	movl	$pdpt, %edi
	xorl	%ecx, %ecx
2:	movl	%ecx, %eax
	shll	$30, %eax
	orl	$0x83, %eax             /* present, writable, 1 GiB page */
	movl	%eax, (%edi,%ecx,8)
	movl	%ecx, %eax
	shrl	$2, %eax
	movl	%eax, 4(%edi,%ecx,8)
	incl	%ecx
	cmpl	$512, %ecx
	jb	2b
	movl	$pdpt + 0x3, pml4
	movl	$pml4 + 0x3, pml5

	movl	$0x20, %eax             /* CR4.PAE */
	movl	$pml4, %edx
	cmpl	$1, cpumode
	jne	3f
	orl	$0x1000, %eax           /* CR4.LA57: only settable with paging off */
	movl	$pml5, %edx
3:	movl	%eax, %cr4
	movl	%edx, %cr3
	movl	$0xc0000080, %ecx
	rdmsr
	orl	$0x100, %eax            /* EFER.LME */
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax
	movl	%eax, %cr0
	ljmp	$0x18, $long64

no_module:
	movl	$msg_nomod, %esi
	call	puts32
	jmp	exit_fail

/* 32-bit "relocate_kernel_32": copy, then enter the purgatory with paging off. */
stay32:
	movl	loadlist, %ebx
	addl	$16, %ebx
4:	movl	8(%ebx), %ecx           /* len (low half; 32-bit harness) */
	testl	%ecx, %ecx
	jz	5f
	movl	(%ebx), %edi
	leal	16(%ebx), %esi
	cld
	rep movsb
	movl	8(%ebx), %ecx
	addl	$7, %ecx
	andl	$~7, %ecx
	leal	16(%ebx,%ecx), %ebx
	jmp	4b
5:	movl	$msg_jump, %esi
	call	puts32
	/* Hostile state: a GDTR whose table is garbage (all ones). */
	lgdt	bad_gdt_ptr32
	movl	$fake_control_page_top, %esp
	pushl	target
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%esi, %esi
	xorl	%edi, %edi
	xorl	%ebp, %ebp
	ret

puts32:
	lodsb
	testb	%al, %al
	jz	6f
	TX
	jmp	puts32
6:	ret

exit_fail:
	movw	$DEBUG_EXIT, %dx
	movb	$0x7f, %al
	outb	%al, %dx
7:	hlt
	jmp	7b

/*
 * "kernel32": report the state the 32-bit boot protocol promises
 * (Documentation/arch/x86/boot.rst: protected mode, paging off, CS 0x10,
 * DS/ES/SS 0x18, %esi = boot_params, %ebp = %edi = %ebx = 0).
 */
	.globl	kernel32
kernel32:
	movl	%esi, k_esi
	movl	%ebx, k_ebx
	movl	%ebp, k_ebp
	movl	%edi, k_edi
	movl	%cs, %eax
	movl	%eax, k_cs
	movl	%ds, %eax
	movl	%eax, k_ds
	movl	%ss, %eax
	movl	%eax, k_ss
	movl	%cr0, %eax
	movl	%eax, k_cr0
	movl	%cr4, %eax
	movl	%eax, k_cr4
	movl	$0xc0000080, %ecx
	rdmsr
	movl	%eax, k_efer
	/* Our own segments from here on: the purgatory's GDT is still loaded and fine. */
	movl	$msg_k32, %esi
	call	puts32
	movl	k_esi, %eax
	call	hex32
	movl	$msg_cr0, %esi
	call	puts32
	movl	k_cr0, %eax
	call	hex32
	movl	$msg_cr4, %esi
	call	puts32
	movl	k_cr4, %eax
	call	hex32
	movl	$msg_efer, %esi
	call	puts32
	movl	k_efer, %eax
	call	hex32
	movl	$msg_cs, %esi
	call	puts32
	movl	k_cs, %eax
	call	hex32
	movl	$msg_ds, %esi
	call	puts32
	movl	k_ds, %eax
	call	hex32
	movl	$msg_ss, %esi
	call	puts32
	movl	k_ss, %eax
	call	hex32
	movl	$msg_regs, %esi
	call	puts32
	movl	k_ebx, %eax
	orl	k_ebp, %eax
	orl	k_edi, %eax
	call	hex32
	movl	$msg_nl, %esi
	call	puts32
	movw	$DEBUG_EXIT, %dx
	movb	$0x10, %al
	outb	%al, %dx
	jmp	7b

hex32:	/* %eax as 8 hex digits */
	movl	%eax, %ebx
	movl	$8, %ecx
8:	roll	$4, %ebx
	movl	%ebx, %eax
	andl	$0xf, %eax
	addb	$'0', %al
	cmpb	$'9', %al
	jbe	9f
	addb	$('a' - '9' - 1), %al
9:	TX
	loop	8b
	ret

	.code64
long64:
	movl	$0x20, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movq	loadlist(%rip), %rbx
	movl	%ebx, %ebx
	addq	$16, %rbx
10:	movq	8(%rbx), %rcx
	testq	%rcx, %rcx
	jz	11f
	movq	(%rbx), %rdi
	leaq	16(%rbx), %rsi
	cld
	rep movsb
	movq	8(%rbx), %rcx
	addq	$7, %rcx
	andq	$~7, %rcx
	leaq	16(%rbx,%rcx), %rbx
	jmp	10b
11:	movl	$msg_jump, %esi
	call	puts64
	/*
	 * What relocate_kernel leaves behind that the purgatory must not trust:
	 * a GDTR pointing at an unmapped kernel virtual address (any segment load
	 * through it would fault, and there is no IDT: triple fault, QEMU exits).
	 */
	lgdt	bad_gdt_ptr64(%rip)
	movl	$fake_control_page_top, %esp
	pushq	target(%rip)
	xorl	%eax, %eax
	xorl	%ebx, %ebx
	xorl	%ecx, %ecx
	xorl	%edx, %edx
	xorl	%esi, %esi
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

puts64:
	lodsb
	testb	%al, %al
	jz	12f
	TX
	jmp	puts64
12:	ret

hex64:	/* %rax as 16 hex digits */
	movq	%rax, %rbx
	movl	$16, %ecx
13:	rolq	$4, %rbx
	movl	%ebx, %eax
	andl	$0xf, %eax
	addb	$'0', %al
	cmpb	$'9', %al
	jbe	14f
	addb	$('a' - '9' - 1), %al
14:	TX
	loop	13b
	ret

/* "kernel64": the 64-bit boot protocol state (long mode, CS 0x10, DS 0x18, %rsi = boot_params, %rbx = 0). */
	.globl	kernel64
kernel64:
	movq	%rsi, k64_rsi(%rip)
	movq	%rbx, k64_rbx(%rip)
	movl	%cs, %eax
	movq	%rax, k64_cs(%rip)
	movl	%ds, %eax
	movq	%rax, k64_ds(%rip)
	movl	%ss, %eax
	movq	%rax, k64_ss(%rip)
	movq	%cr4, %rax
	movq	%rax, k64_cr4(%rip)
	movq	%rsp, k64_rsp(%rip)
	movl	$msg_k64, %esi
	call	puts64
	movq	k64_rsi(%rip), %rax
	call	hex64
	movl	$msg_cs, %esi
	call	puts64
	movq	k64_cs(%rip), %rax
	call	hex64
	movl	$msg_ds, %esi
	call	puts64
	movq	k64_ds(%rip), %rax
	call	hex64
	movl	$msg_ss, %esi
	call	puts64
	movq	k64_ss(%rip), %rax
	call	hex64
	movl	$msg_cr4, %esi
	call	puts64
	movq	k64_cr4(%rip), %rax
	call	hex64
	movl	$msg_rbx, %esi
	call	puts64
	movq	k64_rbx(%rip), %rax
	call	hex64
	movl	$msg_rsp, %esi
	call	puts64
	movq	k64_rsp(%rip), %rax
	call	hex64
	movl	$msg_nl, %esi
	call	puts64
	movw	$DEBUG_EXIT, %dx
	movb	$0x10, %al
	outb	%al, %dx
15:	hlt
	jmp	15b

	.data
	.balign	16
harness_gdt:
	.quad	0
	.quad	0x00cf9b000000ffff      /* 0x08 code32 */
	.quad	0x00cf93000000ffff      /* 0x10 data */
	.quad	0x00af9b000000ffff      /* 0x18 code64 */
	.quad	0x00cf93000000ffff      /* 0x20 data */
harness_gdt_end:
harness_gdt_ptr:
	.word	harness_gdt_end - harness_gdt - 1
	.long	harness_gdt
	.balign	16
bad_gdt_ptr64:
	.word	0xffff
	.quad	0xffffffff81234000      /* a kernel virtual address, unmapped here */
	.balign	16
bad_gdt_ptr32:
	.word	0xffff
	.long	garbage_gdt
	.balign	16
garbage_gdt:
	.fill	64, 1, 0xff
loadlist:	.quad 0
cpumode:	.long 0
target:		.quad 0
k_esi: .long 0
k_ebx: .long 0
k_ebp: .long 0
k_edi: .long 0
k_cs: .long 0
k_ds: .long 0
k_ss: .long 0
k_cr0: .long 0
k_cr4: .long 0
k_efer: .long 0
	.balign 8
k64_rsi: .quad 0
k64_rbx: .quad 0
k64_cs: .quad 0
k64_ds: .quad 0
k64_ss: .quad 0
k64_cr4: .quad 0
k64_rsp: .quad 0

msg_hello:	.asciz "KXTS-HARNESS: started\r\n"
msg_nomod:	.asciz "KXTS-HARNESS: no load list module\r\n"
msg_jump:	.asciz "KXTS-HARNESS: segments copied, entering purgatory\r\n"
msg_k32:	.asciz "KXTS-HARNESS: kernel32 esi="
msg_k64:	.asciz "KXTS-HARNESS: kernel64 rsi="
msg_cr0:	.asciz " cr0="
msg_cr4:	.asciz " cr4="
msg_efer:	.asciz " efer="
msg_cs:		.asciz " cs="
msg_ds:		.asciz " ds="
msg_ss:		.asciz " ss="
msg_regs:	.asciz " ebx|ebp|edi="
msg_rbx:	.asciz " rbx="
msg_rsp:	.asciz " rsp="
msg_nl:		.asciz "\r\n"

	.bss
	.balign	4096
pml5:	.skip	4096
pml4:	.skip	4096
pdpt:	.skip	4096
	.skip	4096
stack_top:
	.skip	4096
fake_control_page_top:
