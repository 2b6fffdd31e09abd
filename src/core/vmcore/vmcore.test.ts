import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { KexecError } from "../errors.js";
import { zlibSync } from "fflate";
import { decompressPageInto, lzo1xCompress, lzo1xDecompress, snappyCompress, snappyDecompress, type PageCodec } from "./codecs.js";
import { formatDmesg, readLockless } from "./dmesg.js";
import { bytesAccess } from "./memory.js";
import { parseVmcoreInfo } from "./vmcoreinfo.js";
import { openVmcore, vmcoreKernelMemory } from "./vmcore.js";
import { encodeKdumpHeaders, planKdumpLayout, readKdump, writePageDesc } from "./kdump.js";
import { encodeFlatHeader, encodeFlatRecordHeader, FLAT_END, FlatReassembler, parseFlat } from "./flat.js";
import { syntheticVmcore, SYNTH_PAGE } from "./testing.js";
import { concatBytes } from "../bytes/reader.js";
import { presentBitmaps } from "./exclude.js";
import { MAX_WHOLE_BITMAP_PFN } from "./page-frame-limits.js";
import { ELF64_EHDR, ELF64_PHDR } from "../image/elf.js";
import { offsetOf } from "../bytes/layout.js";

const fixture = new URL("../../../testdata/vmcore/vmcoreinfo-6.1.0-50-amd64.txt", import.meta.url);

test("VMCOREINFO of Debian 6.1: hex symbols, signed numbers, offsets", () => {
  const info = parseVmcoreInfo(readFileSync(fixture, "latin1"));
  assert.equal(info.osRelease, "6.1.0-50-amd64");
  assert.equal(info.pageSize, 4096);
  assert.equal(info.symbols.get("prb"), 0xffffffffbcc64660n);
  assert.equal(info.numbers.get("phys_base"), -830472192n);
  assert.equal(info.numbers.get("PAGE_BUDDY_MAPCOUNT_VALUE"), -129n);
  assert.equal(info.kernelOffset, 0x3a200000n);
  assert.equal(info.offsets.get("printk_info.text_len"), 16);
  assert.equal(info.sizes.get("page"), 64);
});

test("LZO1X and snappy: decode(encode(x)) = x for random, repetitive and empty inputs", () => {
  const data = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 9000 }),
    fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 400 })).map(([u, k]) => {
      const out = new Uint8Array(u.length * k);
      for (let i = 0; i < k; i++) out.set(u, i * u.length);
      return out;
    }),
  );
  fc.assert(fc.property(data, (x) => {
    assert.deepEqual(lzo1xDecompress(lzo1xCompress(x), x.length), x);
    assert.deepEqual(snappyDecompress(snappyCompress(x), x.length), x);
  }), { numRuns: 300 });
});

test("LZO1X long literal runs, long matches and far matches (M4) survive a round trip", () => {
  const big = new Uint8Array(70000);
  let s = 1;
  for (let i = 0; i < 20000; i++) big[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  big.copyWithin(40000, 0, 20000); // a match 40000 bytes back: beyond M3's 16 KiB
  assert.deepEqual(lzo1xDecompress(lzo1xCompress(big), big.length), big);
});

test("corrupt LZO and snappy input fails with a KexecError, never a RangeError", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
    for (const f of [() => lzo1xDecompress(junk, 4096), () => snappyDecompress(junk, 4096)]) {
      try { f(); } catch (e) { assert.ok(e instanceof KexecError, String(e)); }
    }
  }), { numRuns: 3000 });
});

