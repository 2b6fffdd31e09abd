/**
 * The crashed kernel's log, from the lockless printk ring buffer (5.10 and
 * later, kernel/printk/printk_ringbuffer.h): a descriptor ring (state_var,
 * text_blk_lpos per record), a parallel printk_info array (seq, ts_nsec,
 * text_len...) and a text data ring whose blocks start with the descriptor id.
 * Every layout comes from VMCOREINFO, none is assumed.
 */
import { KexecError } from "../errors.js";
import type { KernelMemory } from "./kernel-memory.js";
import { u16At, u32At, u64At } from "./memory.js";
import { VmcoreInfoView, type VmcoreInfo } from "./vmcoreinfo.js";

export interface LogRecord {
  seq: bigint;
  /** Nanoseconds since boot (local_clock). */
  tsNsec: bigint;
  callerId: number;
  text: string;
  /** The text was cut short by the ring (text_len said more than the block holds). */
  truncated: boolean;
}

/** desc_state from printk_ringbuffer.c: only committed and finalized records are complete. */
const DESC_COMMITTED = 1n;
const DESC_FINALIZED = 2n;

/**
 * Pointers, unsigned longs (the lpos) and atomic_long_t (state_var, head/tail ids) are
 * the kernel's word: 8 bytes on x86_64, 4 on i386. state_var keeps the state in its top
 * two bits and the id below them.
 */
function words(mem: KernelMemory): { word: (b: Uint8Array, at: number) => bigint; svShift: bigint; idMask: bigint } {
  const bits = BigInt(mem.pointerSize * 8);
  return {
    word: mem.pointerSize === 8 ? u64At : (b, at) => BigInt(u32At(b, at)),
    svShift: bits - 2n,
    idMask: (1n << (bits - 2n)) - 1n,
  };
}

export function readLockless(mem: KernelMemory, info: VmcoreInfo): LogRecord[] {
  const v = new VmcoreInfoView(info, "reading the printk ring buffer (dmesg)");
  if (!info.symbols.has("prb") && !info.malformed?.has("SYMBOL(prb)")) {
    throw new KexecError("parse", "VMCOREINFO has no SYMBOL(prb): the kernel predates the lockless printk ring buffer (5.10)", { field: "SYMBOL(prb)" },
      "this kexec-ts reads the lockless ring buffer only; makedumpfile --dump-dmesg reads older log_buf layouts");
  }
  const { word, svShift, idMask } = words(mem);
  const ptr = mem.pointerSize;
  // Each field is read from a buffer of its struct's SIZE: member() checks that it fits there.
  const prb = mem.ulong(v.symbol("prb"), "prb (SYMBOL(prb))");
  const ring = mem.read(prb, v.size("printk_ringbuffer"), "*prb (printk_ringbuffer)");
  const descRing = v.member("printk_ringbuffer", "desc_ring", v.size("prb_desc_ring"));
  const textRing = v.member("printk_ringbuffer", "text_data_ring", v.size("prb_data_ring"));
  const counter = v.member("atomic_long_t", "counter", ptr);
  const inDescRing = (field: string, width: number) => descRing + v.member("prb_desc_ring", field, width);
  const inTextRing = (field: string, width: number) => textRing + v.member("prb_data_ring", field, width);

  const countBits = u32At(ring, inDescRing("count_bits", 4));
  const sizeBits = u32At(ring, inTextRing("size_bits", 4));
  if (countBits > 24 || sizeBits > 31) {
    throw new KexecError("parse", `printk ring buffer: count_bits ${countBits} / size_bits ${sizeBits} are beyond any kernel's limits`, { field: "prb_desc_ring.count_bits", actual: `${countBits}/${sizeBits}` }, "the dump's memory is corrupt here");
  }
  const count = 1n << BigInt(countBits);
  const dataSize = 1n << BigInt(sizeBits);
  const descSize = v.size("prb_desc");
  const infoSize = v.size("printk_info");
  const descs = mem.read(word(ring, inDescRing("descs", ptr)), descSize * Number(count), "the descriptors at prb_desc_ring.descs");
  const infos = mem.read(word(ring, inDescRing("infos", ptr)), infoSize * Number(count), "the printk_info array at prb_desc_ring.infos");
  const data = mem.read(word(ring, inTextRing("data", ptr)), Number(dataSize), "the text at prb_data_ring.data");
  const atomic = v.size("atomic_long_t");
  const tail = word(ring, inDescRing("tail_id", atomic) + counter);
  const head = word(ring, inDescRing("head_id", atomic) + counter);

  const stateVar = v.member("prb_desc", "state_var", atomic) + counter;
  const lpos = v.member("prb_desc", "text_blk_lpos", v.size("prb_data_blk_lpos"));
  const beginAt = lpos + v.member("prb_data_blk_lpos", "begin", ptr);
  const nextAt = lpos + v.member("prb_data_blk_lpos", "next", ptr);
  const seqAt = v.member("printk_info", "seq", 8);
  const tsAt = v.member("printk_info", "ts_nsec", 8);
  const lenAt = v.member("printk_info", "text_len", 2);
  const callerAt = v.optionalMember("printk_info", "caller_id", 4);

  const records: LogRecord[] = [];
  const one = (id: bigint) => {
    const index = Number(id % count);
    const d = index * descSize;
    const sv = word(descs, d + stateVar);
    if ((sv & idMask) !== id) return;
    const state = sv >> svShift;
    if (state !== DESC_COMMITTED && state !== DESC_FINALIZED) return;
    let begin = word(descs, d + beginAt) % dataSize;
    const next = word(descs, d + nextAt) % dataSize;
    if (begin === next) return; // a record without text
    // A block that would wrap is stored whole at the start of the ring instead.
    if (begin > next) begin = 0n;
    begin += BigInt(mem.pointerSize); // the block starts with its descriptor id (an unsigned long)
    const i = index * infoSize;
    let len = BigInt(u16At(infos, i + lenAt));
    const room = next - begin;
    const truncated = room < len;
    if (truncated) len = room < 0n ? 0n : room;
    const bytes = data.subarray(Number(begin), Number(begin + len));
    records.push({
      seq: u64At(infos, i + seqAt), tsNsec: u64At(infos, i + tsAt), callerId: callerAt === undefined ? 0 : u32At(infos, i + callerAt),
      text: new TextDecoder("utf-8", { fatal: false }).decode(bytes), truncated,
    });
  };
  // Bounded: a corrupt head/tail pair must not loop for 2^62 ids.
  let id = tail;
  for (let n = 0n; id !== head && n <= count; n++, id = (id + 1n) & idMask) one(id);
  one(id);
  return records;
}

