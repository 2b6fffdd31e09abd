/**
 * From the load flags to the one Request that `plan`, `check` and the loaders
 * share (src/core/plan/request.ts), built once per run. -s/-c/-a, --append,
 * --reuse-cmdline, --initrd (its size only), --mem-min/--mem-max, -t and
 * --userspace all mean the same everywhere because they are read only here.
 */
import { KexecError } from "../core/errors.js";
import { hex, parseNumber } from "../core/format.js";
import { MAX_U64 } from "../core/machine/text.js";
import type { KernelImage } from "../core/image/index.js";
import type { Machine } from "../core/machine/model.js";
import { newKernelCommandLine } from "../core/plan/cmdline.js";
import { applyImageType, parseImageType, type Arch, type Request, type SyscallRequest } from "../core/plan/request.js";
import { fileSize } from "../node/files.js";
import { userArch as processArch } from "../node/syscalls.js";
import { has, value, type ParsedArgs } from "./options.js";

/** What a load is given: the request, and where its files are. */
export interface LoadInvocation {
  request: Request;
  imagePath: string;
  initrdPath: string | undefined;
  /** --root DIR, or "/". */
  root: string;
}

export function machineRoot(args: ParsedArgs): string {
  return value(args, "root") ?? "/";
}

export function syscallRequest(args: ParsedArgs): SyscallRequest {
  if (has(args, "kexec-file-syscall")) return "kexec_file_load";
  if (has(args, "kexec-syscall")) return "kexec_load";
  return "auto";
}

/** The image operand of -l, -p, plan and check; the hint is a command line that would have worked. */
export function imageOperand(args: ParsedArgs, operands: readonly string[], command?: "plan" | "check"): string {
  const path = operands[0];
  if (path !== undefined) return path;
  const flag = has(args, "load-panic") ? "-p" : "-l";
  throw new KexecError("usage", `${command ?? flag} needs a kernel IMAGE`, { field: "IMAGE" },
    `kexec-ts ${command ? `${command} ` : ""}${flag} /boot/vmlinuz-$(uname -r) --initrd=/boot/initrd.img-$(uname -r) --reuse-cmdline`);
}

/** --userspace, checked by the flag table: the two user-space ABIs kexec-ts runs in. */
export function userspaceFlag(args: ParsedArgs): Arch | undefined {
  return value(args, "userspace") as Arch | undefined;
}

/**
 * The user space the load would run in: --userspace if given; with --root,
 * i386 for an i386 snapshot (a 64-bit process cannot run there); else this process.
 */
export function predictedUserArch(args: ParsedArgs, machine: Machine): Arch {
  const given = userspaceFlag(args);
  if (given !== undefined) return given;
  if (has(args, "root") && machine.kernelArch === "i386") return "i386";
  return processArch();
}

/** Whether the loader has CAP_SYS_BOOT; unknown when replaying a snapshot with --root. */
export function loaderIsRoot(args: ParsedArgs): boolean | undefined {
  if (has(args, "root")) return undefined;
  return typeof process.getuid === "function" ? process.getuid() === 0 : undefined;
}

export function parseAddress(text: string | undefined, flag: string): bigint | undefined {
  if (text === undefined) return undefined;
  const v = parseNumber(text);
  if (v === undefined) throw new KexecError("usage", `--${flag}=${text} is not a number`, { field: flag, actual: text }, `e.g. --${flag}=0x100000000`);
  // As kexec-tools' strtoull: an address has 64 bits at most (one past them was explained as "no room" instead).
  if (v > MAX_U64) throw new KexecError("usage", `--${flag}=${text} is more than 64 bits`, { field: flag, expected: `<= ${hex(MAX_U64)}`, actual: text }, `e.g. --${flag}=0x100000000`);
  return v;
}

/** --mem-min and --mem-max; a window they leave empty is a usage error, not "no room" for the first segment. */
export function memoryBounds(args: ParsedArgs): { memMin: bigint | undefined; memMax: bigint | undefined } {
  const memMin = parseAddress(value(args, "mem-min"), "mem-min");
  const memMax = parseAddress(value(args, "mem-max"), "mem-max");
  if (memMin !== undefined && memMax !== undefined && memMin > memMax) {
    throw new KexecError("usage", `--mem-min=${hex(memMin)} is above --mem-max=${hex(memMax)}: nothing can be placed between them`,
      { field: "mem-min", expected: `<= --mem-max (${hex(memMax)})`, actual: hex(memMin) }, "swap them, or leave one out (--mem-max is the last usable address)");
  }
  return { memMin, memMax };
}

/** The new kernel's command line: --reuse-cmdline's part, then --append (kexec-tools joins them with one space). */
export function commandLine(args: ParsedArgs, machine: Machine, crash: boolean): string {
  return newKernelCommandLine(machine, { reuse: has(args, "reuse-cmdline"), append: value(args, "append"), crash });
}

/** --elf32-core-headers / --elf64-core-headers; an x86_64 kernel's addresses do not fit ELF32. */
function coreHeaderClass(args: ParsedArgs, machine: Machine): 32 | 64 | undefined {
  const want32 = has(args, "elf32-core-headers");
  const want64 = has(args, "elf64-core-headers");
  if (want32 && want64) throw new KexecError("usage", "--elf32-core-headers and --elf64-core-headers contradict each other", { field: "elf32-core-headers" }, "give one of them");
  if (want32 && machine.kernelArch === "x86_64") {
    throw new KexecError("usage", "--elf32-core-headers: an x86_64 kernel's virtual addresses (and RAM above 4 GiB) do not fit ELF32 program headers", { field: "elf32-core-headers", expected: "64", actual: "32" },
      "leave it out: x86_64 gets ELF64 core headers");
  }
  return want32 ? 32 : want64 ? 64 : undefined;
}

/** The one Request for a load, plan or check of `image` on `machine`. */
export function loadRequest(args: ParsedArgs, machine: Machine, image: KernelImage, initrdPath: string | undefined): Request {
  const crash = has(args, "load-panic");
  const type = value(args, "type");
  const request: Request = {
    crash,
    syscall: syscallRequest(args),
    cmdline: commandLine(args, machine, crash),
    initrdSize: initrdPath === undefined ? undefined : fileSize(initrdPath, "initrd", { allowEmpty: false }),
    userArch: predictedUserArch(args, machine),
    ...memoryBounds(args),
    entry32: has(args, "entry-32bit"),
    imageType: type === undefined ? undefined : parseImageType(type),
    coreHeaderClass: crash ? coreHeaderClass(args, machine) : undefined,
  };
  return applyImageType(image, request);
}
