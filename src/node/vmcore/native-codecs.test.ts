import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { deflateSync } from "node:zlib";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { decodePageInto, decompressPage, lzo1xCompress, type PageCodec } from "../../core/vmcore/codecs.js";
import { KexecError } from "../../core/errors.js";
import fc from "fast-check";
import { PAGE_ZERO, ZERO_RUN_PAGES, batchOutBytes, compressBatch, wordsZeroTest } from "../../core/vmcore/batch.js";
import { compressorSource, pageCompressor, zeroPageTest } from "./compress.js";
import { missingInput, missingTool } from "../test-inputs.js";
import { nativePageCompressor, nativePageDecoder, systemPageDecoder, type NativeDecoder } from "./native-codecs.js";

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

test("native compressors are made once per thread: each save and each message naming the library takes the same one (libzstd's context is never freed)", () => {
  for (const codec of ["zlib", "zstd"] as const) {
    const first = nativePageCompressor(codec, PS);
    assert.ok(first);
    assert.equal(nativePageCompressor(codec, PS), first, `${codec}: the same compressor again`);
    assert.equal(compressorSource(codec, PS), first.library);
    assert.equal(nativePageCompressor(codec, PS), first, `${codec}: naming its library made no other`);
    assert.notEqual(nativePageCompressor(codec, 2 * PS), first, `${codec}: another page size has its own`);
  }
});

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
  // The first 16 bytes half the time: the native test answers from them before its memcmp.
  const where = fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: PS - 1 }));
  fc.assert(fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 2 }), fc.option(where), fc.integer({ min: 1, max: 255 }), (skew, page, at, value) => {
    // A view that starts `skew` bytes into its buffer: unaligned pages take the byte loop, and
    // aligned ones (skew 4, 8) find their words from the buffer's start.
    const buffer = new Uint8Array(new ArrayBuffer(3 * PS + 8), skew, 3 * PS);
    if (at !== null) buffer[page * PS + at] = value;
    const want = at === null;
    assert.equal(native(buffer, page * PS), want);
    assert.equal(words(buffer, page * PS), want);
    // The pages around it stay zero.
    for (const other of [0, 1, 2].filter((p) => p !== page)) { assert.equal(native(buffer, other * PS), true); assert.equal(words(buffer, other * PS), true); }
  }), { numRuns: 400 });
});

test("zero-page tests: over a run of pages, the native memcmp and the JavaScript one agree, and say zero exactly when each page is", () => {
  const native = zeroPageTest(PS);
  const words = wordsZeroTest(PS);
  fc.assert(fc.property(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: ZERO_RUN_PAGES + 1 }), fc.oneof(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: PS - 1 })), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: ZERO_RUN_PAGES }), (skew, page, at, start, n) => {
    const buffer = new Uint8Array(new ArrayBuffer((ZERO_RUN_PAGES + 4) * PS), skew, (ZERO_RUN_PAGES + 3) * PS);
    buffer[page * PS + at] = 1;
    const want = page < start || page >= start + n;
    assert.equal(native(buffer, start * PS, n), want);
    assert.equal(words(buffer, start * PS, n), want);
  }), { numRuns: 300 });
});

test("compressBatch with the native zero test: zero pages past the last whole group are tested one by one, never as a group past the batch's end", () => {
  // The pages are exactly the batch: a group tested past its end would ask memcmp for bytes beyond it.
  const count = ZERO_RUN_PAGES + 4;
  const batch = compressBatch(() => -1, new Uint8Array(count * PS), count, PS, new Uint8Array(count), new Uint8Array(batchOutBytes(count, PS)), zeroPageTest(PS));
  assert.deepEqual([...batch.sizes], new Array(count).fill(PAGE_ZERO));
});

// ---- decoding ----

/** The native decoder for codec, or a failed test (under CI) / skip when its library is missing. */
function decoderOrSkip(t: import("node:test").TestContext, codec: PageCodec, library: string, comesWith: string | undefined): NativeDecoder | undefined {
  if (comesWith !== undefined && missingTool(comesWith) !== undefined) { missingInput(t, `${comesWith} (and with it ${library}) is not installed`); return undefined; }
  const native = nativePageDecoder(codec);
  assert.ok(native, `${library} could be loaded through koffi`);
  assert.equal(native.library, library);
  return native;
}

