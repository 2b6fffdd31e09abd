/**
 * A real Debian kernel booted in QEMU (TCG) by the snapshot capture. Skips, saying why, when
 * QEMU or the kernels are absent (`sudo bash .ci/setup-debian.sh` provides both); under CI=true
 * that is a failure. Boot times are printed as diagnostics, never asserted. The boots that only
 * run a scenario and check its output are the e2e suite's (lab/scenarios), not repeated here.
 */
import { test, type TestContext } from "node:test";
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { missingInput } from "../node/test-inputs.js";
import { captureSnapshot } from "./capture.js";
import { labAvailable, type GuestResult } from "./qemu.js";

function skipUnlessLab(t: TestContext, kernels: string[]): boolean {
  const a = labAvailable(kernels);
  if (!a.ok) missingInput(t, `lab not available: ${a.why}`);
  return a.ok;
}

function bootTimes(t: { diagnostic: (m: string) => void }, g: GuestResult): void {
  const init = g.markersSeen.find((m) => m.name === "init");
  t.diagnostic(`${g.name}: /init after ${init?.ms ?? "?"} ms, whole run ${g.durationMs} ms`);
}

test("capture: a guest's /proc and /sys view lands in a snapshot directory on the host", async (t) => {
  if (!skipUnlessLab(t, ["amd64-6.1"])) return;
  const dest = mkdtempSync(join(tmpdir(), "kexec-ts-capture-"));
  try {
    const c = await captureSnapshot({ name: "t-amd64-6.1", kernel: "amd64-6.1", append: "crashkernel=256M@1968M nokaslr", mem: "4G", cpu: "max", mode: "busybox", destRoot: dest });
    bootTimes(t, c.guest);
    assert.equal(c.dir, join(dest, "t-amd64-6.1"));
    assert.ok(c.files.includes("proc/iomem") && c.files.includes("proc/cpuinfo") && c.files.includes("sys/firmware/memmap/0/type"), c.files.join(" "));
    assert.match(readFileSync(join(c.dir, "proc/iomem"), "utf8"), /^\s*7b000000-8affffff : Crash kernel$/m);
    assert.match(readFileSync(join(c.dir, "proc/cmdline"), "utf8"), /crashkernel=256M@1968M/);
    assert.match(readFileSync(join(c.dir, "proc/cpuinfo"), "utf8"), /\bla57\b/);
    const provenance = JSON.parse(readFileSync(join(dest, "t-amd64-6.1.capture.json"), "utf8")) as { kernelVersion: string; mode: string };
    assert.equal(provenance.mode, "busybox");
    assert.match(provenance.kernelVersion, /^6\.1\.0-/);
  } finally {
    rmSync(dest, { recursive: true, force: true });
  }
});