test("a page decoded into a slot of a larger buffer: its bytes there, its neighbours untouched, for each codec with an encoder here", () => {
  const page = new Uint8Array(4096);
  let s = 7;
  for (let i = 0; i < page.length; i++) page[i] = i % 512 < 300 ? (s = (s * 1103515245 + 12345) >>> 0) >>> 24 : i & 0xff;
  const encoders: [PageCodec, (x: Uint8Array) => Uint8Array][] = [["zlib", (x) => zlibSync(x, { level: 1 })], ["lzo", lzo1xCompress], ["snappy", snappyCompress]];
  for (const [codec, encode] of encoders) {
    const stored = encode(page);
    const batch = new Uint8Array(3 * 4096).fill(0xa5);
    decompressPageInto(codec, stored, batch.subarray(4096, 8192));
    assert.deepEqual(batch.subarray(4096, 8192), page, codec);
    assert.ok(batch.subarray(0, 4096).every((b) => b === 0xa5) && batch.subarray(8192).every((b) => b === 0xa5), `${codec}: only its slot is written`);
    // A page that decodes short is damage, named as such.
    const short = encode(page.subarray(0, 4000));
    assert.throws(() => decompressPageInto(codec, short, batch.subarray(4096, 8192)), (e: unknown) => e instanceof KexecError && e.code === "decompress", `${codec}: short page`);
  }
});

test("a zlib page whose Adler-32 does not match what it decodes to is damaged, as zlib itself says (fflate alone reads past it)", () => {
  const page = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
  const stored = zlibSync(page, { level: 1 });
  const out = new Uint8Array(4096);
  decompressPageInto("zlib", stored, out);
  assert.deepEqual(out, page, "the whole stream decodes");
  for (const at of [stored.length - 4, stored.length - 1]) {
    const damaged = stored.slice();
    damaged[at]! ^= 0x10;
    assert.throws(() => decompressPageInto("zlib", damaged, out), (e: unknown) => e instanceof KexecError && e.code === "decompress" && /Adler-32 0x[0-9a-f]{8} of the decoded page, the stream says 0x[0-9a-f]{8} at byte /.test(e.message), `trailer byte ${at}`);
  }
});

test("synthetic ELF vmcore: memory, notes, and the printk ring buffer in makedumpfile's layout", () => {
  const s = syntheticVmcore(64);
  const core = openVmcore(bytesAccess(s.bytes));
  assert.equal(core.format, "elf");
  assert.equal(core.cpus, 1);
  for (const [pfn, page] of s.pages) assert.deepEqual(core.memory.readPage(BigInt(pfn)), page, `pfn ${pfn}`);
  assert.equal(core.memory.readPage(0n), undefined);
  const records = readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!);
  assert.deepEqual(records.map((r) => r.text), s.messages.map((m) => m.text));
  assert.equal(formatDmesg(records),
    "[    0.000000] Linux version 6.1.0-synthetic\n" +
    "[    0.001500] a line with\ttab and a second line\n               here\n" +
    "[    2.000001] control \\x01 byte\n" +
    "[   11.130486] Kernel panic - not syncing: sysrq triggered crash\n");
});

