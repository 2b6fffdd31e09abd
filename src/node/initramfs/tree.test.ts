import { test } from "node:test";
import { strict as assert } from "node:assert";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { productionPackages, skipInPackage } from "./tree.js";
import { missingInput } from "../test-inputs.js";

/** dist/node/initramfs/tree.test.js → the repository root. */
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

test("koffi keeps only its Linux x86 binaries", () => {
  const koffi = "/repo/node_modules/koffi";
  assert.equal(skipInPackage(koffi, "build/koffi/linux_x64"), false);
  assert.equal(skipInPackage(koffi, "build/koffi/linux_ia32"), false);
  assert.equal(skipInPackage(koffi, "build/koffi/win32_x64"), true);
  assert.equal(skipInPackage(koffi, "build/koffi/darwin_arm64"), true);
  assert.equal(skipInPackage("/repo/node_modules/fflate", "build/koffi/win32_x64"), false);
});

test("production dependencies are found through node_modules", (t) => {
  const root = repoRoot;
  if (!existsSync(join(root, "node_modules"))) return missingInput(t, "npm ci not run");
  const pkgs = productionPackages(root).map((p) => p.slice(root.length + 1));
  const deps = Object.keys((JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {});
  for (const d of deps) assert.ok(pkgs.includes(`node_modules/${d}`), d);
  assert.ok(!pkgs.some((p) => p.includes("typescript")), "dev dependencies stay out");
  const scratch = mkdtempSync(join(tmpdir(), "kexec-ts-deps-"));
  try {
    writeFileSync(join(scratch, "package.json"), JSON.stringify({ dependencies: { "not-installed-anywhere": "1" } }));
    assert.throws(() => productionPackages(scratch), /not-installed-anywhere.*is not installed/);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});
