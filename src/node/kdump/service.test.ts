import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { defaultConfig } from "../../core/kdump/config.js";
import { planCapture } from "./initramfs.js";
import { buildInput, imageRelease, readConfigFile } from "./service.js";
import { buildBzImage } from "../../core/image/testing/synthetic.js";
import { readKernelImage } from "../../core/image/index.js";

const ioError = (message: RegExp, hint: RegExp) => (e: unknown) => e instanceof KexecError && e.code === "io" && message.test(e.message) && hint.test(e.hint ?? "");

test("a missing default config means the defaults; a missing --config FILE is an error naming it", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-config-"));
  try {
    const missing = join(dir, "kdump.conf");
    assert.deepEqual(readConfigFile({ config: missing }), { config: defaultConfig(), text: null });
    assert.throws(() => readConfigFile({ config: missing, configGiven: true }),
      ioError(new RegExp(`^${missing}: cannot read the kdump config: no such file or directory \\(ENOENT\\)$`), /check the path given to --config/));
    writeFileSync(missing, "target = /srv/crash\n");
    assert.equal(readConfigFile({ config: missing, configGiven: true }).config.target, "/srv/crash");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a config that is a FIFO or a directory is refused before it is read (a FIFO would block for ever)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-config-"));
  try {
    const fifo = join(dir, "fifo.conf");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
    for (const configGiven of [true, false]) {
      assert.throws(() => readConfigFile({ config: fifo, configGiven }), ioError(/fifo\.conf: is a pipe \(FIFO\), expected the kdump config in a regular file$/, /./));
    }
    const sub = join(dir, "conf.d");
    mkdirSync(sub);
    assert.throws(() => readConfigFile({ config: sub, configGiven: true }), ioError(/is a directory, expected the kdump config/, /give --config the path of a config file/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the capture builder's hints name the config file given, not the default one", () => {
  const input = { ...buildInput(defaultConfig(), "0.0-kexec-ts-none", "/tmp/test.conf"), modulesDir: "/nonexistent-kexec-ts-modules", mounts: [] };
  assert.throws(() => planCapture(input), (e: unknown) => e instanceof KexecError && e.hint === "install the kernel's package (its modules), or set kernel = in /tmp/test.conf to an installed kernel");
  assert.throws(() => planCapture({ ...input, configFile: undefined }), (e: unknown) => e instanceof KexecError && /kernel = in \/etc\/kexec-ts\/kdump\.conf/.test(e.hint ?? ""));
});

test("the capture kernel's release: from a bzImage's header; an ELF vmlinux is said to be one", () => {
  const bz = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f }, tail: 0x2000 }));
  assert.equal(imageRelease(bz, "/boot/vmlinuz-6.1.0-50-amd64"), "6.1.0-synthetic");
  const elf = { kind: "elf", vmlinux: {}, bytes: new Uint8Array(0), wrapper: undefined } as unknown as Parameters<typeof imageRelease>[0];
  // It said "the kernel's release is not in its header and not in its name" of vmlinux-6.1.0-50-amd64, whose banner and name both hold it.
  assert.throws(() => imageRelease(elf, "/usr/lib/debug/boot/vmlinux-6.1.0-50-amd64"), (e: unknown) => e instanceof KexecError && e.code === "parse" &&
    e.message === "/usr/lib/debug/boot/vmlinux-6.1.0-50-amd64: an ELF vmlinux, but the capture kernel (kernel =) must be a bzImage");
});
