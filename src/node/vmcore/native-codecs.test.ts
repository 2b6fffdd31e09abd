import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { decompressPage, type PageCodec } from "../../core/vmcore/codecs.js";
import { KexecError } from "../../core/errors.js";
import fc from "fast-check";
import { wordsZeroTest } from "../../core/vmcore/batch.js";
import { compressorSource, pageCompressor, zeroPageTest } from "./compress.js";
import { missingInput, missingTool } from "../test-inputs.js";
import { nativePageCompressor } from "./native-codecs.js";

const PS = 4096;

/** Pages of the kinds a vmcore holds: text, a repeating structure, random bytes, mostly zeros. */
function samplePages(): Uint8Array[] {
  const text = new TextEncoder().encode("kexec-ts page of text, the quick brown fox jumps over the lazy dog. ".repeat(80)).subarray(0, PS);
  const structs = new Uint8Array(PS);
  const view = new DataView(structs.buffer);
  for (let i = 0; i < PS / 16; i++) { view.setBigUint64(i * 16, 0xffff888000000000n + BigInt(i * 64), true); view.setUint32(i * 16 + 8, i, true); }
  let x = 12345;
  const random = new Uint8Array(PS).map(() => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 24; });
  const sparse = new Uint8Array(PS);
  sparse[100] = 1; sparse[4000] = 0xff;
  return [text, structs, random, sparse];
}

// Debian has zlib and libzstd everywhere; liblzo2 comes with makedumpfile (installed by .ci/setup-debian.sh).
const expected: [PageCodec, string, string | undefined][] = [
  ["zlib", "libz.so.1", undefined],
  ["zstd", "libzstd.so.1", undefined],
  ["lzo", "liblzo2.so.2", "makedumpfile"],
];

for (const [codec, library, comesWith] of expected) {
  test(`native ${codec}: ${library} compresses what the reader decodes; an incompressible page is stored raw`, (t) => {
    if (comesWith !== undefined && missingTool(comesWith) !== undefined) return missingInput(t, `${comesWith} (and with it ${library}) is not installed`);
    const native = nativePageCompressor(codec, PS);
    assert.ok(native, `${library} could be loaded through koffi`);
    assert.equal(native.library, library);
    assert.equal(compressorSource(codec, PS), library);
    const [text, structs, random, sparse] = samplePages();
    const dst = new Uint8Array(2 * PS).fill(0xaa);
    // At an offset into a larger buffer, as the batches call it.
    for (const page of [text!, structs!, sparse!]) {
      const src = new Uint8Array(3 * PS);
      src.set(page, PS);
      const n = native.compress(src, PS, dst, 100);
      assert.ok(n > 0 && n < PS / 2, `${codec} shrinks a compressible page (${n} bytes)`);
      assert.deepEqual(decompressPage(codec, dst.slice(100, 100 + n), PS), page);
      assert.equal(dst[99], 0xaa, "nothing written before the offset");
    }
    assert.equal(native.compress(random!, 0, dst, 0), -1, "random bytes do not shrink: -1 (stored raw)");
  });
}

test("KEXEC_TS_NATIVE_CODECS=0: lzo and zlib fall back to the built-in encoders; zstd says what it needs", () => {
  process.env["KEXEC_TS_NATIVE_CODECS"] = "0";
  try {
    assert.equal(compressorSource("lzo", PS), "javascript");
    assert.equal(compressorSource("zlib", PS), "javascript");
    const [text] = samplePages();
    const dst = new Uint8Array(PS);
    for (const codec of ["lzo", "zlib"] as const) {
      const n = pageCompressor(codec, PS)(text!, 0, dst, 0);
      assert.deepEqual(decompressPage(codec, dst.slice(0, n), PS), text);
    }
    assert.throws(() => pageCompressor("zstd", PS), (e: unknown) => e instanceof KexecError && /libzstd/.test(e.message) && /--compress lzo/.test(e.hint ?? ""));
  } finally {
    delete process.env["KEXEC_TS_NATIVE_CODECS"];
  }
});

