/*
 * kexec-ts purgatory, the C part: runs on the purgatory's own GDT and stack
 * (set up by start-x86_64.S / start-i386.S), checks the parameter block,
 * verifies the SHA-256 of every region and returns to the assembly, which
 * then leaves for the next kernel. It never returns when anything is wrong:
 * jumping into a corrupt kernel is worse than a hung machine, because the
 * hang at least leaves the reason on the serial console.
 *
 * Freestanding: no libc, no absolute addresses in data (no pointer tables,
 * no switch jump tables: -fno-jump-tables), so the linked bytes do not depend
 * on the load address. build.sh proves that by linking at two bases.
 */
#include "params.h"
#include "sha256.h"

#define COM1 0x3f8

/* The block kexec-ts patches. Zero except for what identifies it, and a mode
 * that makes an unpatched blob refuse to run. */
struct kxts_params kxts_params __attribute__((section(".params"), used)) = {
	.magic = { 'K', 'X', 'T', 'S', 'P', 'U', 'R', 'G' },
	.version = KXTS_PARAMS_VERSION,
	.size = sizeof(struct kxts_params),
	.entry_mode = KXTS_MODE_UNSET,
};

void purgatory_main(struct kxts_params *p);
extern char __image_end[]; /* linker script: end of the blob including its stack */
void purgatory_halt(void) __attribute__((noreturn));

static inline void outb(unsigned short port, kx_u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline kx_u8 inb(unsigned short port)
{
	kx_u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static int serial;

/*
 * The UART is not reprogrammed: the running kernel's console already set the
 * baud rate, and guessing another one would garble the very output we want.
 * The wait is bounded so that a machine without COM1 does not hang here.
 */
static void putc_serial(char c)
{
	unsigned int spin;

	for (spin = 0; spin < 100000; spin++)
		if (inb(COM1 + 5) & 0x20) /* LSR: transmit holding register empty */
			break;
	outb(COM1, (kx_u8)c);
}

static void puts_serial(const char *s)
{
	if (!serial)
		return;
	while (*s)
		putc_serial(*s++);
}

static void puthex(kx_u64 v)
{
	int shift;

	if (!serial)
		return;
	putc_serial('0');
	putc_serial('x');
	for (shift = 60; shift > 0 && !(v >> shift); shift -= 4)
		;
	for (; shift >= 0; shift -= 4) {
		unsigned d = (unsigned)(v >> shift) & 0xf;
		putc_serial((char)(d < 10 ? '0' + d : 'a' + d - 10));
	}
}

static void putdigest(const kx_u8 *d)
{
	int i;

	if (!serial)
		return;
	for (i = 0; i < 32; i++) {
		unsigned hi = d[i] >> 4, lo = d[i] & 0xf;
		putc_serial((char)(hi < 10 ? '0' + hi : 'a' + hi - 10));
		putc_serial((char)(lo < 10 ? '0' + lo : 'a' + lo - 10));
	}
}

static void __attribute__((noreturn)) refuse(const char *why)
{
	puts_serial("kexec-ts purgatory: ");
	puts_serial(why);
	puts_serial(", halting\r\n");
	purgatory_halt();
}

/* Addresses the 32-bit world must reach: i386 blob always, x86_64 blob in mode 1. */
static int below_4g(kx_u64 start, kx_u64 len)
{
	return start <= 0x100000000ull && len <= 0x100000000ull - start;
}

void purgatory_main(struct kxts_params *p)
{
	struct sha256_state st;
	kx_u8 got[32];
	kx_u64 total = 0;
	kx_u32 i;
	int same = 1;

	serial = (p->flags & KXTS_FLAG_SERIAL) != 0;
	puts_serial("kexec-ts purgatory: started\r\n");

#ifdef __x86_64__
	if (p->entry_mode != KXTS_MODE_ENTRY64 && p->entry_mode != KXTS_MODE_ENTRY32)
		refuse("entry mode is not 0 (64-bit) or 1 (32-bit): blob not patched?");
	if (p->entry_mode == KXTS_MODE_ENTRY32 &&
	    (!below_4g((kx_u64)(unsigned long)__image_end, 0) || !below_4g(p->entry, 1) || !below_4g(p->boot_params, 1)))
		refuse("32-bit entry needs the purgatory, entry and boot_params below 4 GiB");
#else
	if (p->entry_mode != KXTS_MODE_ENTRY32)
		refuse("an i386 purgatory can only use the 32-bit entry (mode 1)");
	if (!below_4g(p->entry, 1) || !below_4g(p->boot_params, 1))
		refuse("entry or boot_params above 4 GiB");
#endif
	if (p->region_count > KXTS_MAX_REGIONS)
		refuse("more than 16 regions");

	if (p->flags & KXTS_FLAG_SKIP_SHA) {
		puts_serial("kexec-ts purgatory: sha256 check skipped\r\n");
	} else {
		sha256_init(&st);
		for (i = 0; i < p->region_count; i++) {
			const struct kxts_region *r = &p->regions[i];
#ifndef __x86_64__
			if (!below_4g(r->start, r->len))
				refuse("a region lies above 4 GiB");
#endif
			sha256_update(&st, (const kx_u8 *)(unsigned long)r->start, (unsigned long)r->len);
			total += r->len;
		}
		sha256_final(&st, got);
		for (i = 0; i < 32; i++)
			if (got[i] != p->sha256[i])
				same = 0;
		if (!same) {
			puts_serial("kexec-ts purgatory: sha256 MISMATCH, not entering the kernel\r\n  expected ");
			putdigest(p->sha256);
			puts_serial("\r\n  computed ");
			putdigest(got);
			puts_serial("\r\n");
			refuse("segments corrupt");
		}
		puts_serial("kexec-ts purgatory: sha256 ok (");
		puthex(p->region_count);
		puts_serial(" regions, ");
		puthex(total);
		puts_serial(" bytes)\r\n");
	}
	puts_serial(p->entry_mode == KXTS_MODE_ENTRY64 ?
		    "kexec-ts purgatory: entering 64-bit " : "kexec-ts purgatory: entering 32-bit ");
	puthex(p->entry);
	puts_serial(" boot_params ");
	puthex(p->boot_params);
	puts_serial("\r\n");
}
