/**
 * What -l, -p, `plan` and `check` share: the machine, the image, the one
 * Request, and the checks over them; then, for kexec_load only, the segments
 * filled with their bytes (the initrd is read here and nowhere earlier).
 */
import { constants as bufferConstants } from "node:buffer";
import { runChecks, syscallsTried, type CheckResult } from "../core/check/index.js";
import { KexecError } from "../core/errors.js";
import { hex, size } from "../core/format.js";
import type { KernelImage } from "../core/image/index.js";
import type { Machine } from "../core/machine/model.js";
import { kexecLoadPlanner, type KexecLoadPlanner, type Plan } from "../core/plan/plan.js";
import type { Request } from "../core/plan/request.js";
import { rngSeed, sha256 } from "../node/crypto.js";
import { checkReadable } from "../node/files.js";
import { ALIAS_SPAN, readInitrdFor } from "../node/initrd.js";
import { readKernelImageFile } from "../node/image.js";
import { readKernelLayout } from "../node/kernel-layout.js";
import { UNUSED_BY } from "../core/machine/files.js";
import { readMachine } from "../node/machine.js";
import { has, value, type ParsedArgs } from "./options.js";
import { imageOperand, loadRequest, loaderIsRoot, machineRoot } from "./request.js";

export interface PreparedLoad {
  /** The machine; while kexec_file_load is the syscall, without what only a kexec_load plan reads (kexecLoadMachine has it). */
  machine: Machine;
  image: KernelImage;
  request: Request;
  imagePath: string;
  initrdPath: string | undefined;
  root: string;
  checks: CheckResult[];
  /** The machine with everything a kexec_load plan uses, read now if `machine` left it out. */
  kexecLoadMachine: () => Promise<Machine>;
  /** The kexec_load placement the checks made, which fillPlan fills when its machine is the same. */
  kexecLoad: KexecLoadPlanner;
}

export async function prepareLoad(args: ParsedArgs, operands: readonly string[], command?: "plan" | "check"): Promise<PreparedLoad> {
  const imagePath = imageOperand(args, operands, command);
  const root = machineRoot(args);
  const crash = has(args, "load-panic");
  const kind = crash ? "crash" : "kexec";
  // Not the files only the other kind of load uses: most of them on a machine with thousands of ranges and CPUs.
  // Nor, while kexec_file_load may be the syscall, what only kexec-ts's own kexec_load plan reads (the CPUs'
  // crash notes, the firmware memmap: a file each, UNUSED_BY.fileLoad); `plan` without -s always makes that plan.
  const later = !has(args, "kexec-syscall") && (command !== "plan" || has(args, "kexec-file-syscall"));
  let machine = await readMachine(root, { skip: UNUSED_BY[later ? "fileLoad" : kind] });
  let complete: Promise<Machine> | undefined = later ? undefined : Promise.resolve(machine);
  const kexecLoadMachine = () => (complete ??= readMachine(root, { skip: UNUSED_BY[kind] }));
  // Without a usable /proc/iomem (not root), a kexec load's memory map falls back to the firmware memmap.
  if (later && !crash && machine.memorySource !== "iomem") machine = await kexecLoadMachine();
  const image = await readKernelImageFile(imagePath);
  const initrdPath = value(args, "initrd");
  const request = loadRequest(args, machine, image, initrdPath);
  const isRoot = loaderIsRoot(args);
  // The checks place the segments as the syscall that loads would, and kexec_load's placement is kexec-ts's plan.
  const files = { image: imagePath, initrd: initrdPath };
  if (later && syscallsTried({ image, machine, request, isRoot, files }).includes("kexec_load")) machine = await kexecLoadMachine();
  const kexecLoad = kexecLoadPlanner(image, machine, request);
  const checks = runChecks({ image, machine, request, isRoot, files, kexecLoad });
  return { machine, image, request, imagePath, initrdPath, root, checks, kexecLoadMachine, kexecLoad };
}

/**
 * The kexec_load plan with every segment's bytes. "load": the initrd is read once it is placed,
 * into a buffer laid out by its destination (src/node/initrd.ts), and the purgatory carries the
 * segments' digest. "show" (`plan`) is never handed to the kernel, so it reads nothing it does not
 * print: no digest (hashing the initrd and the kernel's zero fill was most of a plan's time), and
 * the initrd and the RNG seed are stand-ins of their sizes (reading a 46 MiB initrd was 57 ms of
 * `plan -p`). The initrd is still opened, so a file the load could not read fails here too.
 */
export async function fillPlan(p: PreparedLoad, use: "load" | "show"): Promise<Plan> {
  const machine = await p.kexecLoadMachine();
  const initrdPath = p.initrdPath;
  if (initrdPath !== undefined) refuseInitrdPastOneBuffer(initrdPath, p.request.initrdSize ?? 0);
  const initrd = initrdPath === undefined ? undefined
    : use === "load" ? (destination: bigint) => readInitrdFor(initrdPath, "initrd", destination)
    : unreadStandIn(initrdPath, p.request.initrdSize);
  const layout = p.request.crash ? readKernelLayout(p.root, machine) : undefined;
  const planner = p.kexecLoad.machine === machine ? p.kexecLoad : kexecLoadPlanner(p.image, machine, p.request);
  return planner.plan({
    initrd,
    rngSeed: use === "load" ? rngSeed() : new Uint8Array(32),
    serialDebug: process.env["KEXEC_TS_PURGATORY_SERIAL"] === "1",
    sha256: use === "load" ? sha256 : null,
  }, layout);
}

/**
 * kexec_load is handed the initrd from one buffer of this process, and Node's buffers stop at
 * buffer.constants.MAX_LENGTH (4 GiB in Node 20); kexec_file_load reads at most 4 GiB itself
 * (KEXEC_FILE_SIZE_MAX, kernel/kexec_file.c; INT_MAX before Linux 6.0: the kexec-file-size check).
 * A larger initrd is no plan, not a RangeError.
 */
function refuseInitrdPastOneBuffer(path: string, bytes: number): void {
  const most = bufferConstants.MAX_LENGTH - ALIAS_SPAN;
  if (bytes <= most) return;
  throw new KexecError("plan", `${path}: the initrd is ${size(bytes)} (${hex(bytes)} bytes), more than the ${size(most)} kexec-ts can hand kexec_load in one buffer`,
    { file: path, field: "initrd", expected: `at most ${hex(most)} bytes`, actual: hex(bytes) },
    "use a smaller initrd (kexec_file_load, -s, reads at most 4 GiB of one too, and 2 GiB before Linux 6.0)");
}

/** Zeros as long as the file was when it was placed (a fresh allocation: the pages are not touched), once the file opens. */
function unreadStandIn(path: string, placedSize: number | undefined): Uint8Array {
  checkReadable(path, "initrd");
  return new Uint8Array(placedSize ?? 0);
}
