import { test } from "node:test";
import assert from "node:assert/strict";
import { BatchReadError, PAGE_SKIPPED, PAGE_ZERO, batchOutBytes, compressBatch, wordsZeroTest, type CompressedBatch, type ExtentSource, type PageCompressInto, type ZeroPageTest } from "./batch.js";
import { LZO_HASH_BITS, lzo1xCompressInto } from "./codecs.js";
import { ElfLoadPlanner, prepareDumpBitmaps, writeElfDump, writeKdumpDump, type BatchCompressor, type DumpExclusion, type DumpOptions, type DumpSink } from "./dump-writer.js";
import { clearBit } from "./exclude.js";
import { DISK_DUMP_HEADER_64, DUMP_DH_COMPRESSED_INCOMPLETE, DUMP_DH_COMPRESSED_LZO, KDUMP_HEADER_VERSION, KDUMP_SUB_HEADER_64, PAGE_DESC, PAGE_DESC_SIZE, readDiskDumpHeader, readKdump } from "./kdump.js";
import { offsetOf, readStruct } from "../bytes/layout.js";
import { bytesAccess, type PhysicalMemory, type PhysRange, type RandomAccess } from "./memory.js";
import { decompressPage } from "./codecs.js";
import { kernelMemory } from "./kernel-memory.js";
import { hex } from "../format.js";
import { SYNTH_UTSNAME, exclusionLeavingOut, spoilingViews, syntheticVmcore } from "./testing.js";
import { DUMP_LIST_HEADER_BYTES, openVmcore, readDumpHeaderMark, vmcoreKernelMemory, type Vmcore } from "./vmcore.js";
import { encodeFlatHeader } from "./flat.js";
import { KEXEC_TS_NOTE_NAME, NT_KEXEC_TS_COMPLETE, encodeElfCoreHeader, encodeNote } from "./elf-writer.js";
import { formatDmesg, printkPageFrames, readLockless } from "./dmesg.js";
import { crashedUtsname } from "./utsname.js";
import { KexecError } from "../errors.js";
import { ELF64_EHDR, ELF64_PHDR, ELF64_SHDR, PN_XNUM, PT_NOTE, SHT_NULL } from "../image/elf.js";
import { ReadableSparseSink, SparseSink } from "../../node/vmcore/sparse-sink.js";

const PS = 4096;

/** A file in memory; fails with ENOSPC once `limit` bytes would be passed. */
class MemorySink implements DumpSink {
  bytes = new Uint8Array(1 << 20);
  length = 0;
  constructor(private readonly limit = Infinity) {}
  write(offset: bigint, data: Uint8Array): void {
    const end = Number(offset) + data.length;
    if (end > this.limit) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
    if (end > this.bytes.length) {
      const next = new Uint8Array(Math.max(end, this.bytes.length * 2));
      next.set(this.bytes);
      this.bytes = next;
    }
    this.bytes.set(data, Number(offset));
    this.length = Math.max(this.length, end);
  }
  async writeAsync(offset: bigint, data: Uint8Array): Promise<void> {
    this.write(offset, data);
  }
  file(): Vmcore {
    return openVmcore(bytesAccess(this.bytes.slice(0, this.length)), "dump");
  }
}

/** A file in memory that can be read back, as a file on disk: the writer holds the 2nd bitmap a window at a time. */
class ReadableMemorySink extends MemorySink {
  readBack(offset: bigint, into: Uint8Array): void {
    into.fill(0);
    into.set(this.bytes.subarray(Number(offset), Math.min(this.length, Number(offset) + into.length)));
  }
}

/**
 * The source's bytes as a mapped file shows them to the batches (spoilingViews), in windows not a
 * multiple of the page size, so that pages lie across windows' ends and are read, not seen in place.
 */
function windowedSource(file: Uint8Array): ExtentSource {
  return spoilingViews((offset, length) => file.subarray(offset, offset + length), file.length, 3 * PS + 512);
}

/** The built-in lzo1x_1 encoder, in the calling thread, reading the extents it is given from the source bytes (windowedSource). */
function lzoCompressor(file: Uint8Array): BatchCompressor {
  const table = new Int32Array(1 << LZO_HASH_BITS);
  const compressOne: PageCompressInto = (src, from, dst, at) => lzo1xCompressInto(src, new DataView(src.buffer, src.byteOffset, src.byteLength), from, PS, dst, at, at + PS - 1, table);
  const source = windowedSource(file);
  return {
    compressOne,
    async submit(pages, count, skip, out, extents) {
      return compressBatch(compressOne, pages, count, PS, skip, out, undefined, extents, source);
    },
  };
}

function source(pages = 600): { core: Vmcore; s: ReturnType<typeof syntheticVmcore>; compressor: BatchCompressor } {
  const s = syntheticVmcore(pages);
  return { core: openVmcore(bytesAccess(s.bytes), "synthetic"), s, compressor: lzoCompressor(s.bytes) };
}

