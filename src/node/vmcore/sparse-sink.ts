/**
 * For tests: a file in memory kept as its 64 KiB blocks that are not all zeros (what is not stored
 * reads as zeros, as a file's holes do). A dump of memory at 17 TiB has two bitmaps of 544 MiB,
 * nearly all zeros; a dump writer's sink (DumpSink) and a reader's RandomAccess over the same bytes.
 * Node-side for Buffer.compare (memcmp): testing a GiB of zeros per dump a word at a time in
 * JavaScript took seconds.
 */
import type { DumpSink } from "../../core/vmcore/dump-writer.js";
import type { RandomAccess } from "../../core/vmcore/memory.js";

export class SparseSink implements DumpSink {
  static readonly BLOCK = 1 << 16;
  static readonly ZEROS = new Uint8Array(SparseSink.BLOCK);
  readonly blocks = new Map<number, Uint8Array>();
  length = 0;

  write(offset: bigint, data: Uint8Array): void {
    const B = SparseSink.BLOCK;
    let at = Number(offset);
    this.length = Math.max(this.length, at + data.length);
    for (let from = 0; from < data.length; ) {
      const block = Math.floor(at / B);
      const within = at - block * B;
      const part = data.subarray(from, from + Math.min(B - within, data.length - from));
      let stored = this.blocks.get(block);
      if (stored === undefined && Buffer.compare(part, SparseSink.ZEROS.subarray(0, part.length)) !== 0) this.blocks.set(block, (stored = new Uint8Array(B)));
      stored?.set(part, within);
      from += part.length;
      at += part.length;
    }
  }

  async writeAsync(offset: bigint, data: Uint8Array): Promise<void> {
    this.write(offset, data);
  }

  /** `length` bytes from `offset`, zeros where nothing was written. */
  read(offset: number, length: number): Uint8Array {
    const B = SparseSink.BLOCK;
    const out = new Uint8Array(length);
    for (let block = Math.floor(offset / B); block * B < offset + length; block++) {
      const stored = this.blocks.get(block);
      if (stored === undefined) continue;
      const from = Math.max(offset, block * B);
      const to = Math.min(offset + length, (block + 1) * B);
      out.set(stored.subarray(from - block * B, to - block * B), from - offset);
    }
    return out;
  }

  /** The set bits of the `bytes`-byte bitmap at `at`, in order: page frames. */
  setBits(at: number, bytes: number): number[] {
    const B = SparseSink.BLOCK;
    const out: number[] = [];
    for (const block of [...this.blocks.keys()].sort((a, b) => a - b)) {
      const from = Math.max(at, block * B);
      const to = Math.min(at + bytes, (block + 1) * B);
      const stored = this.blocks.get(block)!;
      for (let o = from; o < to; o++) {
        const byte = stored[o - block * B]!;
        for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) out.push((o - at) * 8 + bit);
      }
    }
    return out;
  }

  /** The bytes written so far, as a reader opens a file. */
  access(): RandomAccess {
    return { size: BigInt(this.length), read: (offset, n) => this.read(Number(offset), n) };
  }
}

/** A sink whose output can be read back: the kdump writer then reads its 2nd bitmap's windows back instead of making them again. */
export class ReadableSparseSink extends SparseSink {
  readBack(offset: bigint, into: Uint8Array): void {
    into.set(this.read(Number(offset), into.length));
  }
}
