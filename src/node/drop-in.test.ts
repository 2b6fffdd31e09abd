import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { dropInStatus, dropInTool, installDropIn, removeDropIn, systemEnv, type Env } from "./drop-in.js";

/** A scratch root with kexec-tools' /sbin/kexec and a kexec-ts program to link to. */
function scratch(): { root: string; env: (dpkg: boolean) => Env; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-dropin-"));
  mkdirSync(join(root, "sbin"));
  mkdirSync(join(root, "var/lib/dpkg"), { recursive: true });
  mkdirSync(join(root, "opt/kexec-ts"), { recursive: true });
  writeFileSync(join(root, "sbin/kexec"), "kexec-tools' binary\n", { mode: 0o755 });
  writeFileSync(join(root, "opt/kexec-ts/main.js"), "#!/usr/bin/env node\n", { mode: 0o755 });
  const dpkgDivert = systemEnv("/").dpkgDivert;
  return {
    root,
    env: (dpkg) => {
      if (dpkg) assert.ok(dpkgDivert !== null, "dpkg-divert is part of every Debian system");
      return { root, program: join(root, "opt/kexec-ts/main.js"), dpkgDivert: dpkg ? dpkgDivert : null };
    },
    done: () => rmSync(root, { recursive: true, force: true }),
  };
}

const kexec = dropInTool("kexec");

test("drop-in kexec with dpkg: divert kexec-tools' binary, link kexec-ts, and undo both", () => {
  const s = scratch();
  try {
    const env = s.env(true);
    const lines = installDropIn(kexec, env);
    assert.match(lines.join("\n"), /diverted \/sbin\/kexec to \/sbin\/kexec\.kexec-tools/);
    assert.equal(readlinkSync(join(s.root, "sbin/kexec")), env.program);
    assert.equal(readFileSync(join(s.root, "sbin/kexec.kexec-tools"), "utf8"), "kexec-tools' binary\n");
    const st = dropInStatus(kexec, env);
    assert.equal(st.installed, true);
    assert.deepEqual(st.diversion, { to: "/sbin/kexec.kexec-tools", by: "kexec-ts" });
    assert.equal(st.original, "/sbin/kexec.kexec-tools");
    // Twice is harmless.
    assert.match(installDropIn(kexec, env).join("\n"), /already runs kexec-ts/);
    removeDropIn(kexec, env);
    assert.equal(readFileSync(join(s.root, "sbin/kexec"), "utf8"), "kexec-tools' binary\n");
    assert.equal(existsSync(join(s.root, "sbin/kexec.kexec-tools")), false);
    assert.equal(dropInStatus(kexec, env).diversion, null);
    assert.match(removeDropIn(kexec, env).join("\n"), /nothing to undo/);
  } finally {
    s.done();
  }
});

test("drop-in leaves a file it did not make, and its diversion, in place", () => {
  const s = scratch();
  try {
    const env = s.env(true);
    installDropIn(kexec, env);
    // Someone replaces the link by hand: remove must not delete their file nor drop the diversion.
    rmSync(join(s.root, "sbin/kexec"));
    writeFileSync(join(s.root, "sbin/kexec"), "hand-made\n");
    assert.throws(() => removeDropIn(kexec, env), (e: unknown) => e instanceof KexecError && /not kexec-ts's link/.test(e.message));
    assert.equal(readFileSync(join(s.root, "sbin/kexec"), "utf8"), "hand-made\n");
    assert.equal(dropInStatus(kexec, env).diversion?.by, "kexec-ts");
  } finally {
    s.done();
  }
});

test("drop-in kexec without dpkg: the original is renamed aside and back", () => {
  const s = scratch();
  try {
    const env = s.env(false);
    installDropIn(kexec, env);
    assert.equal(readlinkSync(join(s.root, "sbin/kexec")), env.program);
    assert.equal(readFileSync(join(s.root, "sbin/kexec.kexec-ts-orig"), "utf8"), "kexec-tools' binary\n");
    assert.equal(dropInStatus(kexec, env).original, "/sbin/kexec.kexec-ts-orig");
    removeDropIn(kexec, env);
    assert.equal(readFileSync(join(s.root, "sbin/kexec"), "utf8"), "kexec-tools' binary\n");
    assert.equal(existsSync(join(s.root, "sbin/kexec.kexec-ts-orig")), false);
  } finally {
    s.done();
  }
});

test("drop-in names only the tools it can stand in for", () => {
  assert.throws(() => dropInTool("grub-install"), (e: unknown) => e instanceof KexecError && e.code === "usage" && /kexec/.test(e.data.expected ?? ""));
});

test("drop-in refuses a path another package has diverted", () => {
  const s = scratch();
  try {
    const env = s.env(true);
    const r = spawnSync(env.dpkgDivert!, ["--root", s.root, "--package", "other-kexec", "--divert", "/sbin/kexec.other", "--rename", "--add", "/sbin/kexec"]);
    assert.equal(r.status, 0, String(r.stderr));
    assert.throws(() => installDropIn(kexec, env), (e: unknown) => e instanceof KexecError && /already diverted by other-kexec/.test(e.message));
    assert.equal(existsSync(join(s.root, "sbin/kexec")), false, "nothing linked");
  } finally {
    s.done();
  }
});
