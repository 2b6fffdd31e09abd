import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, defaultConfig } from "../../core/kdump/config.js";
import { ARM_UNIT, MARKER, REPORT_UNIT, install, postinstHook, uninstall } from "./install.js";
import { kdumpPaths } from "./paths.js";

test("install writes the units, the kernel hooks and a documented default config; uninstall removes only what it wrote", () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-install-"));
  try {
    const p = kdumpPaths(root);
    const r = install(p, { systemctl: false, now: false });
    const arm = readFileSync(join(p.unitDir, ARM_UNIT), "utf8");
    assert.match(arm, /^ExecStart=\/\S+\/node \/\S+\/dist\/cli\/main\.js kdump start$/m, "absolute paths: the unit does not depend on PATH");
    assert.match(arm, /^ExecStop=.* kdump stop$/m);
    assert.match(arm, /^RemainAfterExit=yes$/m);
    assert.match(readFileSync(join(p.unitDir, REPORT_UNIT), "utf8"), /^Before=kexec-ts-kdump\.service$/m, "the report runs before the service re-arms");
    const hook = join(p.postinstDir, "zz-kexec-ts-kdump");
    assert.match(readFileSync(hook, "utf8"), /kdump rebuild --kernel-version "\$1"/);
    assert.equal(statSync(hook).mode & 0o111, 0o111);
    // A hook that cannot build must not fail the kernel's installation.
    const failing = join(root, "failing-hook");
    writeFileSync(failing, postinstHook("/bin/false"));
    const run = spawnSync("/bin/sh", [failing, "9.9.9-none"], { encoding: "utf8" });
    assert.equal(run.status, 0);
    assert.match(run.stderr, /could not build the capture initramfs for 9\.9\.9-none/);
    assert.deepEqual(parseConfig(readFileSync(p.config, "utf8")), defaultConfig());
    assert.ok(r.written.includes(p.config));

    // A file of the same name that is not ours stays.
    const foreign = join(p.kernelInstallDir, "85-kexec-ts-kdump.install");
    writeFileSync(foreign, "#!/bin/sh\n# someone else's\n");
    const u = uninstall(p, { systemctl: false });
    assert.ok(!existsSync(join(p.unitDir, ARM_UNIT)) && !existsSync(hook));
    assert.ok(existsSync(foreign) && u.kept.includes(foreign));
    assert.ok(existsSync(p.config), "the config is the user's");
    assert.ok(!readFileSync(foreign, "utf8").includes(MARKER));

    // Installing again keeps an edited config.
    writeFileSync(p.config, "keep = 9\n");
    assert.ok(install(p, { systemctl: false, now: false }).kept.includes(p.config));
    assert.equal(readFileSync(p.config, "utf8"), "keep = 9\n");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
