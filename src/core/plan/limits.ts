/**
 * Sizes, limits and the memory a load may use, shared by the planner and the
 * checks so both reason about the same numbers.
 */
import type { Machine } from "../machine/model.js";
import type { Range } from "./ranges.js";

export const MiB = 0x100000n;
export const GiB = 0x40000000n;
export const GiB4 = 1n << 32n;
/** MAXMEM of a 4-level x86_64 kernel: 1 << MAX_PHYSMEM_BITS (46). */
export const TiB64 = 1n << 46n;
/** A 32-bit kernel must sit in its direct-mapped low memory (kexec-tools' DEFAULT_BZIMAGE_ADDR_MAX + 1). */
export const LOWMEM_896M = 0x38000000n;

/**
 * The memory both syscalls may place segments in: System RAM, or for a crash
 * load crashk_res only. With ,high (or the fallback above 4 GiB) there are two
 * "Crash kernel" regions; the kernel accepts segments only inside crashk_res,
 * the high one — crashk_low_res is memory for the capture kernel's DMA, handed
 * over through its memory map. null when there is none.
 */
export function usablePool(machine: Machine, crash: boolean): { pool: Range[]; name: string } | null {
  if (crash) {
    if (machine.crashRegions.length === 0) return null;
    const crashkRes = machine.crashRegions.reduce((a, b) => (b.start > a.start ? b : a));
    return { pool: [{ start: crashkRes.start, size: crashkRes.size }], name: "the crash region" };
  }
  const ram = machine.memory.filter((m) => m.type === "System RAM").map((m) => ({ start: m.start, size: m.size }));
  return ram.length ? { pool: ram, name: "System RAM" } : null;
}
