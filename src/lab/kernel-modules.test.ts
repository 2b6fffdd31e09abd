/**
 * Debian's 6.12 ships its kernel modules as .ko.xz; the kdump capture initramfs decompresses
 * them in process (node/initramfs/modules.ts readModule), because a minimal Debian has no xz
 * program. Here on the cached 6.12 kernel's own modules, against the xz program's output.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readModule } from "../node/initramfs/modules.js";
import { walkTree } from "../node/initramfs/tree.js";
import { missingInput, missingTool } from "../node/test-inputs.js";
import { kernelIndexPath, labCacheDir, loadKernelIndex } from "./kernels.js";

test("readModule decompresses a Debian 6.12 kernel's .ko.xz modules as xz -dc does", (t) => {
  const k = existsSync(kernelIndexPath()) ? loadKernelIndex().get("amd64-6.12") : undefined;
  if (k === undefined) return missingInput(t, `no amd64-6.12 kernel in ${labCacheDir()} (run .ci/setup-debian.sh)`);
  const dir = join(k.modules, "kernel", "arch", "x86", "crypto");
  if (!existsSync(dir)) return missingInput(t, `no modules in ${dir}`);
  const tool = missingTool("xz");
  if (tool) return missingInput(t, "xz (xz-utils) is not installed");
  const files = walkTree(dir).filter((f) => f.kind === "file" && f.rel.endsWith(".ko.xz")).slice(0, 8);
  assert.ok(files.length > 0, `${dir} holds .ko.xz modules`);
  for (const f of files) {
    const path = join(dir, f.rel);
    const ours = readModule(path);
    const theirs = spawnSync("xz", ["-dc", path], { maxBuffer: 64 << 20 }).stdout;
    assert.deepEqual(Buffer.from(ours), theirs, f.rel);
    assert.equal(Buffer.from(ours.subarray(0, 4)).toString("latin1"), "\x7fELF", `${f.rel} is an ELF file once decompressed`);
  }
});

test("a damaged .ko.xz is refused with the module's path and a hint, not a crash", async (t) => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const path = join(mkdtempSync(join(tmpdir(), "kexec-ts-ko-")), "broken.ko.xz");
  writeFileSync(path, Buffer.from("\xfd7zXZ\0 this is not an xz stream", "latin1"));
  assert.throws(() => readModule(path), (e: unknown) => e instanceof Error && e.message.includes(path) && (e as { hint?: string }).hint !== undefined);
  t.diagnostic("refused");
});
