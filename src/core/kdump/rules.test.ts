import { test } from "node:test";
import { strict as assert } from "node:assert";
import { captureCommandLine } from "./cmdline.js";
import { estimateCapture } from "./estimate.js";
import { kdumpRules, type KdumpFacts } from "./rules.js";

const MiB = 1n << 20n;

function facts(more: Partial<KdumpFacts> = {}): KdumpFacts {
  return {
    crashSize: 256n * MiB,
    ramEnd: 2n << 30n,
    estimate: estimateCapture({ mode: "default", kernelInitSize: 64n * MiB, initrdCompressed: 2n * MiB, initrdUnpacked: 5n * MiB, moduleBytes: 3n * MiB, systemRam: 2n << 30n, threads: 0 }),
    capture: { ok: true, path: "/var/lib/kexec-ts/kdump/initrd-6.1.img", modules: ["virtio_blk", "ext4"], builtin: [], rebuilt: false, mode: "default" },
    target: { path: "/var/crash", where: "ext4 on /dev/vda1 at /", writeError: null, free: 10n << 30n, minFree: 64n * MiB },
    rawTarget: null,
    postNotifiers: false,
    capturedCmdline: captureCommandLine("root=/dev/vda1 crashkernel=256M", ""),
    append: "",
    ...more,
  };
}

const verdict = (f: KdumpFacts, id: string) => kdumpRules(f).find((r) => r.id === id)!;

test("everything in place: every kdump rule is ok", () => {
  for (const r of kdumpRules(facts())) assert.equal(r.verdict, "ok", `${r.id}: ${r.reason}`);
});

test("a reservation smaller than the estimate fails with the crashkernel= to use; none at all fails too", () => {
  const f = facts({ crashSize: 128n * MiB });
  const r = verdict(f, "kdump-memory");
  assert.equal(r.verdict, "fail");
  assert.match(r.reason, /needs about .* and the reservation is 128 MiB/);
  assert.match(r.remedy, /crashkernel=\d+M/);
  assert.equal(verdict(facts({ crashSize: 0n }), "kdump-memory").verdict, "fail");
});

test("RAM above what kexec-ts's kdump-format save handles (4 PiB) fails before anything is armed, naming makedumpfile; 8 TiB and more is armed", () => {
  // The capture saves in the kdump format, a window of its bitmap at a time: not the 8 TiB of a bitmap held whole.
  for (const ramEnd of [8n << 40n, (8n << 40n) + 4096n, 24n << 40n, 4n << 50n]) assert.equal(verdict(facts({ ramEnd }), "kdump-memory").verdict, "ok", `RAM to ${ramEnd}`);
  const r = verdict(facts({ ramEnd: (4n << 50n) + 4096n }), "kdump-memory");
  assert.equal(r.verdict, "fail");
  assert.match(r.reason, /RAM reaches 0x10000000001000.*below 0x10000000000000 \(4 PiB\)/);
  assert.match(r.remedy, /makedumpfile/);
});

test("an unwritable target fails; one under min_free warns", () => {
  assert.equal(verdict(facts({ target: { ...facts().target, writeError: "EROFS: read-only file system" } }), "kdump-target").verdict, "fail");
  assert.equal(verdict(facts({ target: { ...facts().target, free: 10n * MiB } }), "kdump-target").verdict, "warn");
});

test("a capture initramfs that cannot be built fails both its rule and the target's, with the builder's hint", () => {
  const f = facts({ capture: { ok: false, message: "the target /srv is on nfs", hint: "put the target on a local disk" }, estimate: null, target: { ...facts().target, where: null } });
  assert.equal(verdict(f, "kdump-capture-initramfs").verdict, "fail");
  assert.equal(verdict(f, "kdump-target").remedy, "put the target on a local disk");
});

test("crash_kexec_post_notifiers and a panic_on_warn in append sabotage the capture; dropped words are named", () => {
  assert.equal(verdict(facts({ postNotifiers: true }), "kdump-settings").verdict, "fail");
  const f = facts({ append: "panic_on_warn=1", capturedCmdline: captureCommandLine("root=/dev/vda1", "panic_on_warn=1") });
  assert.match(verdict(f, "kdump-settings").reason, /append carries panic_on_warn=1/);
  const ok = verdict(facts({ capturedCmdline: captureCommandLine("panic_on_warn=1 crashkernel=256M", "") }), "kdump-settings");
  assert.equal(ok.verdict, "ok");
  assert.match(ok.reason, /panic_on_warn=1 \(a warning in the capture kernel/);
});

test("a mounted or small raw target", () => {
  assert.equal(verdict(facts({ rawTarget: { path: "/dev/vdb", error: "it is mounted", bytes: null, systemRam: null } }), "kdump-raw-target").verdict, "fail");
  assert.equal(verdict(facts({ rawTarget: { path: "/dev/vdb", error: null, bytes: 64n * MiB, systemRam: 2n << 30n } }), "kdump-raw-target").verdict, "warn");
  assert.equal(verdict(facts({ rawTarget: { path: "/dev/vdb", error: null, bytes: 4n << 30n, systemRam: 2n << 30n } }), "kdump-raw-target").verdict, "ok");
});

test("remedies name the config file the settings came from: --config FILE's, else /etc/kexec-ts/kdump.conf", () => {
  const bad = { append: "panic_on_warn=1", capturedCmdline: captureCommandLine("root=/dev/vda1", "panic_on_warn=1"), target: { ...facts().target, where: null } };
  assert.equal(verdict(facts(bad), "kdump-settings").remedy, "remove it from append in /etc/kexec-ts/kdump.conf");
  assert.equal(verdict(facts({ ...bad, configFile: "/tmp/test.conf" }), "kdump-settings").remedy, "remove it from append in /tmp/test.conf");
  assert.equal(verdict(facts({ ...bad, configFile: "/tmp/test.conf" }), "kdump-target").remedy, "check the target in /tmp/test.conf");
});
