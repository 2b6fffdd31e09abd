import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, lstatSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { CpioWriter, readCpio, normalizeArchivePath } from "./cpio.js";
import { KexecError } from "../errors.js";
import { missingInput, missingTool } from "../../node/test-inputs.js";

test("entries round-trip through write and read, parents first", () => {
  const w = new CpioWriter();
  w.file("/usr/bin/tool", new Uint8Array([1, 2, 3, 4, 5]), 0o755);
  w.symlink("bin/sh", "busybox");
  w.device("dev/console", "char", 5, 1);
  w.dir("proc");
  const entries = readCpio(w.bytes());
  assert.deepEqual(
    entries.map((e) => [e.name, e.type, e.perm.toString(8)]),
    [
      ["usr", "dir", "755"],
      ["usr/bin", "dir", "755"],
      ["usr/bin/tool", "file", "755"],
      ["bin", "dir", "755"],
      ["bin/sh", "symlink", "777"],
      ["dev", "dir", "755"],
      ["dev/console", "char", "600"],
      ["proc", "dir", "755"],
    ],
  );
  assert.deepEqual([...entries[2]!.data], [1, 2, 3, 4, 5]);
  assert.equal(new TextDecoder().decode(entries[4]!.data), "busybox");
  assert.deepEqual([entries[6]!.rdevMajor, entries[6]!.rdevMinor], [5, 1]);
});

test("every header, name and data block is 4-byte aligned for any name and size", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).filter((s) => s !== "." && s !== ".."), fc.uint8Array({ maxLength: 37 })), { maxLength: 8 }),
      (files) => {
        const w = new CpioWriter();
        const expected = new Map<string, number[]>();
        for (const [name, data] of files) {
          w.file(`d/${name}`, data);
          expected.set(`d/${name}`, [...data]);
        }
        const bytes = w.bytes();
        assert.equal(bytes.length % 4, 0);
        const got = new Map(readCpio(bytes).filter((e) => e.type === "file").map((e) => [e.name, [...e.data]]));
        assert.deepEqual(got, expected);
      },
    ),
  );
});

test("concatenated archives are read as one, as the kernel unpacks them", () => {
  const a = new CpioWriter().file("a", "A").bytes();
  const b = new CpioWriter().file("b", "B").bytes();
  const both = new Uint8Array(a.length + 4 + b.length);
  both.set(a, 0);
  both.set(b, a.length + 4); // zero padding between archives is allowed
  assert.deepEqual(readCpio(both).filter((e) => e.type === "file").map((e) => e.name), ["a", "b"]);
});

test("paths that climb out of the archive are refused", () => {
  assert.throws(() => normalizeArchivePath("../etc/passwd"), KexecError);
  assert.throws(() => new CpioWriter().file("a/../../b", "x"), /contains ".."/);
  assert.equal(normalizeArchivePath("//usr/./bin//node"), "usr/bin/node");
});

test("a corrupt archive gives a parse error naming the offset", () => {
  const bytes = new CpioWriter().file("x", "hello").bytes();
  bytes[0] = 0x41;
  assert.throws(() => readCpio(bytes), (e: unknown) => e instanceof KexecError && e.code === "parse" && e.data.offset === 0);
  const cut = new CpioWriter().file("x", "hello world").bytes().subarray(0, 120);
  assert.throws(() => readCpio(cut), (e: unknown) => e instanceof KexecError && /runs past the end/.test(e.message));
});

test("GNU cpio extracts what the writer made", (t) => {
  if (missingTool("cpio") !== undefined) return missingInput(t, "cpio is not installed (run .ci/setup-debian.sh)");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-cpio-"));
  try {
    const w = new CpioWriter();
    w.file("etc/motd", "hi\n", 0o640);
    w.file("bin/run", "#!/bin/sh\n", 0o755);
    w.symlink("bin/alias", "run");
    const r = spawnSync("cpio", ["-idm", "--quiet", "--no-absolute-filenames"], { cwd: dir, input: w.bytes() });
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(readFileSync(join(dir, "etc/motd"), "utf8"), "hi\n");
    assert.equal(lstatSync(join(dir, "etc/motd")).mode & 0o777, 0o640);
    assert.equal(lstatSync(join(dir, "bin/run")).mode & 0o777, 0o755);
    assert.equal(readlinkSync(join(dir, "bin/alias")), "run");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
