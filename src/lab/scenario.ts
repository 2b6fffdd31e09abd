/**
 * Scenarios are data (lab/scenarios/*.json), so the end-to-end suite grows without code: which
 * kernel, how much memory, which CPU, the command line, the guest's user space, the steps its
 * /init runs, the markers to wait for, and checks on what the steps printed.
 */
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { KexecError } from "../core/errors.js";
import type { UserArch } from "../core/initramfs/elf-deps.js";
import { buildInitramfs, defaultRepoRoot, type BuiltInitramfs, type ExtraFile, type InitramfsSpec } from "./initramfs.js";
import { expectedMarkers, type GuestStep, type InitSpec } from "./init-script.js";
import { runHostSteps, type HostResult, type HostSpec } from "./host-steps.js";
import { findKernel } from "./kernels.js";
import { runGuest, type ExpectedMarker, type GuestResult } from "./qemu.js";
import { runSystem, type Firmware, type SystemBoot, type SystemRunSpec } from "./system.js";
import { SYSTEM_RECIPES, type SystemImage, type SystemImageName } from "./system-image.js";

/** What a scenario checks once the run is over; `step` limits it to that step's output. */
export interface ScenarioCheck {
  step?: string;
  /** The text must appear. */
  contains?: string;
  /** The text must not appear. */
  absent?: string;
  /** A regular expression (multiline) must match. */
  matches?: string;
  /** Why this is checked, printed with the verdict. */
  why?: string;
}

/** A guest file in a scenario: like ExtraFile, with a nested initramfs given as a stage. */
export interface ScenarioFile {
  guest: string;
  host?: string;
  text?: string;
  kernel?: string;
  initramfs?: ScenarioStage;
  /** A program copied with its loader and libraries, from the host or (from: "i386") the cached i386 user space. */
  program?: string;
  from?: "host" | "i386";
  mode?: number;
}

/** The user space of one kernel: its steps and what goes into its initramfs. */
export interface ScenarioStage {
  /** Marker prefix, e.g. "second": its markers are "second/init", ... */
  stage?: string;
  /**
   * The lab kernel that boots this stage. For a nested stage it defaults to the one kernel
   * among its sibling files; it decides the default userArch and whose modules load.
   */
  kernel?: string;
  /** Default: the arch of the stage's kernel (an i386 kernel cannot run x86_64 programs). */
  userArch?: UserArch;
  node?: boolean;
  kexecTs?: boolean;
  modules?: string[];
  /** The kernel whose modules `modules` names (default: the scenario's kernel). */
  modulesKernel?: string;
  files?: ScenarioFile[];
  steps: GuestStep[];
  poweroff?: boolean;
}

export interface Scenario extends ScenarioStage {
  name: string;
  description?: string;
  /**
   * The kernel the guest boots: a lab kernel name. In a system scenario it names which of the
   * image's installed kernels (the same Debian version) boots first.
   */
  kernel: string;
  /** A system scenario (lab/system): the installed Debian image it boots (system-image.ts). */
  image?: SystemImageName;
  /** A system scenario's firmware, default bios. */
  firmware?: Firmware;
  /** A system scenario's later boots (after a kexec or a reboot), in order. */
  boots?: SystemBoot[];
  /** The guest may reboot (QEMU restarts it rather than exiting). */
  reboot?: boolean;
  /** Bound between markers after the first, seconds. */
  stepTimeoutSec?: number;
  mem?: string;
  cpu?: string;
  smp?: number;
  append?: string;
  qemuArgs?: string[];
  disks?: { sizeMiB: number }[];
  /** Markers in order; default: init, each returning step, done. */
  expect?: (string | ExpectedMarker)[];
  allowPanic?: boolean;
  bootTimeoutSec?: number;
  checks?: ScenarioCheck[];
  /** Commands run on the host after the guest passed (host-steps.ts); checks name their output "host/NAME". */
  host?: HostSpec;
  /** Where it was read from. */
  file?: string;
}

export function scenarioDir(repoRoot = defaultRepoRoot()): string {
  return join(repoRoot, "lab", "scenarios");
}

/** The system tier's scenarios: installed Debian images (npm run test:system). */
export function systemScenarioDir(repoRoot = defaultRepoRoot()): string {
  return join(repoRoot, "lab", "system");
}

function fail(file: string, field: string, message: string): never {
  throw new KexecError("usage", `${file}: ${field}: ${message}`, { file, field }, "see lab/README.md for the scenario format");
}

