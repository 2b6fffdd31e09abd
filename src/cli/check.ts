/**
 * `kexec-ts check -l|-p IMAGE [load flags] [--root DIR] [--json]`: the
 * verdicts alone, nothing loaded. Exit 0 all ok, 1 warnings only, 2 any fail.
 * `requestFromArgs` builds the same request `load` and `plan` check with.
 */
import { statSync } from "node:fs";
import { checksJson, renderChecks, runChecks, summarize, type Arch, type CheckRequest, type CheckResult, type SyscallRequest } from "../core/check/index.js";
import { KexecError } from "../core/errors.js";
import type { KernelImage } from "../core/image/index.js";
import type { Machine } from "../core/machine/model.js";
import { ioError } from "../node/files.js";
import { readMachine } from "../node/machine.js";
import { userArch as processArch } from "../node/syscalls.js";
import { loadImage } from "./image-commands.js";
import { commandLine, parseAddress } from "./load.js";
import { has, value, type ParsedArgs } from "./options.js";

function syscallRequest(args: ParsedArgs): SyscallRequest {
  if (has(args, "kexec-file-syscall")) return "kexec_file_load";
  if (has(args, "kexec-syscall")) return "kexec_load";
  return "auto";
}

/** --userspace, checked: the two user-space ABIs kexec-ts runs in. */
export function userspaceFlag(args: ParsedArgs): Arch | undefined {
  const given = value(args, "userspace");
  if (given === undefined || given === "x86_64" || given === "i386") return given;
  throw new KexecError("usage", `--userspace=${given}: expected x86_64 or i386`, { field: "userspace", expected: "x86_64 | i386", actual: given },
    "i386 means a 32-bit process (e.g. Debian's nodejs:i386) on a 32- or 64-bit kernel");
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

/** Size of the initrd without reading it: only its size matters to the checks. */
export function initrdSize(path: string | undefined): number | undefined {
  if (path === undefined) return undefined;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new KexecError("io", `${path}: is a directory, expected an initrd`, { file: path, expected: "a regular file", actual: "a directory" });
    return st.size;
  } catch (e) {
    if (e instanceof KexecError) throw e;
    throw ioError(e, path, "initrd");
  }
}

export function requestFromArgs(args: ParsedArgs, machine: Machine, initrdBytes: number | undefined): CheckRequest {
  const crash = has(args, "load-panic");
  return {
    crash,
    syscall: syscallRequest(args),
    cmdline: commandLine(args, machine, crash),
    initrdSize: initrdBytes,
    userArch: predictedUserArch(args, machine),
    memMin: parseAddress(value(args, "mem-min"), "mem-min"),
    memMax: parseAddress(value(args, "mem-max"), "mem-max"),
    entry32: has(args, "entry-32bit"),
  };
}

/** Whether the loader has CAP_SYS_BOOT; unknown when replaying a snapshot with --root. */
export function loaderIsRoot(args: ParsedArgs): boolean | undefined {
  if (has(args, "root")) return undefined;
  return typeof process.getuid === "function" ? process.getuid() === 0 : undefined;
}

/** The checks for a parsed command line, for `load` and `plan` to run before they act. */
export function checksFor(args: ParsedArgs, image: KernelImage, machine: Machine, initrdBytes: number | undefined): CheckResult[] {
  return runChecks({ image, machine, request: requestFromArgs(args, machine, initrdBytes), isRoot: loaderIsRoot(args) });
}

export async function checkCommand(args: ParsedArgs, rest: string[]): Promise<number> {
  const crash = has(args, "load-panic");
  const imagePath = rest[0];
  if (imagePath === undefined) {
    throw new KexecError("usage", "check needs a kernel IMAGE", {}, `kexec-ts check ${crash ? "-p" : "-l"} /boot/vmlinuz-$(uname -r) --initrd=/boot/initrd.img-$(uname -r) --reuse-cmdline`);
  }
  const machine = await readMachine(value(args, "root") ?? "/");
  const image = loadImage(imagePath, false);
  const results = checksFor(args, image, machine, initrdSize(value(args, "initrd")));
  if (has(args, "json")) process.stdout.write(`${JSON.stringify(checksJson(results), null, 2)}\n`);
  else process.stdout.write(`${renderChecks(results)}\n`);
  return summarize(results).exitCode;
}
