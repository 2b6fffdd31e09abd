import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
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

