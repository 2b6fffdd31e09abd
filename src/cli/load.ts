/**
 * kexec-tools compatible actions: -l / -p (load), -e (exec), -u (unload), and
 * `plan` (the same computation with nothing loaded). The syscall choice
 * follows kexec-tools: -s file only, -c kexec_load only, -a (default) file
 * first and kexec_load when the kernel lacks or refuses the file loader in a
 * way kexec_load might not (ENOSYS, EINVAL, ENOEXEC, ENOTSUP) — never after a
 * permission or signature refusal, which kexec_load would only repeat.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { KexecError, isKexecError } from "../core/errors.js";
import { hex, parseNumber, size, table } from "../core/format.js";
import type { KernelImage } from "../core/image/index.js";
import type { Machine } from "../core/machine/model.js";
import { newKernelCommandLine } from "../core/plan/cmdline.js";
import { planJson, planLoad, type Plan } from "../core/plan/plan.js";
import type { ErrnoContext } from "../core/plan/syscall-errors.js";
import { rngSeed, sha256 } from "../node/crypto.js";
import { readInputFile } from "../node/files.js";
import { readMachine } from "../node/machine.js";
import { readKernelLayout } from "../node/kernel-layout.js";
import {
  KEXEC_FILE_ON_CRASH, kexecFileLoad, kexecFileUnload, kexecLoad, kexecUnload, rebootIntoKexec,
} from "../node/syscalls.js";
import { loadImage } from "./image-commands.js";
import { checksFor, loaderIsRoot, predictedUserArch, requestFromArgs } from "./check.js";
import { checksJson, predictFilePlacement, renderChecks, summarize, type CheckResult } from "../core/check/index.js";
import { has, value, type ParsedArgs } from "./options.js";

type SyscallChoice = "file" | "load" | "auto";

function syscallChoice(args: ParsedArgs): SyscallChoice {
  if (has(args, "kexec-file-syscall")) return "file";
  if (has(args, "kexec-syscall")) return "load";
  return "auto";
}

export function parseAddress(text: string | undefined, flag: string): bigint | undefined {
  if (text === undefined) return undefined;
  const v = parseNumber(text);
  if (v === undefined) throw new KexecError("usage", `--${flag}=${text} is not a number`, { field: flag, actual: text }, `e.g. --${flag}=0x100000000`);
  return v;
}

/** The new kernel's command line: --reuse-cmdline's part, then --append (kexec-tools joins them with one space). */
export function commandLine(args: ParsedArgs, machine: Machine, crash: boolean): string {
  return newKernelCommandLine(machine, { reuse: has(args, "reuse-cmdline"), append: value(args, "append"), crash });
}

function errnoContext(machine: Machine, image?: KernelImage): ErrnoContext {
  return {
    lockdown: machine.lockdown ?? undefined,
    loadDisabled: machine.kexec.loadDisabled ?? undefined,
    isRoot: typeof process.getuid === "function" ? process.getuid() === 0 : undefined,
    imageSigned: image?.kind === "bzImage" ? image.bzImage.pe.signed : undefined,
  };
}

interface Prepared {
  image: KernelImage;
  machine: Machine;
  imagePath: string;
  initrdPath: string | undefined;
  initrd: Uint8Array | undefined;
  cmdline: string;
  crash: boolean;
}

async function prepare(args: ParsedArgs, positionals: string[]): Promise<Prepared> {
  const crash = has(args, "load-panic");
  const imagePath = positionals[0];
  if (imagePath === undefined) throw new KexecError("usage", `${crash ? "-p" : "-l"} needs a kernel IMAGE`, {}, `kexec-ts ${crash ? "-p" : "-l"} /boot/vmlinuz-$(uname -r) --initrd=/boot/initrd.img-$(uname -r) --reuse-cmdline`);
  const machine = await readMachine(value(args, "root") ?? "/");
  const image = loadImage(imagePath, false);
  const initrdPath = value(args, "initrd");
  const initrd = initrdPath === undefined ? undefined : readInputFile(initrdPath, "initrd");
  return { image, machine, imagePath, initrdPath, initrd, cmdline: commandLine(args, machine, crash), crash };
}

