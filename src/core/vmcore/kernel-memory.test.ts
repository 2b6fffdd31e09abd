/**
 * Reading a crashed kernel's virtual addresses through its own page tables, over a small
 * hand-built x86_64 memory: an address that is not mapped, or whose page-table page is not in
 * the dump, is an error that names what was being read (the symbol, the VMCOREINFO key, the
 * struct) and where, not only the bare address.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { KexecError } from "../errors.js";
import { PageTableBuilder } from "../pgtable/build.js";
import { readLockless } from "./dmesg.js";
import { excludeByPageFlags, presentBitmaps } from "./exclude.js";
import { aliasFinder, kernelMemory, START_KERNEL_MAP, type AliasLookup, type VirtualAlias } from "./kernel-memory.js";
import type { PhysicalMemory } from "./memory.js";
import { parseVmcoreInfo } from "./vmcoreinfo.js";

const MiB = 1n << 20n;
const PAGE_OFFSET = 0xffff888000000000n;
/** In vmalloc space: no entry of the tables below maps it. */
const UNMAPPED = 0xffffc90000000000n;
/** The "kernel image" (mapped at START_KERNEL_MAP + paddr, phys_base 0): where the symbols live. */
const TEXT = 16n * MiB;
const RAM = 64n * MiB;
const WALK_HINT = "in a dump, a filtered level (-d) may lack the page-table page this walk needs; a lower level keeps more";

/**
 * 64 MiB of RAM: the direct map in 2 MiB pages, page tables from 2 MiB up. `words` are
 * 8-byte values to write at physical addresses; `missing` are page frames left out of the dump.
 */
function machine(words: [bigint, bigint][], vmcoreinfo: string, missing: (b: PageTableBuilder) => bigint[] = () => [], aliases: readonly VirtualAlias[] = []) {
  let next = 2n * MiB;
  const b = new PageTableBuilder("x86_64-4level", () => { const at = next; next += 4096n; return at; });
  b.map(PAGE_OFFSET, 0n, RAM, { maxPageSize: 2n * MiB });
  const pages = new Map<bigint, Uint8Array>();
  for (const [at, page] of b.pages) pages.set(at / 4096n, page);
  for (const [at, value] of words) {
    const pfn = at / 4096n;
    const page = pages.get(pfn) ?? new Uint8Array(4096);
    new DataView(page.buffer).setBigUint64(Number(at % 4096n), value, true);
    pages.set(pfn, page);
  }
  const gone = new Set(missing(b).map((a) => a / 4096n));
  const zero = new Uint8Array(4096);
  const phys: PhysicalMemory = {
    pageSize: 4096,
    ranges: [{ start: 0n, end: RAM }],
    readPage: (pfn) => (gone.has(pfn) || pfn >= RAM / 4096n ? undefined : pages.get(pfn) ?? zero),
  };
  const info = parseVmcoreInfo(`SYMBOL(init_top_pgt)=${(START_KERNEL_MAP + b.top).toString(16)}\nNUMBER(phys_base)=0\n${vmcoreinfo}`);
  return { mem: kernelMemory(phys, { machine: "x86_64", vmcoreinfo: info, aliases }), info, builder: b };
}

const failure = (run: () => unknown): KexecError => {
  try {
    run();
  } catch (e) {
    assert.ok(e instanceof KexecError, String(e));
    return e;
  }
  assert.fail("no error");
};

test("an unmapped kernel address names what was read, the address, and keeps the hint", () => {
  const { mem } = machine([], "");
  const e = failure(() => mem.read(UNMAPPED + 0x123n, 64, "the widget (SYMBOL(widget))"));
  assert.match(e.message, /^the widget \(SYMBOL\(widget\)\): virtual address 0xffffc90000000123 is not mapped \(pgd entry 0x0 at 0x[0-9a-f]+ is not present\)$/);
  assert.equal(e.hint, WALK_HINT);
  assert.equal(e.data.field, "the widget (SYMBOL(widget))");
  assert.equal(e.data.offset, UNMAPPED + 0x123n);
  assert.equal(e.data.entry, "pgd[402]");
  // A read that runs off the end of the mapping names the first address past it.
  const end = PAGE_OFFSET + RAM;
  const across = failure(() => mem.read(end - 8n, 4096, "a table"));
  assert.match(across.message, /^a table: virtual address 0xffff88800[0-9a-f]+ is not mapped/);
  assert.equal(across.data.offset, end);
  // ulong and translate say it too.
  assert.match(failure(() => mem.ulong(UNMAPPED, "ptr (SYMBOL(ptr))")).message, /^ptr \(SYMBOL\(ptr\)\): virtual address 0xffffc90000000000 is not mapped/);
  assert.match(failure(() => mem.translate(UNMAPPED, "x")).message, /^x: virtual address/);
});