test("compressBatch: pages seen in place, read, or read once views are refused make the same batch; a failed read carries both buffers", () => {
  const table = new Int32Array(1 << LZO_HASH_BITS);
  const compress: PageCompressInto = (src, from, dst, at) => lzo1xCompressInto(src, new DataView(src.buffer, src.byteOffset, src.byteLength), from, PS, dst, at, at + PS - 1, table);
  // A file of 40 pages at an offset that is not page-aligned: text, zero, and incompressible pages.
  const base = 1234;
  const file = new Uint8Array(base + 40 * PS);
  let seed = 7;
  for (let p = 0; p < 40; p++) {
    const page = file.subarray(base + p * PS, base + (p + 1) * PS);
    if (p % 5 === 1) continue;
    if (p % 7 === 3) { for (let i = 0; i < PS; i++) page[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24; continue; }
    page.set(new TextEncoder().encode(`page ${p} `.repeat(PS / 8)).subarray(0, PS));
  }
  const count = 24;
  // Batch pages 0-6 and 10-21 from the file (two extents), 7-9 and 22-23 put in the batch by the caller.
  const extents = Float64Array.from([0, base + 3 * PS, 7, 10, base + 17 * PS, 12]);
  const fromFile = [...Array.from({ length: 7 }, (_, k) => 3 + k), -1, -1, -1, ...Array.from({ length: 12 }, (_, k) => 17 + k), -1, -1];
  const skip = new Uint8Array(count);
  skip[4] = 1;
  skip[12] = 1;
  const filled = (): Uint8Array => {
    const pages = new Uint8Array(count * PS);
    for (const k of [7, 8, 9, 22, 23]) pages.fill(k, k * PS, k * PS + 100);
    return pages;
  };
  // What every way must give: the batch with all its pages copied in first.
  const whole = filled();
  for (const [k, p] of fromFile.entries()) if (p >= 0) whole.set(file.subarray(base + p * PS, base + (p + 1) * PS), k * PS);
  const expected = compressBatch(compress, whole, count, PS, skip, new Uint8Array(batchOutBytes(count, PS)));
  assert.ok(expected.sizes.includes(PAGE_ZERO) && expected.sizes.includes(PS) && expected.sizes.includes(PAGE_SKIPPED), "zero, raw and skipped pages are all in the batch");
  const readOnly = { readInto: (offset: bigint, dst: Uint8Array, at: number, length: number) => dst.set(file.subarray(Number(offset), Number(offset) + length), at) };
  let views = 0;
  const refusedAfterOne: ExtentSource = { ...readOnly, view: (offset, length) => (views++ === 0 ? { bytes: file, from: offset, length: Math.min(length, 2 * PS) } : undefined) };
  for (const [name, source] of [["read", readOnly], ["seen in windows", windowedSource(file)], ["seen, then refused", refusedAfterOne]] as const) {
    const got = compressBatch(compress, filled(), count, PS, skip, new Uint8Array(batchOutBytes(count, PS)), undefined, extents, source);
    assert.deepEqual([...got.sizes], [...expected.sizes], name);
    assert.deepEqual(got.data, expected.data, name);
  }
  // Seen, refused (the rest of that extent read at once), refused for the second extent.
  assert.equal(views, 3, "a refused view is not asked for again within its extent");
  const pages = filled();
  const out = new Uint8Array(batchOutBytes(count, PS));
  const failing: ExtentSource = { readInto: () => { throw new Error("synthetic: read error at offset 0x4000"); } };
  assert.throws(() => compressBatch(compress, pages, count, PS, skip, out, undefined, extents, failing),
    (e: unknown) => e instanceof BatchReadError && e.message === "synthetic: read error at offset 0x4000" && e.pages === pages && e.out === out);
});

test("compressBatch: runs of zero pages tested a group at a time make the batch that page by page makes, skipped pages and extents' ends included", () => {
  const table = new Int32Array(1 << LZO_HASH_BITS);
  const compress: PageCompressInto = (src, from, dst, at) => lzo1xCompressInto(src, new DataView(src.buffer, src.byteOffset, src.byteLength), from, PS, dst, at, at + PS - 1, table);
  const count = 100;
  const pages = new Uint8Array(count * PS);
  // Zero but for: one page in the middle of the 3rd group, the last page of the 4th, every page
  // from 70 on but 80-95 (a whole group of zeros again); a skipped page in the 2nd group.
  const notZero = [40, 63, ...Array.from({ length: 30 }, (_, i) => 70 + i).filter((k) => k < 80 || k >= 96)];
  const text = new TextEncoder().encode("not zero ".repeat(PS / 8)).subarray(0, PS);
  for (const k of notZero) pages.set(text, k * PS);
  const skip = new Uint8Array(count);
  skip[20] = 1;
  const words = wordsZeroTest(PS);
  const runs = { asked: 0, zero: 0 };
  const grouped: ZeroPageTest = (src, from, n = 1) => {
    if (n > 1) { runs.asked++; if (words(src, from, n)) runs.zero++; }
    return words(src, from, n);
  };
  const onePage: ZeroPageTest = (src, from, n = 1) => n === 1 && words(src, from);
  const file = new Uint8Array(7 + count * PS);
  file.set(pages, 7);
  // Also the pages in two extents that do not start or end on a group's bounds.
  const extents = Float64Array.from([3, 7 + 3 * PS, 50, 60, 7 + 60 * PS, 37]);
  const seen = spoilingViews((offset, length) => file.subarray(offset, offset + length), file.length, 48 * PS);
  // Windows of a few pages (windowedSource) leave no whole group in a view: page by page only.
  const ways: [string, Float64Array | undefined, ExtentSource | undefined, boolean][] = [["in the batch", undefined, undefined, true], ["in extents", extents, seen, true], ["in extents, small windows", extents, windowedSource(file), false]];
  for (const [name, fromFile, source, inGroups] of ways) {
    const expected = compressBatch(compress, pages.slice(), count, PS, skip, new Uint8Array(batchOutBytes(count, PS)), onePage, fromFile, source);
    runs.asked = runs.zero = 0;
    const got = compressBatch(compress, pages.slice(), count, PS, skip, new Uint8Array(batchOutBytes(count, PS)), grouped, fromFile, source);
    assert.deepEqual([...got.sizes], [...expected.sizes], name);
    assert.deepEqual(got.data, expected.data, name);
    assert.equal(got.sizes.filter((s) => s === PAGE_ZERO).length, count - notZero.length - 1, `${name}: every zero page found, none of the skipped one`);
    if (inGroups) assert.ok(runs.zero >= 2 && runs.asked > runs.zero, `${name}: groups were tested at once, some zero and some not (${runs.zero} of ${runs.asked})`);
  }
});

test("dump writer (kdump): every header field as makedumpfile fills it, from the crashed kernel's own data", async () => {
  const { core, compressor } = source();
  assert.deepEqual(crashedUtsname(core), { utsname: SYNTH_UTSNAME, source: "init_uts_ns" });
  const sink = new MemorySink();
  const r = await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, sink, compressor);
  assert.equal(r.complete, true);
  const out = sink.file();
  const h = out.kdump!.header;
  assert.deepEqual(h.utsname, SYNTH_UTSNAME, "nodename, version and domainname are the crashed kernel's (init_uts_ns)");
  assert.equal(h.header_version, KDUMP_HEADER_VERSION);
  assert.equal(h.status, DUMP_DH_COMPRESSED_LZO, "the codec's flag, no longer marked incomplete");
  assert.equal(h.timestampSec, core.vmcoreinfo!.crashTime, "timestamp: VMCOREINFO's CRASHTIME");
  assert.equal(h.timestampUsec, 0n);
  assert.equal(h.nr_cpus, 1);
  assert.equal(h.dump_level, 1);
  assert.equal(h.phys_base, BigInt.asUintN(64, core.vmcoreinfo!.numbers.get("phys_base")!));
  assert.equal(h.block_size, PS);
  assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!)), formatDmesg(readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!)));
});

test("dump writer (kdump): pages in pfn order in, the same pages out; zero pages share one stored page", async () => {
  const { core, s, compressor } = source();
  const sink = new MemorySink();
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, sink, compressor);
  const out = sink.file();
  for (const [pfn, page] of s.pages) assert.deepEqual(out.memory.readPage(BigInt(pfn)), page, `pfn ${pfn}`);
});

test("dump writer (kdump): the log's pages, stored ahead of the rest, are stored once: every byte of page data belongs to one descriptor", async () => {
  // 3,000 pages: the log's lie in one batch of several, between batches that do not reach them.
  const { core, compressor } = source(3000);
  const logFrames = [...printkPageFrames(vmcoreKernelMemory(core), core.vmcoreinfo!, PS)].map(Number);
  assert.ok(logFrames.length > 0, "the synthetic vmcore has a log");
  const sink = new MemorySink();
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, sink, compressor);
  const out = sink.file();
  const { fields } = readDiskDumpHeader(sink.bytes.subarray(0, PS));
  const descOffset = (1 + Number(fields.sub_hdr_size) + Number(fields.bitmap_blocks)) * PS;
  const descCount = Number(out.kdump!.dumpedPages);
  const dataOffset = descOffset + descCount * PAGE_DESC_SIZE;
  // Each place in the data is one page's (zero pages all share the first); stored twice, a page
  // would leave its first copy's bytes to no descriptor.
  const places = new Map<number, number>();
  for (let i = 0; i < descCount; i++) {
    const d = readStruct(PAGE_DESC, sink.bytes, descOffset + i * PAGE_DESC_SIZE);
    places.set(Number(d.offset), Number(d.size));
  }
  let covered = 0;
  for (const size of places.values()) covered += size;
  assert.equal(covered, sink.length - dataOffset, "the page data is exactly what the descriptors point at");
  for (const pfn of logFrames) assert.ok(out.memory.readPage(BigInt(pfn)), `log page ${pfn} is in the dump`);
});

test("dump writer (kdump): batches taken back while the writer waits, settled out of order, give the same file; buffers come from the compressor", async () => {
  const { core, s } = source(3000);
  const whole = new MemorySink();
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, whole, lzoCompressor(s.bytes));
  // Two "threads": every batch is held, as by a busy worker, until a macrotask later, unless the
  // writer takes it back first. Taking back settles the youngest held batch at once, ahead of
  // older ones still held, until the batch waited for is settled.
  const inner = lzoCompressor(s.bytes);
  // By their memory: the writer reuses a batch's buffers through views of its own.
  const fromCompressor = new WeakSet<ArrayBufferLike>();
  const held: { promise: Promise<CompressedBatch>; settle: () => void }[] = [];
  const asked: Promise<CompressedBatch>[] = [];
  let takenBack = 0;
  const release = (batch: (typeof held)[number]) => { held.splice(held.indexOf(batch), 1); batch.settle(); };
  const holding: BatchCompressor = {
    compressOne: inner.compressOne,
    parallel: 2,
    batchBuffer: (bytes) => { const b = new Uint8Array(bytes); fromCompressor.add(b.buffer); return b; },
    submit(pages, count, skip, out, extents) {
      assert.ok(fromCompressor.has(pages.buffer) && fromCompressor.has(out.buffer), "batch buffers from batchBuffer");
      let settle!: () => void;
      const promise = new Promise<CompressedBatch>((resolve, reject) => { settle = () => inner.submit(pages, count, skip, out, extents).then(resolve, reject); });
      const batch = { promise, settle };
      held.push(batch);
      setTimeout(() => { if (held.includes(batch)) release(batch); }, 0);
      return promise;
    },
    takeBack(waitingFor) {
      asked.push(waitingFor);
      if (!held.some((b) => b.promise === waitingFor)) return false;
      release(held[held.length - 1]!);
      takenBack++;
      return true;
    },
  };
  const sink = new MemorySink();
  assert.equal((await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, sink, holding)).complete, true);
  assert.deepEqual(sink.bytes.subarray(0, sink.length), whole.bytes.subarray(0, whole.length), "the same file");
  assert.ok(takenBack > 0 && asked.length > 0, `taken back ${takenBack} times of ${asked.length} asked`);
});

test("dump writer (kdump): a write error part-way leaves a marked, readable prefix and says where it stopped", async () => {
  const { core, s, compressor } = source(3000);
  const sink = new MemorySink(700_000);
  const r = await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, sink, compressor);
  assert.equal(r.complete, false);
  assert.match(r.missing!, /ENOSPC|no space/);
  assert.match(r.missing!, /pages from page frame 0x[0-9a-f]+ on/);
  const out = sink.file();
  assert.equal(out.incomplete, true);
  assert.ok(out.kdump!.header.status & DUMP_DH_COMPRESSED_INCOMPLETE);
  let kept = 0;
  for (const [pfn, page] of s.pages) {
    const got = out.memory.readPage(BigInt(pfn));
    if (got === undefined) continue;
    assert.deepEqual(got, page, `pfn ${pfn}`);
    kept++;
  }
  assert.ok(kept > 0 && kept < s.pages.size, `a prefix: ${kept} of ${s.pages.size} pages`);
  // The log was stored first: a dump cut short still answers dmesg.
  assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!)), formatDmesg(readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!)));
});