function checkStage(file: string, path: string, s: unknown): asserts s is ScenarioStage {
  if (typeof s !== "object" || s === null) fail(file, path, "expected an object");
  const o = s as Record<string, unknown>;
  if (!Array.isArray(o["steps"])) fail(file, `${path}steps`, "expected an array of steps");
  if (o["userArch"] !== undefined && o["userArch"] !== "x86_64" && o["userArch"] !== "i386") fail(file, `${path}userArch`, `expected "x86_64" or "i386", found ${JSON.stringify(o["userArch"])}`);
  for (const [i, step] of (o["steps"] as unknown[]).entries()) {
    if (typeof step !== "object" || step === null) fail(file, `${path}steps[${i}]`, "expected an object");
    const st = step as Record<string, unknown>;
    if (typeof st["name"] !== "string") fail(file, `${path}steps[${i}].name`, "expected a string");
    if (typeof st["run"] !== "string") fail(file, `${path}steps[${i}].run`, "expected shell text");
  }
  for (const [i, f] of ((o["files"] as unknown[] | undefined) ?? []).entries()) {
    const fo = f as Record<string, unknown>;
    if (typeof fo["guest"] !== "string") fail(file, `${path}files[${i}].guest`, "expected a guest path");
    if (fo["initramfs"] !== undefined) checkStage(file, `${path}files[${i}].initramfs.`, fo["initramfs"]);
  }
}

function checkHost(file: string, h: unknown, disks: number): void {
  if (typeof h !== "object" || h === null) fail(file, "host", "expected an object");
  const o = h as Record<string, unknown>;
  if (!Array.isArray(o["steps"])) fail(file, "host.steps", "expected an array of steps");
  for (const [i, step] of (o["steps"] as unknown[]).entries()) {
    const st = (typeof step === "object" && step !== null ? step : {}) as Record<string, unknown>;
    if (typeof st["name"] !== "string" || !/^[A-Za-z0-9._-]+$/.test(st["name"])) fail(file, `host.steps[${i}].name`, "expected a name of letters, digits, ._-");
    if (typeof st["run"] !== "string") fail(file, `host.steps[${i}].run`, "expected shell text");
  }
  const m = o["makedumpfile"];
  if (m !== undefined && m !== "host" && m !== "i386") fail(file, "host.makedumpfile", `expected "host" or "i386", found ${JSON.stringify(m)}`);
  const v = o["debugVmlinux"];
  if (v !== undefined && typeof v !== "string") fail(file, "host.debugVmlinux", `expected a kernel's short name like "amd64-6.1", found ${JSON.stringify(v)}`);
  const d = o["vmcoreDisk"];
  if (d !== undefined && !(Number.isInteger(d) && (d as number) >= 0 && (d as number) < disks)) fail(file, "host.vmcoreDisk", `expected the index of one of the scenario's ${disks} disk(s), found ${JSON.stringify(d)}`);
  const keep = o["keepVmcore"];
  if (keep !== undefined && (typeof keep !== "string" || !/^[A-Za-z0-9._-]+$/.test(keep))) fail(file, "host.keepVmcore", `expected a name of letters, digits, ._- (the cache's vmcores/NAME.elf), found ${JSON.stringify(keep)}`);
  if (keep !== undefined && d === undefined) fail(file, "host.keepVmcore", "needs host.vmcoreDisk: it keeps that disk's vmcore");
}

function checkSystem(file: string, o: Record<string, unknown>): void {
  if (!(typeof o["image"] === "string" && o["image"] in SYSTEM_RECIPES)) fail(file, "image", `expected one of ${Object.keys(SYSTEM_RECIPES).join(", ")}, found ${JSON.stringify(o["image"])}`);
  if (o["firmware"] !== undefined && o["firmware"] !== "bios" && o["firmware"] !== "efi") fail(file, "firmware", `expected "bios" or "efi", found ${JSON.stringify(o["firmware"])}`);
  for (const field of ["node", "kexecTs", "modules", "userArch"]) {
    if (o[field] !== undefined) fail(file, field, "a system scenario boots an installed image; its user space is the image's");
  }
  for (const [i, f] of ((o["files"] as unknown[] | undefined) ?? []).entries()) {
    const fo = f as Record<string, unknown>;
    if (fo["initramfs"] !== undefined || fo["program"] !== undefined) fail(file, `files[${i}]`, "a system scenario's files come from host, text or kernel");
  }
  if (o["boots"] !== undefined) {
    if (!Array.isArray(o["boots"])) fail(file, "boots", "expected an array of later boots");
    for (const [i, b] of (o["boots"] as unknown[]).entries()) {
      checkStage(file, `boots[${i}].`, b);
      if (typeof (b as unknown as Record<string, unknown>)["stage"] !== "string") fail(file, `boots[${i}].stage`, "expected a marker prefix such as \"second\"");
    }
  }
}

