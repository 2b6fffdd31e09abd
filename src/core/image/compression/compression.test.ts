import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { KexecError } from "../../errors.js";
import { COMPRESSIONS, type Compression, decompress, detectCompression } from "./index.js";
import { x86BcjDecode } from "./xz.js";
import { concatBytes } from "../../bytes/reader.js";
import { cachedKernels } from "../../../node/kernel-cache.js";
import { missingInput, missingTool } from "../../../node/test-inputs.js";

/** The commands the kernel build (arch/x86/boot/compressed, scripts/Makefile.lib) uses, with zstd at -19 to keep tests quick. */
const TOOLS: Record<Compression, [string, string[]]> = {
  gzip: ["gzip", ["-n", "-f", "-9"]],
  bzip2: ["bzip2", ["-9"]],
  lzma: ["lzma", ["-9"]],
  xz: ["xz", ["--check=crc32", "--x86", "--lzma2=dict=32MiB"]],
  lzo: ["lzop", ["-9"]],
  lz4: ["lz4", ["-l", "-9"]],
  zstd: ["zstd", ["-19"]],
};

const hasTool = (name: string): boolean => missingTool(name) === undefined;

function compressWith(cmd: string, args: string[], data: Uint8Array): Uint8Array {
  return new Uint8Array(execFileSync(cmd, [...args, "-c"], { input: data, maxBuffer: 1 << 30 }));
}

/** Append the uncompressed size as 32-bit LE, as the kernel's Makefile does. */
function withSize(stream: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(stream.length + 4);
  out.set(stream);
  new DataView(out.buffer).setUint32(stream.length, size >>> 0, true);
  return out;
}

/** A small deterministic PRNG (xorshift32), so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Something like code: short instruction-ish runs with frequent E8/E9 and rel32 targets. */
function x86Like(size: number, seed: number): Uint8Array {
  const r = prng(seed);
  const out = new Uint8Array(size);
  const functions = Array.from({ length: 64 }, () => r() % size);
  let i = 0;
  while (i < size - 5) {
    const kind = r() % 8;
    if (kind < 3) {
      // call/jmp rel32 to one of a few "functions": the same absolute target, a different relative one.
      out[i] = kind === 0 ? 0xe9 : 0xe8;
      const target = functions[r() % functions.length]!;
      new DataView(out.buffer).setInt32(i + 1, target - (i + 5), true);
      i += 5;
    } else {
      const n = 1 + (r() % 6);
      const ops = [0x48, 0x89, 0xc7, 0x8b, 0x45, 0xf8, 0x31, 0xc0, 0x5d, 0xc3, 0x0f, 0x1f, 0x44, 0x00];
      for (let k = 0; k < n && i < size; k++) out[i++] = ops[r() % ops.length]!;
    }
  }
  return out;
}

function mixedData(seed: number): Uint8Array {
  const r = prng(seed);
  const parts: Uint8Array[] = [];
  const text = "Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC\n";
  parts.push(new TextEncoder().encode(text.repeat(3000)));
  parts.push(new Uint8Array(200_000)); // zeros, like .bss-adjacent padding
  const random = new Uint8Array(150_000);
  for (let i = 0; i < random.length; i++) random[i] = r() & 0xff;
  parts.push(random);
  parts.push(x86Like(600_000, seed + 1));
  const table = new Uint8Array(100_000);
  for (let i = 0; i < table.length; i += 8) new DataView(table.buffer).setBigUint64(i, 0xffffffff81000000n + BigInt(i * 16), true);
  parts.push(table);
  return concatBytes(parts);
}

function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`${what}: first difference at byte ${i}: ${actual[i]} != ${expected[i]}`);
  }
}