function makePlan(p: Prepared, args: ParsedArgs, arch = predictedUserArch(args, p.machine)): Plan {
  return planLoad(p.image, p.machine, {
    crash: p.crash,
    cmdline: p.cmdline,
    initrd: p.initrd,
    userArch: arch,
    memMin: parseAddress(value(args, "mem-min"), "mem-min"),
    memMax: parseAddress(value(args, "mem-max"), "mem-max"),
    entry32: has(args, "entry-32bit"),
    rngSeed: rngSeed(),
    serialDebug: process.env.KEXEC_TS_PURGATORY_SERIAL === "1",
    sha256,
    kernelLayout: p.crash ? readKernelLayout(value(args, "root") ?? "/", p.machine) : undefined,
  });
}

export function renderPlan(plan: Plan): string {
  const rows = [["  kind", "mem", "memsz", "bufsz", ""]];
  for (const s of plan.segments) rows.push([`  ${s.kind}`, hex(s.mem), hex(s.memsz), hex(s.buf.length), size(s.memsz)]);
  return [
    `${plan.syscall}: ${plan.crash ? "crash kernel" : "kernel"} for a ${plan.kernelArch} running kernel from a ${plan.userArch} user space`,
    `  entry ${hex(plan.entry)} (purgatory) → ${plan.entryMode === "entry64" ? "64-bit entry" : "32-bit entry"} ${hex(plan.kernelEntry)}, boot_params at ${hex(plan.bootParams)}`,
    `  flags ${hex(plan.flags)}`,
    `  command line: ${plan.cmdline || "(empty)"}`,
    table(rows, [false, true, true, true, false]),
    ...(plan.crashRegion ? [`  crash region ${hex(plan.crashRegion.start)}+${hex(plan.crashRegion.size)} (${size(plan.crashRegion.size)}): segments use ${size(plan.crashRegion.used)}, ${size(plan.crashRegion.size - plan.crashRegion.used)} left for the capture kernel to run in`] : []),
    ...plan.notes.map((n) => `  note: ${n}`),
  ].join("\n");
}

/** The checks for this load; a failing one stops it unless --force, as DESIGN.md asks. */
function runLoadChecks(p: Prepared, args: ParsedArgs): CheckResult[] {
  return checksFor(args, p.image, p.machine, p.initrd?.length);
}

export async function planCommand(args: ParsedArgs, positionals: string[]): Promise<number> {
  if (!has(args, "load") && !has(args, "load-panic")) args.flags.set("load", [""]);
  const p = await prepare(args, positionals);
  const checks = runLoadChecks(p, args);
  if (syscallChoice(args) === "file") return planFileCommand(p, args, checks);
  let plan: Plan | undefined;
  let planError: KexecError | undefined;
  try {
    plan = makePlan(p, args);
  } catch (e) {
    // With -s the kernel places the segments itself; a kexec_load placement failure is then only a prediction.
    if (!isKexecError(e) || e.code !== "plan") throw e;
    planError = e;
  }
  if (has(args, "json")) {
    const json = plan ? planJson(plan, checksJson(checks).checks) : { error: planError?.toJSON(), checks: checksJson(checks).checks };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    if (plan) process.stdout.write(`${renderPlan(plan)}\n`);
    else process.stdout.write(`no kexec_load plan: ${planError?.message}\n`);
    process.stdout.write(`\n${renderChecks(checks)}\n`);
  }
  if (planError) return 2;
  return summarize(checks).exitCode;
}

/**
 * `plan -s`: with kexec_file_load the kernel parses and places the image
 * itself; what can be shown is its placement as predicted (the same top-down
 * hole search in System RAM or crashk_res, with the kernel's minimums), marked
 * as an estimate where the kernel's own sizes (its purgatory, the core header) are not known.
 */
