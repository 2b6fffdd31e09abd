import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { KexecError } from "../core/errors.js";
import { checkOutputPath, fileSize, makeDirectories, readInputFile, replaceFileDurably, temporaryOutputPath, writeOutputFile } from "./files.js";
import { missingInput } from "./test-inputs.js";

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

test("an output never replaces its own input, a directory or a device, and leaves no temporary file behind", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    const image = join(dir, "vmlinuz");
    writeFileSync(image, "the kernel");
    symlinkSync(image, join(dir, "link"));
    const out = (path: string) => ({ path, what: "vmlinux", command: "inspect --extract", inputs: [{ path: image, what: "the image" }] });
    const refused = (path: string, message: RegExp) => assert.throws(() => writeOutputFile(out(path), new Uint8Array(8)), (e: unknown) => e instanceof KexecError && e.code === "usage" && e.data.file === path && message.test(e.message) && e.hint !== undefined, path);
    // `inspect IMAGE --extract=IMAGE` replaced the kernel with its own vmlinux; `--extract=/dev/full` made /dev/full a file.
    refused(image, /is the image: vmlinux would replace its own source/);
    refused(join(dir, "link"), new RegExp(`link \\(a link to ${image}\\) is the image: vmlinux would replace its own source`));
    refused("/dev/null", /is a character device: inspect --extract writes a file and renames it into place/);
    refused(dir, /is a directory: inspect --extract needs vmlinux's file name/);
    assert.equal(readFileSync(image, "utf8"), "the kernel");
    assert.ok(statSync("/dev/null").isCharacterDevice());
    // A failed write removes its temporary file; an existing output file is replaced.
    assert.throws(() => writeOutputFile(out(join(dir, "missing", "vmlinux")), new Uint8Array(8)), (e: unknown) => e instanceof KexecError && e.code === "io"
      && e.data.errno === "ENOENT" && e.hint === `${join(dir, "missing")} does not exist: create it first, or choose another place`);
    const old = join(dir, "vmlinux");
    writeFileSync(old, "old");
    writeOutputFile(out(old), new Uint8Array([1, 2, 3]));
    assert.deepEqual([...readFileSync(old)], [1, 2, 3]);
    assert.deepEqual(readdirSync(dir).sort(), ["link", "vmlinux", "vmlinuz"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an output given as a symbolic link is written where the link points, and the link stays (as `>` does)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    const image = join(dir, "vmlinuz");
    writeFileSync(image, "the kernel");
    const day = join(dir, "2026-12-01");
    mkdirSync(day);
    const out = (path: string) => ({ path, what: "vmlinux", command: "inspect --extract", inputs: [{ path: image, what: "the image" }] });
    const isLink = (path: string, to: string) => assert.ok(lstatSync(path).isSymbolicLink() && readlinkSync(path) === to, `${path} is still a link to ${to}`);
    // A link to an existing file: the rename once replaced the link with a file and left the day's file as it was.
    writeFileSync(join(day, "vmlinux"), "old");
    symlinkSync(join(day, "vmlinux"), join(dir, "latest"));
    writeOutputFile(out(join(dir, "latest")), new Uint8Array([1, 2, 3]));
    isLink(join(dir, "latest"), join(day, "vmlinux"));
    assert.deepEqual([...readFileSync(join(day, "vmlinux"))], [1, 2, 3]);
    // A relative link, through a chain of two: resolved from each link's directory; the temporary file was beside the target.
    symlinkSync("2026-12-01/vmlinux", join(dir, "relative"));
    symlinkSync("relative", join(dir, "chain"));
    writeOutputFile(out(join(dir, "chain")), new Uint8Array([4]));
    isLink(join(dir, "chain"), "relative");
    assert.deepEqual([...readFileSync(join(day, "vmlinux"))], [4]);
    assert.deepEqual(readdirSync(day), ["vmlinux"], "no temporary file left beside the target");
    // A dangling link whose directory exists: the file it names is created.
    symlinkSync(join(day, "new"), join(dir, "dangling"));
    assert.equal(checkOutputPath(out(join(dir, "dangling"))).existing, undefined, "nothing there yet");
    writeOutputFile(out(join(dir, "dangling")), new Uint8Array([5, 6]));
    isLink(join(dir, "dangling"), join(day, "new"));
    assert.deepEqual([...readFileSync(join(day, "new"))], [5, 6]);
    // Refused, naming the link and where it points: a dangling link into no directory, the input, a directory, a loop.
    const refused = (path: string, message: RegExp) => assert.throws(() => writeOutputFile(out(path), new Uint8Array(8)), (e: unknown) =>
      e instanceof KexecError && e.code === "usage" && e.data.file === path && message.test(e.message) && e.hint !== undefined, `${path}: ${message}`);
    symlinkSync(join(dir, "no-such-dir", "vmlinux"), join(dir, "nowhere"));
    refused(join(dir, "nowhere"), new RegExp(`nowhere \\(a link to ${join(dir, "no-such-dir", "vmlinux")}\\) points into ${join(dir, "no-such-dir")}, which is not a directory that exists`));
    symlinkSync(image, join(dir, "to-image"));
    refused(join(dir, "to-image"), new RegExp(`to-image \\(a link to ${image}\\) is the image: vmlinux would replace its own source`));
    symlinkSync(day, join(dir, "to-dir"));
    refused(join(dir, "to-dir"), new RegExp(`to-dir \\(a link to ${day}\\) is a directory: inspect --extract needs vmlinux's file name`));
    symlinkSync("loop-b", join(dir, "loop-a"));
    symlinkSync("loop-a", join(dir, "loop-b"));
    refused(join(dir, "loop-a"), /symbolic links that go round/);
    // The image's temporary name beside the target is its input too (an interrupted run's name).
    symlinkSync(join(dir, "other"), join(dir, "to-other"));
    symlinkSync(image, join(dir, "other.incomplete"));
    assert.throws(() => writeOutputFile(out(join(dir, "to-other")), new Uint8Array(8)), (e: unknown) =>
      e instanceof KexecError && e.data.file === join(dir, "other.incomplete") && new RegExp(`then renamed to ${join(dir, "other")},`).test(e.message));
    assert.equal(readFileSync(image, "utf8"), "the kernel");
    assert.ok(lstatSync(join(dir, "to-dir")).isSymbolicLink() && statSync(day).isDirectory());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a link the kernel would not follow (fs.protected_symlinks: another user's link in a sticky world-writable directory) is refused, not followed by name", (t) => {
  // kexec-ts runs as root; such a link in /tmp could aim an output at any file. The kernel setting is
  // turned on for the test where it is off (this lab's VMs), and put back.
  const knob = "/proc/sys/fs/protected_symlinks";
  if (process.getuid?.() !== 0) return missingInput(t, "needs root: the link must belong to another user");
  const before = readFileSync(knob, "utf8").trim();
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    const victim = join(dir, "victim");
    writeFileSync(victim, "not to be replaced");
    const sticky = join(dir, "tmp");
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const link = join(sticky, "out");
    symlinkSync(victim, link);
    lchownSync(link, 65534, 65534);
    writeFileSync(knob, "1");
    const output = { path: link, what: "vmlinux", command: "inspect --extract", inputs: [] };
    assert.throws(() => writeOutputFile(output, new Uint8Array([1])), (e: unknown) =>
      e instanceof KexecError && e.code === "usage" && e.data.file === link && e.data.errno === "EACCES" && /kernel refuses to follow/.test(e.message) && /protected_symlinks/.test(e.hint ?? ""));
    assert.equal(readFileSync(victim, "utf8"), "not to be replaced");
    assert.ok(lstatSync(link).isSymbolicLink(), "the link is left as it was");
  } finally {
    writeFileSync(knob, before);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("replaceFileDurably: parents are made, and a write that fails leaves no temporary file behind", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    const deep = join(dir, "a", "b", "k.conf");
    replaceFileDurably(deep, "x = 1\n");
    assert.equal(readFileSync(deep, "utf8"), "x = 1\n");
    // The rename meets a directory that holds a file: refused, and the temporary goes.
    const inTheWay = join(dir, "c");
    mkdirSync(inTheWay);
    writeFileSync(join(inTheWay, "keep"), "");
    assert.throws(() => replaceFileDurably(inTheWay, "y"), (e: unknown) => ["EISDIR", "ENOTEMPTY"].includes((e as NodeJS.ErrnoException).code ?? ""));
    assert.deepEqual(readdirSync(dir).sort(), ["a", "c"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makeDirectories makes the missing ones, and fails where mkdir -p fails, without going round forever under /proc", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    makeDirectories(join(dir, "a", "b", "c"));
    makeDirectories(join(dir, "a", "b"));
    assert.ok(statSync(join(dir, "a", "b", "c")).isDirectory());
    writeFileSync(join(dir, "file"), "");
    assert.throws(() => makeDirectories(join(dir, "file")), { code: "EEXIST" });
    assert.throws(() => makeDirectories(join(dir, "file", "x")), { code: "ENOTDIR" });
    // In a child with a timeout: mkdirSync(..., { recursive: true }) never returns here (Node 20), and a test must fail, not hang.
    const child = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { makeDirectories } from ${JSON.stringify(new URL("./files.js", import.meta.url).href)};
       try { makeDirectories("/proc/kexec-ts-no-such/dir"); } catch (e) { console.log(e.code); }`], { encoding: "utf8", timeout: 20_000 });
    assert.equal(child.stdout.trim(), "ENOENT", `${child.error?.message ?? ""} ${child.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an output whose name is too long for .incomplete (NAME_MAX, 255 bytes) is written under a shortened temporary name, not refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-files-"));
  try {
    for (const name of ["v".repeat(250), `${"é".repeat(122)}xyz`, "w".repeat(255)]) {
      const path = join(dir, name);
      const tmp = temporaryOutputPath(path);
      assert.ok(Buffer.byteLength(basename(tmp)) <= 255, `${Buffer.byteLength(name)} bytes: ${Buffer.byteLength(basename(tmp))}`);
      assert.ok(tmp.endsWith(".incomplete") && tmp.startsWith(join(dir, name.slice(0, 20))), tmp);
      assert.ok(!basename(tmp).includes("\ufffd"), "whole UTF-8 characters");
      writeOutputFile({ path, what: "the test output", command: "test", inputs: [] }, new Uint8Array([1, 2, 3]));
      assert.deepEqual([...readFileSync(path)], [1, 2, 3]);
      assert.ok(!existsSync(tmp));
    }
    // Two long names that share their start have different temporary names.
    assert.notEqual(temporaryOutputPath(join(dir, `${"x".repeat(250)}1`)), temporaryOutputPath(join(dir, `${"x".repeat(250)}2`)));
    assert.equal(temporaryOutputPath("/var/crash/vmcore"), "/var/crash/vmcore.incomplete");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