function decompressError(fn: () => unknown): KexecError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KexecError, `expected a KexecError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.equal(e.code, "decompress");
    return e;
  }
  assert.fail("expected decompress to throw");
}

test("detectCompression recognises the kernel's magic numbers and nothing else", () => {
  const cases: [number[], Compression | undefined][] = [
    [[0x1f, 0x8b, 0x08], "gzip"],
    [[0x1f, 0x9e, 0x08], "gzip"],
    [[0x42, 0x5a, 0x68, 0x39], "bzip2"],
    [[0x5d, 0x00, 0x00, 0x80], "lzma"],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00], "xz"],
    [[0x89, 0x4c, 0x5a, 0x4f, 0x00], "lzo"],
    [[0x02, 0x21, 0x4c, 0x18], "lz4"],
    [[0x28, 0xb5, 0x2f, 0xfd], "zstd"],
    [[0x04, 0x22, 0x4d, 0x18], undefined], // modern LZ4 frame: not what the kernel writes
    [[0x7f, 0x45, 0x4c, 0x46], undefined],
    [[0xfd, 0x37, 0x7a], undefined], // too short to be sure
    [[], undefined],
  ];
  for (const [bytes, kind] of cases) assert.equal(detectCompression(new Uint8Array(bytes)), kind, bytes.map((b) => b.toString(16)).join(" "));
});

const data = mixedData(7);

for (const kind of COMPRESSIONS) {
  test(`${kind}: round trip through ${TOOLS[kind][0]} with the kernel's appended size`, (t) => {
    const [cmd, args] = TOOLS[kind];
    if (!hasTool(cmd)) return missingInput(t, `${cmd} is not installed`);
    const stream = compressWith(cmd, args, data);
    const payload = withSize(stream, data.length);
    assert.equal(detectCompression(payload), kind);
    assertSameBytes(decompress(kind, payload), data, `${kind} without expectedSize`);
    assertSameBytes(decompress(kind, payload, { expectedSize: data.length }), data, `${kind} with expectedSize`);
    assertSameBytes(decompress(kind, stream), data, `${kind} without trailing bytes`);
    // Tiny inputs exercise the edges of each format (empty blocks, literal-only streams).
    for (const small of [new Uint8Array(0), new Uint8Array([0x41]), new TextEncoder().encode("abcabcabcabcabcabc\n")]) {
      assertSameBytes(decompress(kind, withSize(compressWith(cmd, args, small), small.length)), small, `${kind} of ${small.length} bytes`);
    }
  });
}

test("xz: the x86 BCJ filter is really applied, across several blocks and check types", (t) => {
  if (!hasTool("xz")) return missingInput(t, "xz is not installed");
  const code = x86Like(1_500_000, 3);
  const plain = compressWith("xz", ["--check=crc32", "--lzma2=dict=32MiB"], code);
  const filtered = compressWith("xz", ["--check=crc32", "--x86", "--lzma2=dict=32MiB"], code);
  // With call targets repeated, BCJ makes the stream smaller: proof the filter is in the chain.
  assert.ok(filtered.length < plain.length, `BCJ stream ${filtered.length} should be smaller than plain ${plain.length}`);
  assertSameBytes(decompress("xz", filtered), code, "xz --x86");
  const variants: string[][] = [
    ["--x86", "--lzma2=dict=1MiB", "--block-size=300KiB", "--check=crc64"],
    ["--x86=start=4096", "--lzma2=preset=6,lc=1,lp=3,pb=0", "--check=none"],
    ["--x86", "--lzma2=preset=1,lc=4,lp=0,pb=4", "--check=sha256"],
    ["--lzma2=preset=0", "--check=crc32", "--block-size=100000"],
  ];
  for (const args of variants) assertSameBytes(decompress("xz", compressWith("xz", args, code)), code, `xz ${args.join(" ")}`);
});

test("xz: x86 BCJ decoding inverts a known conversion", () => {
  // E8 at offset 0 with absolute target 0x1005 must become relative 0x1000 (0x1005 - (0 + 5)).
  const buf = new Uint8Array([0xe8, 0x05, 0x10, 0x00, 0x00, 0x90, 0x90, 0x90, 0x90]);
  x86BcjDecode(buf, 0, buf.length, 0);
  assert.deepEqual([...buf.subarray(0, 5)], [0xe8, 0x00, 0x10, 0x00, 0x00]);
  // The top byte must be 00 or ff: anything else is left alone.
  const other = new Uint8Array([0xe8, 0x05, 0x10, 0x00, 0x12, 0x90, 0x90, 0x90, 0x90]);
  x86BcjDecode(other, 0, other.length, 0);
  assert.deepEqual([...other.subarray(0, 5)], [0xe8, 0x05, 0x10, 0x00, 0x12]);
});

