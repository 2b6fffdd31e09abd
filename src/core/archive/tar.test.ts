import { test } from "node:test";
import assert from "node:assert/strict";
import { KexecError } from "../errors.js";
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
