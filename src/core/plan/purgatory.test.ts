import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KexecError } from "../errors.js";
import { missingInput, missingTool } from "../../node/test-inputs.js";
import {
  KXTS_FLAG_SERIAL, KXTS_FLAG_SKIP_SHA, KXTS_MAX_REGIONS, KXTS_MODE_ENTRY32, KXTS_MODE_ENTRY64, KXTS_MODE_UNSET,
  KXTS_PARAMS_LAYOUT, KXTS_PARAMS_MAGIC, KXTS_PARAMS_SIZE, KXTS_PARAMS_VERSION,
  buildPurgatory, purgatoryBlob, readPurgatoryParams, sha256, type PurgatoryRegion,
} from "./purgatory.js";
import { PURGATORY_BLOBS, PURGATORY_TOOLCHAIN } from "./purgatory-blobs.js";

// dist/core/plan/ → the repository root, where purgatory/ and src/ live.
const repo = fileURLToPath(new URL("../../../", import.meta.url));
const purgatoryDir = join(repo, "purgatory");

function nodeSha(chunks: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return new Uint8Array(h.digest());
}

/** xorshift32: reproducible "random" data, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

function randomBytes(next: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = next() & 0xff;
  return b;
}

/** Lengths that stress block boundaries, zero-length pieces included. */
function randomSplit(next: () => number): Uint8Array[] {
  const edges = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4096, 5003];
  const pieces: Uint8Array[] = [];
  const count = next() % 6;
  for (let i = 0; i < count; i++) {
    const n = next() % 3 === 0 ? edges[next() % edges.length]! : next() % 3000;
    pieces.push(randomBytes(next, n));
  }
  return pieces;
}

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");

