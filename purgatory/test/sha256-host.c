/*
 * Host driver for purgatory/sha256.c, used by src/core/plan/purgatory.test.ts:
 * the test compiles this together with the purgatory's own sha256.c and
 * compares the digests with node:crypto.
 *
 * stdin: u32 cases, then per case: u32 regions, then per region u32 len + len bytes
 * (little-endian). stdout: one lowercase hex digest per case. Each region is
 * fed with its own sha256_update call, as the purgatory does.
 */
#include <stdio.h>
#include <stdlib.h>
#include "sha256.h"

static unsigned int get_u32(void)
{
	unsigned char b[4];
	if (fread(b, 1, 4, stdin) != 4) {
		fprintf(stderr, "sha256-host: short input\n");
		exit(1);
	}
	return b[0] | b[1] << 8 | b[2] << 16 | (unsigned int)b[3] << 24;
}

int main(void)
{
	unsigned int cases = get_u32(), c, r, i;

	for (c = 0; c < cases; c++) {
		struct sha256_state st;
		unsigned char out[32];
		unsigned int regions = get_u32();

		sha256_init(&st);
		for (r = 0; r < regions; r++) {
			unsigned int len = get_u32();
			unsigned char *buf = malloc(len ? len : 1);
			if (!buf || fread(buf, 1, len, stdin) != len) {
				fprintf(stderr, "sha256-host: short region\n");
				return 1;
			}
			sha256_update(&st, buf, len);
			free(buf);
		}
		sha256_final(&st, out);
		for (i = 0; i < 32; i++)
			printf("%02x", out[i]);
		printf("\n");
	}
	return 0;
}
