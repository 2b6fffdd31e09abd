/** A kernel image read from a file: the core's parser, with the path in every error. */
import { isKexecError } from "../core/errors.js";
import { codecsNeeded, readKernelImageWith, type KernelImage } from "../core/image/kernel-image.js";
import { readInputFile } from "./files.js";
import { optimisingCompilerOn } from "./jit.js";

/**
 * The codecs are imported only for an image that needs them (a vmlinux.xz, or --vmlinux): a bzImage
 * is read from its headers, and loading fflate and fzstd (which build tables as they load) would
 * cost every -l, -p, check and plan a few ms for nothing.
 */
export async function readKernelImageFile(path: string, options: { decompressPayload?: boolean } = {}): Promise<KernelImage> {
  const bytes = readInputFile(path, "kernel image", { allowEmpty: false });
  try {
    const needed = codecsNeeded(bytes, options);
    // Decompressing in JavaScript is the one long loop a short command may meet (bin/kexec-ts.cjs).
    if (needed) optimisingCompilerOn();
    const decompress = needed ? (await import("../core/image/compression/index.js")).decompress : undefined;
    return readKernelImageWith(bytes, options, decompress);
  } catch (e) {
    if (isKexecError(e)) throw e.inFile(path);
    throw e;
  }
}
