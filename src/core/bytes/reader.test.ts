import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { latin1 } from "./reader.js";

test("latin1: one char per byte at every size, whether the bytes are ASCII, UTF-8 or neither", () => {
  const byByte = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join("");
  const big = (fill: (i: number) => number) => Uint8Array.from({ length: 9000 }, (_, i) => fill(i));
  for (const b of [
    big((i) => 0x20 + (i % 90)),
    big((i) => (i === 8000 ? 0xe9 : 0x61)),
    Uint8Array.from([0xef, 0xbb, 0xbf, ...big(() => 0x61)]),
    Uint8Array.from([...big(() => 0x61), 0xc3, 0xa9]),
  ]) assert.equal(latin1(b), byByte(b));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 10000 }), fc.boolean(), (b, ascii) => {
    const x = ascii ? b.map((c) => c & 0x7f) : b;
    assert.equal(latin1(x), byByte(x));
  }), { numRuns: 50 });
});
