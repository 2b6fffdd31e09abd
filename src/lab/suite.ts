/**
 * The end-to-end suite: every scenario in lab/scenarios (or the ones named), one after another
 * or `jobs` at a time, with a verdict per scenario and, for a failure, the console log and the
 * command that reproduces it. `npm run test:e2e` runs it; `kexec-ts lab` can call runSuite.
 *
 *   node dist/lab/suite.js [--jobs N] [-v] [--list] [NAME...]
 *
 * Without QEMU or the kernels nothing runs: that is "skipped" on a developer's machine and a
 * failure under CI=true.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { KexecError, isKexecError } from "../core/errors.js";
import { runEntryPoint } from "../node/entry.js";
import { size } from "../core/format.js";
import { inCI } from "../node/test-inputs.js";
import { labCacheDir } from "./kernels.js";
import { labAvailable } from "./qemu.js";
import { systemImage } from "./system-image.js";
import { findScenario, listScenarios, runScenario, scenarioDir, systemScenarioDir, type Scenario, type ScenarioResult } from "./scenario.js";

export interface SuiteOptions {
  /** The tier whose scenarios run when none are named: the initramfs tier (lab/scenarios) or the system tier (lab/system). */
  system?: boolean;
  /** Print every console line as it arrives. */
  verbose?: boolean;
  /** Where progress goes (default: stdout). */
  print?: (line: string) => void;
  /** Scenarios run at once (default 1). Each guest is one TCG process; see .ci/run for what CI uses. */
  jobs?: number;
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

/**
 * How long each scenario took when it last ran here (seconds, the suite's wall time for it),
 * kept in the lab cache. With --jobs the longest start first, so the last minutes are not one
 * long scenario running alone; scenarios never timed start before all others.
 */
function durationsPath(): string {
  return join(labCacheDir(), "lab", "durations.json");
}

function readDurations(): Record<string, number> {
  try {
    const d = JSON.parse(readFileSync(durationsPath(), "utf8")) as unknown;
    return typeof d === "object" && d !== null ? (d as Record<string, number>) : {};
  } catch {
    return {};
  }
}

function recordDurations(measured: Record<string, number>): void {
  const path = durationsPath();
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ ...readDurations(), ...measured }, null, 1)}\n`);
    renameSync(tmp, path);
  } catch {
    // Only an ordering hint: a cache that cannot be written changes nothing else.
  }
}

/** Longest first by the last run's times; untimed first of all; the given order among equals. */
export function longestFirst<T extends { name: string }>(scenarios: readonly T[], seconds: Record<string, number>): T[] {
  const known = (s: T) => (typeof seconds[s.name] === "number" ? seconds[s.name]! : Infinity);
  return scenarios.map((s, i) => ({ s, i })).sort((a, b) => known(b.s) - known(a.s) || a.i - b.i).map((x) => x.s);
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
  // The system tier's images first, all at once: on a fresh machine each is minutes of mmdebstrap,
  // and building them side by side keeps one from waiting for the other.
  const images = [...new Set(scenarios.flatMap((s) => (s.image !== undefined ? [s.image] : [])))];
  if (images.length > 0) {
    const started = Date.now();
    const failures = (await Promise.allSettled(images.map((name) => systemImage(name, { log: (l) => print(`kexec-ts lab: ${l}`) })))).flatMap((r, i) => (r.status === "rejected" ? [{ image: images[i]!, error: r.reason as unknown }] : []));
    for (const f of failures) if (!isKexecError(f.error)) throw f.error;
    if (failures.length === 0) print(`system images ${images.join(", ")} ready in ${seconds(Date.now() - started)}`);
    // A scenario whose image failed to build fails alone, with the image's error (runScenario meets it again).
  }
  const jobs = Math.max(1, Math.min(options.jobs ?? 1, scenarios.length));
  const order = jobs > 1 ? longestFirst(scenarios, readDurations()) : scenarios;
  const measured: Record<string, number> = {};
  // Console lines of guests running side by side are told apart by the scenario's name.
  const onLine = (s: Scenario) => options.verbose !== true ? {} : { onLine: (l: string) => print(jobs > 1 ? `  | ${s.name}: ${l}` : `  | ${l}`) };
  const results: (ScenarioResult | undefined)[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < order.length) {
      const scenario = order[next++]!;
      const index = scenarios.indexOf(scenario);
      const started = Date.now();
      let r: ScenarioResult;
      try {
        r = await runScenario(scenario, { host: true, ...onLine(scenario) });
        measured[scenario.name] = Math.round((Date.now() - started) / 1000);
      } catch (e) {
        // A scenario that cannot even be built (a missing file, a program for the wrong arch) fails alone.
        if (!isKexecError(e)) throw e;
        out.failed++;
        out.errors.push({ scenario: scenario.name, error: e });
        print(`FAIL ${scenario.name}  not run: ${e.message}${e.hint !== undefined ? `\n  hint: ${e.hint}` : ""}`);
        continue;
      }
      results[index] = r;
      if (r.ok) out.passed++;
      else out.failed++;
      for (const l of describeResult(r)) print(l);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  recordDurations(measured);
  out.results = results.filter((r): r is ScenarioResult => r !== undefined);
  return out;
}

async function main(argv: string[]): Promise<number> {
  let verbose = false;
  let list = false;
  let system = false;
  let jobs = 1;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--verbose" || a === "-v") verbose = true;
    else if (a === "--list") list = true;
    else if (a === "--system") system = true;
    else if (a === "--jobs" || a === "-j" || a.startsWith("--jobs=")) {
      const text = a.startsWith("--jobs=") ? a.slice("--jobs=".length) : argv[++i];
      jobs = Number(text);
      if (!Number.isInteger(jobs) || jobs < 1) {
        throw new KexecError("usage", `--jobs needs a whole number of scenarios to run at once, found ${JSON.stringify(text ?? "")}`, { field: "jobs", actual: text ?? "" }, "e.g. --jobs 2");
      }
    } else if (a.startsWith("-")) {
      throw new KexecError("usage", `unknown option ${a}`, { actual: a }, "suite.js [--system] [--jobs N] [-v] [--list] [NAME...]");
    } else names.push(a);
  }
  if (list) {
    for (const s of listScenarios(system ? systemScenarioDir() : scenarioDir())) console.log(`${s.name.padEnd(36)} ${(s.image ?? s.kernel).padEnd(12)} ${s.description ?? ""}`);
    return 0;
  }
  const started = Date.now();
  const r = await runSuite(names, { verbose, jobs, system });
  const failedNames = [...r.errors.map((e) => e.scenario), ...r.results.filter((x) => !x.ok).map((x) => x.scenario.name)];
  console.log(`${r.passed} passed, ${r.failed} failed${r.skipped > 0 ? `, ${r.skipped} skipped` : ""} in ${seconds(Date.now() - started)} (jobs ${jobs})${failedNames.length > 0 ? `; failed: ${failedNames.join(", ")}` : ""}`);
  if (r.skipped > 0 && inCI()) {
    console.log(`CI=true: ${r.skipped} skipped scenario(s) count as failures — CI must provide QEMU and the kernels (.ci/setup-debian.sh)`);
    return 1;
  }
  return r.failed === 0 ? 0 : 1;
}

// A scenario list that cannot be read or a lab that cannot start ends in the one catch (exit 78 for the lab's own errors).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runEntryPoint("kexec-ts lab", () => main(process.argv.slice(2)));
}