test("dump writer (ELF): a stop between chunks cuts the segments to what is in the file, marked incomplete", async () => {
  const { core, s } = source(3000);
  const whole = new MemorySink();
  assert.equal((await writeElfDump(core, { codec: "none", dumpLevel: 0, what: "synthetic" }, whole)).complete, true);
  const wholeFile = whole.file();
  for (const [pfn, page] of s.pages) assert.deepEqual(wholeFile.memory.readPage(BigInt(pfn)), page);
  assert.equal(whole.file().mark, "complete; dump level 0");
  const cut = new MemorySink();
  let chunks = 0;
  const r = await writeElfDump(core, { codec: "none", dumpLevel: 0, what: "synthetic" }, cut, { stopReason: () => (++chunks > 4 ? "stopped by SIGTERM" : undefined) });
  assert.equal(r.complete, false);
  // Four chunks: PT_LOAD 1 (the kernel text's 16 pages), then 768 pages of RAM from 0x100.
  assert.equal(r.missing, "stopped by SIGTERM; pages from page frame 0x400 on (8.7 MiB of page data) are missing");
  const out = cut.file();
  assert.equal(out.incomplete, true);
  assert.equal(out.mark, "incomplete; dump level 0; pages missing from page frame 0x400; stopped by SIGTERM");
  const filesz = out.elf!.loads.reduce((n, l) => n + l.p_filesz, 0n);
  assert.equal(filesz, r.bytesWritten, "p_filesz adds up to the bytes written");
  assert.ok(cut.length <= whole.length);
});

/**
 * A pipe to a slower reader (a flattened stream to ssh): writeAsync settles a turn of the event loop
 * later, as the reader takes the bytes. What the writer has handed over and not yet seen settle is
 * what a real pipe would hold in memory; sync writes are counted apart (copied, never waited for).
 */
class SlowPipeSink extends MemorySink {
  unsettled = 0;
  maxUnsettled = 0;
  syncBytes = 0;
  override write(offset: bigint, data: Uint8Array): void {
    this.syncBytes += data.length;
    super.write(offset, data);
  }
  override async writeAsync(offset: bigint, data: Uint8Array): Promise<void> {
    this.unsettled += data.length;
    this.maxUnsettled = Math.max(this.maxUnsettled, this.unsettled);
    await new Promise((r) => setTimeout(r, 0));
    // Taken now: the writer must not have changed the bytes while they waited.
    super.write(offset, data);
    this.unsettled -= data.length;
  }
}

test("dump writers into a slow pipe: the page data waits for the reader, a few batches at a time, never queued whole", async () => {
  const { core, s } = source(3000);
  const dumpBytes = 3000 * PS;
  // ELF: every chunk waited for (the whole dump was once queued through sync writes, 236 MiB of a 1 GiB vmcore's).
  const elfWhole = new MemorySink();
  await writeElfDump(core, { codec: "none", dumpLevel: 0, what: "synthetic" }, elfWhole);
  const elf = new SlowPipeSink();
  assert.equal((await writeElfDump(core, { codec: "none", dumpLevel: 0, what: "synthetic" }, elf)).complete, true);
  assert.deepEqual(elf.bytes.subarray(0, elf.length), elfWhole.bytes.subarray(0, elfWhole.length), "the same file");
  assert.ok(elf.syncBytes < 64 << 10, `${elf.syncBytes} bytes written without waiting: only the headers`);
  assert.ok(elf.maxUnsettled <= 256 * PS, `${elf.maxUnsettled} bytes waiting at once: one chunk`);
  // kdump: the bitmaps and the batches go through writeAsync; at most the batches in flight wait.
  const kdumpWhole = new MemorySink();
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, kdumpWhole, lzoCompressor(s.bytes));
  const kdump = new SlowPipeSink();
  assert.equal((await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, kdump, lzoCompressor(s.bytes))).complete, true);
  assert.deepEqual(kdump.bytes.subarray(0, kdump.length), kdumpWhole.bytes.subarray(0, kdumpWhole.length), "the same file");
  assert.ok(kdump.syncBytes < 128 << 10, `${kdump.syncBytes} bytes written without waiting: headers, the log's pages, their descriptors`);
  assert.ok(kdump.maxUnsettled <= 3 * 257 * PS && kdump.maxUnsettled < dumpBytes / 3, `${kdump.maxUnsettled} bytes waiting at once`);
});

test("a dump copied only in part reads as incomplete and says where it ends; damaged header sizes name their field", async () => {
  const { core, compressor } = source();
  const sink = new MemorySink();
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, sink, compressor);
  const whole = sink.bytes.slice(0, sink.length);
  assert.equal(openVmcore(bytesAccess(whole)).incomplete, false);
  // Its header still says complete: only the file's length tells (vmcore info had said complete).
  // Cut inside the bitmaps, the file cannot be read at all: the error names the fields.
  assert.throws(() => openVmcore(bytesAccess(whole.slice(0, 9000))), (e: Error) => e instanceof KexecError && /the bitmaps, by sub_hdr_size \d+ and bitmap_blocks \d+/.test(e.message));
  for (const cut of [whole.length - 1, whole.length - 5000]) {
    const part = openVmcore(bytesAccess(whole.slice(0, cut)));
    assert.equal(part.incomplete, true, `cut at ${cut}`);
    assert.match(part.cutShort!, new RegExp(`the file ends at 0x${cut.toString(16)}, but its (pages' data runs|\\d+ page descriptors run)`));
  }
  // Ending in zero pages, whose descriptors all point at the one zero page stored before the data
  // (the unwritten end of a log's ring buffer does this): the last descriptor alone said complete.
  const s = syntheticVmcore(600);
  const top = openVmcore(bytesAccess(s.bytes)).elf!.loads.reduce((a, l) => (l.p_paddr + l.p_memsz > a.p_paddr + a.p_memsz ? l : a));
  const dataEnd = Number(top.p_offset + top.p_filesz);
  s.bytes.fill(0, dataEnd - 20 * PS, dataEnd);
  const zeroTail = new MemorySink();
  await writeKdumpDump(openVmcore(bytesAccess(s.bytes), "synthetic"), { codec: "lzo", dumpLevel: 0, what: "synthetic" }, zeroTail, lzoCompressor(s.bytes));
  const tailWhole = zeroTail.bytes.slice(0, zeroTail.length);
  const k = openVmcore(bytesAccess(tailWhole)).kdump!;
  const descAt = (1 + k.header.sub_hdr_size + k.header.bitmap_blocks) * PS;
  const descOffset = (i: bigint) => readStruct(PAGE_DESC, tailWhole, descAt + Number(i) * PAGE_DESC_SIZE).offset;
  assert.ok(descOffset(k.dumpedPages - 1n) < descOffset(k.dumpedPages - 21n), "the last descriptors point back, at the zero page");
  assert.equal(openVmcore(bytesAccess(tailWhole)).cutShort, undefined);
  const tailCut = openVmcore(bytesAccess(tailWhole.slice(0, tailWhole.length - 5000)));
  assert.equal(tailCut.incomplete, true);
  assert.match(tailCut.cutShort!, /but its pages' data runs to/);
  const elf = syntheticVmcore(64).bytes;
  assert.equal(openVmcore(bytesAccess(elf)).cutShort, undefined);
  assert.match(openVmcore(bytesAccess(elf.slice(0, elf.length - 4096))).cutShort!, /PT_LOAD \d+'s data runs to/);
  // size_vmcoreinfo of 2^64 - 1: a KexecError naming it, not a RangeError from the allocation.
  const damaged = whole.slice();
  const view = new DataView(damaged.buffer);
  view.setBigUint64(PS + offsetOf(KDUMP_SUB_HEADER_64, "size_vmcoreinfo"), (1n << 64n) - 1n, true);
  assert.throws(() => openVmcore(bytesAccess(damaged)), (e: Error) => e instanceof KexecError && e.data.field === "size_vmcoreinfo" && /past the end of the file/.test(e.message));
});

test("dump writer (kdump): the 2nd bitmap a window at a time, read back from the file or made again for a stream, gives the same file as held whole", async () => {
  const { core, s } = source(3000);
  const whole = (o: Partial<DumpOptions>, from: Vmcore = core, sink = new MemorySink(), exclusion: DumpExclusion = {}) =>
    // The compressor reads an ELF source's pages from its bytes (a kdump source's come in the batch).
    writeKdumpDump(from, { codec: "lzo", dumpLevel: 1, what: "synthetic", ...o }, sink, lzoCompressor(s.bytes), {}, exclusion).then((r) => ({ r, sink }));
  // A file, read back; and a stream, which cannot be: there each window is made again for pass 2.
  const outputs = [
    ["read back", (limit = Infinity) => new ReadableMemorySink(limit)],
    ["made again", (limit = Infinity) => new MemorySink(limit)],
  ] as const;
  for (const [how, output] of outputs) {
    // 64 page frames per window: the synthetic machine's 3000 pages in 47 windows.
    for (const [level, o] of [["dump level 1", {}], ["dump level 0", { dumpLevel: 0 }]] as const) {
      const what = `${how}, ${level}`;
      const a = await whole(o);
      // Every bitmap the windows are made in is one window's bytes, never the whole machine's.
      const allocated: number[] = [];
      const b = await whole({ ...o, windowPages: 64 }, core, output(), { allocate: (n) => { allocated.push(n); return new Uint8Array(n); } });
      assert.equal(b.r.complete, true, what);
      assert.deepEqual(allocated, [64 / 8], `${what}: one window's buffer`);
      assert.equal(b.r.pagesWritten, a.r.pagesWritten, what);
      assert.deepEqual(b.r.counts, a.r.counts, `${what}: the exclusion counted once`);
      assert.deepEqual(b.sink.bytes.subarray(0, b.sink.length), a.sink.bytes.subarray(0, a.sink.length), `${what}: byte for byte`);
    }
    // Cut short, in a later window than the first: a batch ends at a window's end, so the cut
    // falls elsewhere than with the bitmap whole, but the prefix is as consistent. (Here the log's
    // pages are the first present ones; save.test.ts cuts a real vmcore below its log, whose
    // descriptors then move to the ranks the cut leaves.)
    const cuts = [
      ["cut short after 700 pages", { faultAfterPages: 700 }, Infinity],
      ["a full device after 600,000 bytes", { dumpLevel: 0 }, 600_000],
    ] as const;
    for (const [cutHow, o, limit] of cuts) {
      const what = `${how}, ${cutHow}`;
      const { r, sink } = await whole({ ...o, windowPages: 64 }, core, output(limit));
      assert.equal(r.complete, false, what);
      const out = sink.file();
      assert.equal(out.incomplete, true, what);
      let kept = 0n;
      for (const [pfn, page] of s.pages) {
        const got = out.memory.readPage(BigInt(pfn));
        if (got === undefined) continue;
        assert.deepEqual(got, page, `${what}: pfn ${pfn}`);
        kept++;
      }
      assert.ok(kept >= r.pagesWritten && kept < BigInt(s.pages.size), `${what}: a prefix, ${kept} of ${s.pages.size} pages (${r.pagesWritten} written in order, and the log's)`);
      assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!)), formatDmesg(readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!)), `${what}: the log`);
    }
    // A kdump source with pages missing (a dump cut short): each window drops what the source lacks.
    const cut = await whole({ faultAfterPages: 700 });
    const partial = cut.sink.file();
    assert.equal(partial.incomplete, true);
    const a = await whole({}, partial);
    const b = await whole({ windowPages: 64 }, partial, output());
    assert.equal(a.r.complete, true);
    assert.ok(a.r.pagesWritten < 3000n, `the source's ${a.r.pagesWritten} pages, not the machine's 3000`);
    assert.deepEqual(b.sink.bytes.subarray(0, b.sink.length), a.sink.bytes.subarray(0, a.sink.length), `${how}, a kdump source: byte for byte`);
  }
  // Windows that are not whole bytes of the bitmap are a caller's mistake.
  await assert.rejects(whole({ windowPages: 60 }, core, new ReadableMemorySink()), /not a positive multiple of 8/);
});