test("the layout table matches the KXTS_P_* offsets in purgatory/params.h", () => {
  const header = readFileSync(join(purgatoryDir, "params.h"), "utf8");
  const defines = new Map<string, number>();
  for (const m of header.matchAll(/^#define\s+(KXTS_\w+)\s+(0x[0-9a-f]+|\d+)/gim)) defines.set(m[1]!, Number(m[2]));
  for (const f of KXTS_PARAMS_LAYOUT) {
    assert.equal(defines.get(`KXTS_P_${f.name.toUpperCase()}`), f.offset, `offset of ${f.name}`);
  }
  // Fields are contiguous and end where the header says the block ends.
  let at = 0;
  for (const f of KXTS_PARAMS_LAYOUT) {
    assert.equal(f.offset, at, `${f.name} follows the previous field`);
    at += f.size;
  }
  assert.equal(at, KXTS_PARAMS_SIZE);
  assert.equal(defines.get("KXTS_P_END"), KXTS_PARAMS_SIZE);
  assert.equal(defines.get("KXTS_PARAMS_VERSION"), KXTS_PARAMS_VERSION);
  assert.equal(defines.get("KXTS_MAX_REGIONS"), KXTS_MAX_REGIONS);
  assert.equal(defines.get("KXTS_MODE_ENTRY64"), KXTS_MODE_ENTRY64);
  assert.equal(defines.get("KXTS_MODE_ENTRY32"), KXTS_MODE_ENTRY32);
  assert.equal(defines.get("KXTS_MODE_UNSET"), KXTS_MODE_UNSET);
  assert.equal(defines.get("KXTS_FLAG_SERIAL"), KXTS_FLAG_SERIAL);
  assert.equal(defines.get("KXTS_FLAG_SKIP_SHA"), KXTS_FLAG_SKIP_SHA);
  assert.equal(defines.get("KXTS_PARAMS_OFFSET"), PURGATORY_BLOBS.x86_64.paramsOffset);
  assert.equal(defines.get("KXTS_PARAMS_OFFSET"), PURGATORY_BLOBS.i386.paramsOffset);
});

test("the committed blobs are intact and unpatched", () => {
  for (const arch of ["x86_64", "i386"] as const) {
    const { blob, bytes } = purgatoryBlob(arch);
    assert.equal(hexOf(nodeSha([bytes])), blob.sha256, `${arch} sha256`);
    assert.ok(blob.memsz >= blob.filesz, `${arch}: memsz covers the file`);
    assert.ok(blob.entryOffset >= KXTS_PARAMS_SIZE && blob.entryOffset < blob.filesz, `${arch}: entry inside the code`);
    const p = readPurgatoryParams(bytes, blob.paramsOffset);
    assert.equal(p.magic, KXTS_PARAMS_MAGIC);
    assert.equal(p.version, KXTS_PARAMS_VERSION);
    assert.equal(p.size, KXTS_PARAMS_SIZE);
    // As built, the blob refuses to run: it must be patched first.
    assert.equal(p.entryMode, KXTS_MODE_UNSET);
    assert.equal(p.regionCount, 0);
  }
});

test("buildPurgatory fills the block: digest over the buffers (not kexec's zero fill up to memsz)", () => {
  const next = rng(7);
  const kernel = randomBytes(next, 10_000);
  const initrd = [randomBytes(next, 3), randomBytes(next, 0), randomBytes(next, 5000)];
  const regions: PurgatoryRegion[] = [
    { start: 0x1000000n, bytes: kernel, memsz: 0x5000n },
    { start: 0x7000000n, bytes: initrd },
    { start: 0x9000000n, bytes: new Uint8Array(0), memsz: 0n },
    { start: 0x1_2000_0000n, bytes: randomBytes(next, 100), memsz: 0x30000n }, // above 4 GiB: fine in 64-bit mode
  ];
  const p = buildPurgatory("x86_64", { mode: "entry64", entry: 0x1000200n, bootParams: 0x8000000n, regions, serialDebug: true }, nodeSha);
  const { blob, bytes: pristine } = purgatoryBlob("x86_64");

  const expected = nodeSha([kernel, ...initrd, regions[3]!.bytes as Uint8Array]);
  assert.equal(hexOf(p.digest), hexOf(expected));
  const back = readPurgatoryParams(p.bytes);
  assert.equal(back.entryMode, KXTS_MODE_ENTRY64);
  assert.equal(back.flags, KXTS_FLAG_SERIAL);
  assert.equal(back.entry, 0x1000200n);
  assert.equal(back.bootParams, 0x8000000n);
  assert.equal(back.regionCount, 4);
  assert.deepEqual(back.regions, [
    { start: 0x1000000n, len: 10_000n },
    { start: 0x7000000n, len: 5003n },
    { start: 0x9000000n, len: 0n },
    { start: 0x1_2000_0000n, len: 100n },
  ]);
  assert.equal(hexOf(back.sha256), hexOf(expected));
  // Only the parameter block changes; the code is untouched.
  assert.equal(hexOf(p.bytes.subarray(KXTS_PARAMS_SIZE)), hexOf(pristine.subarray(KXTS_PARAMS_SIZE)));
  assert.equal(p.bytes.length, blob.filesz);
  assert.equal(p.memsz % 4096n, 0n);
  assert.ok(p.memsz >= BigInt(blob.memsz));
  assert.equal(p.entryOffset, BigInt(blob.entryOffset));
  assert.equal(p.alignment, 4096n);
  assert.equal(p.below4G, false);
  // The pristine blob is not modified by patching.
  assert.equal(readPurgatoryParams(purgatoryBlob("x86_64").bytes).entryMode, KXTS_MODE_UNSET);

  const skip = buildPurgatory("x86_64", { mode: "entry32", entry: 0x100000n, bootParams: 0x90000n, regions: [], skipChecksum: true }, sha256);
  const s = readPurgatoryParams(skip.bytes);
  assert.equal(s.flags, KXTS_FLAG_SKIP_SHA);
  assert.equal(s.entryMode, KXTS_MODE_ENTRY32);
  assert.equal(skip.below4G, true);
  assert.equal(hexOf(s.sha256), hexOf(nodeSha([])));
});

test("buildPurgatory refuses what the purgatory could not do", () => {
  // The planner chooses all of these: a purgatory that cannot take them is kexec-ts' bug (exit 70).
  const code = (e: unknown): boolean => e instanceof KexecError && e.code === "internal";
  const base = { entry: 0x100000n, bootParams: 0x90000n, regions: [] as PurgatoryRegion[] };
  assert.throws(() => buildPurgatory("i386", { ...base, mode: "entry64" }, sha256),
    (e: unknown) => code(e) && /i386 running kernel cannot start a kernel through its 64-bit entry/.test((e as Error).message));
  const i386 = buildPurgatory("i386", { ...base, mode: "entry32" }, sha256);
  assert.equal(i386.below4G, true);
  assert.equal(readPurgatoryParams(i386.bytes).entryMode, KXTS_MODE_ENTRY32);

  const seventeen = Array.from({ length: 17 }, (_, i) => ({ start: BigInt(i) << 20n, bytes: new Uint8Array(1) }));
  assert.throws(() => buildPurgatory("x86_64", { ...base, mode: "entry64", regions: seventeen }, sha256), code);
  assert.doesNotThrow(() => buildPurgatory("x86_64", { ...base, mode: "entry64", regions: seventeen.slice(1) }, sha256));
  assert.throws(() => buildPurgatory("x86_64", { ...base, mode: "entry64", regions: [{ start: 0n, bytes: new Uint8Array(10), memsz: 9n }] }, sha256),
    (e: unknown) => code(e) && (e as KexecError).data.field === "regions[0].memsz");

  // 32-bit entry: the kernel, boot_params and every region must be reachable with paging off.
  for (const arch of ["x86_64", "i386"] as const) {
    assert.throws(() => buildPurgatory(arch, { ...base, mode: "entry32", entry: 0x1_0000_0000n }, sha256), code);
    assert.throws(() => buildPurgatory(arch, { ...base, mode: "entry32", bootParams: 0x1_0000_0000n }, sha256), code);
    assert.throws(() => buildPurgatory(arch, { ...base, mode: "entry32", regions: [{ start: 0xffff_f000n, bytes: new Uint8Array(0x1001) }] }, sha256), code);
    assert.doesNotThrow(() => buildPurgatory(arch, { ...base, mode: "entry32", regions: [{ start: 0xffff_f000n, bytes: new Uint8Array(0x1000) }] }, sha256));
  }
  assert.throws(() => buildPurgatory("x86_64", { ...base, mode: "entry64", regions: [{ start: 0xffff_ffff_ffff_f000n, bytes: new Uint8Array(0x1001) }] }, sha256), code);
  assert.throws(() => buildPurgatory("x86_64", { ...base, mode: "entry64" }, () => new Uint8Array(20)), code);
});

test("the pure SHA-256 agrees with node:crypto on random splits", () => {
  const next = rng(12345);
  assert.equal(hexOf(sha256([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(hexOf(sha256([new TextEncoder().encode("abc")])), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  for (let i = 0; i < 200; i++) {
    const pieces = randomSplit(next);
    assert.equal(hexOf(sha256(pieces)), hexOf(nodeSha(pieces)), `case ${i}: ${pieces.map((p) => p.length).join("+")}`);
  }
});

test("the purgatory's C SHA-256, compiled for the host, agrees with node:crypto", (t) => {
  const missing = missingTool("gcc");
  if (missing) return missingInput(t, `${missing} not found: cannot compile purgatory/sha256.c for the host (.ci/setup-debian.sh installs gcc)`);
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-sha256-"));
  try {
    const exe = join(dir, "sha256-host");
    execFileSync("gcc", ["-O2", "-Wall", "-Werror", "-I", purgatoryDir, "-o", exe,
      join(purgatoryDir, "test", "sha256-host.c"), join(purgatoryDir, "sha256.c")]);
    const next = rng(99);
    const cases: Uint8Array[][] = [[], [new Uint8Array(0)], [new Uint8Array(0), new Uint8Array(0)]];
    for (let i = 0; i < 150; i++) cases.push(randomSplit(next));
    // A region bigger than anything in a random split: many whole blocks plus a tail.
    cases.push([randomBytes(next, 300_001), new Uint8Array(0), randomBytes(next, 63)]);
    const parts: Uint8Array[] = [];
    const u32 = (v: number): Uint8Array => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, v, true); return b; };
    parts.push(u32(cases.length));
    for (const c of cases) {
      parts.push(u32(c.length));
      for (const r of c) parts.push(u32(r.length), r);
    }
    const out = execFileSync(exe, { input: Buffer.concat(parts), maxBuffer: 1 << 20 }).toString().trim().split("\n");
    assert.equal(out.length, cases.length);
    cases.forEach((c, i) => assert.equal(out[i], hexOf(nodeSha(c)), `case ${i}: ${c.map((r) => r.length).join("+")}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("purgatory/build.sh reproduces the committed blobs byte for byte", (t) => {
  const missing = missingTool("gcc", "ld", "objcopy", "nm", "readelf");
  if (missing) return missingInput(t, `${missing} not found: cannot rebuild the purgatory (the committed blobs are used as they are)`);
  // GNU as --version also assembles its (empty) standard input into ./a.out: give it /dev/null as output.
  const version = (cmd: string): string => execFileSync(cmd, cmd === "as" ? ["--version", "-o", "/dev/null"] : ["--version"], { env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "pipe", "pipe"] }).toString().split("\n")[0]!;
  const found = `${version("gcc")}; ${version("ld")}; ${version("as")}`;
  if (found !== PURGATORY_TOOLCHAIN) {
    return missingInput(t, `the blobs were built with "${PURGATORY_TOOLCHAIN}", this machine has "${found}": bytes are only reproducible with the same toolchain (if Debian 12 updated it, rebuild with purgatory/build.sh, check the QEMU test, and commit)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-purgatory-"));
  try {
    execFileSync("sh", [join(purgatoryDir, "build.sh"), "--out", dir], { stdio: ["ignore", "pipe", "pipe"] });
    for (const arch of ["x86_64", "i386"] as const) {
      const rebuilt = new Uint8Array(readFileSync(join(dir, `${arch}.bin`)));
      const committed = purgatoryBlob(arch).bytes;
      assert.equal(rebuilt.length, committed.length, `${arch} size`);
      assert.equal(hexOf(nodeSha([rebuilt])), hexOf(nodeSha([committed])), `${arch} bytes`);
    }
    // The constants beside the bytes (entry offset, memsz, digests) must match too.
    const committedTs = join(repo, "src", "core", "plan", "purgatory-blobs.ts");
    if (existsSync(committedTs)) assert.equal(readFileSync(join(dir, "purgatory-blobs.ts"), "utf8"), readFileSync(committedTs, "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the blobs run under QEMU: both entries, 4- and 5-level paging, a hostile GDTR, corrupt segments halt", (t) => {
  const missing = missingTool("qemu-system-x86_64", "gcc", "ld", "nm");
  if (missing) return missingInput(t, `${missing} not found: purgatory/test/qemu.mjs needs it`);
  // Eight TCG boots of a tiny multiboot harness, a few seconds in all.
  const r = spawnSync(process.execPath, [join(purgatoryDir, "test", "qemu.mjs")], { encoding: "utf8", timeout: 240_000 });
  assert.equal(r.status, 0, `purgatory/test/qemu.mjs failed:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /all 8 scenarios passed/);
});
