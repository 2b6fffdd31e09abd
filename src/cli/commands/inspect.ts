/** `kexec-ts inspect IMAGE [--json] [--vmlinux] [--extract=FILE]`: what the image is and what it supports. */
import { KexecError } from "../../core/errors.js";
import { inspectJson, renderInspect } from "../../core/image/describe.js";
import { checkOutputPath, writeOutputFile } from "../../node/files.js";
import { readKernelImageFile } from "../../node/image.js";
import { has, value, type ParsedArgs } from "../options.js";
import { print } from "../output.js";

export async function run(args: ParsedArgs, operands: string[]): Promise<number> {
  const path = operands[0];
  if (path === undefined) throw new KexecError("usage", "inspect needs an IMAGE", {}, "kexec-ts inspect /boot/vmlinuz-$(uname -r)");
  const extract = value(args, "extract");
  const output = extract === undefined ? undefined : { path: extract, what: "vmlinux", command: "inspect --extract", inputs: [{ path, what: "the image" }] };
  // Before the payload is decompressed: a refused path is said at once.
  if (output) checkOutputPath(output);
  const image = await readKernelImageFile(path, { decompressPayload: has(args, "vmlinux") || extract !== undefined });
  if (output) {
    const vmlinux = image.kind === "bzImage" ? image.vmlinuxBytes : image.bytes;
    if (!vmlinux) throw new KexecError("usage", `${path}: no payload to extract`, { file: path }, "inspect the image without --extract to see why it has none");
    writeOutputFile(output, vmlinux);
  }
  print(args, () => inspectJson(image), () => renderInspect(image, path));
  return 0;
}