test("dump writer (kdump): a dump cut short names one page frame, the first dumpable page it lacks, wherever it stops", async () => {
  const { core, compressor } = source(3000);
  // Page frames 0x300-0x30f are not dumpable: batches are 256 dumpable pages from 0x100, so one
  // ends at 0x2ff and the next starts at 0x310. Every dumpable page below 0x310 is in the dump.
  const prepare = (b: Parameters<typeof prepareDumpBitmaps>[1]) => {
    prepareDumpBitmaps(core, b, 1, "synthetic");
    for (let p = 0x300; p < 0x310; p++) clearBit(b.dumpable, p - (b.dumpableFirst ?? 0));
  };
  const frames = (text: string) => text.match(/page frames? 0x[0-9a-f]+/g);
  // A read error in the batch that starts at 0x310 (at its page 0x320): the source's message names
  // its file offset, not a page frame.
  const failing: Vmcore = {
    ...core,
    memory: {
      pageSize: PS, ranges: core.memory.ranges,
      readPage: (pfn) => {
        if (pfn === 0x320n) throw new KexecError("io", "synthetic: 4096 bytes at offset 0x220000 run past the end of the file (0x21f000)", {});
        return core.memory.readPage(pfn);
      },
    },
  };
  const sink = new MemorySink();
  const read = await writeKdumpDump(failing, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, sink, compressor, {}, { prepare });
  assert.equal(read.complete, false);
  assert.match(read.missing!, /^read error in synthetic: 4096 bytes at offset 0x220000 run past the end of the file \(0x21f000\); /, "the file is named once");
  assert.deepEqual(frames(read.missing!), ["page frame 0x310"], read.missing);
  // The same read error reported by a compression thread.
  let batches = 0;
  const threads: BatchCompressor = {
    compressOne: compressor.compressOne,
    submit: (pages, count, skip, out, extents) => (++batches === 3 ? Promise.reject(new BatchReadError("synthetic: 4096 bytes at offset 0x220000 run past the end of the file (0x21f000)", pages, out)) : compressor.submit(pages, count, skip, out, extents)),
  };
  const inThread = await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, new MemorySink(), threads, {}, { prepare });
  assert.deepEqual(frames(inThread.missing!), ["page frame 0x310"], inThread.missing);
  // Stopped (a signal) after two batches: the next one, from 0x310, is what is missing.
  let asked = 0;
  const stopped = await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, new MemorySink(), compressor, { stopReason: () => (++asked > 3 ? "stopped by SIGTERM" : undefined) }, { prepare });
  assert.match(stopped.missing!, /^stopped by SIGTERM; pages from page frame 0x310 on \(about \d+ dumpable pages\) are missing$/);
  // Below that frame the dump has every dumpable page; from it on, only the log's (stored first).
  const out = sink.file();
  const log = new Set(printkPageFrames(vmcoreKernelMemory(core), core.vmcoreinfo!, PS).map(Number));
  for (let p = 0x100; p < 0xcb8; p++) {
    if (p >= 0x300 && p < 0x310) continue;
    assert.equal(out.memory.readPage(BigInt(p)) !== undefined, p < 0x310 || log.has(p), `page frame 0x${p.toString(16)}`);
  }
});

/** A file in memory that keeps where its reads reached: what a reader of headers must leave alone lies past them. */
function readsOf(bytes: Uint8Array): RandomAccess & { reach: number; bytesRead: number } {
  const inner = bytesAccess(bytes, "dump");
  const file = {
    size: inner.size,
    reach: 0,
    bytesRead: 0,
    read(offset: bigint, length: number): Uint8Array {
      file.reach = Math.max(file.reach, Number(offset) + length);
      file.bytesRead += length;
      return inner.read(offset, length);
    },
  };
  return file;
}