test("lzma: unusual lc/lp/pb, and a header that declares the size", (t) => {
  if (!hasTool("xz")) return missingInput(t, "xz is not installed");
  const code = x86Like(300_000, 5);
  for (const opt of ["preset=9", "lc=0,lp=4,pb=4", "lc=4,lp=0,pb=0"]) {
    const stream = compressWith("xz", ["--format=lzma", `--lzma1=${opt}`], code);
    assertSameBytes(decompress("lzma", stream), code, `lzma ${opt}`);
  }
  // liblzma always writes "size unknown" plus an end marker; a header with the real size
  // (as other encoders write) must stop at that size without needing the marker.
  const stream = compressWith("lzma", ["-9"], code);
  assert.equal(new DataView(stream.buffer).getBigUint64(5, true), 0xffffffffffffffffn);
  const known = stream.slice();
  new DataView(known.buffer).setBigUint64(5, BigInt(code.length), true);
  assertSameBytes(decompress("lzma", known), code, "lzma with a known size");
  new DataView(known.buffer).setBigUint64(5, BigInt(code.length + 10), true);
  decompressError(() => decompress("lzma", known));
});

test("lz4: a legacy frame of several 8 MiB blocks, ending exactly on a block boundary", (t) => {
  if (!hasTool("lz4")) return missingInput(t, "lz4 is not installed");
  const r = prng(11);
  for (const size of [16 << 20, (17 << 20) + 12345]) {
    const big = new Uint8Array(size);
    for (let i = 0; i < big.length; i += 4096) big[i] = r() & 0xff;
    const payload = withSize(compressWith("lz4", ["-l", "-9"], big), big.length);
    assertSameBytes(decompress("lz4", payload), big, `lz4 -l of ${size} bytes`);
  }
});

test("bzip2: several 900 kB blocks and concatenated streams", (t) => {
  if (!hasTool("bzip2")) return missingInput(t, "bzip2 is not installed");
  const big = new Uint8Array(2_500_000);
  big.set(data.subarray(0, Math.min(data.length, big.length)));
  big.set(x86Like(big.length - data.length, 9), data.length);
  const one = compressWith("bzip2", ["-9"], big);
  assertSameBytes(decompress("bzip2", one), big, "bzip2 -9 multi-block");
  const two = new Uint8Array(one.length * 2);
  two.set(one);
  two.set(one, one.length);
  const doubled = decompress("bzip2", two);
  assertSameBytes(doubled.subarray(big.length), big, "second concatenated stream");
});

test("zstd: a frame that declares its content size", (t) => {
  if (!hasTool("zstd")) return missingInput(t, "zstd is not installed");
  const stream = new Uint8Array(execFileSync("zstd", ["-19", "-c", `--stream-size=${data.length}`], { input: data, maxBuffer: 1 << 30 }));
  assert.equal(stream[4]! >> 6 !== 0 || (stream[4]! & 0x20) !== 0, true, "frame header should carry a content size");
  assertSameBytes(decompress("zstd", stream), data, "zstd with content size");
});

test("sizes: expectedSize, the appended size and maxSize are enforced", (t) => {
  if (!hasTool("xz") || !hasTool("gzip")) return missingInput(t, "xz or gzip is not installed");
  const zeros = new Uint8Array(4 << 20);
  const xz = compressWith("xz", ["--check=crc32"], zeros);
  let e = decompressError(() => decompress("xz", xz, { maxSize: 1 << 20 }));
  assert.match(e.message, /limit/);
  e = decompressError(() => decompress("xz", xz, { expectedSize: zeros.length + 1 }));
  assert.equal(e.data.field, "expectedSize");
  e = decompressError(() => decompress("xz", withSize(xz, 12345)));
  assert.equal(e.data.field, "appended size");
  assert.equal(e.data.offset, xz.length);
  const gz = compressWith("gzip", ["-9"], zeros);
  e = decompressError(() => decompress("gzip", gz, { maxSize: 1 << 20 }));
  assert.match(e.message, /limit/);
  e = decompressError(() => decompress("gzip", xz));
  assert.match(e.message, /^gzip: not a gzip stream/);
});

