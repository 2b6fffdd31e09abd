/**
 * The dump readers fuzzed (src/core/testing/fuzz.ts says the rule): the flattened-format
 * reader, the page-table walks behind every kernel virtual address, and the page-flag
 * exclusion that reads struct pages for -d. The walks and the exclusion are seeded from the
 * real 6.1 dump CI captures (lab/scenarios/vmcore-amd64-6.1.json keeps it in the cache) with
 * its VMCOREINFO and its page-table and mem_map pages damaged; random memory stands in on a
 * machine without it. Each run is bounded: the exclusion scans only the dump's first
 * 256 MiB, and every walk is at most five table reads. The ELF core reader is fuzzed here where
 * its header has extended numbering (PN_XNUM), the count in section header 0.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import fc from "fast-check";
import { concatBytes } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { damaged, onlyKexecErrors, refusals } from "../testing/fuzz.js";
import { readLockless } from "./dmesg.js";
import { excludeByPageFlags, presentBitmaps } from "./exclude.js";
import { encodeFlatHeader, encodeFlatRecordHeader, FLAT_END, FlatReassembler, parseFlat, type FlatRecord } from "./flat.js";
import { kernelMemory } from "./kernel-memory.js";
import { bytesAccess, type PhysicalMemory, type RandomAccess } from "./memory.js";
import { syntheticVmcore } from "./testing.js";
import { openVmcore, readDumpHeaderMark } from "./vmcore.js";
import { DISK_DUMP_HEADER_64 } from "./kdump.js";
import { offsetOf } from "../bytes/layout.js";
import { ELF64_EHDR, ELF64_PHDR, ELF64_SHDR, PN_XNUM } from "../image/elf.js";
import { encodeElfCoreHeader } from "./elf-writer.js";
import { parseVmcoreInfo, type VmcoreInfo } from "./vmcoreinfo.js";
import { cachedVmcorePath } from "../../node/kernel-cache.js";
import { missingInput } from "../../node/test-inputs.js";
import { openRandomAccess } from "../../node/vmcore/file.js";


test("fuzz: the flattened-format reader on damaged streams: records stay inside the stream", (t) => {
  const record = (offset: bigint, data: Uint8Array) => [encodeFlatRecordHeader(offset, data.length), data];
  const seed = concatBytes([encodeFlatHeader(), ...record(0n, new Uint8Array(64).fill(1)), ...record(4096n, new Uint8Array(100).fill(2)), ...record(0x10_0000_0000n, new Uint8Array(0)), FLAT_END]);
  assert.equal(parseFlat(seed).length, 3, "the seed is a whole stream");
  const header = 4096;
  refusals(t, fc.oneof(damaged(seed, header, seed.length), damaged(seed, 0, 32)), 800, (bytes) => onlyKexecErrors(() => {
    let total = 0;
    for (const r of parseFlat(bytes)) {
      assert.ok(r.offset >= 0n, "a record's offset in the file is never negative");
      total += 16 + r.data.length;
    }
    assert.ok(header + total + 16 <= bytes.length, "the records and the end marker fit in the stream");
  }, "flattened stream"));
});

/** Records as the file they place: runs merged where one continues the last, so chunking cannot change them. */
function placed(records: readonly FlatRecord[]): [bigint, number[]][] {
  const out: [bigint, number[]][] = [];
  for (const r of records) {
    const last = out[out.length - 1];
    if (last && last[0] + BigInt(last[1].length) === r.offset) last[1].push(...r.data);
    else out.push([r.offset, [...r.data]]);
  }
  return out;
}

test("fuzz: the flattened stream read from a pipe in random chunks places the same bytes as read whole, or fails the same way", () => {
  const record = (offset: bigint, data: Uint8Array) => [encodeFlatRecordHeader(offset, data.length), data];
  const seed = concatBytes([encodeFlatHeader(), ...record(0n, new Uint8Array(700).fill(1)), ...record(700n, new Uint8Array(0)), ...record(9000n, new Uint8Array(333).fill(2)), FLAT_END]);
  fc.assert(fc.property(damaged(seed, 4096, seed.length), fc.array(fc.integer({ min: 1, max: 900 }), { minLength: 1, maxLength: 12 }), (bytes, cuts) => {
    let whole: [bigint, number[]][] | string;
    try {
      whole = placed(parseFlat(bytes));
    } catch (e) {
      assert.ok(e instanceof KexecError, String(e));
      whole = "refused";
    }
    const r = new FlatReassembler();
    const got: FlatRecord[] = [];
    let chunked: [bigint, number[]][] | string;
    try {
      let at = 0;
      for (let i = 0; at < bytes.length; i++) {
        const n = cuts[i % cuts.length]!;
        got.push(...r.push(bytes.subarray(at, at + n)));
        at += n;
      }
      r.end();
      chunked = placed(got);
    } catch (e) {
      assert.ok(e instanceof KexecError, String(e));
      chunked = "refused";
    }
    assert.deepEqual(chunked, whole);
  }), { numRuns: 400 });
});