test("a VMCOREINFO value that is not a number is named as damaged, not as absent (SYMBOL(prb) is no sign of an old kernel then)", () => {
  const s = syntheticVmcore(64);
  const core = openVmcore(bytesAccess(s.bytes));
  const text = core.vmcoreinfo!.text.replace(/^SYMBOL\(prb\)=([0-9a-f]+)$/m, (_, hex: string) => `SYMBOL(prb)=${hex.slice(0, -1)}z`);
  const damaged = parseVmcoreInfo(text);
  assert.equal(damaged.symbols.has("prb"), false);
  assert.throws(() => readLockless(vmcoreKernelMemory(core), damaged), (e: unknown) =>
    e instanceof KexecError && e.code === "parse" && /^VMCOREINFO's SYMBOL\(prb\)=[0-9a-f]+z is not a number/.test(e.message) && !/predates/.test(e.message) && e.data.field === "SYMBOL(prb)");
  // Absent is still absent.
  assert.throws(() => readLockless(vmcoreKernelMemory(core), parseVmcoreInfo(text.replace(/^SYMBOL\(prb\)=.*$/m, ""))), /has no SYMBOL\(prb\): the kernel predates/);
  assert.throws(() => readLockless(vmcoreKernelMemory(core), parseVmcoreInfo(core.vmcoreinfo!.text.replace(/^SIZE\(printk_info\)=.*$/m, "SIZE(printk_info)=8x"))), /VMCOREINFO's SIZE\(printk_info\)=8x is not a number/);
});

test("kdump header: fields sit where makedumpfile 1.7.2 puts them and read back", () => {
  const notes = new Uint8Array(40);
  const input = {
    utsname: { sysname: "Linux", nodename: "host", release: "6.1.0-50-amd64", version: "#1 SMP", machine: "x86_64", domainname: "(none)" }, timestampSec: 0x6b041d3dn, status: 1, blockSize: 4096,
    maxMapnr: 0x3ffddn, nrCpus: 2, physBase: 0xffffffffce800000n, dumpLevel: 31, noteBytes: notes, vmcoreinfoInNotes: undefined, descCount: 0n,
  };
  const layout = planKdumpLayout(input);
  const h = encodeKdumpHeaders(input, layout);
  const dv = new DataView(h.buffer);
  assert.equal(dv.getBigUint64(408, true), 0x6b041d3dn);
  assert.equal(dv.getUint32(424, true), 1);
  assert.equal(dv.getUint32(432, true), 1); // sub_hdr_size
  assert.equal(dv.getUint32(436, true), 16); // bitmap_blocks for 0x3ffdd pages, as makedumpfile wrote
  assert.equal(dv.getUint32(440, true), 0x3ffdd);
  assert.equal(dv.getBigUint64(4096 + 96, true), 0x3ffddn);
  assert.equal(dv.getBigUint64(4096 + 48, true), 4096n + 104n);
  const file = new Uint8Array(Number(layout.dataOffset) + 4096);
  file.set(h);
  const k = readKdump(bytesAccess(file));
  assert.equal(k.header.utsname.release, "6.1.0-50-amd64");
  assert.equal(k.header.dump_level, 31);
  assert.equal(k.dumpedPages, 0n);
});

test("kdump reader: bitmaps streamed in chunks and ranked in blocks give what the whole bitmaps give, across chunk and block edges", () => {
  // Three 1 MiB chunks of each bitmap (2^23 page frames each); rank blocks are 2^21 page frames.
  const CHUNK = 2 ** 23;
  const BLOCK = 2 ** 21;
  const maxPfn = 2 * CHUNK + BLOCK + 1234;
  const present = new Set<number>();
  const presentRun = (from: number, to: number) => { for (let p = from; p < to; p++) present.add(p); };
  presentRun(0x10, 0x9f);
  presentRun(BLOCK - 7, BLOCK + 40); // across a rank block
  presentRun(CHUNK - 100_000, CHUNK + 100_000); // across a chunk: whole words of ones, one run
  presentRun(2 * CHUNK - 1, 2 * CHUNK); // a run of one page, a chunk's last
  presentRun(2 * CHUNK + 33, 2 * CHUNK + 35);
  presentRun(maxPfn - 70, maxPfn); // open to max_mapnr
  const dumped = [...present].filter((p) => p % 3 !== 1 && p % 1000 !== 7).sort((a, b) => a - b);
  const input = {
    utsname: { sysname: "Linux", nodename: "host", release: "6.1.0-50-amd64", version: "#1 SMP", machine: "x86_64", domainname: "(none)" }, timestampSec: 0n, status: 0, blockSize: 4096,
    maxMapnr: BigInt(maxPfn), nrCpus: 1, physBase: 0n, dumpLevel: 1, noteBytes: new Uint8Array(0), vmcoreinfoInNotes: undefined, descCount: BigInt(dumped.length),
  };
  const layout = planKdumpLayout(input);
  const bitmapBytes = (layout.bitmapBlocks * 4096) / 2;
  // Page data as one run of 32-bit counters: page i's descriptor points at counter i, so a page read back says its index.
  const dataBytes = 4 * dumped.length + 4096;
  const file = new Uint8Array(Number(layout.dataOffset) + dataBytes);
  file.set(encodeKdumpHeaders(input, layout));
  const bitmapAt = Number(layout.bitmapOffset);
  const setBit = (at: number, p: number) => { file[at + Math.floor(p / 8)]! |= 1 << (p % 8); };
  for (const p of present) setBit(bitmapAt, p);
  // Set past max_mapnr (the rest of its word, all ones then, and one more): counted as present (as
  // the whole bitmap was), never a range.
  const past = [maxPfn + 40];
  for (let p = maxPfn; p % 32 !== 0; p++) past.push(p);
  for (const p of past) setBit(bitmapAt, p);
  for (const p of dumped) setBit(bitmapAt + bitmapBytes, p);
  const view = new DataView(file.buffer);
  const dataAt = Number(layout.dataOffset);
  dumped.forEach((_, i) => {
    writePageDesc(view, Number(layout.descOffset) + i * 24, dataAt + 4 * i, 4096, 0);
    view.setUint32(dataAt + 4 * i, i, true);
  });
  const k = readKdump(bytesAccess(file));
  const runs: { start: bigint; end: bigint }[] = [];
  for (const p of [...present].sort((a, b) => a - b)) {
    const last = runs.at(-1);
    if (last !== undefined && last.end === BigInt(p) * 4096n) last.end += 4096n;
    else runs.push({ start: BigInt(p) * 4096n, end: BigInt(p + 1) * 4096n });
  }
  assert.deepEqual(k.memory.ranges, runs);
  assert.equal(k.presentPages, BigInt(present.size + past.length));
  assert.equal(k.dumpedPages, BigInt(dumped.length));
  assert.equal(k.cutShort, undefined);
  const index = new Map(dumped.map((p, i) => [p, i]));
  const edges = [0, 1, BLOCK - 1, BLOCK, CHUNK - 1, CHUNK, 2 * CHUNK - 1, 2 * CHUNK, maxPfn - 1, maxPfn, maxPfn + 1];
  // Out of order, so the cache of blocks turns over.
  for (const p of [...edges, ...[...present].reverse(), ...edges]) {
    const i = index.get(p);
    assert.equal(k.memory.hasPage!(BigInt(p)), i !== undefined, `hasPage(${p})`);
    const page = k.memory.readPage(BigInt(p));
    assert.equal(page === undefined ? undefined : new DataView(page.buffer, page.byteOffset).getUint32(0, true), i, `readPage(${p})`);
  }
  // Runs read into a batch buffer give readPage's pages; a run with a page not dumped is refused.
  const batch = new Uint8Array(64 * 4096);
  // Every third page frame is not dumped: dumped runs are two pages long. Whole runs from near each
  // edge (a rank block's, a chunk's, max_mapnr), and runs that reach a page not dumped.
  const pairFrom = (p: number) => { while (!(index.has(p) && index.has(p + 1))) p++; return p; };
  const wholeRuns = [0x10, BLOCK - 3, CHUNK - 2, 2 * CHUNK - 3, maxPfn - 70].map((p) => [pairFrom(p), 2] as const);
  let whole = 0;
  for (const [first, count] of [...wholeRuns, [0x10, 3], [BLOCK - 7, 47], [CHUNK - 3, 6], [0x9e, 2], [maxPfn - 1, 2]] as const) {
    const stored = Array.from({ length: count }, (_, j) => index.has(first + j)).every(Boolean);
    whole += stored ? 1 : 0;
    batch.fill(0xee);
    assert.equal(k.memory.readRunInto!(BigInt(first), count, batch, 4096), stored, `readRunInto(${first}, ${count})`);
    if (!stored) {
      assert.ok(batch.every((b) => b === 0xee), `readRunInto(${first}, ${count}): nothing decoded before the refusal`);
      continue;
    }
    for (let j = 0; j < count; j++) {
      assert.deepEqual(batch.subarray(4096 * (j + 1), 4096 * (j + 2)), k.memory.readPage(BigInt(first + j)), `readRunInto(${first}, ${count}) page ${j}`);
    }
    assert.ok(batch.subarray(0, 4096).every((b) => b === 0xee), "the slot before the run is untouched");
  }
  assert.equal(whole, wholeRuns.length, "every pair is read as a run");
  // A descriptor never filled (a dump cut short while it was written) ends a run before any page of it is written.
  const [first] = wholeRuns[0]!;
  file.fill(0, Number(layout.descOffset) + (index.get(first + 1)!) * 24, Number(layout.descOffset) + (index.get(first + 1)! + 1) * 24);
  batch.fill(0xee);
  assert.equal(k.memory.readRunInto!(BigInt(first), 2, batch, 0), false, "a run with an unfilled descriptor");
  assert.ok(batch.every((b) => b === 0xee), "nothing written for it");
  assert.equal(k.memory.readPage(BigInt(first + 1)), undefined);
  assert.notEqual(k.memory.readPage(BigInt(first)), undefined);
  // A damaged descriptor is named by its field and where that lies in the file.
  const descOf = (p: number) => Number(layout.descOffset) + index.get(p)! * 24;
  const damaged = (p: number, field: string, at: number, message: RegExp) => assert.throws(() => k.memory.readPage(BigInt(p)),
    (e: unknown) => e instanceof KexecError && e.data["field"] === field && e.data["offset"] === BigInt(at) && message.test(e.message), `pfn ${p}: ${field}`);
  const [second] = wholeRuns[1]!;
  view.setUint32(descOf(second) + 8, 5000, true);
  damaged(second, "page_desc.size", descOf(second) + 8, new RegExp(`page_desc ${index.get(second)} \\(pfn 0x${second.toString(16)}\\) says 5000 bytes, more than a page`));
  view.setUint32(descOf(second) + 8, 100, true);
  damaged(second, "page_desc.size", descOf(second) + 8, /is stored uncompressed in 100 bytes, expected 4096/);
  view.setUint32(descOf(second) + 4, 0x00400000, true);
  damaged(second, "page_desc.offset", descOf(second), /says its data is at 0x40000000[0-9a-f]{6}, past any file/);
});

test("flattened stream: header, records, end marker", () => {
  const parts = [encodeFlatHeader(), encodeFlatRecordHeader(4096n, 3), new Uint8Array([1, 2, 3]), FLAT_END];
  const stream = concatBytes(parts);
  const records = parseFlat(stream);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.offset, 4096n);
  assert.deepEqual([...records[0]!.data], [1, 2, 3]);
  assert.throws(() => parseFlat(stream.subarray(0, stream.length - 16)), KexecError);
});

test("flattened stream: fed in chunks of any size it replays the same writes; cut anywhere it says where, never waits", () => {
  const stream = concatBytes([
    encodeFlatHeader(), encodeFlatRecordHeader(0n, 5), new Uint8Array([1, 2, 3, 4, 5]), encodeFlatRecordHeader(8192n, 3000), new Uint8Array(3000).fill(7),
    encodeFlatRecordHeader(100n, 1), new Uint8Array([9]), FLAT_END,
  ]);
  const replay = (writes: { offset: bigint; data: Uint8Array }[]) => {
    const file = new Uint8Array(8192 + 3000);
    for (const w of writes) file.set(w.data, Number(w.offset));
    return file;
  };
  const whole = replay(parseFlat(stream));
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 20 }), (sizes) => {
    const r = new FlatReassembler();
    const writes = [];
    let at = 0;
    for (let i = 0; at < stream.length; i++) {
      const n = sizes[i % sizes.length]!;
      writes.push(...r.push(stream.subarray(at, at + n)));
      at += n;
    }
    r.end();
    assert.equal(r.fileSize, BigInt(8192 + 3000));
    assert.deepEqual(replay(writes), whole);
    // As makedumpfile -R feeds it: every chunk read into the same buffer, overwritten by the next
    // read as soon as push returns (a header cut by a read's end used to come back as garbage).
    const reused = new FlatReassembler();
    const buffer = new Uint8Array(5000);
    const fromReads = [];
    at = 0;
    for (let i = 0; at < stream.length; i++) {
      const n = Math.min(sizes[i % sizes.length]!, stream.length - at);
      buffer.set(stream.subarray(at, at + n));
      fromReads.push(...reused.push(buffer.subarray(0, n)));
      buffer.fill(0xcc);
      at += n;
    }
    reused.end();
    assert.deepEqual(replay(fromReads), whole);
  }));
  for (const cut of [0, 100, 4096, 4096 + 16 + 2, 4096 + 21 + 16 + 1000, stream.length - 1]) {
    const r = new FlatReassembler("dump.flat");
    r.push(stream.subarray(0, cut));
    assert.throws(() => r.end(), (e: unknown) => e instanceof KexecError && /dump\.flat: the stream ends/.test(e.message) && /cut short/.test(e.hint ?? ""), `cut at ${cut}`);
  }
  const bad = stream.slice();
  new DataView(bad.buffer).setBigInt64(4096 + 8, -5n, false);
  assert.throws(() => new FlatReassembler().push(bad), /record header at stream offset 0x1000 says offset 0, size -5/);
  // A record placed past any dump's end (a damaged offset): Node wrote 2^60 at the file's start.
  const far = stream.slice();
  new DataView(far.buffer).setBigInt64(4096, 1n << 60n, false);
  assert.throws(() => new FlatReassembler().push(far), /record header at stream offset 0x1000 says offset 1152921504606846976, size 5/);
  const end = stream.slice();
  new DataView(end.buffer).setBigInt64(4096, (1n << 48n) - 4n, false);
  assert.throws(() => new FlatReassembler().push(end), /says offset 281474976710652, size 5/, "the record's end counts, not only its start");
});