test("truncated and corrupt streams name the codec and the offset", (t) => {
  if (!hasTool("xz")) return missingInput(t, "xz is not installed");
  const xz = compressWith("xz", TOOLS.xz[1], data);
  const cut = decompressError(() => decompress("xz", xz.subarray(0, xz.length >> 1)));
  assert.match(cut.message, /^xz: /);
  assert.equal(typeof cut.data.offset, "number");
  assert.ok(cut.hint && cut.hint.includes("xz -t"), cut.hint);
  const flipped = xz.slice();
  flipped[flipped.length - 20]! ^= 0x40; // inside the index
  const bad = decompressError(() => decompress("xz", flipped));
  assert.match(bad.message, /xz: .*offset 0x/);
});

// Only KexecError("decompress") may escape, whatever the bytes: flip, truncate and splice valid streams.
test("fuzz: mutated streams of every codec throw only KexecError(decompress)", (t) => {
  const sample = mixedData(21).subarray(0, 60_000);
  const r = prng(12345);
  let iterations = 0, rejected = 0;
  const started = performance.now();
  for (const kind of COMPRESSIONS) {
    const [cmd, args] = TOOLS[kind];
    if (!hasTool(cmd)) continue;
    const valid = withSize(compressWith(cmd, args, sample), sample.length);
    for (let i = 0; i < 45; i++) {
      const mutated = valid.slice(0, i % 5 === 4 ? 1 + (r() % valid.length) : valid.length);
      const flips = i % 5 === 4 ? 0 : 1 + (r() % 4);
      for (let f = 0; f < flips; f++) {
        // Bias towards the headers, where a flip changes the structure rather than one literal.
        const at = r() % 3 === 0 ? r() % Math.min(64, mutated.length) : r() % mutated.length;
        mutated[at]! ^= 1 << (r() % 8);
      }
      iterations++;
      try {
        decompress(kind, mutated, { maxSize: 8 << 20 });
      } catch (e) {
        if (!(e instanceof KexecError) || e.code !== "decompress") {
          assert.fail(`${kind} iteration ${i}: ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
        }
        assert.match(e.message, new RegExp(`^${kind}: `));
        rejected++;
      }
    }
  }
  t.diagnostic(`${iterations} mutations, ${rejected} rejected, ${Math.round(performance.now() - started)} ms`);
  assert.ok(rejected > iterations / 2, `most mutations should be caught (${rejected}/${iterations})`);
});

test("real Debian kernels: the bzImage payload decompresses to the vmlinux ELF", (t) => {
  const kernels = cachedKernels().map((k) => k.vmlinuz);
  if (kernels.length === 0) return missingInput(t, "no Debian kernels cached: run .ci/setup-debian.sh");
  for (const path of kernels) {
    const image = new Uint8Array(readFileSync(path));
    const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
    // boot.rst: setup_sects at 0x1f1 (0 means 4); payload_offset/length at 0x248/0x24c, relative to the protected-mode code.
    const setupSects = image[0x1f1]! || 4;
    const protectedMode = (setupSects + 1) * 512;
    const payloadOffset = view.getUint32(0x248, true);
    const payloadLength = view.getUint32(0x24c, true);
    const payload = image.subarray(protectedMode + payloadOffset, protectedMode + payloadOffset + payloadLength);
    const kind = detectCompression(payload);
    assert.ok(kind, `${path}: payload has a known magic`);
    const appended = view.getUint32(protectedMode + payloadOffset + payloadLength - 4, true);
    const started = performance.now();
    const vmlinux = decompress(kind, payload, { expectedSize: appended });
    const ms = Math.round(performance.now() - started);
    assert.deepEqual([...vmlinux.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], `${path}: ELF magic`);
    assert.equal(vmlinux.length, appended, `${path}: size`);
    t.diagnostic(`${path.split("/").pop()}: ${kind}, ${payload.length} -> ${vmlinux.length} bytes in ${ms} ms`);
  }
});