export function parseScenario(text: string, file: string): Scenario {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new KexecError("parse", `${file}: not valid JSON: ${(e as Error).message}`, { file }, "fix the JSON; lab/README.md describes the format");
  }
  if (typeof raw !== "object" || raw === null) fail(file, "(top)", "expected an object");
  const o = raw as Record<string, unknown>;
  if (typeof o["name"] !== "string" || !/^[A-Za-z0-9._-]+$/.test(o["name"])) fail(file, "name", "expected a name of letters, digits, ._-");
  if (typeof o["kernel"] !== "string") fail(file, "kernel", "expected a lab kernel name such as amd64-6.1");
  checkStage(file, "", raw);
  if (o["image"] !== undefined) checkSystem(file, o);
  if (o["host"] !== undefined) checkHost(file, o["host"], Array.isArray(o["disks"]) ? o["disks"].length : 0);
  return { ...(raw as Scenario), file };
}

export function loadScenario(file: string): Scenario {
  if (!existsSync(file)) throw new KexecError("io", `scenario ${file} does not exist`, { file }, "give a file under lab/scenarios, or a scenario's name");
  return parseScenario(readFileSync(file, "utf8"), file);
}

/** All scenarios in lab/scenarios, by file name order. */
export function listScenarios(dir = scenarioDir()): Scenario[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => loadScenario(join(dir, f)));
}

/** A scenario by name (in any of `dirs`) or by file path. */
export function findScenario(nameOrFile: string, dirs: string[] = [scenarioDir(), systemScenarioDir()]): Scenario {
  if (nameOrFile.endsWith(".json")) return loadScenario(nameOrFile);
  const all = dirs.flatMap((d) => listScenarios(d));
  const hit = all.find((s) => s.name === nameOrFile || basename(s.file ?? "", ".json") === nameOrFile);
  if (hit === undefined) {
    throw new KexecError("usage", `no scenario named ${JSON.stringify(nameOrFile)} in ${dirs.join(" or ")}`, { field: "scenario", actual: nameOrFile, expected: all.map((s) => s.name).join(" | ") }, "`node dist/lab/suite.js --list` (and --system --list) lists the scenarios");
  }
  return hit;
}

/**
 * The initramfs spec for a stage; nested stages become nested initramfs files. `kernelArch`
 * maps a lab kernel name to what it runs (injected so this stays testable without a cache).
 */
export function stageInitramfs(stage: ScenarioStage, kernel: string, kernelArch: (name: string) => UserArch, title: string): InitramfsSpec {
  const userArch = stage.userArch ?? kernelArch(kernel);
  const init: InitSpec = { steps: stage.steps, title };
  if (stage.stage !== undefined) init.stage = stage.stage;
  if (stage.poweroff !== undefined) init.poweroff = stage.poweroff;
  const siblingKernels = (stage.files ?? []).flatMap((f) => (f.kernel !== undefined ? [f.kernel] : []));
  const files: ExtraFile[] = (stage.files ?? []).map((f) => {
    const { initramfs, ...rest } = f;
    if (initramfs === undefined) return rest;
    const nestedKernel = initramfs.kernel ?? (siblingKernels.length === 1 ? siblingKernels[0]! : kernel);
    return { ...rest, initramfs: stageInitramfs(initramfs, nestedKernel, kernelArch, `${title} (${initramfs.stage ?? "nested"})`) };
  });
  const spec: InitramfsSpec = { userArch, kernelArch: kernelArch(kernel), init, files };
  if (stage.node === true) spec.node = true;
  if (stage.kexecTs === true) spec.kexecTs = true;
  if (stage.modules !== undefined && stage.modules.length > 0) spec.modules = { kernel: stage.modulesKernel ?? kernel, names: stage.modules };
  return spec;
}

export interface CheckResult {
  check: ScenarioCheck;
  ok: boolean;
  detail: string;
}

export function evaluateChecks(checks: ScenarioCheck[], result: GuestResult): CheckResult[] {
  return checks.map((check) => {
    const where = check.step === undefined ? "the console" : `step ${check.step}`;
    const text = check.step === undefined ? result.log.join("\n") : result.steps[check.step]?.output.join("\n");
    if (text === undefined) return { check, ok: false, detail: `${where} did not run` };
    if (check.contains !== undefined && !text.includes(check.contains)) return { check, ok: false, detail: `${where} lacks ${JSON.stringify(check.contains)}` };
    if (check.absent !== undefined && text.includes(check.absent)) return { check, ok: false, detail: `${where} has ${JSON.stringify(check.absent)}` };
    if (check.matches !== undefined && !new RegExp(check.matches, "m").test(text)) return { check, ok: false, detail: `${where} does not match /${check.matches}/` };
    return { check, ok: true, detail: `${where}: ok` };
  });
}

export interface ScenarioResult {
  scenario: Scenario;
  /** What the guest booted: the initramfs built for it, or (system tier) the disk image. */
  initramfs?: BuiltInitramfs;
  image?: SystemImage;
  guest: GuestResult;
  checks: CheckResult[];
  /** The host steps, when they ran. */
  host?: HostResult;
  ok: boolean;
}

