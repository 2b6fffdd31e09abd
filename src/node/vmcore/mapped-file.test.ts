import { test } from "node:test";
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { openMappedFile } from "./mapped-file.js";

test("reads through mmap windows give the file's bytes, across window edges and after evictions", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mapped-"));
  try {
    // 21 MiB + a bit: six 4 MiB windows, more than are kept, and a short last one.
    const size = 21 * (1 << 20) + 12345;
    const data = new Uint8Array(size);
    for (let i = 0; i + 4 <= size; i += 4) new DataView(data.buffer).setUint32(i, i * 2654435761 >>> 0, true);
    const path = join(dir, "f");
    writeFileSync(path, data);
    const f = openMappedFile(path)!;
    assert.ok(f !== undefined, "koffi loads here");
    try {
      assert.equal(f.size, BigInt(size));
      fc.assert(fc.property(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: 9 << 20 }), (offset, want) => {
        const length = Math.min(want, size - offset);
        assert.deepEqual(f.read(BigInt(offset), length), data.subarray(offset, offset + length));
      }), { numRuns: 60 });
      // In order, the way a save reads its pages.
      const out = new Uint8Array(1 << 20);
      for (let at = 0; at + out.length <= size; at += out.length) {
        f.readInto(BigInt(at), out, 0, out.length);
        assert.deepEqual(out, data.subarray(at, at + out.length));
      }
      assert.throws(() => f.read(BigInt(size - 10), 11), /run past the end/);
    } finally {
      f.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