test("readers fuzzed: a damaged vmcore gives a KexecError, never another exception", () => {
  const s = syntheticVmcore(24);
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(8191), fc.nat(255)), { maxLength: 12 }), fc.nat(s.bytes.length), (edits, cut) => {
    const b = s.bytes.slice(0, Math.max(cut, 1));
    for (const [at, v] of edits) if (at < b.length) b[at] = v;
    try {
      const core = openVmcore(bytesAccess(b));
      for (let p = 0; p < 300; p += 7) core.memory.readPage(BigInt(p));
      readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!);
    } catch (e) {
      assert.ok(e instanceof KexecError, `${(e as Error).stack}`);
    }
  }), { numRuns: 300 });
  assert.equal(SYNTH_PAGE, 4096);
});

test("VMCOREINFO's PAGESIZE must be x86's 4096, and a bitmap of every page frame held whole (presentBitmaps) stops at 8 TiB: damaged values name themselves", () => {
  const s = syntheticVmcore(24);
  const text = new TextDecoder("latin1").decode(s.bytes);
  for (const bad of ["0", "3", "8192", "abc", "4k", "0x10"]) {
    // Same length, so every offset in the file stays right: only the note's text changes.
    const at = text.indexOf("PAGESIZE=4096");
    const b = s.bytes.slice();
    b.set(new TextEncoder().encode(`PAGESIZE=${bad.padEnd(4, " ")}`), at);
    assert.throws(() => openVmcore(bytesAccess(b)), (e: Error) => e instanceof KexecError && e.data.field === "VMCOREINFO PAGESIZE" && e.message.includes(`PAGESIZE=${bad}`), bad);
  }
  // A range ending past page frame 2^31 (a damaged p_memsz of 2^64 - 1 asked for a bitmap larger than any typed array).
  assert.throws(() => presentBitmaps([{ start: 1n << 40n, end: 1n << 64n }], 4096), (e: Error) => e instanceof KexecError && /below 0x80000000000 \(8 TiB/.test(e.message));
  assert.equal(presentBitmaps([{ start: 0n, end: 8n << 40n }], 4096, () => new Uint8Array(0)).present.maxPfn, MAX_WHOLE_BITMAP_PFN);
});

test("a PT_LOAD whose end needs more than 64 bits is refused by name (vmcore info printed a 16 EiB range)", () => {
  const s = syntheticVmcore(24);
  const core = openVmcore(bytesAccess(s.bytes));
  const b = s.bytes.slice();
  const view = new DataView(b.buffer);
  const phoff = Number(view.getBigUint64(offsetOf(ELF64_EHDR, "e_phoff"), true));
  const at = phoff + core.elf!.loads[0]!.index * ELF64_PHDR.size + offsetOf(ELF64_PHDR, "p_memsz");
  view.setBigUint64(at, (1n << 64n) - 1n, true);
  assert.throws(() => openVmcore(bytesAccess(b)), (e: Error) => e instanceof KexecError && /PT_LOAD \d+ at p_paddr 0x[0-9a-f]+ with p_memsz 0xffffffffffffffff ends past 64 bits/.test(e.message));
});