/** PhysicalMemory over a page map, with every page `fill` when absent from it. */
function pagesMemory(pages: Map<bigint, Uint8Array>, fill: (pfn: bigint) => Uint8Array | undefined): PhysicalMemory {
  return { pageSize: 4096, ranges: [{ start: 0n, end: 1n << 32n }], readPage: (pfn) => pages.get(pfn) ?? fill(pfn) };
}

const MACHINES = ["x86_64", "i386"] as const;

test("fuzz: page-table walks over random tables: any entry, any address, either arch, 4- or 5-level, PAE or not", (t) => {
  const arbitrary = fc.record({
    machine: fc.constantFrom(...MACHINES),
    seed: fc.nat(),
    top: fc.oneof(fc.constantFrom(0xffffffff81000000n, 0xc1000000n, 0xffffffff80000000n, 0n), fc.bigUintN(64)),
    physBase: fc.oneof(fc.constant(0n), fc.bigUintN(64), fc.bigIntN(64)),
    l5: fc.constantFrom("0", "1", "2", "-1"),
    pae: fc.boolean(),
    vaddrs: fc.array(fc.oneof(fc.bigUintN(64), fc.constantFrom(0xffff888000000000n, 0xffffea0000000000n, 0xc0000000n, 0xffffffffffffffffn)), { minLength: 1, maxLength: 6 }),
    read: fc.nat(9000),
  });
  refusals(t, arbitrary, 400, ({ machine, seed, top, physBase, l5, pae, vaddrs, read }) => {
    // Page-table pages of random entries, present bit and large-page bit set often.
    let x = seed | 1;
    const rand = () => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return x >>> 0; };
    const fill = (pfn: bigint): Uint8Array | undefined => {
      if (pfn > 0xfffffn && rand() % 4 === 0) return undefined; // not in the dump
      const page = new Uint8Array(4096);
      const dv = new DataView(page.buffer);
      for (let i = 0; i < 512; i++) dv.setBigUint64(i * 8, (BigInt(rand() & 0xfffff) << 12n) | BigInt(rand() & 0x1ff) | (rand() % 3 ? 1n : 0n), true);
      return page;
    };
    const text = [`SYMBOL(${machine === "x86_64" ? "init_top_pgt" : "swapper_pg_dir"})=${top.toString(16)}`, `NUMBER(phys_base)=${physBase}`, `NUMBER(pgtable_l5_enabled)=${l5}`,
      ...(pae ? ["CONFIG_X86_PAE=y"] : []), "SYMBOL(_stext)=ffffffff81000000"].join("\n");
    const mem = kernelMemory(pagesMemory(new Map(), fill), { machine, vmcoreinfo: parseVmcoreInfo(text), aliases: [] });
    let refused = false;
    for (const v of vaddrs) {
      refused = onlyKexecErrors(() => mem.translate(v), "page-table walk") || refused;
      refused = onlyKexecErrors(() => mem.read(v, read, "fuzz"), "page-table walk") || refused;
      onlyKexecErrors(() => mem.pageTablePages(v), "page-table walk");
    }
    return refused;
  });
});

// ---- the real dump: damaged VMCOREINFO, page tables and struct pages ----

const REAL = cachedVmcorePath("amd64-6.1");

/** VMCOREINFO lines the walks, the exclusion and dmesg read; edits aim at them most of the time. */
const READ_KEYS = /^(SIZE\((page|mem_section)\)|OFFSET\((page|mem_section|printk|prb)[^)]*\)|NUMBER\((PG_|PAGE_BUDDY|HUGETLB|SECTION_SIZE|phys_base|pgtable_l5|sme_mask|KERNEL_IMAGE)[^)]*\)|SYMBOL\((init_top_pgt|mem_section|mem_map|prb|_stext)\)|LENGTH\(mem_section\)|PAGESIZE|KERNELOFFSET)=/;
const VALUES = ["0", "1", "-1", "3", "7", "12", "27", "63", "64", "65", "4095", "4096", "65536", "2147483647", "4294967296", "9223372036854775807", "-9223372036854775808",
  "18446744073709551615", "ffffffffffffffff", "0", "x", ""];

