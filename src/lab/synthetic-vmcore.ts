/**
 * A sparse synthetic vmcore of any size (issue 15, target 3): a real guest's ELF vmcore (from
 * capture-vmcore.ts) scaled up to a machine with many times its memory, for measuring what a
 * dump costs per TiB when no such machine is at hand. Not random bytes: the crashed kernel's
 * own structures are extended the way the kernel would have laid them out.
 *
 * The guest's memory stays as it was. Above 4 GiB come "nodes" (64 GiB by default, a 1 GiB
 * hole between them, so the dump has holes as a real machine's does), each
 *
 *   - starting with a copy of the guest's first GiB: its struct pages (page cache, anonymous,
 *     slab, free...) and the data of the pages dump level 31 keeps; the guest's own holes (the
 *     low 1 MiB, the crash region) are holes of the node too;
 *   - then free memory: order-10 buddy blocks (a head struct page with PageBuddy and order 10
 *     as the guest's, 1,023 tail pages), their data a hole in the file;
 *   - ending with the node's own struct pages (SPARSEMEM_VMEMMAP: 64 bytes per 4 KiB page,
 *     mapped at vmemmap_base + pfn * 64 with 2 MiB pages), the page-table pages and the
 *     mem_section roots that make them reachable, all PageReserved.
 *
 * The guest's kernel page tables gain the direct map of the new memory (1 GiB pages) and the
 * vmemmap of it; its mem_section roots gain the new sections. Readers find everything the way
 * they find it in a real dump: makedumpfile through init_top_pgt and mem_section, kexec-ts the
 * same way. Pages that dump level 31 drops (cache, user, free) have no data in the file, so the
 * copies read as zeros at lower dump levels: benchmark -d 31 with it, as the issue asks.
 *
 * The first node starts at 4 GiB, or (--at) higher: a node at 12 TiB, with nothing between the
 * guest's memory and it, is a dump whose page frames pass 2^31 (8 TiB) while its RAM is a few
 * GiB, as on a machine whose NUMA nodes are placed high.
 *
 *   npm run build && node dist/lab/synthetic-vmcore.js SOURCE.elf OUT.elf --ram 1T [--node 64G] [--at 12T]
 *
 * x86_64 with 4-level paging and SPARSEMEM_VMEMMAP (Debian's amd64 kernels) only.
 */
import { closeSync, ftruncateSync, openSync } from "node:fs";
import { KexecError } from "../core/errors.js";
import { hex } from "../core/format.js";
import { DL_EXCLUDE_CACHE, DL_EXCLUDE_CACHE_PRI, DL_EXCLUDE_FREE, DL_EXCLUDE_USER_DATA, excludeByPageFlags, isZeroPage, presentBitmaps, testBit } from "../core/vmcore/exclude.js";
import { START_KERNEL_MAP } from "../core/vmcore/kernel-memory.js";
import { encodeElfCoreHeader, type OutputLoad } from "../core/vmcore/elf-writer.js";
import { vmcoreKernelMemory } from "../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "../node/vmcore/open.js";
import { openRandomAccess } from "../node/vmcore/file.js";
import { writeFullyAt } from "../node/files.js";

const PAGE = 4096;
const PAGE_N = 4096n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;
const STRUCT_PAGE = 64;
/** Page-table entry bits (arch/x86/include/asm/pgtable_types.h): a table is _KERNPG_TABLE, a large leaf __PAGE_KERNEL_LARGE. */
const PTE_TABLE = 0x063n;
const PTE_LARGE = 0x1e3n | (1n << 63n);
const PTE_ADDR = 0x000ffffffffff000n;
const PTE_PSE = 0x80n;
/** A free block of the highest order (MAX_ORDER - 1 = 10 in 6.1): 1,024 pages, 4 MiB. */
const FREE_BLOCK_PAGES = 1024;

