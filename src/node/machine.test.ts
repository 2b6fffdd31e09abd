import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KexecError } from "../core/errors.js";
import { toMachineJson, type Machine } from "../core/machine/model.js";
import { renderMachine } from "../core/machine/render.js";
import { readMachine } from "./machine.js";
import { readFully } from "./rootfs.js";
import { snapshot } from "./snapshot.js";
import { missingInput } from "./test-inputs.js";

const SNAPSHOTS = fileURLToPath(new URL("../../testdata/snapshots/", import.meta.url));

/** What may change between two reads of a live machine: kexec state (someone loads a kernel) and MemTotal (ballooning). */
function stable(m: Machine): unknown {
  return { ...toMachineJson(m), kexec: { ...m.kexec, loaded: null, crashLoaded: null }, memTotal: null };
}

test("readMachine('/') equals readMachine(snapshot of '/') on this machine", async () => {
  const dir = await mkdtemp(join(tmpdir(), "kexec-ts-snap-"));
  try {
    const live = await readMachine("/");
    await snapshot("/", dir);
    const replay = await readMachine(dir);
    assert.deepEqual(stable(replay), stable(live));
    assert.equal(renderMachine(replay).length > 0, true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("sysfs files report 4096 bytes but are read to their real end", async (t) => {
  if (!existsSync("/sys/devices/system/cpu/possible")) return missingInput(t, "no sysfs here (/sys/devices/system/cpu/possible)");
  const bytes = await readFully("/sys/devices/system/cpu/possible");
  assert.ok(bytes.length > 0 && bytes.length < 4096);
  assert.equal(bytes[bytes.length - 1], 0x0a);
});

test("a snapshot with a FIFO or a device in place of a file is read without blocking: those files are unreadable, by kind", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-rootfs-"));
  try {
    const root = join(dir, "root");
    cpSync(join(SNAPSHOTS, readdirSync(SNAPSHOTS, { withFileTypes: true }).find((d) => d.isDirectory())!.name), root, { recursive: true });
    rmSync(join(root, "proc/iomem"), { force: true });
    rmSync(join(root, "proc/cpuinfo"), { force: true });
    spawnSync("mkfifo", [join(root, "proc/iomem")]);
    symlinkSync("/dev/null", join(root, "proc/cpuinfo"));
    // In a child with a timeout: opening a FIFO nobody writes blocks for ever, and a test must fail, not hang.
    const child = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { collectMachineFiles } from ${JSON.stringify(new URL("./rootfs.js", import.meta.url).href)};
       const c = await collectMachineFiles(${JSON.stringify(root)});
       console.log(JSON.stringify({ iomem: c.errors["proc/iomem"], cpuinfo: c.errors["proc/cpuinfo"], read: "proc/cpuinfo" in c.files }));`], { encoding: "utf8", timeout: 20_000 });
    assert.deepEqual(JSON.parse(child.stdout.trim() || "null"), { iomem: "a pipe (FIFO)", cpuinfo: "a character device", read: false }, `${child.error?.message ?? ""} ${child.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a missing root is an io error, not a model of nothing", async () => {
  await assert.rejects(readMachine("/nonexistent/kexec-ts-root"), (e: unknown) => e instanceof KexecError && e.code === "io");
});

/**
 * Every snapshot under testdata/snapshots/<name>/ replays to
 * testdata/snapshots/<name>.machine.json. UPDATE_GOLDEN=1 rewrites them.
 */
for (const name of readdirSync(SNAPSHOTS, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name)) {
  test(`snapshot ${name} replays to its golden JSON`, async () => {
    const json = `${JSON.stringify(toMachineJson(await readMachine(join(SNAPSHOTS, name))), null, 2)}\n`;
    const golden = join(SNAPSHOTS, `${name}.machine.json`);
    if (process.env["UPDATE_GOLDEN"] === "1") writeFileSync(golden, json);
    assert.ok(existsSync(golden), `${golden} is missing: run UPDATE_GOLDEN=1 node scripts/test.mjs dist/node/machine.test.js`);
    assert.equal(json, readFileSync(golden, "utf8"));
  });
}

