import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { KexecError } from "../core/errors.js";
import { missingInput, missingTool } from "../node/test-inputs.js";
import { buildInitramfs } from "./initramfs.js";
import type { GuestStep } from "./init-script.js";
import { cpuStateAtReset, decodeExtract, labAvailable, qemuInvocation, runGuest, shellCommandLine, type GuestSpec } from "./qemu.js";

test("the printed command line reads back as the same arguments in sh", () => {
  const argv = ["qemu-system-x86_64", "-append", "console=ttyS0 crashkernel=256M@1968M", "-name", "it's", "-kernel", "/a b/vmlinuz"];
  const r = spawnSync("sh", ["-c", `printf '%s\\n' ${shellCommandLine(argv.slice(1))}`]);
  assert.deepEqual(r.stdout.toString().split("\n").slice(0, -1), argv.slice(1));
});

test("the CPU state of the last reset is reported, the power-on ones are not", () => {
  const powerOn = "CPU Reset (CPU 0)\nEAX=00000000 EBX=00000000\nEIP=00000000 EFL=00000000\nCR0=00000000 CR2=00000000 CR3=00000000 CR4=00000000\n";
  assert.equal(cpuStateAtReset(powerOn), undefined);
  const crash = `${powerOn}CPU Reset (CPU 0)\nRAX=0000000000000000\nRIP=000000007ffd7760 RFL=00010046\nCR0=80050033 CR2=ffffffffff5fd000 CR3=000000007e20a000 CR4=00370ef0\n`;
  assert.equal(cpuStateAtReset(crash), "RIP=000000007ffd7760 CR0=80050033 CR2=ffffffffff5fd000 CR3=000000007e20a000 CR4=00370ef0");
});

test("a file sent over the console is verified before it is unpacked", (t) => {
  if (missingTool("tar") !== undefined) return missingInput(t, "tar is not installed");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-extract-"));
  try {
    spawnSync("sh", ["-c", `mkdir -p d/proc && printf 'x\\n' > d/proc/cmdline`], { cwd: dir });
    const tarBytes = spawnSync("tar", ["-cf", "-", "-C", join(dir, "d"), "."]).stdout;
    const gz = gzipSync(tarBytes);
    const lines = gz.toString("base64").match(/.{1,76}/g)!;
    const md5 = createHash("md5").update(gz).digest("hex");
    const entries = decodeExtract("snap", lines, gz.length, md5);
    assert.equal(new TextDecoder().decode(entries.find((e) => e.name === "./proc/cmdline")!.data), "x\n");
    assert.throws(() => decodeExtract("snap", lines.slice(1), gz.length, md5), (e: unknown) => e instanceof KexecError && /bytes arrived/.test(e.message));
    assert.throws(() => decodeExtract("snap", lines, gz.length, "0".repeat(32)), (e: unknown) => e instanceof KexecError && /md5/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a missing kernel file is a lab error with a hint", async () => {
  await assert.rejects(
    runGuest({ name: "x", kernel: { path: "/nonexistent/vmlinuz", arch: "x86_64" }, initrd: "/nonexistent", expect: [] }),
    (e: unknown) => e instanceof KexecError && e.code === "lab" && /does not exist/.test(e.message) && e.hint !== undefined,
  );
});

// --- with QEMU ---------------------------------------------------------------------------------

async function boot(name: string, steps: GuestStep[], extra: Partial<GuestSpec> = {}): ReturnType<typeof runGuest> {
  const initramfs = await buildInitramfs({ userArch: "x86_64", init: { steps } });
  return runGuest({ name: `test-${name}`, kernel: "amd64-6.1", initrd: initramfs.path, mem: "512M", expect: ["init", ...steps.map((s) => s.name), "done"], ...extra });
}

test("a kernel panic is reported as such, quickly, with the panic line", async (t) => {
  const a = labAvailable(["amd64-6.1"]);
  if (!a.ok) return missingInput(t, a.why);
  const r = await boot("panic", [{ name: "crash", run: "echo c > /proc/sysrq-trigger" }]);
  assert.equal(r.outcome, "panic", r.reason);
  assert.match(r.reason, /Kernel panic - not syncing/);
  assert.match(r.reason, /after marker init/);
  assert.deepEqual(r.missing, ["crash", "done"]);
});

test("a guest that reboots before its markers is a reset, and the console tail is kept", async (t) => {
  const a = labAvailable(["amd64-6.1"]);
  if (!a.ok) return missingInput(t, a.why);
  const r = await boot("reset", [{ name: "reboot", run: "echo going-down; reboot -f" }]);
  assert.equal(r.outcome, "reset", r.reason);
  assert.match(r.reason, /waiting for reboot/);
  assert.match(r.reason, /going-down/);
  assert.ok(existsSync(join(r.outDir, "console.log")));
  assert.match(readFileSync(join(r.outDir, "command.sh"), "utf8"), /qemu-system-x86_64 -accel tcg/);
});

test("a stage past its bound is a timeout and QEMU is killed", async (t) => {
  const a = labAvailable(["amd64-6.1"]);
  if (!a.ok) return missingInput(t, a.why);
  const started = Date.now();
  const r = await boot("timeout", [{ name: "hang", run: "sleep 600" }], { expect: ["init", { name: "hang", timeoutSec: 3 }, "done"] });
  assert.equal(r.outcome, "timeout", r.reason);
  assert.match(r.reason, /no marker hang within 3 s after marker init/);
  assert.ok(Date.now() - started < 300_000, "QEMU was not left running for the sleep");
});

test("a guest directory comes back to the host byte for byte", async (t) => {
  const a = labAvailable(["amd64-6.1"]);
  if (!a.ok) return missingInput(t, a.why);
  const out = mkdtempSync(join(tmpdir(), "kexec-ts-extract-"));
  try {
    const deep = "a".repeat(60) + "/" + "b".repeat(60); // longer than a tar name field
    const r = await boot(
      "extract",
      [
        {
          name: "snap",
          run: `mkdir -p /tmp/snap/proc /tmp/snap/${deep} && cp /proc/cmdline /proc/iomem /tmp/snap/proc/ && seq 1 20000 > /tmp/snap/${deep}/numbers`,
          extract: "/tmp/snap",
        },
      ],
      { append: "kexec-ts-test=extract", extractTo: out },
    );
    assert.equal(r.outcome, "ok", r.reason);
    const cmdline = readFileSync(join(out, "snap", "proc", "cmdline"), "utf8");
    assert.match(cmdline, /kexec-ts-test=extract/);
    const numbers = readFileSync(join(out, "snap", deep, "numbers"), "utf8");
    assert.equal(numbers, Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join(""));
    assert.match(readFileSync(join(out, "snap", "proc", "iomem"), "utf8"), /System RAM/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("an i386 kernel runs under qemu-system-i386, an amd64 one under qemu-system-x86_64", (t) => {
  const a = labAvailable(["686-pae-6.1", "amd64-6.1"]);
  if (!a.ok) return missingInput(t, a.why);
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-invocation-"));
  try {
    const initrd = join(dir, "initrd");
    writeFileSync(initrd, "");
    assert.match(qemuInvocation({ name: "x", kernel: "686-pae-6.1", initrd, expect: [] }).argv[0]!, /qemu-system-i386$/);
    assert.match(qemuInvocation({ name: "x", kernel: "amd64-6.1", initrd, expect: [] }).argv[0]!, /qemu-system-x86_64$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
