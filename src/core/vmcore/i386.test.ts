/**
 * i386 vmcores: an ELF32 core of a PAE, FLATMEM kernel, built here with the structure
 * layouts a real Debian 6.1.0-50-686-pae crash reported (testdata/vmcore), and the 32-bit
 * kdump header layout makedumpfile's i386 build writes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ByteWriter } from "../bytes/writer.js";
import { concatBytes } from "../bytes/reader.js";
import { EM_386, ET_CORE, PT_LOAD, PT_NOTE } from "../image/elf.js";
import { encodeNote } from "./elf-writer.js";
import { formatDmesg, printkPageFrames, readLockless } from "./dmesg.js";
import { excludeByPageFlags, presentBitmaps, testBit } from "./exclude.js";
import { summarizeVmcore } from "./info.js";
import { DISK_DUMP_HEADER_32, encodeKdumpHeaders, planKdumpLayout, readKdump } from "./kdump.js";
import { offsetOf } from "../bytes/layout.js";
import { bytesAccess } from "./memory.js";
import { parseVmcoreInfo } from "./vmcoreinfo.js";
import { openVmcore, vmcoreKernelMemory } from "./vmcore.js";

const fixture = readFileSync(new URL("../../../testdata/vmcore/vmcoreinfo-6.1.0-50-686-pae.txt", import.meta.url), "latin1");
const real = parseVmcoreInfo(fixture);
const PS = 4096;
const PAGES = 128;
const PAGE_OFFSET = 0xc0000000;
/** Where the data ring is mapped: past the direct map, reachable only through the page tables. */
const VMALLOC = 0xf8000000;
const RING_PHYS_PAGE = 100;

const off = (k: string) => real.offsets.get(k)!;
const sz = (k: string) => real.sizes.get(k)!;

interface I386Core {
  bytes: Uint8Array;
  messages: string[];
}

/**
 * RAM is pfn 0..127 at paddr 0. swapper_pg_dir (page 1) -> pmd (page 2) -> pte (page 3) maps
 * PAGE_OFFSET.. to pfn 0..127 with 4 KiB pages; a second pte page (4) maps VMALLOC to pfn 100,
 * where the printk text ring lives. The PT_LOAD says p_vaddr 0xffffffff, as kexec-tools
 * writes for memory it cannot place: nothing may trust it.
 */
