import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { concatBytes } from "../../core/bytes/reader.js";
import { writeSquashfs, type SquashfsInput } from "../../core/initramfs/squashfs.js";
import { missingInput } from "../test-inputs.js";
import { squashfsCodec } from "./block-codec.js";

function random(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A tree that reaches every case: raw and compressed blocks, a short tail block, empty files and dirs, links, a directory of 300 entries over several metadata blocks. */
function sampleTree(): SquashfsInput[] {
  const text = new TextEncoder().encode("kexec-ts squashfs test line\n".repeat(20000));
  const inputs: SquashfsInput[] = [
    { name: "usr/bin/node", type: "file", perm: 0o755, data: random(3 * 131072 + 1234, 1) },
    { name: "usr/share/doc/readme.txt", type: "file", perm: 0o644, data: text },
    { name: "etc/empty", type: "file", perm: 0o600, data: new Uint8Array(0) },
    { name: "proc", type: "dir", perm: 0o555, data: new Uint8Array(0) },
    { name: "lib64/ld-linux-x86-64.so.2", type: "symlink", perm: 0o777, data: new TextEncoder().encode("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2") },
    { name: `many/${"n".repeat(200)}`, type: "file", perm: 0o644, data: new TextEncoder().encode("long name") },
  ];
  for (let i = 0; i < 300; i++) inputs.push({ name: `many/f${String(i).padStart(3, "0")}`, type: "file", perm: 0o644, data: new TextEncoder().encode(`file ${i}\n`) });
  return inputs;
}

function compareWithTree(mnt: string, inputs: SquashfsInput[]): void {
  for (const i of inputs) {
    const p = join(mnt, i.name);
    const st = lstatSync(p);
    assert.equal(st.mode & 0o7777, i.perm & 0o7777, `${i.name} mode`);
    if (i.type === "file") assert.deepEqual(new Uint8Array(readFileSync(p)), i.data, `${i.name} content`);
    else if (i.type === "symlink") assert.equal(readlinkSync(p), new TextDecoder().decode(i.data));
    else assert.ok(st.isDirectory());
  }
  assert.equal(readdirSync(join(mnt, "many")).length, 301);
  assert.deepEqual(readdirSync(mnt).sort(), ["etc", "lib64", "many", "proc", "usr"]);
}

test("the kernel mounts the squashfs image and reads back every file, link and mode (zlib)", (t) => {
  if (process.getuid?.() !== 0) return missingInput(t, "needs root to mount a squashfs image through a loop device");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-squashfs-"));
  const mnt = join(dir, "mnt");
  mkdirSync(mnt);
  try {
    const inputs = sampleTree();
    const image = join(dir, "test.sqfs");
    writeFileSync(image, concatBytes(writeSquashfs(inputs, "zlib", (b) => deflateSync(b))));
    const m = spawnSync("mount", ["-t", "squashfs", "-o", "loop,ro", image, mnt], { encoding: "utf8" });
    if (m.status !== 0) return missingInput(t, `cannot mount squashfs here: ${m.stderr.trim()}`);
    try {
      compareWithTree(mnt, inputs);
    } finally {
      spawnSync("umount", [mnt]);
    }
    // An independent reader where squashfs-tools is installed.
    const u = spawnSync("unsquashfs", ["-l", image], { encoding: "utf8" });
    if (!u.error) {
      assert.equal(u.status, 0, u.stderr);
      assert.match(u.stdout, /squashfs-root\/usr\/bin\/node$/m);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the kernel reads the image written with the system's codec (zstd through libzstd where it loads)", (t) => {
  if (process.getuid?.() !== 0) return missingInput(t, "needs root to mount a squashfs image through a loop device");
  const codec = squashfsCodec();
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-squashfs-"));
  const mnt = join(dir, "mnt");
  mkdirSync(mnt);
  try {
    const inputs = sampleTree();
    const image = join(dir, "test.sqfs");
    writeFileSync(image, concatBytes(writeSquashfs(inputs, codec.compression, codec.compress)));
    const m = spawnSync("mount", ["-t", "squashfs", "-o", "loop,ro", image, mnt], { encoding: "utf8" });
    if (m.status !== 0) return missingInput(t, `cannot mount squashfs (${codec.compression}) here: ${m.stderr.trim()}`);
    try {
      compareWithTree(mnt, inputs);
    } finally {
      spawnSync("umount", [mnt]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("equal inputs give equal images, and incompressible blocks are stored raw", () => {
  const inputs = sampleTree();
  const a = concatBytes(writeSquashfs(inputs, "zlib", (b) => deflateSync(b)));
  const b = concatBytes(writeSquashfs(inputs, "zlib", (b2) => deflateSync(b2)));
  assert.deepEqual(a, b);
  assert.equal(a.length % 4096, 0);
  assert.equal(new DataView(a.buffer, a.byteOffset).getUint32(0, true), 0x73717368);
  // Never larger than the data it holds by more than its tables: raw blocks are not inflated by the codec.
  assert.ok(a.length < 3 * 131072 + 1234 + 600 * 1024);
});

test("a name under a file, or a directory replaced by a file, is refused", () => {
  assert.throws(() => writeSquashfs([{ name: "a", type: "file", perm: 0o644, data: new Uint8Array(1) }, { name: "a/b", type: "file", perm: 0o644, data: new Uint8Array(1) }], "zlib", (b) => b), /a is a file/);
  assert.throws(() => writeSquashfs([{ name: "d/x", type: "file", perm: 0o644, data: new Uint8Array(1) }, { name: "d", type: "file", perm: 0o644, data: new Uint8Array(1) }], "zlib", (b) => b), /directory and a file/);
});
