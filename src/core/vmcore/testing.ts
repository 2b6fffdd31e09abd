/**
 * A small synthetic x86_64 ELF vmcore for tests: a few MiB of "RAM" with zero,
 * text, repeated and random pages, a kernel text alias, a VMCOREINFO note and a
 * lockless printk ring buffer laid out with the 6.1 offsets below, so readers
 * and writers can be tested without a captured dump.
 */
import { encodeElfCoreHeader, encodeNote, type OutputLoad } from "./elf-writer.js";
import { writeStruct } from "../bytes/layout.js";
import { concatBytes } from "../bytes/reader.js";
import { NEW_UTSNAME, type Utsname } from "./kdump.js";
import type { DumpExclusion } from "./dump-writer.js";
import { clearBit } from "./exclude.js";
import type { RandomAccess, SourceView } from "./memory.js";

export const SYNTH_PAGE = 4096;
export const SYNTH_PAGE_OFFSET = 0xffff888000000000n;
export const SYNTH_TEXT_PHYS = 0x100000n;
export const SYNTH_TEXT_VIRT = 0xffffffff81000000n;
/** Offsets of the printk ring buffer structures as Debian 6.1 amd64 reports them. */
const PRINTK_INFO = `SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
OFFSET(printk_ringbuffer.fail)=80
SIZE(prb_desc_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
SIZE(prb_data_blk_lpos)=16
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
OFFSET(printk_info.caller_id)=20
OFFSET(printk_info.dev_info)=24
SIZE(prb_data_ring)=32
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
OFFSET(prb_data_ring.head_lpos)=16
OFFSET(prb_data_ring.tail_lpos)=24
SIZE(atomic_long_t)=8
OFFSET(atomic_long_t.counter)=0
`;

/** The crashed kernel's init_uts_ns.name in the synthetic dump. */
export const SYNTH_UTSNAME: Utsname = {
  sysname: "Linux", nodename: "synthetic-host", release: "6.1.0-synthetic",
  version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0-1 (2026-01-01)", machine: "x86_64", domainname: "(none)",
};

