import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { KexecError } from "../core/errors.js";
import { generateSystemRun, STEP } from "./init-script.js";
import { qemuInvocation } from "./qemu.js";
import { listScenarios, parseScenario, systemRunSpec, systemScenarioDir } from "./scenario.js";
import { deviceUnit, kernelPackage, labLayerFiles, LAB_UNIT, sourcesWithoutBrokenIndexes, STEPS_DIR, STEPS_SERIAL } from "./system-image.js";
import { systemMarkers } from "./system.js";
import type { LabKernel } from "./kernels.js";

test("the system run script picks the boot's steps by a count kept on the root disk", () => {
  const { files } = generateSystemRun([{ steps: [{ name: "load", run: "kexec-ts -l x" }, { name: "kexec", run: "systemctl kexec", returns: false }] }, { stage: "second", steps: [{ name: "uname", run: "uname -r" }] }], STEPS_DIR, "test");
  const run = files.get(`${STEPS_DIR}/run`)!;
  for (const text of [run, files.get(`${STEPS_DIR}/boot-0.sh`)!, files.get(`${STEPS_DIR}/boot-1.sh`)!]) assert.equal(spawnSync("sh", ["-n"], { input: text }).status, 0, text);
  assert.match(run, /state=\/var\/lib\/kexec-ts-lab/);
  assert.match(run, /echo \$\(\(boot \+ 1\)\) > \$state\/boot/);
  assert.ok(run.indexOf("sync") < run.indexOf("boot-$boot.sh"), "the count is on disk before the steps run (a kexec does not sync)");
  assert.equal(files.get(`${STEPS_DIR}/steps-0/load.sh`), "#!/bin/sh\nkexec-ts -l x\n");
  const second = files.get(`${STEPS_DIR}/boot-1.sh`)!;
  assert.match(second, /kexec_ts_stage='second'/);
  assert.ok(second.includes(`${STEP}$(kexec_ts_name 'uname')`));
  assert.match(second, /systemctl poweroff/, "the last boot powers off");
  assert.doesNotMatch(files.get(`${STEPS_DIR}/boot-0.sh`)!, /poweroff/, "an earlier boot ends in its kexec");
});

test("a system run needs a distinct stage for each boot", () => {
  assert.throws(() => generateSystemRun([{ steps: [] }, { steps: [] }], STEPS_DIR, "t"), /used twice/);
  assert.throws(() => generateSystemRun([], STEPS_DIR, "t"), KexecError);
});

test("a system scenario's markers run across its boots", () => {
  assert.deepEqual(systemMarkers([
    { steps: [{ name: "load", run: "", timeoutSec: 300 }, { name: "kexec", run: "", returns: false }] },
    { stage: "second", steps: [{ name: "uname", run: "" }] },
  ]), [{ name: "init" }, { name: "load", timeoutSec: 300 }, { name: "second/init" }, { name: "second/uname" }, { name: "second/done" }]);
});

test("every scenario in lab/system parses, names an image, and its first boot is its steps", () => {
  const all = listScenarios(systemScenarioDir());
  assert.ok(all.length > 0);
  for (const s of all) {
    assert.ok(s.image === "amd64" || s.image === "i386", s.name);
    const spec = systemRunSpec(s);
    assert.equal(spec.boots[0]!.steps, s.steps);
    assert.equal(spec.boots.length, 1 + (s.boots?.length ?? 0));
  }
});

