/**
 * Real Debian kernels booted in QEMU (TCG). Skips, saying why, when QEMU or the kernels are
 * absent (`sudo bash .ci/setup-debian.sh` provides both); CI has them. Boot times are printed
 * as diagnostics, never asserted.
 */
import { test } from "node:test";
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { captureSnapshot } from "./capture.js";
import { isPrintkLine } from "./console.js";
import { labAvailable, type GuestResult } from "./qemu.js";
import { findScenario, runScenario, type ScenarioResult } from "./scenario.js";

function skipUnlessLab(t: { skip: (why: string) => void }, kernels: string[]): boolean {
  const a = labAvailable(kernels);
  if (!a.ok) t.skip(`lab not available: ${a.why}`);
  return a.ok;
}

function failure(r: ScenarioResult): string {
  const g = r.guest;
  return `${g.outcome}: ${g.reason}\nchecks: ${r.checks.filter((c) => !c.ok).map((c) => c.detail).join("; ")}\nconsole: ${join(g.outDir, "console.log")}\nreproduce: ${g.commandLine}`;
}

function bootTimes(t: { diagnostic: (m: string) => void }, g: GuestResult): void {
  const init = g.markersSeen.find((m) => m.name === "init");
  t.diagnostic(`${g.name}: /init after ${init?.ms ?? "?"} ms, whole run ${g.durationMs} ms`);
}

/** A step's own lines: kernel messages can arrive on the shared console while it runs. */
function own(g: GuestResult, step: string): string[] {
  return (g.steps[step]?.output ?? []).filter((l) => !isPrintkLine(l));
}

/** "  7b000000-8affffff : Crash kernel" → [start, end] as bigint, from the step's own output. */
function crashRegion(g: GuestResult): [bigint, bigint] | undefined {
  for (const line of own(g, "crash-region")) {
    const m = /^\s*([0-9a-f]+)-([0-9a-f]+) : Crash kernel$/.exec(line);
    if (m !== null) return [BigInt(`0x${m[1]}`), BigInt(`0x${m[2]}`)];
  }
  return undefined;
}

test("amd64 6.1 on -cpu max: 5-level paging and crashkernel=256M@1968M at 0x7b000000", async (t) => {
  if (!skipUnlessLab(t, ["amd64-6.1"])) return;
  const r = await runScenario(findScenario("amd64-6.1-crashkernel-5level"));
  bootTimes(t, r.guest);
  assert.equal(r.guest.outcome, "ok", failure(r));
  assert.ok(r.ok, failure(r));
  assert.match(own(r.guest, "cmdline").join("\n"), /crashkernel=256M@1968M nokaslr/);
  assert.deepEqual(own(r.guest, "la57"), ["la57=present"]);
  // 1968M = 0x7b000000; 256M later, inclusive end as /proc/iomem prints it.
  assert.deepEqual(crashRegion(r.guest), [1968n << 20n, (1968n + 256n << 20n) - 1n]);
});

test("amd64 6.1 with no5lvl: la57 is gone from /proc/cpuinfo", async (t) => {
  if (!skipUnlessLab(t, ["amd64-6.1"])) return;
  const r = await runScenario(findScenario("amd64-6.1-no5lvl"));
  bootTimes(t, r.guest);
  assert.equal(r.guest.outcome, "ok", failure(r));
  assert.ok(r.ok, failure(r));
  assert.deepEqual(own(r.guest, "la57"), ["la57=absent"]);
  assert.deepEqual(crashRegion(r.guest), [0x7b000000n, 0x8affffffn]);
});

test("686-pae 6.1 under qemu-system-i386 reaches /init", async (t) => {
  if (!skipUnlessLab(t, ["686-pae-6.1"])) return;
  const r = await runScenario(findScenario("686-pae-6.1-boot"));
  bootTimes(t, r.guest);
  assert.equal(r.guest.outcome, "ok", failure(r));
  assert.match(r.guest.commandLine, /qemu-system-i386 /);
  assert.deepEqual(r.guest.markersSeen.map((m) => m.name), ["init", "uname", "pae", "done"]);
  assert.ok(r.ok, failure(r));
});

test("amd64 kernel runs Debian's 32-bit Node from the initramfs: process.arch is ia32", async (t) => {
  if (!skipUnlessLab(t, ["amd64-6.1"])) return;
  const r = await runScenario(findScenario("amd64-6.1-i386-node"));
  bootTimes(t, r.guest);
  t.diagnostic(`initramfs ${r.initramfs?.bytes} bytes: ${r.initramfs?.parts.map((p) => `${p.name} ${p.bytes}`).join(", ")}`);
  assert.equal(r.guest.outcome, "ok", failure(r));
  assert.deepEqual(own(r.guest, "node-arch"), ["ia32"]);
  assert.ok(r.ok, failure(r));
});

test("modules from the Debian package load, and a virtio disk written by the guest is read by the host", async (t) => {
  if (!skipUnlessLab(t, ["amd64-6.1"])) return;
  const r = await runScenario(findScenario("amd64-6.1-virtio-disk"));
  bootTimes(t, r.guest);
  assert.equal(r.guest.outcome, "ok", failure(r));
  assert.ok(r.ok, failure(r));
  const disk = readFileSync(r.guest.disks[0]!);
  assert.equal(disk.length, 16 << 20);
  assert.equal(disk.subarray(0, 16).toString("latin1"), "KEXEC-TS-DISK-OK");
});

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