/** Edits to VMCOREINFO: a key given another value, or dropped (undefined); small, so a failing case reads well. */
function vmcoreinfoEdits(text: string): fc.Arbitrary<[string, string | undefined][]> {
  const keys = text.split("\n").filter((l) => l.includes("=")).map((l) => l.slice(0, l.indexOf("=")));
  const read = keys.filter((k) => READ_KEYS.test(`${k}=`));
  const edit = fc.tuple(
    fc.oneof({ arbitrary: fc.constantFrom(...read), weight: 4 }, { arbitrary: fc.constantFrom(...keys), weight: 1 }),
    fc.option(fc.oneof(fc.constantFrom(...VALUES), fc.bigInt({ min: -(1n << 64n), max: 1n << 64n }).map(String), fc.bigUintN(64).map((v) => v.toString(16))), { freq: 5, nil: undefined }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 4 });
}

/** `text` with each edited key's line replaced (or dropped); keys it lacks are added. */
function withEdits(text: string, list: readonly [string, string | undefined][]): string {
  const edits = new Map(list);
  const lines = text.split("\n").flatMap((l) => {
    const key = l.slice(0, l.indexOf("="));
    if (!edits.has(key)) return [l];
    const value = edits.get(key);
    edits.delete(key);
    return value === undefined ? [] : [`${key}=${value}`];
  });
  for (const [key, value] of edits) if (value !== undefined) lines.push(`${key}=${value}`);
  return lines.join("\n");
}

