/*
 * SHA-256 (FIPS 180-4) for the purgatory: freestanding, no libc, no tables of
 * pointers, so it links position-independently. The same file is compiled for
 * the host by src/core/plan/purgatory.test.ts and compared with node:crypto.
 */
#ifndef KXTS_SHA256_H
#define KXTS_SHA256_H

typedef unsigned char      sha_u8;
typedef unsigned int       sha_u32;
typedef unsigned long long sha_u64;

struct sha256_state {
	sha_u32 h[8];
	sha_u64 total;          /* bytes hashed so far */
	sha_u32 fill;           /* bytes waiting in block */
	sha_u8  block[64];
};

void sha256_init(struct sha256_state *s);
/* len is a machine word: the i386 purgatory can only address 4 GiB anyway. */
void sha256_update(struct sha256_state *s, const sha_u8 *data, unsigned long len);
void sha256_final(struct sha256_state *s, sha_u8 out[32]);

#endif