test("a name given as a function is made only when a read fails: the exclusion scan reads without formatting", () => {
  const { mem } = machine([[TEXT, 0x1234n]], "");
  let made = 0;
  const name = () => { made++; return "struct pages of mem_section[7] from page frame 0x38000"; };
  const buffer = new Uint8Array(8192);
  for (let i = 0n; i < 100n; i++) {
    mem.readInto(PAGE_OFFSET + i * 8192n, buffer, 0, 8192, name);
    mem.ulong(PAGE_OFFSET + i * 8n, name);
  }
  assert.equal(mem.ulong(START_KERNEL_MAP + TEXT, name), 0x1234n);
  assert.equal(made, 0);
  const e = failure(() => mem.readInto(UNMAPPED, buffer, 0, 8192, name));
  assert.equal(made, 1);
  assert.match(e.message, /^struct pages of mem_section\[7\] from page frame 0x38000: virtual address 0xffffc90000000000 is not mapped/);
});

test("a page-table page missing from the dump names the address and what it was read for", () => {
  // The page of the table that maps the direct map's 2 MiB pages (the walk's last level).
  const { mem } = machine([], "", (b) => [b.walk(PAGE_OFFSET).steps.at(-1)!.table]);
  const e = failure(() => mem.read(PAGE_OFFSET + 0x5000n, 16, "*prb (printk_ringbuffer)"));
  assert.match(e.message, /^page-table entry mapping 0xffff888000005000 for \*prb \(printk_ringbuffer\): physical address 0x[0-9a-f]+ \(page frame 0x[0-9a-f]+\) is not in the dump$/);
});

test("dmesg: a printk ring buffer pointer that leads nowhere names *prb, and SYMBOL(prb)", () => {
  const symbol = `SYMBOL(prb)=${(START_KERNEL_MAP + TEXT).toString(16)}\nSIZE(printk_ringbuffer)=88\n`;
  const pointsAway = machine([[TEXT, UNMAPPED + 0x40n]], symbol);
  const e = failure(() => readLockless(pointsAway.mem, pointsAway.info));
  assert.equal(e.message.split(":")[0], "*prb (printk_ringbuffer)");
  assert.match(e.message, /virtual address 0xffffc90000000040 is not mapped/);
  assert.equal(e.hint, WALK_HINT);
  // SYMBOL(prb) itself outside every mapping.
  const badSymbol = machine([], `SYMBOL(prb)=${UNMAPPED.toString(16)}\nSIZE(printk_ringbuffer)=88\n`);
  assert.match(failure(() => readLockless(badSymbol.mem, badSymbol.info)).message, /^prb \(SYMBOL\(prb\)\): virtual address 0xffffc90000000000 is not mapped/);
});