test("fuzz: the real 6.1 dump with damaged VMCOREINFO, page tables and struct pages: walks, page-flag exclusion and dmesg", (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (run: node dist/lab/capture-vmcore.js, or the e2e suite's vmcore-amd64-6.1)`);
  const file = openRandomAccess(REAL);
  try {
    const core = openVmcore(file, REAL);
    const info = core.vmcoreinfo!;
    const aliases = core.elf!.loads.map((l) => ({ vaddr: l.p_vaddr, paddr: l.p_paddr, size: l.p_memsz }));
    const clean = kernelMemory(core.memory, { machine: core.machine, vmcoreinfo: info, aliases });
    // The pages worth damaging: the tables that map mem_map and the direct map, and the first struct pages.
    const memSection = info.symbols.get("mem_section")!;
    const vmemmap = clean.ulong(clean.ulong(memSection, "mem_section root"), "section_mem_map") & ~0x3fn;
    const physical = [...clean.pageTablePages(vmemmap), ...clean.pageTablePages(memSection), clean.translate(vmemmap), clean.translate(vmemmap + 4096n)];
    const targets = [...new Set(physical.map((a) => a / 4096n))];
    assert.ok(targets.length >= 4, `page-table and mem_map pages found: ${targets.length}`);
    const clip = core.memory.ranges.map((r) => ({ start: r.start, end: r.end < 256n << 20n ? r.end : 256n << 20n })).filter((r) => r.start < r.end);
    const arbitrary = fc.record({
      vmcoreinfo: fc.oneof({ arbitrary: vmcoreinfoEdits(info.text), weight: 3 }, { arbitrary: fc.constant([]), weight: 1 }),
      pageEdits: fc.array(fc.tuple(fc.constantFrom(...targets), fc.nat(4095 >> 3), fc.oneof(fc.bigUintN(64), fc.constantFrom(0n, 1n, 0x83n, 0xffffffffffffffffn))), { maxLength: 6 }),
      level: fc.integer({ min: 0, max: 31 }),
    });
    refusals(t, arbitrary, 150, ({ vmcoreinfo: infoEdits, pageEdits, level }) => {
      const edited = new Map<bigint, Uint8Array>();
      for (const [pfn, slot, value] of pageEdits) {
        const page = edited.get(pfn) ?? core.memory.readPage(pfn)?.slice();
        if (page === undefined) continue;
        new DataView(page.buffer).setBigUint64(slot * 8, value, true);
        edited.set(pfn, page);
      }
      const phys: PhysicalMemory = { pageSize: core.memory.pageSize, ranges: clip, readPage: (pfn) => edited.get(pfn) ?? core.memory.readPage(pfn) };
      return onlyKexecErrors(() => {
        const vmcoreinfo = parseVmcoreInfo(withEdits(info.text, infoEdits));
        const mem = kernelMemory(phys, { machine: core.machine, vmcoreinfo, aliases });
        const bitmaps = presentBitmaps(clip, 4096);
        excludeByPageFlags(mem, vmcoreinfo, bitmaps, level, 4096);
        const excluded = Object.values(bitmaps.counts).reduce((a, b) => a + b, 0n);
        assert.ok(excluded <= bitmaps.presentPages, `excluded ${excluded} of ${bitmaps.presentPages} present pages`);
        readLockless(mem, vmcoreinfo);
      }, "damaged real dump");
    }, 0.02);
  } finally {
    file.close();
  }
});

// ---- what the fuzzing found, pinned: VMCOREINFO values no kernel writes are refused, named ----

test("found by fuzzing: a VMCOREINFO offset or bit number that cannot be is a KexecError naming the key, not a RangeError or TypeError", () => {
  const s = syntheticVmcore(24);
  const core = openVmcore(bytesAccess(s.bytes));
  const text = core.vmcoreinfo!.text;
  const withPage = `${text}SYMBOL(mem_section)=ffff888000100000\nSIZE(mem_section)=16\nOFFSET(mem_section.section_mem_map)=0\nNUMBER(SECTION_SIZE_BITS)=27\nSIZE(page)=64\n` +
    "OFFSET(page.flags)=0\nOFFSET(page.mapping)=24\nOFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nOFFSET(page.compound_head)=8\nNUMBER(PG_lru)=4\n";
  const refused = (edits: [string, string | undefined][], run: (info: VmcoreInfo) => unknown, key: string) => {
    const info = parseVmcoreInfo(withEdits(withPage, edits));
    const mem = kernelMemory(core.memory, { machine: "x86_64", vmcoreinfo: info, aliases: core.elf!.loads.map((l) => ({ vaddr: l.p_vaddr, paddr: l.p_paddr, size: l.p_memsz })) });
    assert.throws(() => run(info), (e: unknown) => e instanceof KexecError && e.data.field === key && /impossible/.test(e.message), `${key}: ${JSON.stringify(edits)}`);
    return mem;
  };
  const mem = kernelMemory(core.memory, { machine: "x86_64", vmcoreinfo: core.vmcoreinfo!, aliases: core.elf!.loads.map((l) => ({ vaddr: l.p_vaddr, paddr: l.p_paddr, size: l.p_memsz })) });
  // dmesg: printk_info.seq far outside the 88-byte printk_info (a RangeError from a DataView before).
  refused([["OFFSET(printk_info.seq)", "324185"]], (info) => readLockless(mem, info), "OFFSET(printk_info.seq)");
  refused([["SIZE(printk_info)", "0"]], (info) => readLockless(mem, info), "SIZE(printk_info)");
  // The exclusion: a struct page field past SIZE(page) (a TypeError from BigInt(undefined) before),
  // a page-flag bit past 63 (a RangeError from BigInt), impossible section geometry.
  const exclude = (info: VmcoreInfo) => excludeByPageFlags(mem, info, presentBitmaps(core.memory.ranges, 4096), 31, 4096);
  refused([["OFFSET(page.compound_dtor)", "1458112"]], exclude, "OFFSET(page.compound_dtor)");
  refused([["OFFSET(page.flags)", "60"]], exclude, "OFFSET(page.flags)");
  refused([["NUMBER(PG_lru)", "4294967296"]], exclude, "NUMBER(PG_lru)");
  refused([["NUMBER(SECTION_SIZE_BITS)", "3"]], exclude, "NUMBER(SECTION_SIZE_BITS)");
  refused([["NUMBER(SECTION_SIZE_BITS)", "100"]], exclude, "NUMBER(SECTION_SIZE_BITS)");
  refused([["SIZE(mem_section)", "24"]], exclude, "SIZE(mem_section)");
});

/** A RandomAccess as big as a large machine's /proc/vmcore: `head` at offset 0, zeros after; it counts what is read. */
function hugeFile(head: Uint8Array, size = 64n << 30n): RandomAccess & { bytesRead: number } {
  const file = {
    size,
    bytesRead: 0,
    read(offset: bigint, length: number): Uint8Array {
      file.bytesRead += length;
      if (length > 256 << 20) throw new Error(`a reader asked for ${length} bytes at once`);
      const out = new Uint8Array(length);
      if (offset < BigInt(head.length)) out.set(head.subarray(Number(offset), Number(offset) + length));
      return out;
    },
  };
  return file;
}

test("found by review: a damaged ELF core header cannot make the reader read GiBs (e_phoff far out, thousands of large PT_NOTEs)", () => {
  const s = syntheticVmcore(24);
  // e_phoff 32 GiB into a 64 GiB file: the header would have been read from 0 to there.
  const farTable = s.bytes.slice(0, 4096);
  new DataView(farTable.buffer).setBigUint64(32, 32n << 30n, true);
  const far = hugeFile(farTable);
  assert.throws(() => openVmcore(far), (e: unknown) => e instanceof KexecError && e.data.field === "e_phoff");
  assert.ok(far.bytesRead < 1 << 20, `read ${far.bytesRead} bytes`);
  // 4000 PT_NOTEs of 15 MiB each: 60 GB of notes, each one under the old per-note limit.
  const phnum = 4000;
  const head = new Uint8Array(64 + phnum * 56);
  head.set(s.bytes.subarray(0, 64));
  const dv = new DataView(head.buffer);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(56, phnum, true);
  for (let i = 0; i < phnum; i++) {
    dv.setUint32(64 + i * 56, 4, true); // PT_NOTE
    dv.setBigUint64(64 + i * 56 + 8, 1n << 30n, true); // zeros there: an empty note area each
    dv.setBigUint64(64 + i * 56 + 32, 15n << 20n, true);
  }
  const notes = hugeFile(head);
  assert.throws(() => openVmcore(notes), (e: unknown) => e instanceof KexecError && /PT_NOTE \d+ claims \d+ bytes \(\d+ with the PT_NOTEs before it\)/.test(e.message));
  assert.ok(notes.bytesRead < 64 << 20, `read ${notes.bytesRead} bytes`);
});

test("fuzz: what kdump list reads of a vmcore's header never throws: a damaged header is of unknown completeness", () => {
  const elf = syntheticVmcore(64).bytes.slice(0, 64 * 1024);
  const kdump = new Uint8Array(4096);
  kdump.set(new TextEncoder().encode("KDUMP   "));
  kdump.set(new TextEncoder().encode("x86_64"), offsetOf(DISK_DUMP_HEADER_64, "utsname.machine"));
  kdump.set([0, 0x10, 0, 0], offsetOf(DISK_DUMP_HEADER_64, "block_size"));
  const heads = fc.oneof(damaged(elf, 0, 512), damaged(kdump, 0, DISK_DUMP_HEADER_64.size));
  fc.assert(fc.property(heads, fc.bigUintN(40), (head, size) => {
    // The file says it goes on past the bytes given; a read there fails, as in a file cut meanwhile.
    const mark = readDumpHeaderMark({ ...bytesAccess(head), size: BigInt(head.length) + size });
    assert.ok(["complete", "incomplete", "unknown"].includes(mark.says) && mark.detail.length > 0);
  }), { numRuns: 600 });
});

test("fuzz: an ELF core with extended numbering (PN_XNUM): damaged ELF and section headers, cut anywhere, give a KexecError or the dump", (t) => {
  // The synthetic dump's notes and 65,534 PT_LOADs of no data: the least that needs PN_XNUM.
  const notes = openVmcore(bytesAccess(syntheticVmcore(24).bytes)).noteBytes;
  const loads = Array.from({ length: PN_XNUM - 1 }, (_, i) => ({ p_vaddr: 0n, p_paddr: BigInt(0x100000 + 2 * i * 4096), p_offset: 0n, p_filesz: 0n, p_memsz: 4096n }));
  const seed = encodeElfCoreHeader("x86_64", loads, notes);
  const shoff = ELF64_EHDR.size + PN_XNUM * ELF64_PHDR.size;
  assert.equal(openVmcore(bytesAccess(seed)).elf!.loads.length, PN_XNUM - 1, "the seed reads");
  const edits = fc.oneof(damaged(seed, 0, ELF64_EHDR.size, 3), damaged(seed, shoff, shoff + ELF64_SHDR.size, 3), damaged(seed, ELF64_EHDR.size, ELF64_EHDR.size + 3 * ELF64_PHDR.size, 3));
  refusals(t, edits, 120, (bytes) => onlyKexecErrors(() => openVmcore(bytesAccess(bytes), "xnum core"), "PN_XNUM core"));
});