test("a dump's own header says whether it is whole, from its headers only; what it cannot tell is unknown, never an error", async () => {
  const { core, s, compressor } = source(3000);
  const head = (bytes: Uint8Array) => {
    const file = readsOf(bytes);
    const mark = readDumpHeaderMark(file, "dump");
    // Never the page data: a kdump header is all of what a kdump file is asked; an ELF core's headers and notes end where its first PT_LOAD's data starts.
    const elf = mark.format === "elf" && mark.says !== "unknown" ? openVmcore(bytesAccess(bytes)).elf : undefined;
    const headers = elf ? elf.headerEnd : mark.format === "kdump" ? BigInt(DISK_DUMP_HEADER_64.size) : undefined;
    if (headers !== undefined) assert.ok(file.reach <= headers, `read to ${file.reach}, past the headers' end at ${headers}`);
    return mark;
  };
  const kdump = new MemorySink();
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, kdump, compressor);
  assert.deepEqual(head(kdump.bytes.slice(0, kdump.length)), { format: "kdump", says: "complete", detail: "its header's status 0x2 at offset 424 lacks DUMP_DH_COMPRESSED_INCOMPLETE" });
  const kdumpCut = new MemorySink(700_000);
  await writeKdumpDump(core, { codec: "lzo", dumpLevel: 0, what: "synthetic" }, kdumpCut, compressor);
  assert.deepEqual(head(kdumpCut.bytes.slice(0, kdumpCut.length)), { format: "kdump", says: "incomplete", detail: "its header's status 0xa at offset 424 has DUMP_DH_COMPRESSED_INCOMPLETE: the writer stopped before the end" });

  const elf = new MemorySink();
  await writeElfDump(core, { codec: "none", dumpLevel: 0, what: "synthetic" }, elf);
  assert.deepEqual(head(elf.bytes.slice(0, elf.length)), { format: "elf", says: "complete", detail: 'its KEXEC-TS note says "complete; dump level 0"' });
  const elfCut = new MemorySink();
  let chunks = 0;
  await writeElfDump(core, { codec: "none", dumpLevel: 0, what: "synthetic" }, elfCut, { stopReason: () => (++chunks > 4 ? "stopped by SIGTERM" : undefined) });
  const cut = head(elfCut.bytes.slice(0, elfCut.length));
  assert.deepEqual([cut.format, cut.says], ["elf", "incomplete"]);
  assert.match(cut.detail, /^its KEXEC-TS note says "incomplete; dump level 0; pages missing from page frame 0x400; stopped by SIGTERM"$/);

  // Not ours to tell: /proc/vmcore's own ELF, a flattened stream, anything else, headers past what was read.
  assert.deepEqual([head(s.bytes).format, head(s.bytes).says], ["elf", "unknown"]);
  assert.match(head(s.bytes).detail, /without kexec-ts's KEXEC-TS note/);
  const flat = new Uint8Array(8192);
  flat.set(encodeFlatHeader());
  assert.deepEqual([head(flat).format, head(flat).says], ["flattened", "unknown"]);
  assert.deepEqual(head(new Uint8Array(0)), { format: null, says: "unknown", detail: "the file is empty" });
  assert.match(head(new TextEncoder().encode("not a dump at all")).detail, /^neither an ELF core nor a kdump-compressed file at offset 0/);
  const elfBytes = elf.bytes.slice(0, elf.length);
  const short = head(elfBytes.subarray(0, 256));
  assert.deepEqual([short.format, short.says], ["elf", "unknown"]);
  assert.match(short.detail, /^its header does not parse: \d+ bytes at offset 0x[0-9a-f]+ lie past the end of the file \(256 bytes\)$/, "cut in its notes");
  assert.match(head(elfBytes.subarray(0, 100)).detail, /^its header does not parse: the program header table ends at 0x[0-9a-f]+, past the end of the file \(0x64\)$/, "cut in its program headers");
  assert.equal(head(kdump.bytes.subarray(0, 100)).says, "unknown", "a kdump header cut short");
  // A read that fails is no damage to the header: said as a read error, in the reader's words.
  const failing: RandomAccess = {
    size: BigInt(elfBytes.length),
    read: (offset, length) => {
      // The headers from offset 0 read; the notes after them do not.
      if (offset === 0n) return elfBytes.subarray(0, length);
      throw new KexecError("io", `dump: read error at offset ${hex(offset)}: input/output error (EIO)`, { offset, errno: "EIO" }, "the source may be on a failing device");
    },
  };
  const notesAt = readStruct(ELF64_PHDR, elfBytes, ELF64_EHDR.size).p_offset;
  assert.deepEqual(readDumpHeaderMark(failing, "dump"), { format: "elf", says: "unknown", detail: `cannot read it: read error at offset ${hex(notesAt)}: input/output error (EIO)` });
});

test("a dump whose program headers are more than kdump list reads is of unknown completeness, said so with their size; only its ELF and section header are read", () => {
  const notes = encodeNote(KEXEC_TS_NOTE_NAME, NT_KEXEC_TS_COMPLETE, new TextEncoder().encode("complete; dump level 31"));
  const dump = (loads: number) => {
    const header = encodeElfCoreHeader("x86_64", Array.from({ length: loads }, (_, i) => ({ p_vaddr: 0n, p_paddr: BigInt(i) * 2n * BigInt(PS), p_offset: 0n, p_filesz: 0n, p_memsz: BigInt(PS) })), notes);
    return readsOf(header);
  };
  // One program header past the bound (with the PT_NOTE and the ELF header and section header 0 before the notes).
  const over = Math.floor((DUMP_LIST_HEADER_BYTES - ELF64_EHDR.size) / ELF64_PHDR.size);
  const big = dump(over);
  const tableEnd = ELF64_EHDR.size + (over + 1) * ELF64_PHDR.size;
  assert.ok(tableEnd > DUMP_LIST_HEADER_BYTES);
  assert.deepEqual(readDumpHeaderMark(big, "dump"), {
    format: "elf", says: "unknown",
    detail: `its ELF header and ${over + 1} program headers (PN_XNUM: the count in section header 0) take ${tableEnd} bytes (32.0 MiB), more than kdump list reads of a dump (32 MiB): kexec-ts vmcore info reads them all and says whether it is complete`,
  });
  assert.ok(big.bytesRead < 4096, `read ${big.bytesRead} bytes: the ELF header and section header 0, not the table`);
  // One fewer fits, and is read whole.
  const most = dump(over - 1);
  assert.deepEqual(readDumpHeaderMark(most, "dump"), { format: "elf", says: "complete", detail: 'its KEXEC-TS note says "complete; dump level 31"' });
});

/**
 * The 600-page synthetic machine with two runs of memory high above it, at 12 and 17 TiB: more
 * than a batch (256 pages) each; 17 TiB is page frame 2^32 + 2^28, which wrapped to 32 bits is
 * 1 TiB, where nothing is. A zero page in five; the others say their own page frame, so a page
 * stored at another frame shows. The exclusion leaves out a few pages of each high run (`left`),
 * cleared by their offset in the window, and `also` with them.
 */
function highMemory(also: Iterable<number> = []) {
  const { core: low, s, compressor } = source(600);
  const TiB = 1n << 40n;
  const highRuns = [[12n * TiB, 520], [17n * TiB, 700]] as const;
  const pages = new Map<number, Uint8Array>(s.pages);
  const ranges: PhysRange[] = [...low.memory.ranges];
  const left = new Set<number>(also);
  for (const [start, n] of highRuns) {
    const first = Number(start / BigInt(PS));
    ranges.push({ start, end: start + BigInt(n * PS) });
    for (let i = 0; i < n; i++) {
      const page = new Uint8Array(PS);
      if (i % 5 !== 0) for (let at = 0; at < PS; at += 16) { new DataView(page.buffer).setFloat64(at, first + i, true); page[at + 8] = at >>> 4; }
      pages.set(first + i, page);
      if (i % 7 === 3) left.add(first + i);
    }
  }
  const { elf: _, ...notElf } = low;
  const core: Vmcore = { ...notElf, memory: { pageSize: PS, ranges, readPage: (pfn) => pages.get(Number(pfn)) } };
  const exclusion = exclusionLeavingOut(left);
  const log = formatDmesg(readLockless(vmcoreKernelMemory(low), low.vmcoreinfo!));
  return { low, core, compressor, pages, ranges, left, exclusion, log, maxPfn: 17 * 2 ** 28 + 700 };
}

