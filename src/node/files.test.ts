import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { fileSize, readInputFile } from "./files.js";

test("an initrd or kernel must be a regular, non-empty file: a pipe, a device or an empty file is refused by name", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    const fifo = join(dir, "initrd-fifo");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
    assert.throws(() => fileSize(fifo, "initrd", { allowEmpty: false }), (e: unknown) => e instanceof KexecError && e.code === "io" && e.message === `${fifo}: is a pipe (FIFO), expected initrd in a regular file` && /copy the initrd/.test(e.hint ?? ""));
    assert.throws(() => readInputFile("/dev/null", "kernel image", { allowEmpty: false }), /is a character device, expected kernel image in a regular file/);
    const empty = join(dir, "initrd.img");
    writeFileSync(empty, "");
    assert.throws(() => fileSize(empty, "initrd", { allowEmpty: false }), (e: unknown) => e instanceof KexecError && /the initrd is empty \(0 bytes\)/.test(e.message) && /update-initramfs/.test(e.hint ?? ""));
    // Other inputs (a file of a copied tree) may be empty.
    assert.equal(readInputFile(empty, "file of a copied tree").length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
