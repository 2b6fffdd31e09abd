import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { kdumpPaths } from "./paths.js";
import { readArmState, readBootId, type ArmState } from "./service.js";
import { kdumpStatus } from "./status.js";

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
      assert.match(s.reasons[0] ?? "", new RegExp(`^${paths.runState.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is damaged: ${why.source}; whether kexec-ts armed the crash kernel cannot be told`), String(why));
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