function planFileCommand(p: Prepared, args: ParsedArgs, checks: CheckResult[]): number {
  const placement = predictFilePlacement({ image: p.image, machine: p.machine, request: requestFromArgs(args, p.machine, p.initrd?.length), isRoot: loaderIsRoot(args) });
  const cmdline = p.cmdline;
  if (has(args, "json")) {
    const json = placement.ok
      ? { syscall: "kexec_file_load", predicted: true, estimated: placement.estimated, crash: p.crash, kernelArch: p.machine.kernelArch, userArch: predictedUserArch(args, p.machine), flags: hex((p.crash ? KEXEC_FILE_ON_CRASH : 0) | (p.initrd ? 0 : 4)), cmdline,
          segments: placement.segments.map((s) => ({ kind: s.kind, mem: hex(s.mem), memsz: hex(s.memsz) })), checks: checksJson(checks).checks }
      : { syscall: "kexec_file_load", predicted: true, error: { message: placement.message, hint: placement.hint }, checks: checksJson(checks).checks };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else if (placement.ok) {
    const rows = [["  kind", "mem", "memsz"]];
    for (const s of placement.segments) rows.push([`  ${s.kind}`, hex(s.mem), hex(s.memsz)]);
    process.stdout.write(`kexec_file_load: the kernel places the image itself; its placement in ${placement.pool}, as predicted${placement.estimated ? " (sizes of the kernel's purgatory and core header estimated)" : ""}:\n  command line: ${cmdline || "(empty)"}\n${table(rows, [false, true, true])}\n\n${renderChecks(checks)}\n`);
  } else {
    process.stdout.write(`kexec_file_load would not find room: ${placement.message}\n\n${renderChecks(checks)}\n`);
  }
  return placement.ok ? summarize(checks).exitCode : 2;
}

export async function loadCommand(args: ParsedArgs, positionals: string[]): Promise<number> {
  const p = await prepare(args, positionals);
  const checks = runLoadChecks(p, args);
  const summary = summarize(checks);
  if (summary.exitCode === 2 && !has(args, "force")) {
    process.stderr.write(`${renderChecks(checks.filter((c) => c.verdict !== "ok"))}\n`);
    const failed = checks.filter((c) => c.verdict === "fail");
    throw new KexecError("check", `not loading: ${failed.map((c) => `${c.id} (${c.reason})`).join("; ")}`, { checks: failed.map((c) => c.id) }, "fix the cause named above, or add --force to load anyway");
  }
  for (const c of checks.filter((x) => x.verdict === "warn")) process.stderr.write(`kexec-ts: warning: ${c.id}: ${c.reason}\n`);
  const choice = syscallChoice(args);
  const ctx = errnoContext(p.machine, p.image);
  if (choice !== "load") {
    try {
      kexecFileLoad(p.imagePath, p.initrdPath, p.cmdline, p.crash ? KEXEC_FILE_ON_CRASH : 0, ctx);
      if (has(args, "debug")) process.stderr.write(`kexec-ts: loaded ${p.imagePath} with kexec_file_load\n`);
      return 0;
    } catch (e) {
      if (!isKexecError(e) || choice === "file" || e.data.fallbackAllowed !== true) throw e;
      process.stderr.write(`kexec-ts: ${e.message}\nkexec-ts: falling back to kexec_load\n`);
    }
  }
  const plan = makePlan(p, args);
  if (has(args, "debug")) process.stderr.write(`${renderPlan(plan)}\n`);
  kexecLoad(plan.entry, plan.segments.map((s) => ({ buf: s.buf, mem: s.mem, memsz: s.memsz })), plan.flags, ctx);
  return 0;
}

export async function unloadCommand(args: ParsedArgs): Promise<number> {
  const crash = has(args, "load-panic");
  const machine = await readMachine(value(args, "root") ?? "/");
  const ctx = errnoContext(machine);
  if (syscallChoice(args) === "load") kexecUnload(crash, ctx);
  else {
    try {
      kexecFileUnload(crash, ctx);
    } catch (e) {
      if (!isKexecError(e) || e.data.fallbackAllowed !== true) throw e;
      kexecUnload(crash, ctx);
    }
  }
  return 0;
}

export async function execCommand(args: ParsedArgs): Promise<number> {
  const machine = await readMachine(value(args, "root") ?? "/");
  if (machine.kexec.loaded === false) {
    throw new KexecError("usage", "nothing has been loaded: /sys/kernel/kexec_loaded is 0", { file: "/sys/kernel/kexec_loaded", expected: "1", actual: "0" }, "load a kernel first with kexec-ts -l IMAGE");
  }
  // Under systemd, `systemctl kexec` stops services and unmounts file systems
  // before the jump; the bare reboot syscall is for --force (as kexec -f) and for
  // minimal systems such as an initramfs.
  if (!has(args, "force") && !has(args, "root") && pidOneIsSystemd()) {
    const r = spawnSync("systemctl", ["kexec"], { stdio: "inherit" });
    if (r.error) throw new KexecError("syscall", `systemctl kexec could not run: ${r.error.message}`, { call: "systemctl kexec" }, "use kexec-ts -e --force to jump without systemd");
    return r.status ?? 1;
  }
  rebootIntoKexec(errnoContext(machine));
}

function pidOneIsSystemd(): boolean {
  try {
    return readFileSync("/proc/1/comm", "utf8").trim() === "systemd";
  } catch {
    return false;
  }
}

