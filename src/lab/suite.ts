/**
 * The end-to-end suite: every scenario in lab/scenarios (or the ones named), one after another,
 * with a verdict per scenario and, for a failure, the console log and the command that
 * reproduces it. `npm run test:e2e` runs it; `kexec-ts lab` can call runSuite.
 */
import { pathToFileURL } from "node:url";
import { isKexecError, type KexecError } from "../core/errors.js";
import { size } from "../core/format.js";
import { labAvailable } from "./qemu.js";
import { findScenario, listScenarios, runScenario, scenarioDir, systemScenarioDir, type ScenarioResult } from "./scenario.js";

export interface SuiteOptions {
  /** The tier whose scenarios run when none are named: the initramfs tier (lab/scenarios) or the system tier (lab/system). */
  system?: boolean;
  /** Print every console line as it arrives. */
  verbose?: boolean;
  /** Where progress goes (default: stdout). */
  print?: (line: string) => void;
}

export interface SuiteResult {
  results: ScenarioResult[];
  /** Scenarios that could not be run at all. */
  errors: { scenario: string; error: KexecError }[];
  passed: number;
  failed: number;
  skipped: number;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function describeResult(r: ScenarioResult): string[] {
  const g = r.guest;
  const init = g.markersSeen.find((m) => m.name === "init");
  const host = r.host === undefined ? "" : `  host steps ${Object.keys(r.host.steps).length}/${r.scenario.host?.steps.length ?? 0}`;
  const booted = r.image !== undefined
    ? `  image ${r.image.recipe.name}${r.image.built.image ? ` (built in ${r.image.built.seconds} s)` : ""}`
    : r.initramfs !== undefined ? `  initramfs ${size(r.initramfs.bytes)}` : "";
  const head = `${r.ok ? "PASS" : "FAIL"} ${r.scenario.name}  ${seconds(g.durationMs)}${init !== undefined ? ` (init at ${seconds(init.ms)})` : ""}${booted}${host}`;
  if (r.ok) return [head];
  const lines = [head];
  if (g.outcome !== "ok") lines.push(`  ${g.outcome}: ${g.reason}`);
  if (r.host?.failure !== undefined) lines.push(`  ${r.host.failure}`);
  for (const c of r.checks.filter((c) => !c.ok)) lines.push(`  check failed: ${c.detail}${c.check.why !== undefined ? ` (${c.check.why})` : ""}`);
  lines.push(`  console: ${g.outDir}/console.log`, `  reproduce: ${g.commandLine}`);
  return lines;
}

export async function runSuite(names: string[] = [], options: SuiteOptions = {}): Promise<SuiteResult> {
  const print = options.print ?? ((l: string) => console.log(l));
  const scenarios = names.length === 0 ? listScenarios(options.system === true ? systemScenarioDir() : scenarioDir()) : names.map((n) => findScenario(n));
  const out: SuiteResult = { results: [], errors: [], passed: 0, failed: 0, skipped: 0 };
  const available = labAvailable([...new Set(scenarios.map((s) => s.kernel))]);
  if (!available.ok) {
    print(`SKIP all ${scenarios.length} scenarios: ${available.why}`);
    out.skipped = scenarios.length;
    return out;
  }
  for (const scenario of scenarios) {
    let r: ScenarioResult;
    try {
      r = await runScenario(scenario, { host: true, ...(options.verbose === true ? { onLine: (l: string) => print(`  | ${l}`) } : {}) });
    } catch (e) {
      // A scenario that cannot even be built (a missing file, a program for the wrong arch) fails alone.
      if (!isKexecError(e)) throw e;
      out.failed++;
      out.errors.push({ scenario: scenario.name, error: e });
      print(`FAIL ${scenario.name}  not run: ${e.message}${e.hint !== undefined ? `\n  hint: ${e.hint}` : ""}`);
      continue;
    }
    out.results.push(r);
    if (r.ok) out.passed++;
    else out.failed++;
    for (const l of describeResult(r)) print(l);
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes("--verbose") || argv.includes("-v");
  const system = argv.includes("--system");
  const names = argv.filter((a) => !a.startsWith("-"));
  if (argv.includes("--list")) {
    for (const s of listScenarios(system ? systemScenarioDir() : scenarioDir())) console.log(`${s.name.padEnd(36)} ${(s.image ?? s.kernel).padEnd(12)} ${s.description ?? ""}`);
    return 0;
  }
  try {
    const r = await runSuite(names, { verbose, system });
    console.log(`${r.passed} passed, ${r.failed} failed${r.skipped > 0 ? `, ${r.skipped} skipped` : ""}`);
    return r.failed === 0 ? 0 : 1;
  } catch (e) {
    if (!isKexecError(e)) throw e;
    console.error(`kexec-ts lab: ${e.message}`);
    if (e.hint !== undefined) console.error(`hint: ${e.hint}`);
    return 2;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