test("the page-flag exclusion: an unmapped mem_section root or struct page array names which", () => {
  const sections = `SYMBOL(mem_section)=${(START_KERNEL_MAP + TEXT).toString(16)}\nLENGTH(mem_section)=1\nSIZE(mem_section)=16\nOFFSET(mem_section.section_mem_map)=0\n` +
    "NUMBER(SECTION_SIZE_BITS)=27\nSIZE(page)=64\nOFFSET(page.flags)=0\nOFFSET(page.mapping)=24\nOFFSET(page._mapcount)=48\nOFFSET(page.private)=40\nOFFSET(page.compound_head)=8\nNUMBER(PG_lru)=4\n";
  const exclude = (m: ReturnType<typeof machine>) => excludeByPageFlags(m.mem, m.info, presentBitmaps([{ start: 0n, end: RAM }], 4096), 31, 4096);
  const badSymbol = machine([], sections.replace(/^SYMBOL\(mem_section\)=.*$/m, `SYMBOL(mem_section)=${UNMAPPED.toString(16)}`));
  const symbol = failure(() => exclude(badSymbol));
  assert.match(symbol.message, /^mem_section root 0 \(SYMBOL\(mem_section\)\): virtual address 0xffffc90000000000 is not mapped/);
  assert.equal(symbol.hint, WALK_HINT);
  // The root pointer leads nowhere: its first section is what cannot be read.
  const badRoot = machine([[TEXT, UNMAPPED]], sections);
  assert.match(failure(() => exclude(badRoot)).message, /^mem_section\[0\]\.section_mem_map: virtual address 0xffffc90000000000 is not mapped/);
  // The root is in the direct map, its section 0 points its struct pages at an unmapped vmemmap.
  const rootAt = 8n * MiB;
  const badMemMap = machine([[TEXT, PAGE_OFFSET + rootAt], [rootAt, UNMAPPED | 3n]], sections);
  assert.match(failure(() => exclude(badMemMap)).message, /^struct pages of mem_section\[0\] from page frame 0x0: virtual address 0xffffc90000000000 is not mapped/);
});

/** translate's alias lookup before aliasFinder, word for word: the reference every lookup must agree with. */
function linearAliasLookup(aliases: readonly VirtualAlias[], vaddr: bigint): bigint | undefined {
  for (const a of aliases) if (vaddr >= a.vaddr && vaddr < a.vaddr + a.size) return a.paddr + (vaddr - a.vaddr);
  return undefined;
}

const viaFinder = (find: AliasLookup, vaddr: bigint): bigint | undefined => {
  const a = find(vaddr);
  return a === undefined ? undefined : a.paddr + (vaddr - a.vaddr);
};

/** Each alias its own physical base (n << 32): a lookup that picks another holder than the first gives another address. */
const numbered = (list: readonly Omit<VirtualAlias, "paddr">[]): VirtualAlias[] => list.map((a, n) => ({ ...a, paddr: BigInt(n) << 32n }));

test("aliasFinder: every address of a small space maps as the first alias holding it says, overlaps, nesting, adjacency and empty aliases included", () => {
  const overlapping = fc.array(fc.tuple(fc.nat(200), fc.nat(40)), { maxLength: 30 }).map((list) => numbered(list.map(([vaddr, size]) => ({ vaddr: BigInt(vaddr), size: BigInt(size) }))));
  // Gaps and lengths from 0 (adjacent; empty), laid end to end, then listed in any order: the aliases of a real core.
  const disjoint = fc.array(fc.tuple(fc.nat(6), fc.nat(12)), { maxLength: 30 }).chain((list) => {
    let at = 0;
    const laid = list.map(([gap, size]) => { at += gap; const a = { vaddr: BigInt(at), size: BigInt(size) }; at += size; return a; });
    return fc.shuffledSubarray(laid, { minLength: laid.length, maxLength: laid.length }).map(numbered);
  });
  for (const [what, lists] of [["overlapping", overlapping], ["disjoint", disjoint]] as const) {
    fc.assert(fc.property(lists, (list) => {
      const find = aliasFinder(list);
      // As translate had it: the aliases at 0 left out, then the search.
      const mapping = list.filter((a) => a.vaddr !== 0n);
      for (let v = 0n; v <= 560n; v++) assert.equal(viaFinder(find, v), linearAliasLookup(mapping, v), `${what}: vaddr ${v}`);
    }), { numRuns: 300, seed: 1 });
  }
});

