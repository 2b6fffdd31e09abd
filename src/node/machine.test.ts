import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runChecks } from "../core/check/index.js";
import { KexecError } from "../core/errors.js";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
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
    // Endless, where the two above are empty: refused once the reads outgrow the scratch buffer.
    rmSync(join(root, "sys/devices/system/cpu/possible"), { force: true });
    symlinkSync("/dev/zero", join(root, "sys/devices/system/cpu/possible"));
    // In a child with a timeout: opening a FIFO nobody writes blocks for ever, and a test must fail, not hang.
    const child = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { collectMachineFiles } from ${JSON.stringify(new URL("./rootfs.js", import.meta.url).href)};
       const c = await collectMachineFiles(${JSON.stringify(root)});
       console.log(JSON.stringify({ iomem: c.errors["proc/iomem"], cpuinfo: c.errors["proc/cpuinfo"], possible: c.errors["sys/devices/system/cpu/possible"], read: "proc/cpuinfo" in c.files }));`], { encoding: "utf8", timeout: 20_000 });
    assert.deepEqual(JSON.parse(child.stdout.trim() || "null"), { iomem: "a pipe (FIFO)", cpuinfo: "a character device", possible: "a character device", read: false }, `${child.error?.message ?? ""} ${child.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a snapshot whose proc/iomem is empty: crashkernel= is unresolved, said once, and check says why without a RAM size of 0", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-rootfs-"));
  try {
    cpSync(join(SNAPSHOTS, "qemu-amd64-6.1-crash3264M-4G"), dir, { recursive: true });
    writeFileSync(join(dir, "proc/iomem"), "");
    const m = await readMachine(dir);
    assert.equal(m.crashkernel?.resolution, null, "no System RAM is no size to resolve against");
    const line = renderMachine(m).split("\n").find((l) => l.trim().startsWith("crashkernel="))!;
    assert.equal(line.trim(), "crashkernel=   crashkernel=256M@3264M: the memory map lists no System RAM, cannot resolve");
    const image = readKernelImage(buildBzImage({ tail: 0x2000 }));
    const crash = runChecks({ image, machine: m, request: { crash: true, syscall: "auto", cmdline: "console=ttyS0", userArch: "x86_64" } }).find((r) => r.id === "crash-region")!;
    assert.equal(crash.verdict, "fail");
    // It had been "crashkernel= is on /proc/cmdline but crashkernel=256M@3264M reserves 256M at
    // 3264M asks for 256M, not less than the 0 of RAM, so the kernel rejects it".
    assert.equal(crash.reason, "no crash region: crashkernel= is on /proc/cmdline, but the memory map (/proc/iomem) lists no System RAM, so whether the kernel could reserve it cannot be told");
    assert.match(crash.remedy, /proc\/iomem must list the System RAM/);
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