/** Stored forms of a page in codec: the native encoder's, and for lzo and zlib the built-in encoders' (and a stream of a page that does not shrink). */
function storedForms(codec: PageCodec, page: Uint8Array): Uint8Array[] {
  const forms: Uint8Array[] = [];
  const dst = new Uint8Array(PS);
  const n = nativePageCompressor(codec, PS)?.compress(page, 0, dst, 0) ?? -1;
  if (n > 0) forms.push(dst.slice(0, n));
  if (codec === "lzo") forms.push(lzo1xCompress(page));
  if (codec === "zlib") forms.push(new Uint8Array(deflateSync(page, { level: 1 })), new Uint8Array(deflateSync(page, { level: 9 })));
  return forms;
}

const SENTINEL = 0xa5;

/** A page slot at `at` of a buffer of sentinels, and a check that nothing outside the slot changed. */
function slotIn(at: number): { dst: Uint8Array; outsideUntouched: () => boolean } {
  const dst = new Uint8Array(at + PS + 300).fill(SENTINEL);
  return { dst, outsideUntouched: () => dst.subarray(0, at).every((b) => b === SENTINEL) && dst.subarray(at + PS).every((b) => b === SENTINEL) };
}

const isDecompressError = (codec: PageCodec) => (e: unknown) => e instanceof KexecError && e.code === "decompress" && e.message.startsWith(`${codec} page data is corrupt`) && /damaged at this page/.test(e.hint ?? "");

for (const [codec, library, comesWith] of expected) {
  test(`native ${codec} decoding: ${library} gives the JavaScript decoder's page, from any offset into any offset, and writes nowhere else`, (t) => {
    const native = decoderOrSkip(t, codec, library, comesWith);
    if (!native) return;
    // Real-ish pages: the start of Node's own binary (headers, symbol tables), which compresses.
    const binary = new Uint8Array(readFileSync(process.execPath).subarray(0, 8 * PS));
    const pages = [...samplePages(), ...Array.from({ length: 8 }, (_, i) => binary.slice(i * PS, (i + 1) * PS))];
    let decoded = 0;
    for (const page of pages) {
      for (const stored of storedForms(codec, page)) {
        // Alone in a small array (copied for C: V8 may move it) and inside a larger buffer at an odd offset.
        const inside = new Uint8Array(stored.length + 1000).fill(0x77);
        inside.set(stored, 333);
        for (const [buffer, from] of [[stored, 0], [inside, 333]] as const) {
          for (const at of [0, 1, 4096 + 17]) {
            const { dst, outsideUntouched } = slotIn(at);
            native.decode(buffer, from, stored.length, dst, at, PS);
            assert.deepEqual(dst.subarray(at, at + PS), page, `${codec}: ${stored.length} stored bytes at ${from} into ${at}`);
            assert.ok(outsideUntouched(), `${codec}: bytes outside the page's slot were written`);
            const js = slotIn(at);
            decodePageInto(codec, buffer, from, stored.length, js.dst, at, PS);
            assert.deepEqual(js.dst, dst, `${codec}: the JavaScript decoder agrees`);
            decoded++;
          }
        }
      }
    }
    assert.ok(decoded >= 6 * pages.length - 12, `${decoded} decodings (an encoder gave nothing?)`);
  });

  test(`native ${codec} decoding: truncated, damaged or wrongly sized pages are KexecError "decompress", never a crash or a write outside the slot`, (t) => {
    const native = decoderOrSkip(t, codec, library, comesWith);
    if (!native) return;
    const [text, structs] = samplePages();
    const stored = storedForms(codec, structs!)[0]!;
    const expectCorrupt = (input: Uint8Array, length: number, pageSize: number, why: string) => {
      const { dst, outsideUntouched } = slotIn(100);
      assert.throws(() => native.decode(input, 0, length, dst, 100, pageSize), isDecompressError(codec), `${codec}: ${why}`);
      assert.throws(() => native.decode(input, 0, length, dst, 100, pageSize), (e: unknown) => e instanceof KexecError && e.message.includes(library), `${codec}: ${why}: the library is named`);
      if (pageSize === PS) assert.ok(outsideUntouched(), `${codec}: ${why}: bytes outside the slot were written`);
      assert.throws(() => decodePageInto(codec, input, 0, length, slotIn(100).dst, 100, pageSize), isDecompressError(codec), `${codec}: ${why}: the JavaScript decoder says so too`);
    };
    expectCorrupt(stored, stored.length - 1, PS, "the last byte cut off");
    expectCorrupt(stored, stored.length >> 1, PS, "half of it");
    expectCorrupt(stored, 0, PS, "nothing stored");
    expectCorrupt(new Uint8Array(PS).fill(0xff), PS, PS, "bytes that are no stream");
    // A 4 KiB page into an 8 KiB slot decodes short; into a 2 KiB slot it overruns (stopped at the slot's end).
    assert.throws(() => native.decode(stored, 0, stored.length, new Uint8Array(2 * PS), 0, 2 * PS), isDecompressError(codec), `${codec}: a page short of the page size`);
    const half = new Uint8Array(PS).fill(SENTINEL);
    assert.throws(() => native.decode(stored, 0, stored.length, half, 0, PS / 2), isDecompressError(codec), `${codec}: a page longer than the page size`);
    assert.ok(half.subarray(PS / 2).every((b) => b === SENTINEL), `${codec}: an overrunning page wrote past its slot`);
    // Bytes changed anywhere: the library either refuses them (a KexecError) or decodes what the
    // JavaScript decoder decodes (a literal changed). zlib checks more of a stream's syntax than
    // fflate (a Huffman table that does not add up) and may refuse a page fflate reads; but both
    // check the Adler-32, so any page either one takes is the page that was stored.
    const page = storedForms(codec, text!)[0]!;
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(page.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (changes) => {
      const damaged = page.slice();
      for (const [i, x] of changes) damaged[i]! ^= x;
      const { dst, outsideUntouched } = slotIn(8);
      let nativeError: unknown;
      try { native.decode(damaged, 0, damaged.length, dst, 8, PS); } catch (e) { nativeError = e; }
      assert.ok(outsideUntouched(), `${codec}: bytes outside the slot were written`);
      const js = slotIn(8);
      let jsError: unknown;
      try { decodePageInto(codec, damaged, 0, damaged.length, js.dst, 8, PS); } catch (e) { jsError = e; }
      if (codec === "zlib" && jsError === undefined) assert.deepEqual(js.dst.subarray(8, 8 + PS), text, "zlib: the JavaScript decoder took a damaged page for another one");
      if (codec === "zlib" && nativeError === undefined) assert.equal(jsError, undefined, "zlib: the JavaScript decoder refused a page libz took");
      if (nativeError !== undefined) { assert.ok(isDecompressError(codec)(nativeError), `${codec}: ${String(nativeError)}`); return; }
      if (jsError === undefined) assert.deepEqual(dst, js.dst, `${codec}: both decoded a damaged page, to other bytes`);
    }), { numRuns: 300 });
  });
}