test("translate over 70,000 PT_LOAD aliases, unsorted, disjoint or overlapping, nested, adjacent and empty: as the linear search at edges and at random addresses", () => {
  const P = 4096n;
  // In vmalloc space, which the machine's page tables leave unmapped: an address no alias holds is an error.
  const base = UNMAPPED;
  const span = 40_000 * 3 * 4096;
  // One to three pages at a stride of three: three pages touch the next one, fewer leave a gap.
  const strided = (count: number, stride: number, first = 0) => Array.from({ length: count }, (_, i) => ({ vaddr: base + BigInt(first + i * stride) * P, size: BigInt(1 + (i % 3)) * P }));
  const disjoint = [...strided(40_000, 3), ...strided(30_000, 3, 40_000 * 3 + 7)];
  const overlapping = [
    ...strided(40_000, 3),
    // Partly over them, at any byte: overlapping one or several, sometimes inside one.
    ...fc.sample(fc.tuple(fc.nat(span), fc.integer({ min: 1, max: 5 * 4096 })), { numRuns: 14_000, seed: 7 }).map(([at, size]) => ({ vaddr: base + BigInt(at), size: BigInt(size) })),
    // The same ranges again (only the first of two copies counts), wide ones around thousands, and empty ones.
    ...strided(10_000, 12),
    ...Array.from({ length: 20 }, (_, i) => ({ vaddr: base + BigInt(i * 6000) * P + 123n, size: 4000n * P })),
    ...Array.from({ length: 5_980 }, (_, i) => ({ vaddr: base + BigInt(i * 20) * P, size: 0n })),
  ];
  for (const [what, list] of [["disjoint", disjoint], ["overlapping", overlapping]] as const) {
    // The PT_LOAD order shuffled (a fixed permutation).
    const order = list.map((_, i) => i).sort((a, b) => ((a * 2654435761) >>> 0) - ((b * 2654435761) >>> 0) || a - b);
    const aliases = numbered(order.map((i) => list[i]!));
    assert.equal(aliases.length, 70_000);
    const { mem } = machine([], "", undefined, aliases);
    // The reference takes up to 70,000 steps, 5-15 ms, for each probe: the edges of a sample of the
    // aliases (the small spaces above have every address), wide ones among them, and random addresses.
    const probes = new Set<bigint>();
    let wide = 0;
    aliases.forEach((a, i) => {
      if (i % 6000 === 0 || (a.size === 4000n * P && wide++ < 4)) for (const v of [a.vaddr - 1n, a.vaddr, a.vaddr + a.size - 1n, a.vaddr + a.size]) probes.add(v);
    });
    for (const at of fc.sample(fc.nat(2 * span), { numRuns: 25, seed: 11 })) probes.add(base + BigInt(at) - 4096n);
    let held = 0;
    for (const v of probes) {
      const want = linearAliasLookup(aliases, v);
      if (want === undefined) {
        assert.throws(() => mem.translate(v, "a probe"), (e: unknown) => e instanceof KexecError && /is not mapped/.test(e.message), `${what}: ${v.toString(16)}: no alias holds it`);
      } else {
        held++;
        assert.equal(mem.translate(v, "a probe"), want, `${what}: ${v.toString(16)}`);
      }
    }
    assert.ok(held > probes.size / 3 && held < probes.size, `${what}: ${held} of ${probes.size} probes held by an alias`);
  }
});

test("aliases at virtual address 0 are not used, and an i386 core uses none: its p_vaddr is not trusted", () => {
  // x86_64: an alias at 0 (a PT_LOAD without a kernel mapping) does not translate address 0x10.
  const { mem } = machine([], "", undefined, [{ vaddr: 0n, paddr: 0x100000n, size: MiB }]);
  assert.throws(() => mem.translate(0x10n, "low"), (e: unknown) => e instanceof KexecError && /virtual address 0x10 is not mapped/.test(e.message));
  // i386: the address is walked, which needs swapper_pg_dir, even though an alias holds it.
  const phys: PhysicalMemory = { pageSize: 4096, ranges: [{ start: 0n, end: RAM }], readPage: () => new Uint8Array(4096) };
  const i386 = kernelMemory(phys, { machine: "i386", vmcoreinfo: parseVmcoreInfo(""), aliases: [{ vaddr: 0xc0100000n, paddr: 0x100000n, size: MiB }] });
  assert.throws(() => i386.translate(0xc0100000n), (e: unknown) => e instanceof KexecError && /no SYMBOL\(swapper_pg_dir\)/.test(e.message));
});
