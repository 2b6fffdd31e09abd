/**
 * `kdump status`: armed and ready (exit 0), or not and why (exit 3, kdumpctl's convention).
 * Ready means more than "a crash kernel is loaded": kexec-ts armed it in this boot, and the
 * kernel, the config and the capture initramfs are still what it was armed with — a kernel
 * update or a config edit since then is a reason, not a surprise at the next crash.
 */
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { isKexecError } from "../../core/errors.js";
import { captureIsCurrent } from "./initramfs.js";
import { listDumps, readDump, summarizeDumpOnDisk } from "./dumps.js";
import type { KdumpPaths } from "./paths.js";
import { testResult, type TestResult } from "./report.js";
import { buildInput, captureKernelProblem, readArmState, readBootId, readConfigFile, type ArmState } from "./service.js";

export interface StatusResult {
  ready: boolean;
  /** Why not ready; empty when ready. */
  reasons: string[];
  state: ArmState | null;
  crashLoaded: boolean | null;
  crashSize: string | null;
  test: TestResult | null;
  lastDump: { dir: string; lines: string[] } | null;
}

function sysfs(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

function sha256Of(path: string): string | null {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return null;
  }
}

export function kdumpStatus(paths: KdumpPaths): StatusResult {
  const reasons: string[] = [];
  const { state, problem: stateProblem } = readArmState(paths);
  const loadedText = sysfs("/sys/kernel/kexec_crash_loaded");
  const crashLoaded = loadedText === null ? null : loadedText === "1";
  const crashSize = sysfs("/sys/kernel/kexec_crash_size");
  // Read once, and its error said whether armed or not: a config that does not parse is why the next start fails.
  let read: ReturnType<typeof readConfigFile> | undefined;
  let configProblem: string | null = null;
  try {
    read = readConfigFile(paths);
  } catch (e) {
    // A file named with --config that cannot be read is the command's error; a config that does not parse is an answer.
    if (!isKexecError(e) || (paths.configGiven === true && e.code === "io")) throw e;
    configProblem = `${e.message}${e.hint ? ` (${e.hint})` : ""}`;
  }
  // What start would say of the capture kernel now. Without it, a kernel that is missing or
  // damaged (after a kernel update, say) left status at "not started" or "stopped", and the
  // next boot's start refused it with no warning; once armed, "restart" was the advice, and a
  // refused restart unloads the crash kernel that still works.
  const kernel = read === undefined ? null : captureKernelProblem(read.config, paths.config);
  let armedInThisBoot = false;
  if (stateProblem !== null) {
    // As a damaged test.json is "failed": what cannot be read is not known to be armed, so not ready, saying why.
    reasons.push(`${paths.runState} is damaged: ${stateProblem}; whether kexec-ts armed the crash kernel cannot be told${crashLoaded ? " (a crash kernel is loaded)" : ""} (kexec-ts kdump restart writes it anew)`);
  } else if (state === null || state.bootId !== readBootId()) {
    reasons.push(crashLoaded ? "a crash kernel is loaded, but not by kexec-ts kdump in this boot (kexec-ts kdump start arms it)" : "not started in this boot (kexec-ts kdump start; the kexec-ts-kdump service does it at boot)");
  } else if (!state.armed) {
    reasons.push(...(state.reasons.length ? state.reasons : ["not armed"]));
  } else {
    armedInThisBoot = true;
    for (const f of state.forced ?? []) reasons.push(`armed with --force past a failing check: ${f}`);
    if (crashLoaded !== true) reasons.push("kexec-ts armed it, but /sys/kernel/kexec_crash_loaded is no longer 1: something unloaded the crash kernel");
    const config = read?.config;
    if (read !== undefined) {
      const hash = read.text === null ? null : createHash("sha256").update(read.text).digest("hex");
      if (hash !== state.configHash) reasons.push(`${paths.config} changed since the crash kernel was armed at ${state.at}: kexec-ts kdump restart`);
    }
    if (state.kernel !== null && sha256Of(state.kernel) !== state.kernelHash) {
      reasons.push(kernel?.kernel === state.kernel
        ? `the capture kernel ${state.kernel} changed since it was armed at ${state.at} and is now unusable; the crash kernel loaded then still works, but a restart would be refused and unload it: ${kernel.problem}`
        : `the capture kernel ${state.kernel} changed since it was armed: kexec-ts kdump restart`);
    } else if (kernel !== null && kernel.kernel !== state.kernel) {
      // The config names another kernel now (its change is a reason above): the restart it asks for would be refused.
      reasons.push(`a restart would be refused and unload the crash kernel armed at ${state.at}: ${kernel.problem}`);
    }
    if (config !== undefined && state.kernelRelease !== null) {
      try {
        const now = captureIsCurrent(buildInput(config, state.kernelRelease, paths.config), paths);
        if (now.hash !== state.initrdHash) reasons.push("the capture initramfs would now be built differently (modules, devices or kexec-ts changed): kexec-ts kdump restart");
      } catch (e) {
        if (!isKexecError(e)) throw e;
        reasons.push(`the capture initramfs could not be rebuilt now: ${e.message}`);
      }
    }
  }
  // A refused start recorded the same error as its reason: said once.
  if (kernel !== null && !armedInThisBoot && !reasons.includes(kernel.problem)) reasons.push(kernel.problem);
  if (configProblem !== null && !reasons.includes(configProblem)) reasons.push(configProblem);
  let test: TestResult | null = null;
  let lastDump: StatusResult["lastDump"] = null;
  if (read !== undefined) {
    const target = read.config.target;
    try {
      const dumps = listDumps(target, paths.config).map((d) => readDump(target, d));
      test = testResult(paths, dumps);
      const last = dumps[dumps.length - 1];
      if (last !== undefined) lastDump = { dir: last.dir, lines: summarizeDumpOnDisk(last) };
    } catch (e) {
      if (!isKexecError(e)) throw e;
      // A target that is not a directory (any more) is where the next crash's dump would fail.
      reasons.push(`${e.message}${e.hint ? ` (${e.hint})` : ""}`);
    }
  }
  return { ready: reasons.length === 0, reasons, state, crashLoaded, crashSize, test, lastDump };
}
