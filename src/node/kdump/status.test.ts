import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { buildBzImage } from "../../core/image/testing/synthetic.js";
import { kdumpPaths, type KdumpPaths } from "./paths.js";
import { arm, readArmState, readBootId, type ArmState } from "./service.js";
import { kdumpStatus } from "./status.js";
import { literally } from "../../core/testing/pattern.js";

/** A config naming a capture kernel that reads as a bzImage, so that status's answer does not depend on this machine's /boot. */
function usableKernel(root: string, paths: KdumpPaths): string {
  const kernel = join(root, "vmlinuz-6.1.0-synthetic");
  writeFileSync(kernel, buildBzImage({ tail: 0x2000 }));
  mkdirSync(dirname(paths.config), { recursive: true });
  writeFileSync(paths.config, `kernel = ${kernel}\ntarget = ${join(root, "crash")}\n`);
  return kernel;
}

test("status when not armed still says what is wrong with the config and the target", () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-status-"));
  try {
    const paths = kdumpPaths(root);
    mkdirSync(dirname(paths.config), { recursive: true });
    writeFileSync(paths.config, "target = /srv/crash\nbogus line\n");
    const s = kdumpStatus(paths);
    assert.equal(s.ready, false);
    assert.match(s.reasons[0]!, /not started in this boot/);
    assert.match(s.reasons[1] ?? "", /kdump\.conf:2: expected "key = value", found "bogus line"/, "the config error is not hidden behind \"not started\"");

    const file = join(root, "notadir");
    writeFileSync(file, "");
    writeFileSync(paths.config, `target = ${file}\n`);
    assert.match(kdumpStatus(paths).reasons.join("\n"), /notadir: the dump target is not a directory \(it is a regular file\)/);

    assert.throws(() => kdumpStatus({ ...paths, config: join(root, "typo.conf"), configGiven: true }),
      (e: unknown) => e instanceof KexecError && e.code === "io" && /typo\.conf: cannot read the kdump config: no such file/.test(e.message), "a --config FILE that is not there is the command's error");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a damaged arm state in /run is not taken at its word: status is not ready and names the file and the field, without a TypeError", () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-status-"));
  try {
    const paths = kdumpPaths(root);
    usableKernel(root, paths);
    mkdirSync(dirname(paths.runState), { recursive: true });
    // Of this boot, so that only the damage can make it unusable.
    const valid: ArmState = {
      format: 1, armed: false, at: "2026-12-01T00:00:00.000Z", bootId: readBootId(), reasons: ["kernel-5level: the image lacks XLF_5LEVEL"], warnings: [],
      kernel: null, kernelRelease: null, initrd: null, initrdHash: null, cmdline: null, syscall: null, syscallWhy: null, configHash: null, kernelHash: null,
      checks: [{ id: "kernel-5level", verdict: "fail", reason: "the image lacks XLF_5LEVEL", evidence: {}, remedy: "boot with no5lvl" }], estimate: { total: "268435456", suggested: "536870912", crashSize: null },
    };
    const write = (value: unknown) => writeFileSync(paths.runState, typeof value === "string" ? value : JSON.stringify(value));
    // The shape arm() writes is read back whole: the validation refuses damage, not states.
    write(valid);
    assert.deepEqual(readArmState(paths), { state: valid, problem: null });
    assert.deepEqual(kdumpStatus(paths).reasons, ["kernel-5level: the image lacks XLF_5LEVEL"]);
    for (const [value, why] of [
      [{ ...valid, armed: "yes" }, /field armed is string "yes", expected true or false/],
      [{ ...valid, reasons: 5 }, /field reasons is number 5, expected a list of strings/],
      [{ ...valid, estimate: { total: "a lot", suggested: "1", crashSize: null } }, /field estimate is an object, expected null or \{ total, suggested, crashSize \} in decimal bytes/],
      [{ ...valid, kernel: undefined }, /field kernel is absent, expected a string or null/],
      [{ ...valid, format: 2 }, /field format is number 2, expected 1/],
      ["{", /not JSON \(.*\)/],
      ["[]", /a list, expected an object/],
    ] as const) {
      write(value);
      assert.equal(readArmState(paths).state, null, String(why));
      const s = kdumpStatus(paths);
      assert.equal(s.ready, false);
      assert.equal(s.state, null, "nothing of a damaged state is reported as the state");
      assert.match(s.reasons[0] ?? "", new RegExp(`^${literally(paths.runState)} is damaged: ${why.source}; whether kexec-ts armed the crash kernel cannot be told`), String(why));
    }
    // A FIFO there is said to be one, not read (a read would block for ever).
    rmSync(paths.runState);
    assert.equal(spawnSync("mkfifo", [paths.runState]).status, 0, "mkfifo");
    assert.match(kdumpStatus(paths).reasons[0] ?? "", /kdump\.json is damaged: it is a pipe \(FIFO\), not a file/);
    // None at all: not started, as before.
    rmSync(paths.runState);
    assert.deepEqual(readArmState(paths), { state: null, problem: null });
    assert.match(kdumpStatus(paths).reasons[0] ?? "", /not started in this boot|not by kexec-ts kdump in this boot/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("status says why the capture kernel is unusable, when not started and after a refused start (once), and what to do", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-status-"));
  try {
    const paths = kdumpPaths(root);
    const kernel = usableKernel(root, paths);
    const notStarted = /^not started in this boot \(kexec-ts kdump start; the kexec-ts-kdump service does it at boot\)$/;
    // A usable kernel: what status said before, alone.
    assert.equal(kdumpStatus(paths).reasons.length, 1);
    assert.match(kdumpStatus(paths).reasons[0]!, notStarted);
    const hint = `\\(set kernel = in ${literally(paths.config)} to a bzImage \\(/boot/vmlinuz-<release>\\), or leave it empty for the running kernel's\\)$`;
    const cases: [string, () => void, RegExp][] = [
      ["damaged", () => writeFileSync(kernel, "not a kernel at all\n".repeat(64)), /not a kernel image: no bzImage "HdrS" at offset 0x202/],
      ["cut short", () => writeFileSync(kernel, buildBzImage({ tail: 0x2000 }).subarray(0, 0x300)), /bzImage: /],
      ["missing", () => undefined, /cannot read capture kernel: no such file or directory \(ENOENT\)/],
      ["a directory", () => mkdirSync(kernel), /is a directory, expected capture kernel/],
    ];
    for (const [what, damage, why] of cases) {
      rmSync(kernel, { recursive: true, force: true });
      damage();
      const s = kdumpStatus(paths);
      assert.equal(s.ready, false, what);
      assert.match(s.reasons[0] ?? "", notStarted, what);
      assert.match(s.reasons[1] ?? "", new RegExp(`^${literally(kernel)}: ${why.source}.* ${hint}`), `${what}: ${s.reasons.join("\n")}`);
      assert.equal(s.reasons.length, 2, what);

      // The state a refused start writes (load: false builds it without writing or loading; start writes it so).
      const { state } = await arm({ paths, load: false });
      assert.equal(state.armed, false, what);
      assert.deepEqual(state.reasons, [s.reasons[1]], `${what}: start refuses with the same words`);
      mkdirSync(dirname(paths.runState), { recursive: true });
      writeFileSync(paths.runState, JSON.stringify(state));
      assert.deepEqual(kdumpStatus(paths).reasons, state.reasons, `${what}: the refused start's reason, said once`);
      rmSync(paths.runState);
    }

    // The running kernel's, when kernel = is empty: missing here, it is named with its own hint.
    const running = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
    if (!existsSync(`/boot/vmlinuz-${running}`)) {
      writeFileSync(paths.config, `target = ${join(root, "crash")}\n`);
      assert.match(kdumpStatus(paths).reasons[1] ?? "", new RegExp(`^/boot/vmlinuz-${literally(running)}: cannot read capture kernel: no such file or directory \\(ENOENT\\) \\(install the running kernel's package \\(it provides /boot/vmlinuz-${literally(running)}\\), or set kernel = in ${literally(paths.config)} to an installed bzImage\\)$`));
    }

    // Armed, and the kernel damaged since: not "restart" (a refused restart unloads what is armed), but why it would be refused.
    rmSync(kernel, { recursive: true, force: true });
    usableKernel(root, paths);
    const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
    const armed: ArmState = {
      format: 1, armed: true, at: "2026-12-01T00:00:00.000Z", bootId: readBootId(), reasons: [], warnings: [], kernel, kernelRelease: null, initrd: null, initrdHash: null,
      cmdline: "console=ttyS0", syscall: "kexec_file_load", syscallWhy: "test", configHash: sha(readFileSync(paths.config)), kernelHash: sha(readFileSync(kernel)), checks: [], estimate: null,
    };
    writeFileSync(paths.runState, JSON.stringify(armed));
    assert.doesNotMatch(kdumpStatus(paths).reasons.join("\n"), /capture kernel/, "unchanged: nothing to say about it");
    writeFileSync(kernel, "not a kernel at all\n".repeat(64));
    const reasons = kdumpStatus(paths).reasons.join("\n");
    assert.doesNotMatch(reasons, /changed since it was armed: kexec-ts kdump restart/);
    assert.match(reasons, new RegExp(`the capture kernel ${literally(kernel)} changed since it was armed at 2026-12-01T00:00:00.000Z and is now unusable; the crash kernel loaded then still works, but a restart would be refused and unload it: ${literally(kernel)}: not a kernel image: .* ${hint}`));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
