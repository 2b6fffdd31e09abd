import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteWriter } from "./writer.js";

test("a growable writer grows from any size, empty included, and finishes at the high-water mark", () => {
  for (const initial of [0, 1, 3, 4096]) {
    const w = new ByteWriter(initial, true);
    w.u32(5000, 0xdeadbeef);
    w.u8(2, 7);
    const bytes = w.finish();
    assert.equal(bytes.length, 5004, `initial ${initial}`);
    assert.equal(bytes[2], 7);
    assert.equal(new DataView(bytes.buffer).getUint32(5000, true), 0xdeadbeef);
  }
});