export interface SyntheticVmcore {
  bytes: Uint8Array;
  /** Page contents by pfn, for comparison after a round trip. */
  pages: Map<number, Uint8Array>;
  firstPfn: number;
  pageCount: number;
  messages: { tsNsec: bigint; text: string }[];
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

/**
 * RAM is [0x100000, 0x100000 + pages*4096). Its first 16 pages are the "kernel image",
 * also mapped at SYNTH_TEXT_VIRT (phys_base 0); the ring buffer lives there.
 */
export function syntheticVmcore(pageCount = 256, seed = 7, messages = defaultMessages()): SyntheticVmcore {
  const ps = SYNTH_PAGE;
  const firstPfn = Number(SYNTH_TEXT_PHYS) / ps;
  const ram = new Uint8Array(pageCount * ps);
  const rand = rng(seed);
  const text = new TextEncoder().encode("the quick brown fox jumps over the lazy dog; kexec-ts vmcore test page\n".repeat(64));
  for (let p = 16; p < pageCount; p++) {
    const page = ram.subarray(p * ps, (p + 1) * ps);
    switch (p % 5) {
      case 0: break; // zeros
      case 1: page.set(text.subarray(0, ps)); page[0] = p & 0xff; break;
      case 2: for (let i = 0; i < ps; i++) page[i] = rand() & 0xff; break;
      case 3: page.fill(p & 0xff); break;
      default: for (let i = 0; i < ps; i += 4) new DataView(page.buffer, page.byteOffset).setUint32(i, (p * 0x10000 + i) >>> 0, true);
    }
  }
  // Ring buffer in the "kernel image": prb pointer at +0x0, ring at +0x100, descs at page 1, infos at page 2..3, text at page 4..5.
  const dv = new DataView(ram.buffer);
  const va = (off: number) => SYNTH_TEXT_VIRT + BigInt(off);
  const countBits = 4;
  const count = 1 << countBits;
  const sizeBits = 13;
  dv.setBigUint64(0, va(0x100), true); // prb -> printk_rb_static
  const ring = 0x100;
  dv.setUint32(ring + 0, countBits, true);
  dv.setBigUint64(ring + 8, va(ps), true);
  dv.setBigUint64(ring + 16, va(2 * ps), true);
  dv.setUint32(ring + 48, sizeBits, true);
  dv.setBigUint64(ring + 56, va(4 * ps), true);
  let lpos = 0;
  const enc = new TextEncoder();
  // Ids start above the ring size so the modulo arithmetic is exercised.
  const firstId = 100;
  messages.forEach((m, k) => {
    const id = firstId + k;
    const index = id % count;
    const body = enc.encode(m.text);
    const size = (8 + body.length + 7) & ~7;
    const begin = lpos;
    dv.setBigUint64(4 * ps + begin, BigInt(id), true);
    ram.set(body, 4 * ps + begin + 8);
    lpos += size;
    const d = ps + index * 24;
    dv.setBigUint64(d, (2n << 62n) | BigInt(id), true); // desc_finalized
    dv.setBigUint64(d + 8, BigInt(begin), true);
    dv.setBigUint64(d + 16, BigInt(lpos), true);
    const inf = 2 * ps + index * 88;
    dv.setBigUint64(inf, BigInt(k), true);
    dv.setBigUint64(inf + 8, m.tsNsec, true);
    dv.setUint16(inf + 16, body.length, true);
  });
  // init_uts_ns at +0x800 of the kernel image (OFFSET(uts_namespace.name)=0, as in 6.1).
  writeStruct(NEW_UTSNAME, ram, 0x800, SYNTH_UTSNAME);
  dv.setBigUint64(ring + 24, BigInt(firstId + messages.length - 1), true); // head_id
  dv.setBigUint64(ring + 32, BigInt(firstId), true); // tail_id

  const info = `OSRELEASE=6.1.0-synthetic\nPAGESIZE=${ps}\nSYMBOL(prb)=${va(0).toString(16)}\nSYMBOL(init_uts_ns)=${va(0x800).toString(16)}\nOFFSET(uts_namespace.name)=0\n${PRINTK_INFO}NUMBER(phys_base)=${SYNTH_TEXT_PHYS - 0x1000000n}\nKERNELOFFSET=0\nNUMBER(pgtable_l5_enabled)=0\nCRASHTIME=1795431741\n`;
  const notes = concatBytes([encodeNote("CORE", 1, new Uint8Array(336)), encodeNote("VMCOREINFO", 0, new TextEncoder().encode(info))]);
  const ramStart = SYNTH_TEXT_PHYS;
  const loadsNoOffset = [
    { p_vaddr: SYNTH_TEXT_VIRT, p_paddr: ramStart, p_filesz: BigInt(16 * ps), p_memsz: BigInt(16 * ps) },
    { p_vaddr: SYNTH_PAGE_OFFSET + ramStart, p_paddr: ramStart, p_filesz: BigInt(ram.length), p_memsz: BigInt(ram.length) },
  ];
  const headerLen = encodeElfCoreHeader("x86_64", loadsNoOffset.map((l) => ({ ...l, p_offset: 0n })), notes).length;
  const dataAt = Math.ceil(headerLen / ps) * ps;
  const loads: OutputLoad[] = [
    { ...loadsNoOffset[0]!, p_offset: BigInt(dataAt) },
    { ...loadsNoOffset[1]!, p_offset: BigInt(dataAt + 16 * ps) },
  ];
  const header = encodeElfCoreHeader("x86_64", loads, notes);
  const bytes = new Uint8Array(dataAt + 16 * ps + ram.length);
  bytes.set(header);
  bytes.set(ram.subarray(0, 16 * ps), dataAt);
  bytes.set(ram, dataAt + 16 * ps);
  const pages = new Map<number, Uint8Array>();
  for (let p = 0; p < pageCount; p++) pages.set(firstPfn + p, ram.slice(p * ps, (p + 1) * ps));
  return { bytes, pages, firstPfn, pageCount, messages };
}

/** phys_base is chosen so that SYNTH_TEXT_VIRT maps to SYNTH_TEXT_PHYS through __START_KERNEL_map. */
export function defaultMessages(): { tsNsec: bigint; text: string }[] {
  return [
    { tsNsec: 0n, text: "Linux version 6.1.0-synthetic" },
    { tsNsec: 1_500_000n, text: "a line with\ttab and a second line\nhere" },
    { tsNsec: 2_000_001_000n, text: "control \u0001 byte" },
    { tsNsec: 11_130_486_000n, text: "Kernel panic - not syncing: sysrq triggered crash" },
  ];
}


/** An exclusion (as the dump writers and the report take one) that leaves out the page frames `left`, by their offset in each window. */
export function exclusionLeavingOut(left: ReadonlySet<number>): DumpExclusion {
  return {
    prepare: (b) => {
      const first = b.dumpableFirst ?? 0;
      for (const p of left) if (p >= first && p < first + b.dumpable.length * 8) clearBit(b.dumpable, p - first);
    },
  };
}

/**
 * A file's bytes with views as a mapped file gives them (src/node/vmcore/mapped-file.ts): a
 * window of `windowBytes` from the half-window boundary below the view's first byte. Each view is
 * a copy, filled with 0xa5 at the next view, as a window mapped over would be gone: a reader that
 * keeps using one after asking for another sees it. Reads leave views be, as the contract says.
 * `wholeViews` counts the views that gave all the bytes asked for.
 */
export function spoilingViews(read: (offset: number, length: number) => Uint8Array, size: number, windowBytes: number): Required<Pick<RandomAccess, "readInto" | "view">> & { wholeViews: number } {
  let last: Uint8Array | undefined;
  const half = Math.floor(windowBytes / 2);
  const views = {
    wholeViews: 0,
    readInto(offset: bigint, dst: Uint8Array, at: number, length: number): void {
      dst.set(read(Number(offset), length), at);
    },
    view(offset: number, length: number): SourceView {
      last?.fill(0xa5);
      const start = offset - (offset % half);
      const end = Math.min(start + windowBytes, size);
      last = read(start, end - start).slice();
      const seen = Math.min(length, end - offset);
      if (seen === length) views.wholeViews++;
      return { bytes: last, from: offset - start, length: seen };
    },
  };
  return views;
}
