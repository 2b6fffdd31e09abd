/**
 * The kdump service's actions on this machine: arm (check, then load the crash kernel with
 * kexec-ts' own capture initramfs), disarm, and the state `status` reports. Arming refuses
 * with the reasons when any check fails, and never leaves a half-armed crash kernel: a refused
 * re-arm unloads what an earlier arm of this boot loaded, so `kexec_crash_loaded` and the
 * state file always agree.
 */
import { accessSync, closeSync, constants as fsConstants, existsSync, fsyncSync, openSync, readFileSync, realpathSync, statSync, statfsSync, unlinkSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { checkJson, runChecks, type CheckResult } from "../../core/check/index.js";
import { KexecError, isKexecError } from "../../core/errors.js";
import { readKernelImage, type KernelImage } from "../../core/image/index.js";
import type { Machine } from "../../core/machine/model.js";
import { captureCommandLine } from "../../core/kdump/cmdline.js";
import { DEFAULT_CONFIG_PATH, defaultConfig, parseConfig, type KdumpConfig } from "../../core/kdump/config.js";
import { estimateCapture, type Estimate } from "../../core/kdump/estimate.js";
import { kdumpRules, type KdumpFacts } from "../../core/kdump/rules.js";
import { planLoad } from "../../core/plan/plan.js";
import { KEXEC_FILE_ON_CRASH } from "../../core/plan/kexec-abi.js";
import { rngSeed, sha256 } from "../crypto.js";
import { errnoText, fileKind, fileSize, readInputFile, replaceFileDurably } from "../files.js";
import { readInitrdFor } from "../initrd.js";
import { readKernelLayout } from "../kernel-layout.js";
import { readMachine } from "../machine.js";
import { kexecFileLoad, kexecFileUnload, kexecLoad, kexecUnload, userArch } from "../syscalls.js";
import { buildCaptureInitramfs, type BuiltCapture, type CaptureBuildInput } from "./initramfs.js";
import { readStateFile, type StateField } from "./dumps.js";
import { bootStatePath, type KdumpPaths } from "./paths.js";

/** The installed kexec-ts: dist/node/kdump/service.js → the package root. */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
}

export function packageVersion(): string {
  const require = createRequire(import.meta.url);
  return (require("../../../package.json") as { version: string }).version;
}

/** This boot's arming result, in /run (gone after a reboot, as the loaded crash kernel is). */
export interface ArmState {
  format: 1;
  armed: boolean;
  at: string;
  bootId: string | null;
  /** Why not armed (the failing checks' reasons, or the error). */
  reasons: string[];
  /** The failing checks `--force` armed past; status is not ready while there are any. */
  forced?: string[];
  warnings: string[];
  kernel: string | null;
  kernelRelease: string | null;
  initrd: string | null;
  initrdHash: string | null;
  cmdline: string | null;
  syscall: "kexec_file_load" | "kexec_load" | null;
  /** Why that syscall: kexec_file_load first, kexec_load only after a refusal it may not repeat. */
  syscallWhy: string | null;
  /** SHA-256 of the config text and of the kernel image armed with, to tell when they changed. */
  configHash: string | null;
  kernelHash: string | null;
  checks: ReturnType<typeof checkJson>[];
  estimate: { total: string; suggested: string; crashSize: string | null } | null;
}

/**
 * The kdump config: the file's settings, or the defaults when the default file is missing (a
 * fresh install). A file named with --config must exist: a typo there must not quietly mean
 * "the defaults". Only a regular file is read: a FIFO would block the read for ever.
 */
export function readConfigFile(paths: Pick<KdumpPaths, "config" | "configGiven">): { config: KdumpConfig; text: string | null } {
  const path = paths.config;
  let text: string;
  try {
    const st = statSync(path);
    if (!st.isFile()) {
      const kind = fileKind(st);
      throw new KexecError("io", `${path}: is ${kind}, expected the kdump config in a regular file`, { file: path, expected: "a regular file", actual: kind },
        paths.configGiven ? "give --config the path of a config file" : `replace ${path} with a config file (kexec-ts kdump install writes a default one)`);
    }
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (isKexecError(e)) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && paths.configGiven !== true) return { config: defaultConfig(), text: null };
    const hint = code === "ENOENT" ? `check the path given to --config (without --config, ${DEFAULT_CONFIG_PATH} is read, and its defaults apply when it is missing)` : "run as root, or fix the file's permissions";
    throw new KexecError("io", `${path}: cannot read the kdump config: ${errnoText(e, path)}`, { file: path, errno: code ?? "EIO" }, hint, { cause: e });
  }
  return { config: parseConfig(text, path), text };
}

