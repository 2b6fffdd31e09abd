/**
 * The lab's public surface, for `kexec-ts lab ...` (src/cli) and scripts. Everything here
 * raises only KexecError for what a user can cause (QEMU or a kernel missing, a bad scenario);
 * a guest that fails is a result, not an exception.
 */
export { runSuite, describeResult, type SuiteOptions, type SuiteResult } from "./suite.js";
export { findScenario, listScenarios, loadScenario, parseScenario, runScenario, scenarioDir, type Scenario, type ScenarioResult, type ScenarioCheck } from "./scenario.js";
export { runGuest, labAvailable, qemuInvocation, shellCommandLine, type GuestSpec, type GuestResult, type GuestOutcome, type ExpectedMarker } from "./qemu.js";
export { buildInitramfs, describeInitramfs, type InitramfsSpec, type BuiltInitramfs, type ExtraFile } from "./initramfs.js";
export { captureSnapshot, type CaptureOptions, type CaptureResult } from "./capture.js";
export { labAnswer, labScenario, renderLabAnswer, type LabAnswer, type LabQuestion } from "./question.js";
export { findKernel, loadKernelIndex, labCacheDir, SETUP_HINT, type LabKernel } from "./kernels.js";
export type { GuestStep, InitSpec } from "./init-script.js";
export { runSystem, type SystemRunSpec, type Firmware } from "./system.js";
export { systemImage, SYSTEM_RECIPES, type SystemImage, type SystemImageName } from "./system-image.js";