test("native zlib is the system's zlib that makedumpfile links, not the copy bundled in Node", () => {
  // Node exports its bundled (Chromium) zlib's symbols; without RTLD_DEEPBIND the system compress2
  // would run Node's deflate and store other bytes (0.5% more on a real vmcore) than makedumpfile.
  const native = nativePageCompressor("zlib", PS)!;
  const binary = readFileSync(process.execPath).subarray(0, 16 * PS);
  const dst = new Uint8Array(PS);
  let differing = 0;
  for (let i = 0; i < 16; i++) {
    const n = native.compress(binary, i * PS, dst, 0);
    const bundled = deflateSync(binary.subarray(i * PS, (i + 1) * PS), { level: 1 });
    if (n !== bundled.length || !Buffer.from(dst.subarray(0, n)).equals(bundled)) differing++;
  }
  assert.ok(differing > 0, "every page came out exactly as Node's bundled zlib writes it");
});

test("native codecs keep the memory they hand C alive: after a garbage collection nothing else is written", (t) => {
  // The compressors pass addresses, not arrays, to C; a work buffer known only by its address
  // would be freed by a collection and then written by the next call (it was: liblzo2's wrkmem).
  v8.setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const [text] = samplePages();
  for (const codec of ["lzo", "zlib", "zstd"] as const) {
    if (codec === "lzo" && missingTool("makedumpfile") !== undefined) { t.diagnostic("liblzo2 not installed"); continue; }
    const compress = nativePageCompressor(codec, PS)!.compress;
    for (let round = 0; round < 3; round++) {
      gc();
      // Fresh memory of the sizes that were freed (128 KiB work memory, a page of scratch), marked.
      const marked = Array.from({ length: 64 }, (_, i) => new Uint8Array(i % 2 ? 16384 * 8 : 2 * PS).fill(0x5a));
      const dst = new Uint8Array(PS);
      const n = compress(text!, 0, dst, 0);
      assert.deepEqual(decompressPage(codec, dst.slice(0, n), PS), text);
      for (const m of marked) assert.ok(m.every((b) => b === 0x5a), `${codec}: memory the compressor does not own was written`);
    }
  }
});

test("native codecs refuse a page that does not lie whole in its buffers (C would read or write past them)", (t) => {
  for (const codec of ["lzo", "zlib", "zstd"] as const) {
    if (codec === "lzo" && missingTool("makedumpfile") !== undefined) { t.diagnostic("liblzo2 not installed"); continue; }
    const compress = nativePageCompressor(codec, PS)!.compress;
    const src = new Uint8Array(2 * PS);
    assert.throws(() => compress(src, PS + 1, new Uint8Array(PS), 0), RangeError, `${codec}: source runs short`);
    assert.throws(() => compress(src, 0, new Uint8Array(PS), 2), RangeError, `${codec}: output runs short`);
    assert.ok(compress(src, PS, new Uint8Array(PS), 1) > 0, `${codec}: the last page of the source into the last room of the output is compressed`);
  }
});

test("zero-page tests: the native memcmp and the JavaScript one agree, for a single non-zero byte anywhere and at any offset into a buffer", () => {
  const native = zeroPageTest(PS);
  const words = wordsZeroTest(PS);
  fc.assert(fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 }), fc.option(fc.integer({ min: 0, max: PS - 1 })), fc.integer({ min: 1, max: 255 }), (skew, page, at, value) => {
    // A view that starts `skew` bytes into its buffer: unaligned pages take the byte loop.
    const buffer = new Uint8Array(new ArrayBuffer(3 * PS + 8), skew, 3 * PS);
    if (at !== null) buffer[page * PS + at] = value;
    const want = at === null;
    assert.equal(native(buffer, page * PS), want);
    assert.equal(words(buffer, page * PS), want);
    // The pages around it stay zero.
    for (const other of [0, 1, 2].filter((p) => p !== page)) { assert.equal(native(buffer, other * PS), true); assert.equal(words(buffer, other * PS), true); }
  }), { numRuns: 400 });
});