/** makedumpfile --dump-dmesg's layout: "[    s.uuuuuu] text", continuation lines indented under the text. */
export function formatDmesg(records: readonly LogRecord[]): string {
  let out = "";
  for (const r of records) {
    const secs = r.tsNsec / 1000000000n;
    const micros = (r.tsNsec % 1000000000n) / 1000n;
    const prefix = `[${secs.toString().padStart(5)}.${micros.toString().padStart(6, "0")}] `;
    const indent = " ".repeat(prefix.length);
    let text = "";
    for (const ch of r.text) {
      const c = ch.codePointAt(0)!;
      if (ch === "\n") text += `\n${indent}`;
      else if ((c >= 0x20 && c < 0x7f) || (c >= 0x09 && c <= 0x0d) || c >= 0xa0) text += ch;
      else text += `\\x${c.toString(16).padStart(2, "0")}`;
    }
    out += `${prefix}${text}\n`;
  }
  return out;
}

/**
 * The page frames holding the printk ring buffer (the ring structure, descriptors, infos,
 * text): a dump writer stores these first, so a dump cut short still has the log.
 * Empty when the kernel's layout cannot be read; this is an optimisation, never an error.
 */
export function printkPageFrames(mem: KernelMemory, info: VmcoreInfo, pageSize: number): bigint[] {
  try {
    const v = new VmcoreInfoView(info, "locating the printk ring buffer");
    const { word } = words(mem);
    const ptr = mem.pointerSize;
    const prbSymbol = v.symbol("prb");
    const prb = mem.ulong(prbSymbol, "prb");
    const ring = mem.read(prb, v.size("printk_ringbuffer"), "printk_ringbuffer");
    const descRing = v.offset("printk_ringbuffer.desc_ring");
    const textRing = v.offset("printk_ringbuffer.text_data_ring");
    const count = 1 << u32At(ring, descRing + v.offset("prb_desc_ring.count_bits"));
    const dataSize = 2 ** u32At(ring, textRing + v.offset("prb_data_ring.size_bits"));
    const ranges: [bigint, number][] = [
      [prbSymbol, ptr],
      [prb, v.size("printk_ringbuffer")],
      [word(ring, descRing + v.offset("prb_desc_ring.descs")), count * v.size("prb_desc")],
      [word(ring, descRing + v.offset("prb_desc_ring.infos")), count * v.size("printk_info")],
      [word(ring, textRing + v.offset("prb_data_ring.data")), dataSize],
    ];
    const ps = BigInt(pageSize);
    const frames = new Set<bigint>();
    // makedumpfile checks the release in init_uts_ns before anything, and walks page tables even for text.
    const uts = info.symbols.get("init_uts_ns");
    if (uts !== undefined) ranges.push([uts, 512]);
    // ...and validates the sparse memory model: the mem_section roots and the section arrays they point to.
    const memSection = info.symbols.get("mem_section");
    const roots = Number(info.lengths.get("mem_section") ?? 0n);
    if (memSection !== undefined && roots > 0 && roots <= 1 << 16) {
      ranges.push([memSection, roots * ptr]);
      const table = mem.read(memSection, roots * ptr, "mem_section roots");
      for (let i = 0; i < roots; i++) {
        const root = word(table, i * ptr);
        if (root !== 0n) ranges.push([root, pageSize]);
      }
    }
    // The flat model's mem_map pointer (i386).
    const memMap = info.symbols.get("mem_map");
    if (memMap !== undefined && memSection === undefined) ranges.push([memMap, ptr]);
    for (const [start, length] of ranges) {
      if (length <= 0 || length > 1 << 30) continue;
      for (let at = start & ~(ps - 1n); at < start + BigInt(length); at += ps) {
        frames.add(mem.translate(at) / ps);
        for (const table of mem.pageTablePages(at)) frames.add(table / ps);
      }
    }
    return [...frames].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } catch {
    return [];
  }
}
