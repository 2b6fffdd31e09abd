/** A kernel image read from a file: the core's parser, with the path in every error. */
import { isKexecError } from "../core/errors.js";
import { readKernelImage, type KernelImage } from "../core/image/index.js";
import { readInputFile } from "./files.js";

export function readKernelImageFile(path: string, options: { decompressPayload?: boolean } = {}): KernelImage {
  const bytes = readInputFile(path, "kernel image", { allowEmpty: false });
  try {
    return readKernelImage(bytes, options);
  } catch (e) {
    if (isKexecError(e)) throw e.inFile(path);
    throw e;
  }
}
