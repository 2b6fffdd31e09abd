import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { KexecError } from "../core/errors.js";
import { codecsNeeded, readKernelImageWith } from "../core/image/kernel-image.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { readKernelImageFile } from "./image.js";

test("a bzImage is read without the codecs; a wrapped image or --vmlinux loads them, and a file names itself in errors", async () => {
  const bz = buildBzImage();
  const wrapped = new Uint8Array(gzipSync(bz));
  assert.equal(codecsNeeded(bz), false);
  assert.equal(codecsNeeded(wrapped), true);
  assert.equal(codecsNeeded(bz, { decompressPayload: true }), true);
  // Without codecs, a plain bzImage reads; an image that needs one is a bug of the caller, said as such.
  assert.equal(readKernelImageWith(bz, {}, undefined).kind, "bzImage");
  assert.throws(() => readKernelImageWith(wrapped, {}, undefined), (e: unknown) => e instanceof KexecError && e.code === "internal" && /gzip codec was needed/.test(e.message));

  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-image-"));
  try {
    const plain = join(dir, "vmlinuz");
    const gz = join(dir, "vmlinuz.gz");
    const junk = join(dir, "junk");
    writeFileSync(plain, bz);
    writeFileSync(gz, wrapped);
    writeFileSync(junk, "not a kernel at all, just some text");
    const a = await readKernelImageFile(plain);
    assert.equal(a.kind === "bzImage" && a.wrapper, undefined);
    const b = await readKernelImageFile(gz);
    assert.equal(b.kind === "bzImage" && b.wrapper, "gzip");
    assert.deepEqual(b.kind === "bzImage" && b.bzImage.raw, a.kind === "bzImage" && a.bzImage.raw);
    await assert.rejects(readKernelImageFile(junk), (e: unknown) => e instanceof KexecError && e.code === "not-a-kernel" && e.message.startsWith(junk));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