function i386Core(): I386Core {
  const ram = new Uint8Array(PAGES * PS);
  const dv = new DataView(ram.buffer);
  const u64 = (at: number, v: bigint) => dv.setBigUint64(at, v, true);
  const u32 = (at: number, v: number) => dv.setUint32(at, v >>> 0, true);
  const va = (phys: number) => PAGE_OFFSET + phys;
  // Page tables (PAE: 8-byte entries; PDPT entry 3 covers 0xc0000000-0xffffffff).
  u64(1 * PS + 3 * 8, BigInt(2 * PS) | 1n);
  u64(2 * PS + 0 * 8, BigInt(3 * PS) | 0x63n);
  u64(2 * PS + ((VMALLOC >>> 21) & 0x1ff) * 8, BigInt(4 * PS) | 0x63n);
  for (let p = 0; p < PAGES; p++) u64(3 * PS + p * 8, BigInt(p * PS) | 0x63n);
  u64(4 * PS, BigInt(RING_PHYS_PAGE * PS) | 0x8000000000000063n); // NX set: the walk must mask it
  // printk: prb (page 5) -> ring at +0x100; descs page 6, infos page 7, text ring at VMALLOC.
  const prbVar = 5 * PS;
  const ring = prbVar + 0x100;
  u32(prbVar, va(ring));
  const descRing = ring + off("printk_ringbuffer.desc_ring");
  const textRing = ring + off("printk_ringbuffer.text_data_ring");
  const countBits = 4;
  u32(descRing + off("prb_desc_ring.count_bits"), countBits);
  u32(descRing + off("prb_desc_ring.descs"), va(6 * PS));
  u32(descRing + off("prb_desc_ring.infos"), va(7 * PS));
  u32(textRing + off("prb_data_ring.size_bits"), 12);
  u32(textRing + off("prb_data_ring.data"), VMALLOC);
  const messages = ["Linux version 6.1.0-50-686-pae", "KEXEC-TS-VMCORE-MARK: a line", "a second line\nwith two", "Kernel panic - not syncing: sysrq triggered crash"];
  const firstId = 0x3ffffffe; // ids wrap at 2^30 on 32-bit: the last two are 0 and 1
  const idMask = (1 << 30) - 1;
  let lpos = 0;
  messages.forEach((text, k) => {
    const id = (firstId + k) & idMask;
    const index = id % (1 << countBits);
    const body = new TextEncoder().encode(text);
    const begin = lpos;
    u32(RING_PHYS_PAGE * PS + begin, id);
    ram.set(body, RING_PHYS_PAGE * PS + begin + 4);
    lpos += (4 + body.length + 3) & ~3;
    const d = 6 * PS + index * sz("prb_desc");
    u32(d + off("prb_desc.state_var"), ((2 << 30) | id) >>> 0);
    u32(d + off("prb_desc.text_blk_lpos") + off("prb_data_blk_lpos.begin"), begin);
    u32(d + off("prb_desc.text_blk_lpos") + off("prb_data_blk_lpos.next"), lpos);
    const inf = 7 * PS + index * sz("printk_info");
    u64(inf + off("printk_info.seq"), BigInt(k));
    u64(inf + off("printk_info.ts_nsec"), BigInt(k) * 1_500_000_000n);
    dv.setUint16(inf + off("printk_info.text_len"), body.length, true);
  });
  u32(descRing + off("prb_desc_ring.head_id") + off("atomic_long_t.counter"), (firstId + messages.length - 1) & idMask);
  u32(descRing + off("prb_desc_ring.tail_id") + off("atomic_long_t.counter"), firstId);
  // FLATMEM: the mem_map pointer (page 5 + 0x40) -> struct page[128] from page 10.
  const memMapVar = prbVar + 0x40;
  const memMap = 10 * PS;
  u32(memMapVar, va(memMap));
  const page = (pfn: number) => memMap + pfn * sz("page");
  const bit = (name: string) => 1 << Number(real.numbers.get(name)!);
  // pfn 20..23: a free order-2 buddy block; 30: page cache; 31: anonymous; 40: page cache with private data.
  u32(page(20) + off("page._mapcount"), Number(real.numbers.get("PAGE_BUDDY_MAPCOUNT_VALUE")!));
  u32(page(20) + off("page.private"), 2);
  u32(page(30) + off("page.flags"), bit("PG_lru"));
  u32(page(30) + off("page.mapping"), 0xc1234560);
  u32(page(31) + off("page.flags"), bit("PG_lru") | bit("PG_swapbacked"));
  u32(page(31) + off("page.mapping"), 0xc1234561);
  u32(page(40) + off("page.flags"), bit("PG_lru") | bit("PG_private"));
  u32(page(40) + off("page.mapping"), 0xc1234560);
  for (let p = 0; p < PAGES; p++) u32(page(p) + off("page._refcount"), 1);

  // The real VMCOREINFO with this core's addresses in place of the crashed kernel's.
  const symbols: Record<string, number> = { swapper_pg_dir: va(1 * PS), prb: va(prbVar), mem_map: va(memMapVar), _stext: va(0x10000), init_uts_ns: va(8 * PS) };
  const info = fixture.split("\n").map((l) => {
    const m = /^SYMBOL\(([^)]+)\)=/.exec(l);
    return m && symbols[m[1]!] !== undefined ? `SYMBOL(${m[1]})=${symbols[m[1]!]!.toString(16)}` : l;
  }).join("\n");
  const notes = concatBytes([encodeNote("CORE", 1, new Uint8Array(144)), encodeNote("CORE", 1, new Uint8Array(144)), encodeNote("VMCOREINFO", 0, new TextEncoder().encode(info))]);
  // ELF32: header (52), PT_NOTE and one PT_LOAD (32 each), notes, then RAM from a page boundary.
  const dataAt = PS;
  const w = new ByteWriter(dataAt + ram.length);
  [0x7f, 0x45, 0x4c, 0x46, 1, 1, 1].forEach((b, i) => w.u8(i, b));
  w.u16(16, ET_CORE);
  w.u16(18, EM_386);
  w.u32(20, 1);
  w.u32(28, 52);
  w.u16(40, 52);
  w.u16(42, 32);
  w.u16(44, 2);
  w.u32(52, PT_NOTE);
  w.u32(56, 116);
  w.u32(68, notes.length);
  w.u32(72, notes.length);
  w.u32(84, PT_LOAD);
  w.u32(88, dataAt);
  w.u32(92, 0xffffffff);
  w.u32(96, 0);
  w.u32(100, ram.length);
  w.u32(104, ram.length);
  w.u32(108, 7);
  w.bytesAt(116, notes);
  w.bytesAt(dataAt, ram);
  return { bytes: w.finish(), messages };
}

test("VMCOREINFO of Debian 6.1 686-pae: FLATMEM mem_map, PAE, 4-byte printk words", () => {
  assert.equal(real.osRelease, "6.1.0-50-686-pae");
  assert.equal(real.other.get("CONFIG_X86_PAE"), "y");
  assert.ok(real.symbols.has("mem_map") && !real.symbols.has("mem_section"), "flat memory model");
  assert.equal(real.sizes.get("page"), 40);
  assert.equal(real.sizes.get("atomic_long_t"), 4);
  assert.equal(real.offsets.get("prb_desc.text_blk_lpos"), 4);
});

