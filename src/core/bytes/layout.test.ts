import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { KexecError } from "../errors.js";
import { defineLayout, dumpStruct, encodeStruct, field, readStruct, writeStruct } from "./layout.js";

const DEMO = defineLayout("struct demo", 32, "little", [
  field("magic", 0, 4, "chars"),
  field("count", 4, 2, "uint"),
  field("flags", 6, 1, "uint", 2),
  field("addr", 8, 8, "u64"),
  field("addr32", 16, 4, "u64"),
  field("raw", 20, 4, "bytes"),
  field("signed", 24, 8, "i64"),
]);
const BE = defineLayout("struct be", 8, "big", [field("v", 0, 8, "i64")]);

test("layout: write then read gives the values back, at any offset", () => {
  fc.assert(fc.property(fc.record({
    magic: fc.string({ maxLength: 4 }).map((s) => s.replace(/[^\x20-\x7e]/g, "x")), count: fc.integer({ min: 0, max: 0xffff }), flags: fc.integer({ min: 0, max: 255 }),
    addr: fc.bigUintN(64), addr32: fc.bigUintN(32), raw: fc.uint8Array({ minLength: 4, maxLength: 4 }), signed: fc.bigIntN(64),
  }), fc.nat(16), (v, at) => {
    const buf = new Uint8Array(at + DEMO.size);
    writeStruct(DEMO, buf, at, v);
    assert.deepEqual({ ...readStruct(DEMO, buf, at), raw: Array.from(readStruct(DEMO, buf, at).raw) }, { ...v, raw: Array.from(v.raw) });
  }));
});

test("layout: little- and big-endian bytes are where the table says", () => {
  const b = encodeStruct(DEMO, { count: 0x1234, addr: 0x0102030405060708n, addr32: 0xaabbccddn });
  assert.deepEqual(Array.from(b.subarray(4, 6)), [0x34, 0x12]);
  assert.deepEqual(Array.from(b.subarray(8, 16)), [8, 7, 6, 5, 4, 3, 2, 1]);
  assert.deepEqual(Array.from(b.subarray(16, 20)), [0xdd, 0xcc, 0xbb, 0xaa]);
  assert.deepEqual(Array.from(encodeStruct(BE, { v: -2n })), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
});

test("layout: a short input names the field and its offset; version and limit leave fields out", () => {
  assert.throws(() => readStruct(DEMO, new Uint8Array(12), 0, { what: "demo file" }), (e: unknown) => e instanceof KexecError && /demo file: addr at offset 0x8 needs 8 bytes, but the input is only 12 bytes long/.test(e.message));
  const v = readStruct(DEMO, new Uint8Array(32), 0, { version: 1, limit: 16 });
  assert.equal(v.flags as number | undefined, undefined);
  assert.equal(v.addr32 as bigint | undefined, undefined);
  assert.equal(v.addr, 0n);
});

test("layout: a value that does not fit its field is an error naming it", () => {
  assert.throws(() => encodeStruct(DEMO, { count: 0x10000 }), /struct demo\.count: 65536 does not fit in 2 bytes/);
  assert.throws(() => encodeStruct(DEMO, { addr32: 1n << 32n }), /struct demo\.addr32/);
  assert.throws(() => encodeStruct(DEMO, { magic: "toolong" }), /struct demo\.magic/);
  assert.throws(() => writeStruct(DEMO, new Uint8Array(10), 0, { addr: 1n }), /does not fit in a 10-byte buffer/);
});

test("layout: tables that overlap or overflow are refused when defined; the dump shows each field", () => {
  assert.throws(() => defineLayout("bad", 8, "little", [field("a", 0, 4, "uint"), field("b", 2, 4, "uint")]), /overlaps/);
  assert.throws(() => defineLayout("bad", 4, "little", [field("a", 0, 8, "u64")]), /past the struct/);
  assert.throws(() => defineLayout("bad", 8, "little", [field("a", 0, 3, "uint")]), /cannot be 3 bytes/);
  assert.deepEqual(dumpStruct(DEMO, { magic: "KD", count: 2 }), ['0x000  magic                    "KD"', "0x004  count                    0x2"]);
});
