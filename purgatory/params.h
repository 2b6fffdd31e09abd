/*
 * kexec-ts purgatory: the parameter block.
 *
 * This is the one definition of the layout. kexec-ts (src/core/plan/purgatory.ts)
 * mirrors it as a table and patches a copy of the blob before loading it; it
 * finds the block at KXTS_PARAMS_OFFSET and checks magic, version and size
 * first, so a blob from another build cannot be patched at the wrong place.
 *
 * All fields are little-endian. Offsets are fixed by _Static_assert below so
 * the assembly (which cannot see the struct) and the C agree.
 */
#ifndef KXTS_PARAMS_H
#define KXTS_PARAMS_H

#define KXTS_PARAMS_OFFSET   0x0     /* the block is the first thing in the blob */
#define KXTS_PARAMS_VERSION  1
#define KXTS_MAX_REGIONS     16

/* entry_mode */
#define KXTS_MODE_ENTRY64    0       /* long mode, %rsi = boot_params */
#define KXTS_MODE_ENTRY32    1       /* 32-bit protected mode, paging off, %esi = boot_params */
#define KXTS_MODE_UNSET      0xffffffff /* as built: refuse to run until patched */

/* flags */
#define KXTS_FLAG_SERIAL     0x1     /* progress and errors on COM1 (0x3f8) */
#define KXTS_FLAG_SKIP_SHA   0x2     /* do not verify the digest */

/* byte offsets inside the block */
#define KXTS_P_MAGIC         0x00    /* char[8] "KXTSPURG" */
#define KXTS_P_VERSION       0x08    /* u32 */
#define KXTS_P_SIZE          0x0c    /* u32: sizeof(struct kxts_params) */
#define KXTS_P_ENTRY_MODE    0x10    /* u32 */
#define KXTS_P_FLAGS         0x14    /* u32 */
#define KXTS_P_ENTRY         0x18    /* u64: physical address to jump to */
#define KXTS_P_BOOT_PARAMS   0x20    /* u64: physical address of struct boot_params */
#define KXTS_P_REGION_COUNT  0x28    /* u32: regions in use, 0..16 */
#define KXTS_P_RESERVED      0x2c    /* u32: zero */
#define KXTS_P_SHA256        0x30    /* u8[32]: digest of the regions, in order */
#define KXTS_P_REGIONS       0x50    /* {u64 start; u64 len;}[16] */
#define KXTS_P_END           0x150

#ifndef __ASSEMBLER__

typedef unsigned char      kx_u8;
typedef unsigned int       kx_u32;
typedef unsigned long long kx_u64;

struct kxts_region {
	kx_u64 start;
	kx_u64 len;
};

struct kxts_params {
	char   magic[8];
	kx_u32 version;
	kx_u32 size;
	kx_u32 entry_mode;
	kx_u32 flags;
	kx_u64 entry;
	kx_u64 boot_params;
	kx_u32 region_count;
	kx_u32 reserved;
	kx_u8  sha256[32];
	struct kxts_region regions[KXTS_MAX_REGIONS];
} __attribute__((packed, aligned(16)));

#define KXTS_CHECK(field, off) \
	_Static_assert(__builtin_offsetof(struct kxts_params, field) == (off), #field " moved")
KXTS_CHECK(magic, KXTS_P_MAGIC);
KXTS_CHECK(version, KXTS_P_VERSION);
KXTS_CHECK(size, KXTS_P_SIZE);
KXTS_CHECK(entry_mode, KXTS_P_ENTRY_MODE);
KXTS_CHECK(flags, KXTS_P_FLAGS);
KXTS_CHECK(entry, KXTS_P_ENTRY);
KXTS_CHECK(boot_params, KXTS_P_BOOT_PARAMS);
KXTS_CHECK(region_count, KXTS_P_REGION_COUNT);
KXTS_CHECK(reserved, KXTS_P_RESERVED);
KXTS_CHECK(sha256, KXTS_P_SHA256);
KXTS_CHECK(regions, KXTS_P_REGIONS);
_Static_assert(sizeof(struct kxts_params) == KXTS_P_END, "struct kxts_params size");

#endif /* __ASSEMBLER__ */
#endif /* KXTS_PARAMS_H */
