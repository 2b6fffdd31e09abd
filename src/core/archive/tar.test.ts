import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../errors.js";
import { missingInput, missingTool } from "../../node/test-inputs.js";
import { readTar, writeTar } from "./tar.js";

const file = (name: string, size: number) => ({ name, type: "file" as const, data: new Uint8Array(size).fill(0x61) });

test("tar: writeTar ends the archive with two zero blocks, and readTar reads it to the end", () => {
  const tar = writeTar([file("a", 10), file("b", 600)]);
  assert.equal(tar.length, 512 + 512 + 512 + 1024 + 1024);
  assert.ok(tar.subarray(tar.length - 1024).every((b) => b === 0));
  assert.deepEqual(readTar(tar).map((e) => [e.name, e.data.length]), [["a", 10], ["b", 600]]);
  // One zero block is taken as the end too (GNU tar reads a "lone zero block" archive).
  assert.equal(readTar(tar.subarray(0, tar.length - 512)).length, 2);
});

test("tar: an archive cut short at a header boundary, or inside a block, is refused, not read as fewer files", () => {
  const tar = writeTar([file("a", 10), file("b", 600), file("c", 3)]);
  // Cut after a's header and data, before b's header: every block whole, no end blocks.
  for (const cut of [1024, 1024 + 512 + 1024, 1024 + 100, tar.length - 1024 - 10]) {
    assert.throws(() => readTar(tar.subarray(0, cut)), (e: unknown) => e instanceof KexecError && e.code === "parse"
      && /without its end-of-archive blocks: it was cut short/.test(e.message) && e.data.offset === cut && /copy it again/.test(e.hint ?? ""), `cut at ${cut}`);
  }
  assert.throws(() => readTar(new Uint8Array(0)), /ends at offset 0x0 without its end-of-archive blocks/);
});

const utf8 = new TextEncoder();

/** One ustar header block; `name` and `linkName` as their UTF-8 bytes, the checksum filled in. */
function header(name: string, typeflag: string, size: number, linkName = ""): Uint8Array {
  const h = new Uint8Array(512);
  h.set(utf8.encode(name), 0);
  h.set(utf8.encode("0000644\0"), 100);
  h.set(utf8.encode(`${size.toString(8).padStart(11, "0")}\0`), 124);
  h[156] = typeflag.charCodeAt(0);
  h.set(utf8.encode(linkName), 157);
  h.set(utf8.encode("ustar\0" + "00"), 257);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(utf8.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  return h;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** A pax 'x' header carrying `records` (already "LENGTH KEY=VALUE\n"), then a symlink, then the end. */
function paxArchive(records: Uint8Array): Uint8Array {
  const data = new Uint8Array(Math.ceil(records.length / 512) * 512);
  data.set(records);
  // The symlink's own name and target fields say something else: only the records can give the right ones.
  return concat(header("PaxHeaders/x", "x", records.length), data, header("short-name", "2", 0, "short-target"), new Uint8Array(1024));
}

/** "LENGTH KEY=VALUE\n" with LENGTH in bytes, its own digits counted (the fixed point POSIX asks for). */
function paxRecord(key: string, value: string): Uint8Array {
  const body = utf8.encode(` ${key}=${value}\n`).length;
  let length = body + 1;
  while (String(length).length + body !== length) length = String(length).length + body;
  return utf8.encode(`${length} ${key}=${value}\n`);
}

test("tar: pax record lengths count bytes, so a UTF-8 path does not shift the records after it", () => {
  // é is 2 bytes, 日本 3 each, 🙂 4: lengths applied to decoded text would end the path record
  // inside the linkpath record, and lose the linkpath.
  const path = "dir/café-日本-🙂.txt";
  const records = concat(paxRecord("path", path), paxRecord("linkpath", "ziel-ü/ß"), paxRecord("mtime", "1700000000.5"));
  const [entry, ...rest] = readTar(paxArchive(records));
  assert.equal(rest.length, 0);
  assert.equal(entry!.name, path);
  assert.equal(entry!.linkName, "ziel-ü/ß");
  assert.equal(entry!.type, "symlink");
});

test("tar: a malformed pax record is refused with its offset, not read as a shorter or different header", () => {
  const good = paxRecord("path", "é");
  const recordAt = 512 + good.length; // after the 'x' header block and the good record
  const cases: [string, RegExp][] = [
    ["x9 path=a\n", /length/],
    ["0 path=a\n", /length/],
    ["path=a\n", /length/],
    ["12", /length/],
    ["99 path=a\n", /past the end/],
    ["12 path:abc\n", /no '='/],
    ["3 \n", /no '='/],
    ["10 =value\n", /empty key/],
    ["12 path=abc!", /newline/],
  ];
  for (const [bad, why] of cases) {
    const archive = paxArchive(concat(good, utf8.encode(bad)));
    assert.throws(() => readTar(archive), (e: unknown) => e instanceof KexecError && e.code === "parse" && why.test(e.message)
      && e.data.offset === recordAt && e.data.field === "pax record" && e.data.expected !== undefined && e.hint !== undefined, bad);
  }
});

test("tar: GNU tar --format=posix, its pax headers for UTF-8 names read back", (t) => {
  if (missingTool("tar") !== undefined) return missingInput(t, "GNU tar is not installed");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-tar-"));
  try {
    const name = "café-日本-🙂.txt";
    writeFileSync(join(dir, name), "hello\n");
    symlinkSync(name, join(dir, "lien-ü"));
    const r = spawnSync("tar", ["--format=posix", "-C", dir, "-cf", "-", name, "lien-ü"], { env: { ...process.env, LC_ALL: "C.UTF-8" }, maxBuffer: 1 << 20 });
    assert.equal(r.status, 0, r.stderr.toString());
    const archive = new Uint8Array(r.stdout);
    // The premise: GNU tar put the name in a pax record (after which come its time records).
    assert.ok(Buffer.from(archive).includes(Buffer.from(` path=${name}\n`)), "a pax path record");
    const entries = readTar(archive);
    assert.deepEqual(entries.map((e) => [e.name, e.type, new TextDecoder().decode(e.data), e.linkName]), [
      [name, "file", "hello\n", ""],
      ["lien-ü", "symlink", "", name],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