export interface RunScenarioOptions {
  outDir?: string;
  onLine?: (line: string) => void;
  extractTo?: string;
  /**
   * Run the scenario's host steps after a passing guest (the suite does), which removes its
   * disk images; without this they are skipped, checks on "host/" steps too, and the disks stay.
   */
  host?: boolean;
}

/** The system tier's run spec for a scenario with an `image`. */
export function systemRunSpec(scenario: Scenario): SystemRunSpec {
  const spec: SystemRunSpec = {
    name: scenario.name,
    image: scenario.image!,
    firmware: scenario.firmware ?? "bios",
    kernel: scenario.kernel,
    boots: [{ steps: scenario.steps }, ...(scenario.boots ?? [])],
  };
  if (scenario.files !== undefined) spec.files = scenario.files;
  for (const k of ["mem", "cpu", "smp", "append", "disks", "reboot", "qemuArgs", "expect", "allowPanic", "bootTimeoutSec", "stepTimeoutSec"] as const) {
    if (scenario[k] !== undefined) (spec as unknown as Record<string, unknown>)[k] = scenario[k];
  }
  return spec;
}

export async function runScenario(scenario: Scenario, options: RunScenarioOptions = {}): Promise<ScenarioResult> {
  if (scenario.image !== undefined) {
    const { image, guest } = await runSystem(systemRunSpec(scenario), {
      ...(options.outDir !== undefined ? { outDir: options.outDir } : {}),
      ...(options.onLine !== undefined ? { onLine: options.onLine } : {}),
    });
    return finishScenario(scenario, guest, options, { image });
  }
  const initramfs = await buildInitramfs(stageInitramfs(scenario, scenario.kernel, (name) => findKernel(name).kernelArch, `kexec-ts lab scenario ${scenario.name}`));
  const init: InitSpec = { steps: scenario.steps };
  const guest = await runGuest({
    name: scenario.name,
    kernel: scenario.kernel,
    initrd: initramfs.path,
    ...(scenario.append !== undefined ? { append: scenario.append } : {}),
    ...(scenario.mem !== undefined ? { mem: scenario.mem } : {}),
    ...(scenario.cpu !== undefined ? { cpu: scenario.cpu } : {}),
    ...(scenario.smp !== undefined ? { smp: scenario.smp } : {}),
    ...(scenario.qemuArgs !== undefined ? { qemuArgs: scenario.qemuArgs } : {}),
    ...(scenario.disks !== undefined ? { disks: scenario.disks } : {}),
    ...(scenario.bootTimeoutSec !== undefined ? { bootTimeoutSec: scenario.bootTimeoutSec } : {}),
    ...(scenario.allowPanic !== undefined ? { allowPanic: scenario.allowPanic } : {}),
    ...(options.outDir !== undefined ? { outDir: options.outDir } : {}),
    ...(options.onLine !== undefined ? { onLine: options.onLine } : {}),
    ...(options.extractTo !== undefined ? { extractTo: options.extractTo } : {}),
    expect: scenario.expect ?? expectedMarkers(init).map((name) => {
      const step = scenario.steps.find((s) => s.name === name);
      const marker: ExpectedMarker = { name };
      if (step?.timeoutSec !== undefined) marker.timeoutSec = step.timeoutSec;
      if (step?.mayFail === true) marker.mayFail = true;
      return marker;
    }),
  });
  return finishScenario(scenario, guest, options, { initramfs });
}

/** Host steps and checks, the same for both tiers. */
async function finishScenario(scenario: Scenario, guest: GuestResult, options: RunScenarioOptions, booted: { initramfs?: BuiltInitramfs; image?: SystemImage }): Promise<ScenarioResult> {
  const runHost = options.host === true && scenario.host !== undefined;
  const host = runHost && guest.outcome === "ok" ? await runHostSteps(scenario.host!, guest.disks, guest.outDir) : undefined;
  // Host steps remove the disks they read; a failed guest's disks go too (they can be GiBs).
  if (runHost && host === undefined && process.env["KEXEC_TS_LAB_KEEP"] !== "1") for (const d of guest.disks) rmSync(d, { force: true });
  const wanted = (scenario.checks ?? []).filter((c) => runHost || !c.step?.startsWith("host/"));
  const checks = guest.outcome === "ok" ? evaluateChecks(wanted, host === undefined ? guest : { ...guest, steps: { ...guest.steps, ...host.steps } }) : [];
  return { scenario, ...booted, guest, checks, ...(host !== undefined ? { host } : {}), ok: guest.outcome === "ok" && (host?.ok ?? true) && checks.every((c) => c.ok) };
}