test("dump writer (kdump): memory at 12 and 17 TiB (page frames past 2^31 and 2^32), into a file and a stream: every page where it belongs, the header as makedumpfile writes it, read back by readKdump", async () => {
  const { core, compressor, pages, ranges, left, exclusion, log, maxPfn } = highMemory();
  const sorted = (pfns: Iterable<number>) => [...pfns].sort((a, b) => a - b);

  /** What a reader finds in the file: the header's fields, the bitmaps' page frames, and each dumped page by its descriptor. */
  const check = (file: SparseSink, dumped: number[], what: string) => {
    const { fields: d } = readDiskDumpHeader(file.read(0, PS));
    const sub = readStruct(KDUMP_SUB_HEADER_64, file.read(PS, KDUMP_SUB_HEADER_64.size), 0, { version: d.header_version });
    assert.equal(sub.max_mapnr_64, BigInt(maxPfn), `${what}: max_mapnr_64`);
    assert.equal(d.max_mapnr, 0xffffffff, `${what}: the 32-bit max_mapnr is MIN(max_mapnr, UINT_MAX), as makedumpfile's write_kdump_header fills it`);
    const bitmapAt = (1 + d.sub_hdr_size) * PS;
    const bitmapBytes = (d.bitmap_blocks * PS) / 2;
    assert.equal(bitmapBytes, Math.ceil(maxPfn / 8 / PS) * PS, `${what}: bitmap_blocks`);
    assert.deepEqual(file.setBits(bitmapAt, bitmapBytes), sorted(pages.keys()), `${what}: the 1st bitmap is the present page frames`);
    assert.deepEqual(file.setBits(bitmapAt + bitmapBytes, bitmapBytes), dumped, `${what}: the 2nd bitmap is the dumped page frames`);
    const rank = new Map(dumped.map((p, i) => [p, i]));
    const descAt = bitmapAt + d.bitmap_blocks * PS;
    const memory: PhysicalMemory = {
      pageSize: PS, ranges,
      readPage(pfn) {
        const i = rank.get(Number(pfn));
        if (i === undefined) return undefined;
        const desc = readStruct(PAGE_DESC, file.read(descAt + i * PAGE_DESC_SIZE, PAGE_DESC_SIZE), 0);
        const data = file.read(Number(desc.offset), desc.size);
        return desc.flags & DUMP_DH_COMPRESSED_LZO ? decompressPage("lzo", data, PS) : data;
      },
    };
    for (const p of dumped) assert.deepEqual(memory.readPage(BigInt(p)), pages.get(p), `${what}: page frame ${hex(p)}`);
    assert.equal(formatDmesg(readLockless(kernelMemory(memory, { machine: "x86_64", vmcoreinfo: core.vmcoreinfo!, aliases: [] }), core.vmcoreinfo!)), log, `${what}: the log`);
    return d;
  };

  const kept = sorted([...pages.keys()].filter((p) => !left.has(p)));
  const outputs = [["a file (windows read back)", new ReadableSparseSink()], ["a stream (windows made again)", new SparseSink()]] as const;
  for (const [what, sink] of outputs) {
    const r = await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic" }, sink, compressor, {}, exclusion);
    assert.equal(r.complete, true, what);
    assert.equal(r.pagesWritten, BigInt(kept.length), what);
    assert.equal(check(sink, kept, what).status, DUMP_DH_COMPRESSED_LZO, what);
  }
  assert.equal(outputs[1][1].length, outputs[0][1].length);
  assert.deepEqual(outputs[1][1].blocks, outputs[0][1].blocks, "the stream's file is the file, byte for byte");

  // Cut short in the 12 TiB run, after its first batch: the missing page frame named is there, and the prefix reads back.
  const high12 = kept.filter((p) => p >= 12 * 2 ** 28 && p < 13 * 2 ** 28);
  const lowCount = kept.length - high12.length - kept.filter((p) => p >= 17 * 2 ** 28).length;
  const cuts = [["a file cut short", new ReadableSparseSink()], ["a stream cut short", new SparseSink()]] as const;
  for (const [what, sink] of cuts) {
    const r = await writeKdumpDump(core, { codec: "lzo", dumpLevel: 1, what: "synthetic", faultAfterPages: lowCount + 256 }, sink, compressor, {}, exclusion);
    assert.equal(r.complete, false, what);
    assert.match(r.missing!, new RegExp(`pages from page frame ${hex(high12[256]!)} on`), what);
    const d = check(sink, kept.filter((p) => p < high12[256]!), what);
    assert.ok(d.status & DUMP_DH_COMPRESSED_INCOMPLETE, what);
  }
  assert.deepEqual(cuts[1][1].blocks, cuts[0][1].blocks, "cut short: the stream's file is the file, byte for byte");

  // Read back by readKdump, which streams the bitmaps and ranks a page in its block of the 2nd:
  // every page frame where the writer put it, past 2^31 and 2^32 (17 TiB wrapped to 32 bits is
  // 1 TiB, where nothing is), the present runs, the counts and the log.
  const access = (f: SparseSink, patch?: (head: Uint8Array) => void): RandomAccess => {
    const head = f.read(0, 2 * PS);
    patch?.(head);
    return { size: BigInt(f.length), read: (offset, n) => (offset + BigInt(n) <= BigInt(head.length) ? head.slice(Number(offset), Number(offset) + n) : f.read(Number(offset), n)) };
  };
  const readBack = (f: SparseSink, dumped: number[], what: string) => {
    const dump = openVmcore(access(f), what);
    const k = dump.kdump!;
    assert.equal(k.header.max_mapnr, BigInt(maxPfn), what);
    assert.equal(k.presentPages, BigInt(pages.size), `${what}: present pages`);
    assert.equal(k.dumpedPages, BigInt(dumped.length), `${what}: dumped pages`);
    const present = sorted(pages.keys());
    const runs: PhysRange[] = [];
    for (const p of present) {
      const last = runs.at(-1);
      if (last !== undefined && last.end === BigInt(p) * BigInt(PS)) last.end += BigInt(PS);
      else runs.push({ start: BigInt(p) * BigInt(PS), end: BigInt(p + 1) * BigInt(PS) });
    }
    assert.deepEqual(k.memory.ranges, runs, `${what}: the 1st bitmap's runs`);
    const stored = new Set(dumped);
    const edges = [2 ** 28, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 12 * 2 ** 28 + 2 ** 21, 17 * 2 ** 28 - 1, maxPfn - 1];
    for (const p of [...present, ...edges]) {
      assert.equal(k.memory.hasPage!(BigInt(p)), stored.has(p), `${what}: hasPage(${hex(p)})`);
      assert.deepEqual(k.memory.readPage(BigInt(p)), stored.has(p) ? pages.get(p) : undefined, `${what}: page frame ${hex(p)}`);
    }
    assert.equal(k.memory.readPage(BigInt(maxPfn)), undefined, `${what}: max_mapnr itself`);
    assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(dump), dump.vmcoreinfo!)), log, `${what}: the log`);
    return dump;
  };
  assert.equal(readBack(outputs[0][1], kept, "a file").incomplete, false);
  assert.equal(readBack(cuts[0][1], kept.filter((p) => p < high12[256]!), "a file cut short").incomplete, true);

  // Past 2^40 page frames (4 PiB) the header is refused by name; at 2^40 the bitmaps are too short for it.
  const maxMapnrAt = PS + offsetOf(KDUMP_SUB_HEADER_64, "max_mapnr_64");
  const withMaxMapnr = (n: bigint) => access(outputs[0][1], (head) => new DataView(head.buffer).setBigUint64(maxMapnrAt, n, true));
  assert.throws(() => readKdump(withMaxMapnr((1n << 40n) + 1n), "dump"), (e: Error) => e instanceof KexecError && e.data.field === "max_mapnr_64" && e.data.offset === maxMapnrAt &&
    e.data.expected === "<= 0x10000000000" && e.data.actual === "0x10000000001" && /kexec-ts reads kdump files of memory below 0x10000000000000/.test(e.message) && /makedumpfile/.test(e.hint ?? ""));
  assert.throws(() => readKdump(withMaxMapnr(1n << 40n), "dump"), (e: Error) => e instanceof KexecError && e.data.field === "bitmap_blocks");
});

type Segment = { p_paddr: bigint; p_memsz: bigint; p_vaddr: bigint };

/**
 * The PT_LOADs as the ELF writer planned them from the whole bitmap before it planned them a
 * window at a time (708e8fa's planElfLoads, with the bitmap as a function): the rules to keep.
 */
function wholeBitmapElfLoads(segs: readonly Segment[], dumpable: (pfn: number) => boolean, ps: number) {
  const P = BigInt(ps);
  const loads: { p_paddr: bigint; p_vaddr: bigint; p_filesz: bigint; p_memsz: bigint }[] = [];
  const MIN_GAP = 256;
  for (const s of segs) {
    const first = Number(s.p_paddr / P);
    const end = Number((s.p_paddr + s.p_memsz + P - 1n) / P);
    let p = first;
    while (p < end) {
      const runStart = p;
      let last = -1;
      let q = p;
      while (q < end) {
        if (dumpable(q)) { last = q; q++; continue; }
        let g = q;
        while (g < end && !dumpable(g)) g++;
        if (g < end && g - q < MIN_GAP && last >= 0) { q = g; continue; }
        break;
      }
      const fileEnd = last >= 0 ? last + 1 : runStart;
      let tailEnd = fileEnd;
      while (tailEnd < end && !dumpable(tailEnd)) tailEnd++;
      const start = BigInt(runStart) * P < s.p_paddr ? s.p_paddr : BigInt(runStart) * P;
      const stop = BigInt(tailEnd) * P > s.p_paddr + s.p_memsz ? s.p_paddr + s.p_memsz : BigInt(tailEnd) * P;
      const fileStop = BigInt(fileEnd) * P > stop ? stop : BigInt(fileEnd) * P;
      const unmapped = s.p_vaddr === 0n || s.p_vaddr === 0xffffffffn || s.p_vaddr === 0xffffffffffffffffn;
      loads.push({ p_paddr: start, p_vaddr: unmapped ? 0n : s.p_vaddr + (start - s.p_paddr), p_filesz: fileStop > start ? fileStop - start : 0n, p_memsz: stop - start });
      p = tailEnd;
    }
  }
  return loads;
}