test("i386 ELF32 core: PAE walk (direct map and vmalloc), dmesg with 32-bit ids that wrap, info", () => {
  const c = i386Core();
  const core = openVmcore(bytesAccess(c.bytes));
  assert.equal(core.machine, "i386");
  assert.equal(core.cpus, 2);
  const mem = vmcoreKernelMemory(core);
  assert.equal(mem.pointerSize, 4);
  assert.equal(mem.translate(0xc0005123n), 0x5123n);
  assert.equal(mem.translate(BigInt(VMALLOC) + 0x10n), BigInt(RING_PHYS_PAGE * PS + 0x10));
  const records = readLockless(mem, core.vmcoreinfo!);
  assert.deepEqual(records.map((r) => r.text), c.messages);
  assert.match(formatDmesg(records), /^\[    4\.500000\] Kernel panic - not syncing: sysrq triggered crash$/m);
  const frames = printkPageFrames(mem, core.vmcoreinfo!, PS);
  for (const f of [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, BigInt(RING_PHYS_PAGE)]) assert.ok(frames.includes(f), `printk page frames include ${f}`);
  const s = summarizeVmcore(core);
  assert.equal(s.arch, "i386");
  assert.equal(s.pagingLevels, 3);
  assert.equal(s.kernelVersion, "6.1.0-50-686-pae");
});

test("i386 dump levels read 4-byte struct page fields from the flat mem_map", () => {
  const core = openVmcore(bytesAccess(i386Core().bytes));
  const mem = vmcoreKernelMemory(core);
  const only = (level: number) => {
    const b = presentBitmaps(core.memory.ranges, PS);
    excludeByPageFlags(mem, core.vmcoreinfo!, b, level, PS);
    return b;
  };
  const all = only(31);
  assert.deepEqual({ ...all.counts }, { zero: 0n, cache: 1n, cachePrivate: 1n, user: 1n, free: 4n, hwpoison: 0n });
  for (const p of [20, 21, 22, 23, 30, 31, 40]) assert.equal(testBit(all.dumpable, p), false, `pfn ${p} excluded`);
  for (const p of [0, 19, 24, 29, 32, 41]) assert.equal(testBit(all.dumpable, p), true, `pfn ${p} kept`);
  assert.deepEqual({ ...only(16).counts }, { zero: 0n, cache: 0n, cachePrivate: 0n, user: 0n, free: 4n, hwpoison: 0n });
  assert.deepEqual({ ...only(2).counts }, { zero: 0n, cache: 1n, cachePrivate: 0n, user: 0n, free: 0n, hwpoison: 0n });
});

test("kdump header for i386: makedumpfile's 32-bit layout (status at 412, 80-byte sub header), and it reads back", () => {
  const notes = new Uint8Array(40);
  const input = {
    utsname: { sysname: "Linux", nodename: "host", release: "6.1.0-50-686-pae", version: "#1 SMP", machine: "i386", domainname: "(none)" }, timestampSec: 0x6b043bd3n, status: 2, blockSize: 4096,
    maxMapnr: 0x3ffddn, nrCpus: 2, physBase: 0n, dumpLevel: 31, noteBytes: notes, vmcoreinfoInNotes: { offset: 20, size: 16 }, descCount: 0n,
  };
  const layout = planKdumpLayout(input);
  const h = encodeKdumpHeaders(input, layout);
  const dv = new DataView(h.buffer);
  // Offsets as in a file Debian's i386 makedumpfile 1.7.2 wrote (-l -d 31 of a 686-pae 6.1 vmcore).
  assert.equal(dv.getUint32(404, true), 0x6b043bd3); // timestamp.tv_sec
  assert.equal(dv.getUint32(412, true), 2); // status
  assert.equal(dv.getUint32(416, true), 4096); // block_size
  assert.equal(dv.getUint32(420, true), 1); // sub_hdr_size
  assert.equal(dv.getUint32(424, true), 16); // bitmap_blocks
  assert.equal(dv.getUint32(428, true), 0x3ffdd); // max_mapnr
  assert.equal(dv.getUint32(448, true), 2); // nr_cpus
  assert.equal(offsetOf(DISK_DUMP_HEADER_32, "nr_cpus"), 448);
  assert.equal(dv.getUint32(4096 + 4, true), 31); // dump_level
  assert.equal(dv.getBigUint64(4096 + 20, true), 4096n + 80n + 20n); // offset_vmcoreinfo
  assert.equal(dv.getUint32(4096 + 28, true), 16); // size_vmcoreinfo
  assert.equal(dv.getBigUint64(4096 + 32, true), 4096n + 80n); // offset_note: right after the 80-byte sub header
  assert.equal(dv.getUint32(4096 + 40, true), 40); // size_note
  assert.equal(dv.getBigUint64(4096 + 72, true), 0x3ffddn);
  const file = new Uint8Array(Number(layout.dataOffset) + 4096);
  file.set(h);
  const k = readKdump(bytesAccess(file));
  assert.equal(k.header.utsname.machine, "i386");
  assert.equal(k.header.timestampSec, 0x6b043bd3n);
  assert.equal(k.header.dump_level, 31);
  assert.equal(k.header.nr_cpus, 2);
  assert.equal(k.header.size_note, 40n);
  assert.equal(k.header.max_mapnr, 0x3ffddn);
  assert.equal(openVmcore(bytesAccess(file)).machine, "i386");
});