export function readBootId(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return null;
  }
}

function hashHex(bytes: Uint8Array | string): string {
  return Buffer.from(sha256([typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes])).toString("hex");
}

export function writeJsonDurably(path: string, value: unknown): void {
  replaceFileDurably(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** A decimal byte count, as arm() writes the estimate's (the CLI makes BigInts of them). */
const isDecimal = (v: unknown): boolean => typeof v === "string" && /^[0-9]+$/.test(v);

/** Every field of ArmState, as arm() and disarm() write it. */
const ARM_STATE_FIELDS: Record<keyof ArmState, StateField> = {
  format: { expected: "1", fits: (v) => v === 1 },
  armed: "boolean",
  at: "string",
  bootId: "string|null",
  reasons: "strings",
  forced: "strings|absent",
  warnings: "strings",
  kernel: "string|null",
  kernelRelease: "string|null",
  initrd: "string|null",
  initrdHash: "string|null",
  cmdline: "string|null",
  syscall: { expected: '"kexec_file_load", "kexec_load" or null', fits: (v) => v === "kexec_file_load" || v === "kexec_load" || v === null },
  syscallWhy: "string|null",
  configHash: "string|null",
  kernelHash: "string|null",
  checks: { expected: "a list of check results", fits: (v) => Array.isArray(v) && v.every((c) => c !== null && typeof c === "object" && !Array.isArray(c)) },
  estimate: {
    expected: "null or { total, suggested, crashSize } in decimal bytes",
    fits: (v) => v === null || (typeof v === "object" && !Array.isArray(v) && isDecimal((v as Record<string, unknown>)["total"]) && isDecimal((v as Record<string, unknown>)["suggested"]) &&
      ((v as Record<string, unknown>)["crashSize"] === null || isDecimal((v as Record<string, unknown>)["crashSize"]))),
  },
};

/**
 * This boot's arm state: null when kdump was not started in this boot, or why the file cannot be
 * used. A damaged one (not JSON, a field missing or of the wrong type; a FIFO is not read) had
 * been taken at its word when its format was 1: `"armed": "yes"` counted as armed, and
 * `"reasons": 5` crashed status with a TypeError. Each reader says what damaged means.
 */
export function readArmState(paths: KdumpPaths): { state: ArmState | null; problem: string | null } {
  const { value, problem } = readStateFile<ArmState>(paths.runState, ARM_STATE_FIELDS);
  return { state: value, problem };
}

/** The running kernel's release, as readMachine reads it first; null where /proc does not say. */
export function readRunningRelease(): string | null {
  try {
    return readFileSync("/proc/sys/kernel/osrelease", "utf8").trim() || null;
  } catch {
    return null;
  }
}

/** The capture kernel: the configured one, else the running kernel's /boot/vmlinuz-<release>. */
export function captureKernelPath(config: KdumpConfig, runningRelease: string | null, configFile = DEFAULT_CONFIG_PATH): string {
  if (config.kernel !== null) return config.kernel;
  if (runningRelease === null) throw new KexecError("machine", "the running kernel's release is unknown (/proc/sys/kernel/osrelease)", { file: "/proc/sys/kernel/osrelease" }, `set kernel = in ${configFile}`);
  return `/boot/vmlinuz-${runningRelease}`;
}

/** A bzImage's release: the first word of its kernel_version string. */
export function imageRelease(image: KernelImage, path: string): string {
  // An ELF vmlinux runs only at its p_paddr, which no crash region holds, and kexec_file_load refuses it:
  // say so, not that its release (in its banner and, for vmlinux-<release>, its name) is missing.
  if (image.kind !== "bzImage") {
    throw new KexecError("parse", `${path}: an ELF vmlinux, but the capture kernel (kernel =) must be a bzImage`, { file: path, field: "kernel", expected: "a bzImage (vmlinuz)", actual: "an ELF vmlinux" },
      "set kernel = to the vmlinuz of the same release (/boot/vmlinuz-<release>), or leave it empty for the running kernel's");
  }
  const v = image.bzImage.version;
  const word = v?.split(/\s+/)[0];
  if (word) return word;
  const fromName = /vmlinuz-(.+)$/.exec(path)?.[1];
  if (fromName) return fromName;
  throw new KexecError("parse", `${path}: the kernel's release is not in its header and not in its name`, { file: path, field: "kernel_version" }, "name it vmlinuz-<release>");
}

/**
 * The capture kernel read as start reads it: a bzImage whose release is known. What is wrong
 * with the file keeps its words; the hint is kdump's, since the fix is in the config or the
 * kernel's package: the generic ones ("pass a bzImage or an uncompressed vmlinux", "copy it into
 * a file first") were -l's advice, and a vmlinux is refused as a capture kernel.
 */
export function readCaptureKernel(path: string, config: KdumpConfig, configFile = DEFAULT_CONFIG_PATH): { image: KernelImage; bytes: Uint8Array } {
  try {
    const bytes = readInputFile(path, "capture kernel");
    try {
      return { image: readKernelImage(bytes), bytes };
    } catch (e) {
      if (isKexecError(e)) throw e.inFile(path);
      throw e;
    }
  } catch (e) {
    if (!isKexecError(e)) throw e;
    const hint = config.kernel === null
      ? `install the running kernel's package (it provides ${path}), or set kernel = in ${configFile} to an installed bzImage`
      : `set kernel = in ${configFile} to a bzImage (/boot/vmlinuz-<release>), or leave it empty for the running kernel's`;
    throw new KexecError(e.code, e.message, { ...e.data, file: path }, hint, { cause: e });
  }
}

/**
 * Why `kdump start` would refuse the capture kernel now (unreadable, not a bzImage, no release),
 * in the words the refused start records; null when it would take it. Status says it where
 * nothing armed in this boot says more: a refused start at boot is otherwise "not started".
 */
export function captureKernelProblem(config: KdumpConfig, configFile = DEFAULT_CONFIG_PATH): { kernel: string | null; problem: string } | null {
  let kernel: string | null = null;
  try {
    kernel = captureKernelPath(config, readRunningRelease(), configFile);
    imageRelease(readCaptureKernel(kernel, config, configFile).image, kernel);
    return null;
  } catch (e) {
    if (!isKexecError(e)) throw e;
    return { kernel, problem: `${e.message}${e.hint ? ` (${e.hint})` : ""}` };
  }
}

function readSysfsFlag(path: string): boolean | null {
  try {
    const t = readFileSync(path, "utf8").trim();
    return t === "Y" || t === "1";
  } catch {
    return null;
  }
}

function readCrashSize(): bigint | null {
  try {
    return BigInt(readFileSync("/sys/kernel/kexec_crash_size", "utf8").trim());
  } catch {
    return null;
  }
}

/** Writes and fsyncs a file in the target and removes it: the real test of "writable" (a read-only mount, a full disk, permissions). */
function writeTest(dir: string): string | null {
  const probe = join(dir, `.kexec-ts-write-test-${process.pid}`);
  try {
    accessSync(dir, fsConstants.W_OK);
    const fd = openSync(probe, "w");
    try {
      writeSync(fd, "kexec-ts\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    unlinkSync(probe);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function freeSpace(dir: string): bigint | null {
  try {
    const s = statfsSync(dir, { bigint: true });
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

export interface ArmOptions {
  paths: KdumpPaths;
  /** Build and check, load nothing (`kdump start --dry-run` is not offered; status and estimate use this). */
  load: boolean;
  /** The capture kernel's release to build for (the kernel hook's argument); default: the capture kernel's own. */
  kernelRelease?: string;
  /** Arm even when checks fail (as kexec-ts -p --force); the state and status keep saying which. */
  force?: boolean;
}

export interface Preparation {
  config: KdumpConfig;
  configHash: string | null;
  machine: Machine;
  kernel: string;
  kernelRelease: string;
  kernelHash: string;
  image: KernelImage;
  cmdline: ReturnType<typeof captureCommandLine>;
  capture: BuiltCapture | null;
  captureError: KexecError | null;
  estimate: Estimate | null;
  checks: CheckResult[];
}

export function buildInput(config: KdumpConfig, kernelRelease: string, configFile = DEFAULT_CONFIG_PATH): CaptureBuildInput {
  return { config, kernelRelease, version: packageVersion(), packageRoot: packageRoot(), nodeProgram: realpathSync(process.execPath), configFile };
}

/** Everything `start` decides on, without loading: the capture initramfs (built if its content changed), the estimate, every check. */
export async function prepare(options: ArmOptions): Promise<Preparation> {
  const { config, text } = readConfigFile(options.paths);
  const machine = await readMachine("/");
  const kernel = captureKernelPath(config, machine.kernelRelease, options.paths.config);
  const { image, bytes } = readCaptureKernel(kernel, config, options.paths.config);
  const kernelRelease = options.kernelRelease ?? imageRelease(image, kernel);
  const cmdline = captureCommandLine(machine.cmdline ?? "", config.append);
  let capture: BuiltCapture | null = null;
  let captureError: KexecError | null = null;
  try {
    capture = buildCaptureInitramfs(buildInput(config, kernelRelease, options.paths.config), options.paths);
  } catch (e) {
    if (!isKexecError(e)) throw e;
    captureError = e;
  }
  const estimate = capture === null || image.kind !== "bzImage" ? null : estimateCapture({
    mode: config.mode,
    kernelInitSize: image.bzImage.initSize ?? BigInt(bytes.length) * 4n,
    initrdCompressed: BigInt(capture.manifest.compressedBytes),
    initrdUnpacked: BigInt(capture.manifest.unpackedBytes),
    moduleBytes: BigInt(capture.manifest.moduleBytes),
    systemRam: machine.systemRam ?? machine.memTotal ?? 0n,
    threads: config.threads,
  });
  const crashSize = readCrashSize();
  const checkRequest = {
    crash: true,
    syscall: config.syscall === "file" ? "kexec_file_load" as const : config.syscall === "load" ? "kexec_load" as const : "auto" as const,
    cmdline: cmdline.cmdline,
    initrdSize: capture === null ? undefined : capture.manifest.compressedBytes,
    userArch: userArch(),
  };
  const checks = runChecks({ image, machine, request: checkRequest, isRoot: process.getuid?.() === 0 });
  const target = capture?.plan.target;
  const raw = config.rawTarget;
  const ram = machine.memory.filter((m) => m.type === "System RAM");
  const facts: KdumpFacts = {
    crashSize,
    ramEnd: ram.length === 0 ? null : ram.reduce((end, m) => (m.start + m.size > end ? m.start + m.size : end), 0n),
    estimate,
    capture: capture !== null
      ? { ok: true, path: capture.path, modules: capture.manifest.modules, builtin: capture.plan.builtin, rebuilt: capture.rebuilt, mode: capture.manifest.mode }
      : { ok: false, message: captureError!.message, hint: captureError!.hint ?? "" },
    target: {
      path: config.target,
      where: target === undefined ? null : `${target.fstype} on ${target.devPath}${target.uuid ? ` (UUID=${target.uuid})` : ""} at ${target.mount.mountPoint}`,
      writeError: existsSync(config.target) ? writeTest(config.target) : "it does not exist",
      free: freeSpace(config.target),
      minFree: config.minFree,
    },
    rawTarget: raw === null ? null : rawTargetFacts(raw, capture, captureError, machine),
    postNotifiers: readSysfsFlag("/sys/module/kernel/parameters/crash_kexec_post_notifiers"),
    capturedCmdline: cmdline,
    append: config.append,
    configFile: options.paths.config,
  };
  return {
    config, configHash: text === null ? null : hashHex(text), machine, kernel, kernelRelease, kernelHash: hashHex(bytes), image, cmdline, capture, captureError, estimate,
    checks: [...checks, ...kdumpRules(facts)],
  };
}

function rawTargetFacts(path: string, capture: BuiltCapture | null, captureError: KexecError | null, machine: Machine): KdumpFacts["rawTarget"] {
  if (capture === null) return { path, error: captureError?.data.field === "raw_target" ? captureError.message : null, bytes: null, systemRam: machine.systemRam };
  let bytes: bigint | null = null;
  try {
    const base = realpathSync(path).split("/").pop()!;
    bytes = BigInt(readFileSync(`/sys/class/block/${base}/size`, "utf8").trim()) * 512n;
  } catch { /* size unknown */ }
  // A device that is mounted (the target's own, say) would have its file system overwritten by a raw copy.
  const real = realpathSync(path);
  const mounted = readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => {
    const source = l.split(" - ")[1]?.split(" ")[1];
    return source === path || source === real;
  });
  return { path, error: mounted ? "it is mounted: a raw copy would overwrite a file system in use" : null, bytes, systemRam: machine.systemRam };
}

/** `kdump start`: prepare, and load when every check passes; writes the state either way. */
export async function arm(options: ArmOptions): Promise<{ state: ArmState; prep: Preparation | null }> {
  const bootId = readBootId();
  const base: ArmState = {
    format: 1, armed: false, at: new Date().toISOString(), bootId, reasons: [], warnings: [], kernel: null, kernelRelease: null, initrd: null, initrdHash: null,
    cmdline: null, syscall: null, syscallWhy: null, configHash: null, kernelHash: null, checks: [], estimate: null,
  };
  let prep: Preparation;
  try {
    prep = await prepare(options);
  } catch (e) {
    if (!isKexecError(e)) throw e;
    const state = { ...base, reasons: [`${e.message}${e.hint ? ` (${e.hint})` : ""}`] };
    if (options.load) finishRefused(options.paths, state);
    return { state, prep: null };
  }
  const fails = prep.checks.filter((c) => c.verdict === "fail");
  const state: ArmState = {
    ...base,
    reasons: fails.map((c) => `${c.id}: ${c.reason}`),
    warnings: prep.checks.filter((c) => c.verdict === "warn").map((c) => `${c.id}: ${c.reason}`),
    kernel: prep.kernel,
    kernelRelease: prep.kernelRelease,
    initrd: prep.capture?.path ?? null,
    initrdHash: prep.capture?.manifest.hash ?? null,
    cmdline: prep.cmdline.cmdline,
    configHash: prep.configHash,
    kernelHash: prep.kernelHash,
    checks: prep.checks.map(checkJson),
    estimate: prep.estimate === null ? null : { total: prep.estimate.total.toString(), suggested: prep.estimate.suggested.toString(), crashSize: readCrashSize()?.toString() ?? null },
  };
  if (!options.load) return { state, prep };
  if (prep.capture === null || (fails.length > 0 && options.force !== true)) {
    finishRefused(options.paths, state);
    return { state, prep };
  }
  if (fails.length > 0) {
    state.forced = state.reasons;
    state.reasons = [];
  }
  try {
    const how = loadCrashKernel(prep);
    state.syscall = how.syscall;
    state.syscallWhy = how.why;
  } catch (e) {
    if (!isKexecError(e)) throw e;
    state.reasons = [`the kernel refused the load: ${e.message}${e.hint ? ` (${e.hint})` : ""}`];
    finishRefused(options.paths, state);
    return { state, prep };
  }
  state.armed = readSysfsFlag("/sys/kernel/kexec_crash_loaded") === true;
  if (!state.armed) state.reasons = ["the load returned success, yet /sys/kernel/kexec_crash_loaded is not 1"];
  writeJsonDurably(options.paths.runState, state);
  recordBoot(options.paths, { bootId, armed: state.armed, armedAt: state.at, cleanStop: false });
  return { state, prep };
}

/** A refused arm: unload what an earlier arm of this boot left loaded, so no stale crash kernel stays armed. */
function finishRefused(paths: KdumpPaths, state: ArmState): void {
  const { state: before, problem } = readArmState(paths);
  // As a damaged last-boot.json in the report: a warning, and carry on as if there were none.
  // Which crash kernel an earlier arm loaded cannot be told, and one loaded by another tool is
  // not ours to unload; the file is written anew just below.
  if (problem !== null) {
    const loaded = readSysfsFlag("/sys/kernel/kexec_crash_loaded") === true;
    state.warnings.push(`${paths.runState} was damaged (${problem}), so whether kexec-ts armed the crash kernel earlier in this boot is not known${loaded ? ": the one loaded now is left loaded (kexec-ts kdump stop unloads it)" : ""}; the file is written anew`);
  }
  if (before?.armed && before.bootId === state.bootId && readSysfsFlag("/sys/kernel/kexec_crash_loaded") === true) {
    try {
      unloadCrashKernel();
      state.warnings.push("the crash kernel armed earlier in this boot was unloaded: it was armed with settings that no longer pass");
    } catch (e) {
      state.warnings.push(`the crash kernel armed earlier could not be unloaded: ${(e as Error).message}`);
    }
  }
  writeJsonDurably(paths.runState, state);
  recordBoot(paths, { bootId: state.bootId, armed: false, armedAt: null, cleanStop: false });
}

/**
 * kexec_file_load first: the kernel verifies and places the image itself, and it is the only
 * loader lockdown allows. kexec_load only where the file loader is refused in a way kexec_load
 * may not be (no kexec_file_load for a 32-bit process, an ELF vmlinux, a probe refusal) — never
 * after EPERM or a signature refusal, which kexec_load would only repeat or dodge.
 */
function loadCrashKernel(prep: Preparation): { syscall: "kexec_file_load" | "kexec_load"; why: string } {
  const choice = prep.config.syscall;
  const initrd = prep.capture!.path;
  if (choice !== "load") {
    try {
      kexecFileLoad(prep.kernel, initrd, prep.cmdline.cmdline, KEXEC_FILE_ON_CRASH, errnoContext(prep));
      return { syscall: "kexec_file_load", why: choice === "file" ? "syscall = file in kdump.conf" : "kexec_file_load is tried first, and the kernel accepted it" };
    } catch (e) {
      if (!isKexecError(e) || choice === "file" || e.data["fallbackAllowed"] !== true) throw e;
      const why = `kexec_file_load was refused (${e.message}), and that refusal allows kexec_load`;
      loadWithPlanner(prep, initrd);
      return { syscall: "kexec_load", why };
    }
  }
  loadWithPlanner(prep, initrd);
  return { syscall: "kexec_load", why: "syscall = load in kdump.conf" };
}

function errnoContext(prep: Preparation) {
  return {
    lockdown: prep.machine.lockdown ?? undefined,
    loadDisabled: prep.machine.kexec.loadDisabled ?? undefined,
    isRoot: process.getuid?.() === 0,
    imageSigned: prep.image.kind === "bzImage" ? prep.image.bzImage.pe.signed : undefined,
  };
}

function loadWithPlanner(prep: Preparation, initrd: string): void {
  const what = "capture initramfs";
  const request = { crash: true, syscall: "kexec_load" as const, cmdline: prep.cmdline.cmdline, initrdSize: fileSize(initrd, what, { allowEmpty: false }), userArch: userArch() };
  const read = (destination: bigint) => readInitrdFor(initrd, what, destination);
  const plan = planLoad(prep.image, prep.machine, request, { initrd: read, rngSeed: rngSeed(), sha256 }, readKernelLayout("/", prep.machine));
  kexecLoad(plan.entry, plan.segments.map((s) => ({ buf: s.buf, mem: s.mem, memsz: s.memsz })), plan.flags, errnoContext(prep));
}

function unloadCrashKernel(): void {
  try {
    kexecFileUnload(true);
  } catch (e) {
    if (!isKexecError(e) || e.data["fallbackAllowed"] !== true) throw e;
    kexecUnload(true);
  }
}

/** `kdump stop`: unload the crash kernel (whoever loaded it) and record a clean stop. */
export function disarm(paths: KdumpPaths): ArmState {
  if (readSysfsFlag("/sys/kernel/kexec_crash_loaded") === true) unloadCrashKernel();
  // A damaged state is not spread into the new one (its bad fields would be written back, and
  // trip the next reader): the stop is recorded on the defaults, with a warning, as the report
  // warns of a damaged last-boot.json and carries on.
  const { state: before, problem } = readArmState(paths);
  const state: ArmState = {
    ...(before ?? { format: 1, at: "", bootId: readBootId(), warnings: problem === null ? [] : [`${paths.runState} was damaged (${problem}); the file is written anew`], kernel: null, kernelRelease: null, initrd: null, initrdHash: null, cmdline: null, syscall: null, syscallWhy: null, configHash: null, kernelHash: null, checks: [], estimate: null }),
    format: 1,
    armed: false,
    at: new Date().toISOString(),
    reasons: ["stopped (kexec-ts kdump stop)"],
  };
  writeJsonDurably(paths.runState, state);
  recordBoot(paths, { bootId: state.bootId, armed: false, armedAt: null, cleanStop: true });
  return state;
}

/** What the next boot's report needs to tell a crash that left no dump from a clean reboot. */
export interface BootRecord {
  bootId: string | null;
  armed: boolean;
  armedAt: string | null;
  cleanStop: boolean;
}

function recordBoot(paths: KdumpPaths, record: BootRecord): void {
  try {
    writeJsonDurably(bootStatePath(paths), record);
  } catch { /* /var/lib not writable: the report loses only its guess about crashes without a dump */ }
}