test("dump writer (ELF): the PT_LOADs planned a window at a time are those planned from the whole bitmap, whatever the windows", () => {
  // A small linear congruential generator: the same cases on every run.
  let seed = 12345;
  const random = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
  for (let round = 0; round < 200; round++) {
    const maxPfn = 8 + random(4000);
    // Runs of dumpable and excluded pages, some excluded runs about the 256 pages that split a PT_LOAD, or longer.
    const bits = new Uint8Array(Math.ceil(maxPfn / 8));
    for (let p = 0, on = random(2) === 0; p < maxPfn; on = !on) {
      const run = random(6) === 0 ? 255 + random(3) : 1 + random(random(4) === 0 ? 600 : 40);
      if (on) for (let q = p; q < Math.min(maxPfn, p + run); q++) bits[q >>> 3]! |= 1 << (q & 7);
      p += run;
    }
    // Overlapping segments, unaligned ones, one of no bytes, a kernel alias (mapped) among them.
    const segs: Segment[] = [];
    for (let n = 1 + random(5); n > 0; n--) {
      const start = BigInt(random(maxPfn)) * BigInt(PS) + BigInt(random(3) === 0 ? random(PS) : 0);
      const size = BigInt(random(maxPfn)) * BigInt(PS) + BigInt(random(3) === 0 ? random(PS) : 0);
      segs.push({ p_paddr: start, p_memsz: size, p_vaddr: random(2) === 0 ? 0n : 0xffffffff80000000n + start });
    }
    const expected = wholeBitmapElfLoads(segs, (p) => p < maxPfn && (bits[p >>> 3]! & (1 << (p & 7))) !== 0, PS);
    for (const windowPages of [8, 64, 8 * (1 + random(100)), Math.ceil(maxPfn / 8) * 8]) {
      const planner = new ElfLoadPlanner(segs, PS);
      for (let first = 0; first < maxPfn; first += windowPages) planner.feed(bits.subarray(first / 8, Math.ceil(Math.min(maxPfn, first + windowPages) / 8)), first);
      assert.deepEqual(planner.finish(), expected, `round ${round}, windows of ${windowPages}`);
    }
  }
});

test("dump writer (ELF): the segments planned a window at a time give the same file as one window", async () => {
  const { core } = source(3000);
  // A long excluded run across windows, from inside the RAM segment, and short gaps kept as data.
  const prepare = (b: Parameters<typeof prepareDumpBitmaps>[1]) => {
    const first = b.dumpableFirst ?? 0;
    for (let i = 0; i < b.dumpable.length * 8; i++) if ((first + i >= 0x300 && first + i < 0x420) || (first + i) % 13 === 0) clearBit(b.dumpable, i);
  };
  for (const dumpLevel of [0, 1]) {
    const one = new MemorySink();
    const a = await writeElfDump(core, { codec: "none", dumpLevel, what: "synthetic" }, one, {}, { prepare });
    const allocated: number[] = [];
    const windowed = new MemorySink();
    const b = await writeElfDump(core, { codec: "none", dumpLevel, what: "synthetic", windowPages: 64 }, windowed, {}, { prepare, allocate: (n) => { allocated.push(n); return new Uint8Array(n); } });
    assert.deepEqual(allocated, [64 / 8], "one window's buffer");
    assert.deepEqual(b.counts, a.counts, `dump level ${dumpLevel}: the counts`);
    assert.ok(one.file().elf!.loads.some((l) => l.p_filesz < l.p_memsz), "an excluded tail");
    assert.deepEqual(windowed.bytes.subarray(0, windowed.length), one.bytes.subarray(0, one.length), `dump level ${dumpLevel}: byte for byte`);
  }
});

test("dump writer (ELF): memory at 12 and 17 TiB (page frames past 2^31 and 2^32): the PT_LOADs, every page where it belongs, the log; cut short there too", async () => {
  const TiB = 1n << 40n;
  const at12 = Number((12n * TiB) / BigInt(PS));
  const at17 = Number((17n * TiB) / BigInt(PS));
  // The 12 TiB run starts with 260 pages excluded (a PT_LOAD of no data first); the 17 TiB run has 300 in its middle (a split).
  const also = [...Array(260).keys()].map((i) => at12 + i).concat([...Array(300).keys()].map((i) => at17 + 300 + i));
  const { low, core, pages, ranges, left, exclusion, log } = highMemory(also);
  const logFrames = new Set(printkPageFrames(vmcoreKernelMemory(low), low.vmcoreinfo!, PS).map(Number));
  const present = (p: number) => ranges.some((r) => BigInt(p) * BigInt(PS) < r.end && BigInt(p + 1) * BigInt(PS) > r.start);
  const isZero = (page: Uint8Array) => page.every((b) => b === 0);
  // Dump level 1: the exclusion's pages and the zero ones left out, but for the log's, which stay.
  const dumpable = (p: number) => present(p) && (logFrames.has(p) || (!left.has(p) && pages.get(p) !== undefined && !isZero(pages.get(p)!)));
  const segs = ranges.map((r) => ({ p_paddr: r.start, p_memsz: r.end - r.start, p_vaddr: 0n }));
  const expected = wholeBitmapElfLoads(segs, dumpable, PS);
  const P = BigInt(PS);
  // What the rules make of the high runs, by hand: i % 5 == 0 is a zero page, i % 7 == 3 excluded.
  assert.deepEqual(expected.slice(-5), [
    { p_paddr: 12n * TiB, p_vaddr: 0n, p_filesz: 0n, p_memsz: 261n * P }, // 0-259 excluded, 260 a zero page
    { p_paddr: 12n * TiB + 261n * P, p_vaddr: 0n, p_filesz: 259n * P, p_memsz: 259n * P },
    { p_paddr: 17n * TiB, p_vaddr: 0n, p_filesz: 0n, p_memsz: P }, // a zero page
    { p_paddr: 17n * TiB + P, p_vaddr: 0n, p_filesz: 299n * P, p_memsz: 600n * P }, // 300-599 excluded, 600 a zero page
    { p_paddr: 17n * TiB + 601n * P, p_vaddr: 0n, p_filesz: 99n * P, p_memsz: 99n * P },
  ]);
  const fileParts = expected.filter((l) => l.p_filesz > 0n);
  const inFile = (p: number) => fileParts.some((l) => BigInt(p) * P >= l.p_paddr && BigInt(p + 1) * P <= l.p_paddr + l.p_filesz);

  const sink = new MemorySink();
  const r = await writeElfDump(core, { codec: "none", dumpLevel: 1, what: "synthetic" }, sink, {}, exclusion);
  assert.equal(r.complete, true);
  const out = sink.file();
  assert.deepEqual(out.elf!.loads.map(({ p_paddr, p_vaddr, p_filesz, p_memsz }) => ({ p_paddr, p_vaddr, p_filesz, p_memsz })), expected, "the PT_LOADs");
  assert.equal(r.pagesWritten * P, expected.reduce((n, l) => n + l.p_filesz, 0n));
  const zeroExcluded = [...pages].filter(([p, page]) => isZero(page) && !left.has(p) && !logFrames.has(p)).length;
  assert.equal(r.counts.zero, BigInt(zeroExcluded), "zero pages counted once each");
  // Every page: in a PT_LOAD's file part it reads back as it was (short gaps kept as data too);
  // elsewhere it is in an excluded tail, which reads as zeros.
  for (const [p, page] of pages) assert.deepEqual(out.memory.readPage(BigInt(p)), inFile(p) ? page : new Uint8Array(PS), `page frame ${hex(p)}`);
  assert.ok(inFile(at17 + 299) && !inFile(at17 + 300) && inFile(at17 + 601) && inFile(at12 + 262), "the runs' edges");
  assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!)), log, "the log");

  // Cut short in the 17 TiB run, after its first chunk (256 pages): the page frame named is there, past 2^32.
  const before17 = Number(expected.filter((l) => l.p_paddr < 17n * TiB).reduce((n, l) => n + l.p_filesz, 0n) / P);
  const cut = new MemorySink();
  const c = await writeElfDump(core, { codec: "none", dumpLevel: 1, what: "synthetic", faultAfterPages: before17 + 256 }, cut, {}, exclusion);
  assert.equal(c.complete, false);
  assert.match(c.missing!, new RegExp(`pages from page frame ${hex(at17 + 1 + 256)} on`));
  const cutOut = cut.file();
  assert.equal(cutOut.incomplete, true);
  assert.equal(cutOut.elf!.loads.reduce((n, l) => n + l.p_filesz, 0n), c.bytesWritten, "p_filesz adds up to the bytes written");
  for (const p of [at12 + 261, at12 + 519, at17 + 1, at17 + 256]) assert.deepEqual(cutOut.memory.readPage(BigInt(p)), pages.get(p), `cut short: page frame ${hex(p)}`);
  assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(cutOut), cutOut.vmcoreinfo!)), log, "cut short: the log");

  // Beyond 4 PiB (page frame 2^40), refused by name, as the kdump writer refuses it.
  const { elf: _, ...notElf } = low;
  const tooHigh: Vmcore = { ...notElf, memory: { pageSize: PS, ranges: [...low.memory.ranges, { start: (1n << 52n) - P, end: (1n << 52n) + P }], readPage: () => undefined } };
  await assert.rejects(writeElfDump(tooHigh, { codec: "none", dumpLevel: 0, what: "synthetic" }, new MemorySink()),
    (e: Error) => e instanceof KexecError && /reaches page frame 0x10000000001; kexec-ts saves ELF dumps of memory below 0x10000000000000 \(4 PiB/.test(e.message) && /makedumpfile/.test(e.hint ?? ""));
});