export interface SyntheticVmcoreOptions {
  source: string;
  out: string;
  /** RAM of the synthetic machine in all (the guest's plus the nodes'). */
  ram: bigint;
  /** Size of each node above 4 GiB (a multiple of 1 GiB); the last one takes the rest. */
  nodeSize?: bigint;
  /** Where the first node starts (a multiple of 1 GiB, 4 GiB by default); the others follow it, 1 GiB apart. */
  firstNodeAt?: bigint;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface SyntheticVmcore {
  out: string;
  /** Bytes of RAM the dump describes, and the file's apparent and allocated sizes are for the caller to stat. */
  ram: bigint;
  nodes: { start: bigint; size: bigint }[];
  /** Pages with data in the file (what is not a hole). */
  storedPages: bigint;
}

interface Node {
  index: number;
  start: bigint;
  size: bigint;
  /** Where its struct pages begin (physical); page tables and roots follow them. */
  memmap: bigint;
  metaEnd: bigint;
  nextMeta: bigint;
  /** PT_LOADs: the node minus the guest's holes in its copy. */
  loads: { start: bigint; end: bigint }[];
}

export function writeSyntheticVmcore(o: SyntheticVmcoreOptions): SyntheticVmcore {
  const log = o.log ?? (() => {});
  const src = openRandomAccess(o.source);
  try {
    const core = openVmcoreWithSystemCodecs(src, o.source);
    if (core.format !== "elf" || core.machine !== "x86_64" || !core.elf || !core.vmcoreinfo) {
      throw new KexecError("usage", `${o.source}: expected an x86_64 ELF vmcore with VMCOREINFO`, { file: o.source }, "capture one with dist/node/vmcore/capture-vmcore.js");
    }
    const info = core.vmcoreinfo;
    if (info.numbers.get("pgtable_l5_enabled") === 1n) throw new KexecError("usage", `${o.source}: 5-level paging is not supported here`, { file: o.source }, "scale up a dump of a 4-level guest (boot it with no5lvl)");
    const km = vmcoreKernelMemory(core);
    const need = <T extends bigint | number>(v: T | undefined, what: string): T => {
      if (v === undefined) throw new KexecError("parse", `${o.source}: VMCOREINFO lacks ${what}`, { file: o.source, field: what }, "the source dump must come from a kernel that writes it (Debian 6.1's does)");
      return v;
    };
    const sectionBits = Number(need(info.numbers.get("SECTION_SIZE_BITS"), "NUMBER(SECTION_SIZE_BITS)"));
    const sectionSize = Number(need(info.sizes.get("mem_section"), "SIZE(mem_section)"));
    const pageStruct = Number(need(info.sizes.get("page"), "SIZE(page)"));
    if (pageStruct !== STRUCT_PAGE) throw new KexecError("parse", `${o.source}: SIZE(page) is ${pageStruct}, expected ${STRUCT_PAGE}`, { file: o.source }, "scale up a dump of an x86_64 kernel with 64-byte struct pages");
    const rootArray = need(info.symbols.get("mem_section"), "SYMBOL(mem_section)");
    const pagesPerSection = 1 << (sectionBits - 12);
    const sectionsPerRoot = PAGE / sectionSize;
    // phys_base is printed signed (%ld) and is negative when the kernel sits below its link address: modulo 2^64.
    const topTable = BigInt.asUintN(64, need(info.symbols.get("init_top_pgt"), "SYMBOL(init_top_pgt)") - START_KERNEL_MAP + (info.numbers.get("phys_base") ?? 0n));
    const direct = core.elf.loads.find((l) => l.p_vaddr !== 0n && l.p_vaddr < START_KERNEL_MAP);
    if (!direct) throw new KexecError("parse", `${o.source}: no PT_LOAD in the direct map tells page_offset_base`, { file: o.source }, "the source must be an ELF vmcore with its direct-map PT_LOADs (as /proc/vmcore has)");
    const pageOffset = direct.p_vaddr - direct.p_paddr;
    const root0 = km.ulong(rootArray, "mem_section root 0");
    const section0 = km.read(root0, sectionSize, "mem_section[0]");
    const section0Map = view(section0).getBigUint64(0, true);
    // SPARSEMEM_VMEMMAP: section_mem_map encodes mem_map - section start, which is vmemmap_base itself.
    const vmemmapBase = section0Map & ~0x3fn;
    const sectionFlags = section0Map & 0x3fn;

    // The guest's memory: its RAM below 4 GiB, rounded up to whole GiB, is what each node copies.
    const ranges = core.memory.ranges;
    const guestEnd = ranges.reduce((m, r) => (r.end > m ? r.end : m), 0n);
    if (guestEnd > 4n * GiB) throw new KexecError("usage", `${o.source}: the guest has RAM above 4 GiB; use a guest of at most 3 GiB`, { file: o.source }, "use a guest of at most 3 GiB");
    const guestSpan = (guestEnd + GiB - 1n) / GiB * GiB;
    const guestRam = ranges.reduce((n, r) => n + (r.end - r.start), 0n);
    const guestPages = Number(guestSpan / PAGE_N);

    // Templates from the guest's own mem_map: a reserved page (pfn 0), a free order-10 head.
    const structPage = (pfn: number): Uint8Array => km.read(vmemmapBase + BigInt(pfn) * 64n, 64, `struct page of pfn ${hex(pfn)}`);
    const reserved = structPage(0);
    let freeHead: Uint8Array | undefined;
    for (let pfn = 0; pfn < guestPages && !freeHead; pfn += FREE_BLOCK_PAGES) {
      const p = structPage(pfn);
      const pageType = view(p).getUint32(48, true);
      if ((pageType & 0xf0000080) >>> 0 === 0xf0000000 && view(p).getBigUint64(40, true) === 10n) freeHead = p;
    }
    if (!freeHead) throw new KexecError("parse", `${o.source}: no free order-10 block in the guest's mem_map to take the struct page from`, { file: o.source }, "capture the source dump from a guest with free memory left");
    // A tail page of a free block as most of the guest's are: the head's flags (zone and node
    // bits), an empty lru list (pointing at itself, filled in per page), _mapcount -1.
    const freeTail = new Uint8Array(64);
    freeTail.set(freeHead.subarray(0, 8), 0);
    view(freeTail).setUint32(48, 0xffffffff, true);

    // What each copy carries: the data of the pages dump level 31 keeps (struct pages say which).
    const bitmaps = presentBitmaps(ranges, PAGE);
    excludeByPageFlags(km, info, bitmaps, DL_EXCLUDE_CACHE | DL_EXCLUDE_CACHE_PRI | DL_EXCLUDE_USER_DATA | DL_EXCLUDE_FREE, PAGE);

    // Nodes above 4 GiB.
    const nodeSize = o.nodeSize ?? 64n * GiB;
    if (nodeSize % GiB !== 0n || nodeSize < guestSpan + 2n * GiB) throw new KexecError("usage", `--node ${hex(nodeSize)}: a multiple of 1 GiB, at least ${guestSpan / GiB + 2n} GiB`, {}, "e.g. --node 16G");
    const firstNodeAt = o.firstNodeAt ?? 4n * GiB;
    // 4-level paging maps 64 TiB (MAX_PHYSMEM_BITS 46): the direct map, the vmemmap and the mem_section roots the guest's kernel made end there.
    const reach = 1n << 46n;
    if (firstNodeAt % GiB !== 0n || firstNodeAt < 4n * GiB || firstNodeAt >= reach) throw new KexecError("usage", `--at ${hex(firstNodeAt)}: a multiple of 1 GiB from 4 GiB up to 64 TiB`, { field: "--at", actual: hex(firstNodeAt) }, "e.g. --at 12T");
    const nodes: Node[] = [];
    let left = o.ram - guestRam;
    for (let start = firstNodeAt, i = 0; left >= guestSpan + 2n * GiB; i++) {
      const size = left < nodeSize ? left / GiB * GiB : nodeSize;
      const memmapBytes = size / PAGE_N * 64n;
      const metaBytes = alignUp(memmapBytes + 512n * PAGE_N, 4n * MiB);
      const memmap = start + size - metaBytes;
      const loads = ranges.map((r) => ({ start: start + r.start, end: start + r.end }));
      // The guest's last range runs on into the node's free memory and metadata.
      loads[loads.length - 1]!.end = start + size;
      nodes.push({ index: i, start, size, memmap, metaEnd: start + size, nextMeta: memmap + alignUp(memmapBytes, PAGE_N), loads });
      if (start + size > reach) throw new KexecError("usage", `node ${i} at ${hex(start)} would end past 64 TiB, the reach of 4-level paging`, { field: "--at", actual: hex(firstNodeAt) }, "give less --ram, or a lower --at");
      left -= size;
      start += size + GiB;
    }
    log(`${nodes.length} node(s) of up to ${nodeSize / GiB} GiB from ${hex(firstNodeAt)}, holes of 1 GiB between them`);

    // Pages of kernel memory that change (the guest's tables and roots) or are new (in nodes).
    const pages = new Map<bigint, Uint8Array>();
    const pageAt = (paddr: bigint): Uint8Array => {
      const base = paddr & ~(PAGE_N - 1n);
      let p = pages.get(base);
      if (!p) {
        const node = nodes.find((n) => base >= n.start && base < n.metaEnd);
        p = node ? new Uint8Array(PAGE) : core.memory.readPage(base / PAGE_N)?.slice();
        if (!p) throw new KexecError("parse", `${o.source}: page ${hex(base)} to patch is not in the dump`, { file: o.source }, "the source dump is incomplete; capture it again");
        pages.set(base, p);
      }
      return p;
    };
    const getEntry = (table: bigint, index: bigint): bigint => view(pageAt(table)).getBigUint64(Number(index) * 8, true);
    const setEntry = (table: bigint, index: bigint, value: bigint): void => view(pageAt(table)).setBigUint64(Number(index) * 8, value, true);
    const allocMeta = (node: Node): bigint => {
      const at = node.nextMeta;
      if (at + PAGE_N > node.metaEnd) throw new Error(`node ${node.index}: metadata area full`);
      node.nextMeta += PAGE_N;
      pageAt(at);
      return at;
    };
    /** The next-level table under `table[index]`, made from a new page of `node` when absent. */
    const tableUnder = (table: bigint, index: bigint, node: Node, what: string): bigint => {
      const e = getEntry(table, index);
      if (e & 1n) {
        if (e & PTE_PSE) throw new KexecError("parse", `${what}: a large page where a table was expected`, {}, "the source dump's page tables are not what the scaler expects");
        return e & PTE_ADDR;
      }
      const next = allocMeta(node);
      setEntry(table, index, next | PTE_TABLE);
      return next;
    };
    const idx = (va: bigint, shift: bigint): bigint => (va >> shift) & 511n;

    for (const node of nodes) {
      // The direct map of the node: 1 GiB pages.
      for (let pa = node.start; pa < node.start + node.size; pa += GiB) {
        const va = pageOffset + pa;
        const pud = tableUnder(topTable, idx(va, 39n), node, `direct map ${hex(va)}`);
        setEntry(pud, idx(va, 30n), pa | PTE_LARGE);
      }
      // Its struct pages in the vmemmap: 2 MiB pages onto the node's memmap area.
      const firstPfn = node.start / PAGE_N;
      const memmapBytes = node.size / PAGE_N * 64n;
      for (let off = 0n; off < memmapBytes; off += 2n * MiB) {
        const va = vmemmapBase + firstPfn * 64n + off;
        const pud = tableUnder(topTable, idx(va, 39n), node, `vmemmap ${hex(va)}`);
        const pmd = tableUnder(pud, idx(va, 30n), node, `vmemmap ${hex(va)}`);
        setEntry(pmd, idx(va, 21n), (node.memmap + off) | PTE_LARGE);
      }
      // Its sections: present, with a mem_map, online, as the guest's own.
      const firstSection = Number(firstPfn) / pagesPerSection;
      for (let nr = firstSection; nr < firstSection + Number(node.size / PAGE_N) / pagesPerSection; nr++) {
        const rootSlot = rootArray + BigInt(Math.floor(nr / sectionsPerRoot) * 8);
        const slotPa = km.translate(rootSlot);
        let root = view(pageAt(slotPa)).getBigUint64(Number(slotPa % PAGE_N), true);
        if (root === 0n) {
          root = pageOffset + allocMeta(node);
          view(pageAt(slotPa)).setBigUint64(Number(slotPa % PAGE_N), root, true);
        }
        const entryPa = (root - pageOffset) + BigInt((nr % sectionsPerRoot) * sectionSize);
        const entry = pageAt(entryPa);
        entry.set(section0.subarray(0, sectionSize), Number(entryPa % PAGE_N));
        view(entry).setBigUint64(Number(entryPa % PAGE_N), vmemmapBase | sectionFlags, true);
      }
    }

    // The file: headers and notes, the guest's segments, then each node's.
    const loads: (OutputLoad & { source?: bigint })[] = [];
    let offset = 0n;
    const headerLoads = core.elf.loads.length + nodes.reduce((n, x) => n + x.loads.length, 0);
    offset = alignUp(BigInt(encodeElfCoreHeader("x86_64", new Array(headerLoads).fill({ p_vaddr: 0n, p_paddr: 0n, p_offset: 0n, p_filesz: 0n, p_memsz: 0n }), core.noteBytes).length), PAGE_N);
    for (const l of core.elf.loads) {
      loads.push({ p_vaddr: l.p_vaddr, p_paddr: l.p_paddr, p_offset: offset, p_filesz: l.p_filesz, p_memsz: l.p_memsz, source: l.p_offset });
      offset = alignUp(offset + l.p_filesz, PAGE_N);
    }
    const nodeLoadsAt: { node: Node; start: bigint; end: bigint; offset: bigint }[] = [];
    for (const node of nodes) {
      for (const r of node.loads) {
        loads.push({ p_vaddr: pageOffset + r.start, p_paddr: r.start, p_offset: offset, p_filesz: r.end - r.start, p_memsz: r.end - r.start });
        nodeLoadsAt.push({ node, start: r.start, end: r.end, offset });
        offset += r.end - r.start;
      }
    }
    const fileSize = offset;
    /** Every file offset where physical page `pa` is stored (the text alias repeats some RAM). */
    const offsetsOf = (pa: bigint): bigint[] => loads.filter((l) => pa >= l.p_paddr && pa + PAGE_N <= l.p_paddr + l.p_filesz).map((l) => l.p_offset + (pa - l.p_paddr));

    const fd = openSync(o.out, "w");
    let stored = 0n;
    try {
      ftruncateSync(fd, 0);
      const write = (bytes: Uint8Array, at: bigint): void => writeFullyAt(fd, bytes, Number(at));
      write(encodeElfCoreHeader("x86_64", loads.map(({ source: _, ...l }) => l), core.noteBytes), 0n);
      // The guest's segments as they are, in 8 MiB pieces.
      const buf = new Uint8Array(8 << 20);
      for (const l of loads) {
        if (l.source === undefined) continue;
        for (let done = 0n; done < l.p_filesz; ) {
          const n = Number(l.p_filesz - done < BigInt(buf.length) ? l.p_filesz - done : BigInt(buf.length));
          src.readInto(l.source + done, buf, 0, n);
          write(buf.subarray(0, n), l.p_offset + done);
          done += BigInt(n);
        }
        stored += l.p_filesz / PAGE_N;
      }
      log(`guest copied: ${stored} pages`);
      // Each node: the kept pages of its copy of the guest, then its struct pages.
      const keptPfns: number[] = [];
      for (let pfn = 0; pfn < guestPages && pfn < Number(bitmaps.maxPfn); pfn++) if (testBit(bitmaps.dumpable, pfn)) keptPfns.push(pfn);
      const guestMemmap = km.read(vmemmapBase, guestPages * 64, "the guest's struct pages");
      for (const node of nodes) {
        const at = (pa: bigint): bigint => {
          const l = nodeLoadsAt.find((x) => x.node === node && pa >= x.start && pa < x.end);
          if (!l) throw new Error(`node ${node.index}: ${hex(pa)} is in no PT_LOAD`);
          return l.offset + (pa - l.start);
        };
        let copied = 0;
        for (const pfn of keptPfns) {
          const page = core.memory.readPage(BigInt(pfn));
          if (!page || isZeroPage(page)) continue;
          write(page, at(node.start + BigInt(pfn) * PAGE_N));
          copied++;
        }
        stored += BigInt(copied);
        writeNodeMemmap(node, guestMemmap, guestPages, reserved, freeHead, freeTail, vmemmapBase, (bytes, pa) => write(bytes, at(pa)));
        stored += node.size / PAGE_N * 64n / PAGE_N;
        log(`node ${node.index} at ${hex(node.start)} (${node.size / GiB} GiB): ${copied} pages of the guest copied, ${node.size / PAGE_N * 64n >> 20n} MiB of struct pages`);
      }
      // Last, the patched and new kernel pages, wherever they are stored.
      for (const [pa, page] of pages) {
        const node = nodes.find((n) => pa >= n.start && pa < n.metaEnd);
        const where = node ? [nodeLoadsAt.filter((x) => x.node === node && pa >= x.start && pa < x.end).map((x) => x.offset + (pa - x.start))[0]!] : offsetsOf(pa);
        for (const w of where) write(page, w);
      }
      ftruncateSync(fd, Number(fileSize));
    } finally {
      closeSync(fd);
    }
    return { out: o.out, ram: guestRam + nodes.reduce((n, x) => n + x.size, 0n), nodes: nodes.map((n) => ({ start: n.start, size: n.size })), storedPages: stored };
  } finally {
    src.close();
  }
}

/**
 * A node's struct pages, in 2 MiB pieces: the guest's for the copy, free blocks (a head whose
 * lru links the next and previous heads, 1,023 tails with empty lru lists), reserved pages for
 * the metadata.
 */
function writeNodeMemmap(node: Node, guestMemmap: Uint8Array, guestPages: number, reserved: Uint8Array, freeHead: Uint8Array, freeTail: Uint8Array, vmemmapBase: bigint,
  write: (bytes: Uint8Array, pa: bigint) => void): void {
  const firstPfn = node.start / PAGE_N;
  const pages = Number(node.size / PAGE_N);
  const metaFirst = Number((node.memmap - node.start) / PAGE_N);
  const structVa = (i: number): bigint => vmemmapBase + (firstPfn + BigInt(i)) * 64n;
  // One free block's struct pages; only the head's lru changes from block to block.
  const block = new Uint8Array(FREE_BLOCK_PAGES * 64);
  block.set(freeHead, 0);
  for (let i = 1; i < FREE_BLOCK_PAGES; i++) block.set(freeTail, i * 64);
  const piece = new Uint8Array(2 << 20);
  const perPiece = piece.length / 64;
  for (let first = 0; first < pages; first += perPiece) {
    for (let i = first; i < first + perPiece; ) {
      const at = (i - first) * 64;
      if (i < guestPages) {
        const n = Math.min(guestPages, first + perPiece) - i;
        piece.set(guestMemmap.subarray(i * 64, (i + n) * 64), at);
        i += n;
      } else if (i < metaFirst && i % FREE_BLOCK_PAGES === 0 && i + FREE_BLOCK_PAGES <= metaFirst) {
        piece.set(block, at);
        const dv = view(piece);
        for (let t = 1; t < FREE_BLOCK_PAGES; t++) {
          const self = structVa(i + t) + 8n;
          dv.setBigUint64(at + t * 64 + 8, self, true);
          dv.setBigUint64(at + t * 64 + 16, self, true);
        }
        const prev = i - FREE_BLOCK_PAGES >= guestPages ? structVa(i - FREE_BLOCK_PAGES) + 8n : structVa(i) + 8n;
        const next = i + 2 * FREE_BLOCK_PAGES <= metaFirst ? structVa(i + FREE_BLOCK_PAGES) + 8n : structVa(i) + 8n;
        dv.setBigUint64(at + 8, next, true);
        dv.setBigUint64(at + 16, prev, true);
        i += FREE_BLOCK_PAGES;
      } else {
        piece.set(reserved, at);
        // A reserved page's lru is an empty list: it points at itself.
        view(piece).setBigUint64(at + 8, structVa(i) + 8n, true);
        view(piece).setBigUint64(at + 16, structVa(i) + 8n, true);
        i++;
      }
    }
    write(piece, node.memmap + BigInt(first) * 64n);
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function alignUp(v: bigint, a: bigint): bigint {
  return (v + a - 1n) / a * a;
}

export function parseSize(s: string): bigint {
  const m = /^(\d+)([MGT])$/i.exec(s);
  if (!m) throw new KexecError("usage", `${s}: expected a size like 16G or 1T`, { actual: s }, "e.g. 16G or 1T");
  return BigInt(m[1]!) << { M: 20n, G: 30n, T: 40n }[m[2]!.toUpperCase() as "M" | "G" | "T"];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [source, out, ...rest] = process.argv.slice(2);
  const get = (flag: string): string | undefined => {
    const i = rest.indexOf(flag);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (!source || !out || !get("--ram")) {
    process.stderr.write("usage: synthetic-vmcore.js SOURCE.elf OUT.elf --ram 16G|1T [--node 64G] [--at 12T]\n");
    process.exit(64);
  }
  const t0 = Date.now();
  try {
    const r = writeSyntheticVmcore({ source, out, ram: parseSize(get("--ram")!), ...(get("--node") ? { nodeSize: parseSize(get("--node")!) } : {}), ...(get("--at") ? { firstNodeAt: parseSize(get("--at")!) } : {}), log: (l) => process.stderr.write(`${l}\n`) });
    process.stdout.write(`${r.out}: ${r.ram / GiB} GiB of RAM, ${r.nodes.length} nodes, ${r.storedPages * PAGE_N >> 20n} MiB stored, ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  } catch (e) {
    process.stderr.write(`synthetic-vmcore: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
