/**
 * Reading kernel images with every codec (kernel-image.ts has the reader itself): for the web
 * page, the tests and every command that may decompress. The load path (src/node/image.ts) reads
 * through kernel-image.ts and loads the codecs only for an image that needs them.
 */
import { decompress } from "./compression/index.js";
import type { BzImage } from "./bzimage.js";
import { readKernelImageWith, readPayloadWith, type KernelImage, type ReadImageOptions, type Vmlinux } from "./kernel-image.js";

export * from "./kernel-image.js";

export function readKernelImage(input: Uint8Array, options: ReadImageOptions = {}): KernelImage {
  return readKernelImageWith(input, options, decompress);
}

/** The vmlinux inside a bzImage's payload, decompressed. */
export function readPayload(bytes: Uint8Array, bz: BzImage): Vmlinux {
  return readPayloadWith(bytes, bz, decompress);
}