test("native decoders refuse a page that does not lie whole in its buffers (C would read or write past them)", (t) => {
  for (const codec of ["lzo", "zlib", "zstd"] as const) {
    if (codec === "lzo" && missingTool("makedumpfile") !== undefined) { t.diagnostic("liblzo2 not installed"); continue; }
    const decode = nativePageDecoder(codec)!.decode;
    const stored = storedForms(codec, samplePages()[1]!)[0]!;
    assert.throws(() => decode(stored, 1, stored.length, new Uint8Array(PS), 0, PS), RangeError, `${codec}: stored bytes run short`);
    assert.throws(() => decode(stored, 0, stored.length, new Uint8Array(PS), 1, PS), RangeError, `${codec}: the slot runs short`);
    assert.throws(() => decode(stored, -1, stored.length, new Uint8Array(PS), 0, PS), RangeError, `${codec}: a negative offset`);
  }
});

test("KEXEC_TS_NATIVE_CODECS=0: no native decoders, and the system page decoder is the JavaScript one (its errors name no library)", () => {
  const stored = storedForms("zlib", samplePages()[1]!)[0]!;
  const damaged = stored.slice(0, stored.length - 1);
  const nativeSays = (): string => { try { systemPageDecoder()("zlib", damaged, 0, damaged.length, new Uint8Array(PS), 0, PS); } catch (e) { return (e as Error).message; } return "decoded"; };
  assert.match(nativeSays(), /libz\.so\.1 uncompress says Z_/);
  process.env["KEXEC_TS_NATIVE_CODECS"] = "0";
  try {
    for (const codec of ["lzo", "zlib", "zstd", "snappy"] as const) assert.equal(nativePageDecoder(codec), undefined, codec);
    assert.doesNotMatch(nativeSays(), /libz|uncompress/);
    assert.match(nativeSays(), /^zlib page data is corrupt/);
  } finally {
    delete process.env["KEXEC_TS_NATIVE_CODECS"];
  }
  assert.equal(nativePageDecoder("snappy"), undefined, "snappy is always JavaScript");
});
