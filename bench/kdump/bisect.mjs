#!/usr/bin/env node
/**
 * The smallest crashkernel= reservation with which `kexec-ts kdump` saves a dump, found by
 * bisection over real crashes in the lab, beside what `kexec-ts kdump estimate` says for the
 * same machine. See bench/kdump/README.md.
 *
 *   node bench/kdump/bisect.mjs [--mem 2G] [--mode default|self-contained] [--lo 96] [--hi 256] [--step 8] [--scenario NAME]
 *
 * Each try boots the scenario (lab/scenarios/kdump-service-default-amd64.json unless --scenario)
 * with crashkernel=<try>M and the given guest memory and capture mode, arms (`kdump start
 * --force`: below the estimate the service would refuse, and the capture itself is what is
 * measured), crashes, and counts as working when the capture init prints "the dump is saved".
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const { findScenario, runScenario } = await import(join(repo, "dist/lab/index.js"));

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const mem = opt("mem", "2G");
const mode = opt("mode", "default");
let lo = Number(opt("lo", "96"));
let hi = Number(opt("hi", "256"));
const step = Number(opt("step", "8"));
const base = findScenario(opt("scenario", "kdump-service-default-amd64"));
const log = join(here, "bisect.log");
mkdirSync(here, { recursive: true });

function variant(crashMiB) {
  const s = structuredClone(base);
  s.name = `${base.name}-bisect-${mem}-${mode}-${crashMiB}M`;
  s.mem = mem;
  s.append = (s.append ?? "").replace(/crashkernel=\S+/, `crashkernel=${crashMiB}M`);
  // The config the root gets, with the mode under test.
  s.steps = s.steps.map((st) => st.name !== "root" ? st : { ...st, run: st.run.replace(/printf '([^']*)' > \/mnt\/etc\/kexec-ts\/kdump.conf/, (_, body) => `printf '${body}mode = ${mode}\\n' > /mnt/etc/kexec-ts/kdump.conf`) });
  // Below the estimate the service refuses to arm: --force arms past that, which is what is measured here.
  s.steps = s.steps.map((st) => st.name !== "start" ? st : { ...st, run: st.run.replace("kdump start", "kdump start --force") });
  s.checks = [];
  s.host = undefined;
  return s;
}

async function attempt(crashMiB) {
  const started = Date.now();
  const r = await runScenario(variant(crashMiB), {});
  const lines = r.guest.log;
  const saved = lines.some((l) => /^kexec-ts kdump: the dump is saved/.test(l));
  const estimate = lines.map((l) => /total ([\d.]+ MiB).*crashkernel=(\d+)M/.exec(l)).find(Boolean);
  const refused = lines.find((l) => /^NOT armed: /.test(l));
  const detail = lines.filter((l) => /^kexec-ts kdump: |Out of memory|oom-kill|Killed process/.test(l)).slice(-4).map((l) => l.trim());
  const row = { crashMiB, mem, mode, saved, refused: refused ?? null, estimate: estimate ? { total: estimate[1], suggested: `${estimate[2]}M` } : null, seconds: Math.round((Date.now() - started) / 1000), outcome: r.guest.outcome, detail, run: r.guest.outDir };
  appendFileSync(log, `${JSON.stringify(row)}\n`);
  process.stdout.write(`${crashMiB}M: ${saved ? "saved" : refused ? `refused (${refused.slice(0, 160)})` : "NOT saved"} in ${row.seconds} s; ${detail.join(" | ")}\n`);
  return row;
}

// The bounds must hold: lo fails, hi works.
process.stdout.write(`bisecting crashkernel= for a ${mem} guest, ${mode} mode, between ${lo}M and ${hi}M in ${step}M steps\n`);
const top = await attempt(hi);
if (!top.saved) {
  process.stdout.write(`the upper bound ${hi}M does not work; give a larger --hi\n`);
  process.exit(1);
}
// The lower bound is assumed to fail; it counts as measured only once a try has failed there.
let loTried = false;
while (hi - lo > step) {
  const mid = Math.round((lo + hi) / 2 / step) * step;
  const r = await attempt(mid);
  if (r.saved) hi = mid;
  else { lo = mid; loTried = true; }
}
if (!loTried) {
  const r = await attempt(lo);
  if (r.saved) process.stdout.write(`the lower bound ${lo}M works too; give a smaller --lo\n`);
  else loTried = true;
}
process.stdout.write(`smallest working reservation: ${hi}M (${loTried ? `${lo}M did not work` : `${lo}M works too: the smallest is lower`}); estimate for this machine: ${top.estimate?.total ?? "?"} -> crashkernel=${top.estimate?.suggested ?? "?"}\n`);
appendFileSync(log, `${JSON.stringify({ result: { mem, mode, smallestWorkingMiB: loTried ? hi : null, largestFailingMiB: loTried ? lo : null, estimate: top.estimate } })}\n`);
