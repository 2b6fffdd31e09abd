/**
 * What the user asked for, built once (from the command line, a kdump
 * service's settings, or the web page's form) and shared by `plan`, `check`
 * and the loaders, so all of them answer the same question. It holds sizes
 * only: placement needs how big the initrd is, not its bytes, which are read
 * when (and only when) the segments are filled in for kexec_load.
 */
import { KexecError } from "../errors.js";
import type { KernelImage } from "../image/index.js";

export type Arch = "x86_64" | "i386";
/** -s, -c, or -a (the default): which syscall the user allowed. */
export type SyscallRequest = "kexec_load" | "kexec_file_load" | "auto";
export type Syscall = "kexec_load" | "kexec_file_load";

export interface Request {
  /** -p: a crash (kdump) kernel, entered on panic. */
  crash: boolean;
  syscall: SyscallRequest;
  /** The command line the new kernel gets, before anything a loader prepends (elfcorehdr=). */
  cmdline: string;
  /** Bytes of initrd; undefined when there is none. */
  initrdSize?: number | undefined;
  /** The user space doing the load (a 32-bit kexec-ts on a 64-bit kernel is seed 002). */
  userArch: Arch;
  memMin?: bigint | undefined;
  /** Inclusive, as kexec-tools' --mem-max. */
  memMax?: bigint | undefined;
  /** Enter a 64-bit bzImage through its 32-bit entry (--entry-32bit, or -t bzImage). */
  entry32?: boolean | undefined;
  /** -t/--type as kexec-tools spells it; undefined: detected from the image. */
  imageType?: ImageType | undefined;
  /** -p: the ELF class of the core header; undefined: the running kernel's (64 on x86_64, 32 on i386). */
  coreHeaderClass?: 32 | 64 | undefined;
}

/**
 * A request as the core takes it (plan, check): what its type cannot say is checked here once.
 * initrdSize becomes a bigint at placement: a fraction, infinity or NaN from the web page's
 * number field threw a RangeError there, and a negative or zero size failed as "no room for
 * the initrd: 0x0 bytes". An empty initrd is refused as the CLI refuses an empty file.
 */
export function validatedRequest(request: Request): Request {
  const size = request.initrdSize;
  if (size !== undefined && !(Number.isSafeInteger(size) && size >= 1)) {
    const range = `from 1 to ${Number.MAX_SAFE_INTEGER}`;
    throw new KexecError("usage", `initrd size must be a whole number of bytes ${range}, not ${String(size)}`,
      { field: "initrdSize", expected: `an integer ${range}`, actual: String(size) }, "give the initrd's size in bytes (ls -l INITRD), or none for no initrd");
  }
  return request;
}

/**
 * The x86 image types kexec-tools' -t accepts (kexec/arch/x86_64/kexec-x86_64.c and
 * kexec/arch/i386/kexec-x86.c, file_type[]), and which of them kexec-ts loads.
 * kexec-tools honours -t only for kexec_load (my_load in kexec/kexec.c); so does kexec-ts.
 */
export const IMAGE_TYPES = ["bzImage64", "bzImage", "elf-x86_64", "elf-x86"] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];
/** kexec-tools types that kexec-ts does not load, with why: refused by name rather than loaded some other way. */
export const REFUSED_IMAGE_TYPES: Readonly<Record<string, string>> = {
  "multiboot-x86": "a Multiboot kernel (e.g. Xen, a hobby OS) is not a Linux boot protocol image",
  "multiboot2-x86": "a Multiboot2 kernel is not a Linux boot protocol image",
  "beoboot-x86": "Beoboot images (a 2000s cluster boot format) are not supported",
  "nbi-x86": "Etherboot NBI images are not supported",
  uki: "a Unified Kernel Image is a PE wrapper that kexec-ts does not unwrap; pass the kernel inside it (its .linux section)",
};

/** What the image is, in kexec-tools' -t names. */
export function detectedImageType(image: KernelImage): ImageType {
  if (image.kind === "bzImage") return image.bzImage.is64 ? "bzImage64" : "bzImage";
  return image.vmlinux.elf.header.elfClass === 64 ? "elf-x86_64" : "elf-x86";
}

export function parseImageType(text: string): ImageType {
  if ((IMAGE_TYPES as readonly string[]).includes(text)) return text as ImageType;
  const refused = REFUSED_IMAGE_TYPES[text];
  if (refused !== undefined) {
    throw new KexecError("usage", `--type=${text}: kexec-ts does not load this type: ${refused}`, { field: "type", expected: IMAGE_TYPES.join(" | "), actual: text },
      "leave -t out to have the type detected, or use kexec-tools for this image type");
  }
  throw new KexecError("usage", `--type=${text}: unsupported kernel type`, { field: "type", expected: IMAGE_TYPES.join(" | "), actual: text },
    `kexec-tools' x86 names: ${IMAGE_TYPES.join(", ")}`);
}

/**
 * -t checked against the image, as kexec-tools' my_load does ("Wrong file type
 * bzImage64, file matches type bzImage"). -t bzImage on a 64-bit bzImage is
 * kexec-tools' 32-bit bzImage loader, which enters at code32_start: the same as --entry-32bit.
 */
export function applyImageType(image: KernelImage, request: Request): Request {
  const type = request.imageType;
  if (type === undefined) return request;
  const detected = detectedImageType(image);
  if (type === detected) return request;
  if (type === "bzImage" && detected === "bzImage64") return { ...request, entry32: true };
  throw new KexecError("usage", `wrong file type ${type}: the image is ${/^elf/.test(detected) ? "an" : "a"} ${detected}`, { field: "type", expected: type, actual: detected },
    `use -t ${detected}, or leave -t out to have the type detected`);
}
