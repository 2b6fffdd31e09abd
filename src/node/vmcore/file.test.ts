import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { openRandomAccess } from "./file.js";
import { openMappedFile, openViewedFile } from "./mapped-file.js";

test("openRandomAccess: a directory, or a FIFO, is refused by what it is, before a read (not a 'failing device', not a wait for a writer)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-file-"));
  try {
    const sub = join(dir, "crash");
    mkdirSync(sub);
    assert.throws(() => openRandomAccess(sub), (e: unknown) =>
      e instanceof KexecError && e.code === "io" && e.data.file === sub && e.message === `${sub}: is a directory, expected a vmcore file` && !/failing/.test(e.hint ?? ""));
    const fifo = join(dir, "fifo");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
    // Held open for writing, with bytes in it, so that an open and a read that should not happen return instead of waiting.
    const writer = openSync(fifo, constants.O_RDWR);
    try {
      writeSync(writer, new Uint8Array(64));
      assert.throws(() => openRandomAccess(fifo), (e: unknown) =>
        e instanceof KexecError && e.code === "io" && e.data.file === fifo && e.message.startsWith(`${fifo}: is a pipe (FIFO)`) && /makedumpfile -R/.test(e.hint ?? ""));
    } finally {
      closeSync(writer);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a FIFO nobody writes, given as a vmcore, is refused by kind, not opened (the open blocked for ever: report --vmcore, vmcore info)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-vmcore-file-"));
  try {
    const fifo = join(dir, "vmcore");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
    // In a child with a timeout, so a regression fails instead of hanging the suite.
    const child = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { openRandomAccess } from ${JSON.stringify(new URL("./file.js", import.meta.url).href)};
       try { openRandomAccess(${JSON.stringify(fifo)}); console.log("opened"); } catch (e) { console.log(e.code, e.message); }`], { encoding: "utf8", timeout: 20_000 });
    assert.equal(child.stdout.trim(), `io ${fifo}: is a pipe (FIFO): a vmcore is read at random offsets, from a file`, `${child.error?.message ?? ""} ${child.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a source that cannot be opened is said in words with its errno, by every reader (read(2), mmap, read(2) with views)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-open-"));
  try {
    const missing = join(dir, "vmcore");
    for (const open of [openRandomAccess, openMappedFile, openViewedFile]) {
      assert.throws(() => open(missing), (e: unknown) =>
        e instanceof KexecError && e.code === "io" && e.message === `cannot open ${missing}: no such file or directory (ENOENT)` &&
        e.data.file === missing && e.data.errno === "ENOENT" && /needs root/.test(e.hint ?? ""));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
