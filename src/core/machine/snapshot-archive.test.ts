import { test } from "node:test";
import assert from "node:assert/strict";
import { writeTar } from "../archive/tar.js";
import { KexecError } from "../errors.js";
import { machineFilesFromArchive, SNAPSHOT_MANIFEST } from "./snapshot-archive.js";

const enc = (s: string) => new TextEncoder().encode(s);
const IOMEM = { name: "proc/iomem", type: "file" as const, data: enc("00100000-3fffffff : System RAM\n") };
const CMDLINE = { name: "proc/cmdline", type: "file" as const, data: enc("console=ttyS0\n") };
const manifest = (m: unknown) => ({ name: SNAPSHOT_MANIFEST, type: "file" as const, data: enc(JSON.stringify(m)) });

test("snapshot archive: the files SNAPSHOT.json lists are all in it, or the archive is refused naming the missing ones", () => {
  const listed = { tool: "kexec-ts", version: "0.1.0", files: ["proc/cmdline", "proc/iomem"], unreadable: {} };
  const whole = machineFilesFromArchive(writeTar([manifest(listed), CMDLINE, IOMEM]), "s.tar");
  assert.deepEqual(Object.keys(whole.files.files).sort(), ["proc/cmdline", "proc/iomem"]);
  assert.equal(whole.manifest?.version, "0.1.0");
  assert.throws(() => machineFilesFromArchive(writeTar([manifest(listed), CMDLINE]), "s.tar"), (e: unknown) => e instanceof KexecError && e.code === "parse"
    && /s\.tar: SNAPSHOT\.json lists 2 files, the archive lacks 1 of them: proc\/iomem$/.test(e.message)
    && e.data.field === "files" && /take or copy the snapshot again/.test(e.hint ?? ""));
});

test("snapshot archive: one cut short (no end-of-archive blocks) is refused with the archive's name", () => {
  const tar = writeTar([manifest({ files: ["proc/cmdline", "proc/iomem"] }), CMDLINE, IOMEM]);
  // The manifest and proc/cmdline whole, proc/iomem and the end blocks gone: a cut at a header boundary.
  assert.throws(() => machineFilesFromArchive(tar.subarray(0, 2048), "cut.tar"), (e: unknown) => e instanceof KexecError
    && /^cut\.tar: tar: the archive ends at offset 0x800 without its end-of-archive blocks/.test(e.message) && e.data.file === "cut.tar");
});

test("snapshot archive: a SNAPSHOT.json that is JSON but not the manifest's shape says what it is", () => {
  for (const [m, said] of [
    [null, /SNAPSHOT\.json is null, expected an object/],
    [[1], /SNAPSHOT\.json is a list, expected an object/],
    [{ files: "proc/iomem" }, /SNAPSHOT\.json: files is string "proc\/iomem", expected a list of paths/],
    [{ files: [7] }, /files is a list, expected a list of paths/],
    [{ version: 1 }, /version is number 1, expected a string/],
    [{ unreadable: null }, /unreadable is null, expected an object of path: errno/],
  ] as const) {
    assert.throws(() => machineFilesFromArchive(writeTar([manifest(m), IOMEM]), "s.tar"), (e: unknown) => e instanceof KexecError && e.code === "parse" && said.test(e.message), JSON.stringify(m));
  }
  assert.throws(() => machineFilesFromArchive(writeTar([{ ...manifest(0), data: enc("{not json") }, IOMEM]), "s.tar"), /SNAPSHOT\.json is not JSON/);
});