test("a system scenario refuses what only an initramfs guest has", () => {
  const base = { name: "x", kernel: "amd64-6.1", image: "amd64", steps: [] };
  assert.throws(() => parseScenario(JSON.stringify({ ...base, node: true }), "x.json"), /user space is the image's/);
  assert.throws(() => parseScenario(JSON.stringify({ ...base, firmware: "uefi" }), "x.json"), /firmware/);
  assert.throws(() => parseScenario(JSON.stringify({ ...base, image: "arm64" }), "x.json"), /image/);
  assert.throws(() => parseScenario(JSON.stringify({ ...base, boots: [{ steps: [] }] }), "x.json"), /boots\[0\]\.stage/);
  assert.throws(() => parseScenario(JSON.stringify({ ...base, files: [{ guest: "/x", program: "/bin/sh" }] }), "x.json"), /host, text or kernel/);
});

test("the root disk comes first, the steps disk second by its serial, scenario disks after", () => {
  const { argv } = qemuInvocation({
    name: "t", kernel: { path: "/bin/sh", arch: "x86_64" }, initrd: "/bin/sh", expect: [], reboot: true,
    drives: [{ file: "/img/root.img", format: "raw", snapshot: true }, { file: "/run/steps.img", format: "raw", serial: STEPS_SERIAL, readonly: true }],
  }, undefined, ["/run/disk0.img"]);
  const devices = argv.flatMap((a, i) => (argv[i - 1] === "-drive" || argv[i - 1] === "-device" ? [a] : []));
  assert.deepEqual(devices, [
    "if=none,id=drive0,file=/img/root.img,format=raw,snapshot=on",
    "virtio-blk-pci,drive=drive0",
    "if=none,id=drive1,file=/run/steps.img,format=raw,readonly=on",
    `virtio-blk-pci,drive=drive1,serial=${STEPS_SERIAL}`,
    "if=none,id=drive2,file=/run/disk0.img,format=raw",
    "virtio-blk-pci,drive=drive2",
  ]);
  assert.ok(!argv.includes("-no-reboot"), "a guest that may reboot is restarted, not ended");
});

test("the lab unit waits for the steps disk under the name systemd gives its device", () => {
  const escape = spawnSync("systemd-escape", ["--path", `/dev/disk/by-id/virtio-${STEPS_SERIAL}`], { encoding: "utf8" });
  assert.equal(escape.status, 0, `systemd-escape: ${escape.error?.message ?? escape.stderr}`);
  assert.equal(deviceUnit("/dev/disk/by-id/virtio-a.b-c"), `${spawnSync("systemd-escape", ["--path", "/dev/disk/by-id/virtio-a.b-c"], { encoding: "utf8" }).stdout.trim()}.device`);
  const unit = labLayerFiles().files.get(`etc/systemd/system/${LAB_UNIT}`)!;
  assert.ok(unit.includes(`After=${escape.stdout.trim()}.device`), unit);
  assert.ok(unit.includes(`/dev/disk/by-id/virtio-${STEPS_SERIAL}`));
  assert.ok(labLayerFiles().symlinks.get("etc/systemd/system/serial-getty@ttyS0.service") === "/dev/null", "no getty eats the console");
});

test("a lab kernel is installed from Debian's package of the same version, foreign ones with their arch", () => {
  const k = (version: string, debianArch: "amd64" | "i386"): LabKernel => ({ name: "", package: "", version, debianArch, kernelArch: debianArch === "amd64" ? "x86_64" : "i386", vmlinuz: "", modules: "" });
  assert.equal(kernelPackage(k("6.1.0-57-amd64", "amd64"), "amd64"), "linux-image-6.1.0-57-amd64");
  assert.equal(kernelPackage(k("6.1.0-57-amd64", "amd64"), "i386"), "linux-image-6.1.0-57-amd64:amd64");
  assert.equal(kernelPackage(k("6.1.0-57-686-pae", "i386"), "i386"), "linux-image-6.1.0-57-686-pae");
});

test("a base whose mirror serves an update suite's index broken is built without that index, never without the release", () => {
  const sources = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
    "deb http://deb.debian.org/debian bookworm-backports main",
  ];
  // As mmdebstrap's build.log had it on 2026-12-05, for over an hour.
  const log = [
    "Err:9 http://deb.debian.org/debian-security bookworm-security/main i386 Packages",
    "  File has unexpected size (371952 != 372316). Mirror sync in progress? [IP: 203.0.113.80 80]",
    "E: Failed to fetch http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-i386/Packages.xz  File has unexpected size (371952 != 372316). Mirror sync in progress? [IP: 203.0.113.80 80]",
    "E: Some index files failed to download. They have been ignored, or old ones used instead.",
  ].join("\n");
  assert.deepEqual(sourcesWithoutBrokenIndexes(sources, ["i386", "amd64"], log), {
    sources: [sources[0], sources[1], "deb [arch=amd64] http://deb.debian.org/debian-security bookworm-security main", sources[3]],
    left: ["bookworm-security (i386)"],
  });
  // Both architectures' index broken: the suite goes.
  const both = `${log}\nE: Failed to fetch http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-amd64/Packages.xz  Hash Sum mismatch`;
  assert.deepEqual(sourcesWithoutBrokenIndexes(sources, ["i386", "amd64"], both)?.sources, [sources[0], sources[1], sources[3]]);
  // The release itself, or a failure of another kind: nothing to leave out, the build fails as it did.
  assert.equal(sourcesWithoutBrokenIndexes(sources, ["amd64"], "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/main/binary-amd64/Packages.xz  Hash Sum mismatch"), undefined);
  assert.equal(sourcesWithoutBrokenIndexes(sources, ["amd64"], "E: Unable to locate package nodejs"), undefined);
});
