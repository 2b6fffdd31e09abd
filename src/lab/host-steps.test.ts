import { test } from "node:test";
import { strict as assert } from "node:assert";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { syntheticVmcore } from "../core/vmcore/testing.js";
import { runHostSteps } from "./host-steps.js";
import { parseScenario } from "./scenario.js";

test("host steps: $VMCORE is the disk cut to the ELF core, kexec-ts is the built CLI, the disk is gone after", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-host-"));
  try {
    const core = syntheticVmcore(40);
    const disk = join(dir, "disk0.img");
    // A disk image: the core, then the rest of the disk (zeros the capture kernel never wrote).
    const image = new Uint8Array(core.bytes.length + (1 << 20));
    image.set(core.bytes);
    writeFileSync(disk, image);
    const r = await runHostSteps({
      vmcoreDisk: 0,
      steps: [
        { name: "size", run: `stat -c %s "$VMCORE"; [ "$DISK0" = "$VMCORE" ]` },
        { name: "dmesg", run: `kexec-ts vmcore dmesg "$VMCORE" > log.txt; grep 'sysrq triggered crash' log.txt` },
      ],
    }, [disk], dir);
    assert.equal(r.ok, true, r.failure);
    assert.equal(r.steps["host/size"]!.output[0], String(core.bytes.length));
    assert.match(r.steps["host/dmesg"]!.output.join("\n"), /Kernel panic - not syncing: sysrq triggered crash/);
    assert.equal(existsSync(disk), false, "the disk image is removed");
    assert.equal(existsSync(join(dir, "host")), false, "the scratch directory is removed");
    assert.ok(statSync(join(dir, "host-dmesg.log")).size > 0, "the step's output is kept in the run directory");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("host steps: keepVmcore moves the cut vmcore into an empty cache once every step passed, and leaves one already there", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-host-"));
  const cache = process.env["KEXEC_TS_CACHE"];
  process.env["KEXEC_TS_CACHE"] = join(dir, "cache");
  try {
    const core = syntheticVmcore(40);
    const disk = () => {
      const path = join(dir, "disk0.img");
      const image = new Uint8Array(core.bytes.length + (1 << 20));
      image.set(core.bytes);
      writeFileSync(path, image);
      return path;
    };
    const kept = join(dir, "cache", "vmcores", "test-keep.elf");
    const failed = await runHostSteps({ vmcoreDisk: 0, keepVmcore: "test-keep", steps: [{ name: "bad", run: "false" }] }, [disk()], dir);
    assert.equal(failed.ok, false);
    assert.equal(existsSync(kept), false, "a vmcore whose checks failed is not kept");
    const passing = { vmcoreDisk: 0, keepVmcore: "test-keep", steps: [{ name: "dmesg", run: `kexec-ts vmcore dmesg "$VMCORE" | grep -q 'sysrq triggered crash'` }] };
    const r = await runHostSteps(passing, [disk()], dir);
    assert.equal(r.ok, true, r.failure);
    assert.equal(r.keptVmcore, kept);
    assert.deepEqual(new Uint8Array(readFileSync(kept)), core.bytes, "the disk cut to the core's length");
    assert.equal(existsSync(join(dir, "disk0.img")), false);
    // Unit tests may be reading the one in the cache: a later run leaves it.
    writeFileSync(kept, "an older capture");
    const again = await runHostSteps(passing, [disk()], dir);
    assert.equal(again.ok, true, again.failure);
    assert.equal(again.keptVmcore, undefined);
    assert.equal(readFileSync(kept, "utf8"), "an older capture");
    assert.equal(existsSync(join(dir, "disk0.img")), false, "the disk is removed all the same");
  } finally {
    if (cache === undefined) delete process.env["KEXEC_TS_CACHE"];
    else process.env["KEXEC_TS_CACHE"] = cache;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("host steps: the first failing step stops the rest and says what failed, with its output", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-host-"));
  try {
    const r = await runHostSteps({ steps: [{ name: "bad", run: "echo the reason; false; echo not reached" }, { name: "later", run: "true" }] }, [], dir);
    assert.equal(r.ok, false);
    assert.match(r.failure!, /^host step bad failed \(exit 1\)/);
    assert.match(r.failure!, /the reason/);
    assert.doesNotMatch(readFileSync(join(dir, "host-bad.log"), "utf8"), /not reached/, "sh -e stops at the failing command");
    assert.equal(r.steps["host/later"], undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("scenario host field: bad steps, makedumpfile, vmcoreDisk and keepVmcore are refused with the field", () => {
  const base = { name: "x", kernel: "amd64-6.1", steps: [], disks: [{ sizeMiB: 8 }] };
  const bad: [unknown, string][] = [
    [{ steps: [{ name: "a b", run: "true" }] }, "host.steps[0].name"],
    [{ steps: [{ name: "a" }] }, "host.steps[0].run"],
    [{ makedumpfile: "arm64", steps: [] }, "host.makedumpfile"],
    [{ vmcoreDisk: 1, steps: [] }, "host.vmcoreDisk"],
    [{ vmcoreDisk: 0, keepVmcore: "../x", steps: [] }, "host.keepVmcore"],
    [{ keepVmcore: "amd64-6.1", steps: [] }, "host.keepVmcore"],
  ];
  for (const [host, field] of bad) {
    assert.throws(() => parseScenario(JSON.stringify({ ...base, host }), "t.json"), (e: unknown) => e instanceof KexecError && e.data.field === field, field);
  }
  assert.equal(parseScenario(JSON.stringify({ ...base, host: { vmcoreDisk: 0, makedumpfile: "i386", steps: [{ name: "a", run: "true" }] } }), "t.json").host?.steps.length, 1);
});