/**
 * More PT_LOADs than e_phnum holds: the 600-page synthetic machine, then at 1 TiB a range split
 * by excluded runs of exactly 256 pages (makedumpfile's PFN_EXCLUDED: each dumped page after
 * one starts a PT_LOAD), then 68,000 one-page ranges a page apart (a PT_LOAD each, one in 50
 * dumped). About 70,600 PT_LOADs, 3,400 pages of data at 1 TiB and up.
 */
function fragmentedMemory() {
  const { core: low, s } = source(600);
  const SPLITS = 2000;
  const SINGLES = 68_000;
  const splitFirst = 2 ** 28;
  const splitEnd = splitFirst + 257 * SPLITS;
  const singleFirst = splitEnd + 256;
  const pages = new Map<number, Uint8Array>(s.pages);
  const dumpedHigh = new Set<number>();
  const pageOf = (pfn: number) => {
    const page = new Uint8Array(PS);
    for (let at = 0; at < PS; at += 16) { new DataView(page.buffer).setFloat64(at, pfn, true); page[at + 8] = at >>> 4; }
    return page;
  };
  for (let k = 0; k < SPLITS; k++) dumpedHigh.add(splitFirst + 257 * k + 256);
  for (let i = 0; i < SINGLES; i += 50) dumpedHigh.add(singleFirst + 2 * i);
  for (const p of dumpedHigh) pages.set(p, pageOf(p));
  const P = BigInt(PS);
  const ranges: PhysRange[] = [...low.memory.ranges, { start: BigInt(splitFirst) * P, end: BigInt(splitEnd) * P }];
  for (let i = 0; i < SINGLES; i++) ranges.push({ start: BigInt(singleFirst + 2 * i) * P, end: BigInt(singleFirst + 2 * i + 1) * P });
  const highPresent = (p: number) => (p >= splitFirst && p < splitEnd) || (p >= singleFirst && p < singleFirst + 2 * SINGLES && (p - singleFirst) % 2 === 0);
  const zero = new Uint8Array(PS);
  const { elf: _, ...notElf } = low;
  const core: Vmcore = { ...notElf, memory: { pageSize: PS, ranges, readPage: (pfn) => pages.get(Number(pfn)) ?? (highPresent(Number(pfn)) ? zero : undefined) } };
  // The exclusion: every high page but the dumped ones (the low machine's zero pages go at dump level 1).
  const exclusion: DumpExclusion = {
    prepare: (b) => {
      const first = b.dumpableFirst ?? 0;
      const end = first + b.dumpable.length * 8;
      for (let p = Math.max(first, splitFirst); p < Math.min(end, singleFirst + 2 * SINGLES); p++) if (!dumpedHigh.has(p)) clearBit(b.dumpable, p - first);
    },
  };
  return { low, core, pages, ranges, exclusion, dumpedHigh, highPresent, splitFirst, splitEnd, singleFirst, SPLITS, SINGLES };
}

test("dump writer (ELF): 70,000 PT_LOADs, past e_phnum's 16 bits: PN_XNUM and the count in section header 0, every PT_LOAD and page read back", async (t) => {
  const m = fragmentedMemory();
  const { low, core, pages, exclusion, highPresent } = m;
  const logFrames = new Set(printkPageFrames(vmcoreKernelMemory(low), low.vmcoreinfo!, PS).map(Number));
  const lowRanges = low.memory.ranges;
  const present = (p: number) => highPresent(p) || lowRanges.some((r) => BigInt(p) * BigInt(PS) < r.end && BigInt(p + 1) * BigInt(PS) > r.start);
  const isZero = (page: Uint8Array) => page.every((b) => b === 0);
  const dumpable = (p: number) => present(p) && (logFrames.has(p) || (pages.get(p) !== undefined && !isZero(pages.get(p)!)));
  const segs = m.ranges.map((r) => ({ p_paddr: r.start, p_memsz: r.end - r.start, p_vaddr: 0n }));
  const expected = wholeBitmapElfLoads(segs, dumpable, PS);
  const P = BigInt(PS);
  const lowLoads = expected.filter((l) => l.p_paddr < BigInt(m.splitFirst) * P).length;
  // The split range: its first 256 pages a PT_LOAD of no data, then one per dumped page, its 256 excluded pages the tail.
  assert.equal(expected.length, lowLoads + 1 + m.SPLITS + m.SINGLES, "one PT_LOAD per split and per range");
  assert.ok(expected.length + 1 > 0x10000, `${expected.length} PT_LOADs`);
  t.diagnostic(`${expected.length} PT_LOADs, ${expected.length + 1} program headers`);
  assert.deepEqual(expected[lowLoads + 1], { p_paddr: BigInt(m.splitFirst + 256) * P, p_vaddr: 0n, p_filesz: P, p_memsz: 257n * P });

  const sink = new MemorySink();
  const r = await writeElfDump(core, { codec: "none", dumpLevel: 1, what: "synthetic" }, sink, {}, exclusion);
  assert.equal(r.complete, true);
  const bytes = sink.bytes.subarray(0, sink.length);
  const phnum = expected.length + 1;
  const h = readStruct(ELF64_EHDR, bytes, 0);
  const tableEnd = ELF64_EHDR.size + phnum * ELF64_PHDR.size;
  assert.deepEqual([h.e_phnum, h.e_shoff, h.e_shentsize, h.e_shnum, h.e_shstrndx], [PN_XNUM, BigInt(tableEnd), ELF64_SHDR.size, 1, 0], "the ELF header");
  const sh = readStruct(ELF64_SHDR, bytes, tableEnd);
  assert.deepEqual([sh.sh_type, sh.sh_size, sh.sh_link, sh.sh_info], [SHT_NULL, 1n, 0, phnum], "section header 0: the count in sh_info");
  const note = readStruct(ELF64_PHDR, bytes, ELF64_EHDR.size);
  assert.deepEqual([note.p_type, note.p_offset], [PT_NOTE, BigInt(tableEnd + ELF64_SHDR.size)], "the notes after the section header");

  const out = sink.file();
  assert.deepEqual(out.elf!.loads.map(({ p_paddr, p_vaddr, p_filesz, p_memsz }) => ({ p_paddr, p_vaddr, p_filesz, p_memsz })), expected, "every PT_LOAD");
  // The data right after the notes, at a page boundary, each PT_LOAD's after the one before.
  let offset = BigInt(Math.ceil((tableEnd + ELF64_SHDR.size + Number(note.p_filesz)) / PS) * PS);
  for (const l of out.elf!.loads) {
    if (l.p_filesz === 0n) continue;
    assert.equal(l.p_offset, offset, `PT_LOAD ${l.index}'s data`);
    offset += l.p_filesz;
  }
  assert.equal(BigInt(sink.length), offset, "the file ends with the last PT_LOAD's data");
  assert.equal(r.pagesWritten * P, expected.reduce((n, l) => n + l.p_filesz, 0n));

  // Every present page: as it was where a PT_LOAD's file part holds it, zeros in an excluded tail.
  const inFile = new Set<number>();
  for (const l of expected) for (let p = Number(l.p_paddr / P); p < Number((l.p_paddr + l.p_filesz) / P); p++) inFile.add(p);
  for (const p of m.dumpedHigh) assert.ok(inFile.has(p), `page frame ${hex(p)} in the file`);
  const zero = new Uint8Array(PS);
  let checked = 0;
  for (const range of m.ranges) {
    for (let p = Number(range.start / P); p < Number(range.end / P); p++, checked++) {
      const page = out.memory.readPage(BigInt(p));
      const want = inFile.has(p) ? pages.get(p) ?? zero : zero;
      if (page === undefined || Buffer.compare(page, want) !== 0) assert.fail(`page frame ${hex(p)}: ${page === undefined ? "absent" : "differs"}`);
    }
  }
  assert.equal(checked, m.SPLITS * 257 + m.SINGLES + 600, "every page of the memory");
  assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!)), formatDmesg(readLockless(vmcoreKernelMemory(low), low.vmcoreinfo!)), "the log");
});
