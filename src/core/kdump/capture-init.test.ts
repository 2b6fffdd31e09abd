import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { generateCaptureInit, targetDirForNode, type CaptureInitSpec } from "./capture-init.js";

function spec(more: Partial<CaptureInitSpec> = {}): CaptureInitSpec {
  return {
    version: "0.1.0",
    mode: "default",
    modules: ["/lib/modules/6.1.0-57-amd64/kernel/drivers/block/virtio_blk.ko", "/lib/modules/6.1.0-57-amd64/kernel/fs/ext4/ext4.ko"],
    root: { device: { uuid: "0f5c1c7e-1111-4222-8333-944455556666", path: "/dev/vda1" }, fstype: "ext4" },
    target: { fs: { device: { uuid: "0f5c1c7e-1111-4222-8333-944455556666", path: "/dev/vda1" }, fstype: "ext4" }, onRoot: true, mountPoint: "/", dir: "/var/crash" },
    rawTarget: null,
    node: { program: "/usr/bin/node", main: "/usr/local/lib/node_modules/kexec-ts/dist/cli/main.js", heapMiB: 48 },
    failureAction: "reboot",
    finalAction: "poweroff",
    deviceWaitSec: 30,
    configFile: "/etc/kexec-ts/kdump.conf",
    ...more,
  };
}

/** busybox sh (the capture init's shell) or dash parse it without running it. */
function syntaxOk(script: string): void {
  for (const shell of [["busybox", "sh"], ["sh"]]) {
    const r = spawnSync(shell[0]!, [...shell.slice(1), "-n"], { input: script, encoding: "utf8" });
    if (r.error) continue;
    assert.equal(r.status, 0, `${shell.join(" ")} -n: ${r.stderr}`);
  }
}

test("default mode, target on the root: one read-write mount, the target bound, the rest read-only, the system's Node in a chroot", () => {
  const s = generateCaptureInit(spec());
  syntaxOk(s);
  const order = ["insmod '/lib/modules/6.1.0-57-amd64/kernel/drivers/block/virtio_blk.ko'", "insmod '/lib/modules/6.1.0-57-amd64/kernel/fs/ext4/ext4.ko'",
    "find_dev '0f5c1c7e-1111-4222-8333-944455556666' '/dev/vda1'", "-o rw \"$dev\" '/sysroot'", "mount --bind '/sysroot/var/crash' '/sysroot/var/crash'", "mount -o remount,bind,ro /sysroot",
    "chroot /sysroot '/usr/bin/node' --v8-pool-size=1 --max-old-space-size=48 --max-semi-space-size=2 '/usr/local/lib/node_modules/kexec-ts/dist/cli/main.js' kdump save /run/kexec-ts/capture.json",
    "act \"the dump is saved; poweroff\" 'poweroff'"];
  let at = 0;
  for (const piece of order) {
    const i = s.indexOf(piece, at);
    assert.ok(i >= at, `${piece} (after offset ${at})`);
    at = i;
  }
  assert.match(s, /no raw_target configured: nothing saved \(configure raw_target in "'\/etc\/kexec-ts\/kdump.conf'" as a last resort\)/);
});

test("the console's hint names the config file the settings came from, quoted for the shell", () => {
  const s = generateCaptureInit(spec({ configFile: "/srv/it's kdump.conf" }));
  syntaxOk(s);
  const line = s.split("\n").find((l) => l.includes("no raw_target configured"))!;
  // What busybox's echo prints, as the shell expands the line.
  const r = spawnSync("sh", ["-c", `say() { echo "$*"; }; ${line}`], { encoding: "utf8" });
  assert.equal(r.stdout, "no raw_target configured: nothing saved (configure raw_target in /srv/it's kdump.conf as a last resort)\n");
});

test("default mode, target on another file system: the root read-only, the target's mounted read-write under it", () => {
  const s = generateCaptureInit(spec({ target: { fs: { device: { uuid: null, path: "/dev/vdb" }, fstype: "xfs" }, onRoot: false, mountPoint: "/srv/crash", dir: "/srv/crash/dumps" } }));
  syntaxOk(s);
  assert.match(s, /-o ro "\$dev" '\/sysroot'/);
  assert.match(s, /find_dev '' '\/dev\/vdb'/);
  assert.match(s, /mount -t 'xfs' -o rw "\$dev" '\/sysroot\/srv\/crash'/);
  assert.doesNotMatch(s, /remount,bind,ro/);
});

test("self-contained mode: the squashfs image of Node mounted as the root to chroot into, the target under it", () => {
  const sc = spec({ mode: "self-contained", root: null, node: { program: "/usr/bin/node", main: "/opt/kexec-ts/dist/cli/main.js", heapMiB: 64 } });
  const s = generateCaptureInit(sc);
  syntaxOk(s);
  const order = ["mount -t squashfs -o loop,ro /kexec-ts.sqfs /sysroot", "-o rw \"$dev\" '/sysroot/target'", "mount --bind /$d /sysroot/$d",
    "chroot /sysroot '/usr/bin/node' --v8-pool-size=1 --max-old-space-size=64 --max-semi-space-size=2 '/opt/kexec-ts/dist/cli/main.js' kdump save"];
  let at = 0;
  for (const piece of order) {
    const i = s.indexOf(piece, at);
    assert.ok(i >= at, `${piece} (after offset ${at})`);
    at = i;
  }
  assert.match(s, /umount '\/sysroot\/target'/, "the target is unmounted (flushed) before the action");
  assert.equal(targetDirForNode(sc, "/var/crash"), "/target/var/crash");
  assert.equal(targetDirForNode(spec(), "/var/crash"), "/var/crash");
});

test("a raw target gets /proc/vmcore and a record at its end where Node never ran; then the failure action", () => {
  const s = generateCaptureInit(spec({ rawTarget: "/dev/vdc", failureAction: "halt" }));
  syntaxOk(s);
  assert.match(s, /dd if=\/proc\/vmcore of='\/dev\/vdc' bs=1M/);
  assert.match(s, /echo 'KEXEC-TS-KDUMP-RAW 1'/);
  assert.match(s, /act "halt after the failure: \$failed" 'halt'/);
  assert.ok(s.indexOf("-e /run/kexec-ts/started") < s.indexOf("dd if=/proc/vmcore"), "a save that started is not overwritten by a raw copy");
});
