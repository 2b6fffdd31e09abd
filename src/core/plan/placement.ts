/**
 * Placing segments in physical memory, with reasons. Each bound of a
 * placement window remembers who set it ("initrd_addr_max of the image",
 * "--mem-max", "the crash region"), so a failure can say exactly which limit
 * left no room — the opposite of kexec-tools' bare "locate_hole failed".
 */
import { KexecError } from "../errors.js";
import { hex, size } from "../format.js";
import { PAGE_SIZE, alignUp, end, findHole, normalize, subtract, type Range } from "./ranges.js";

export interface Bound {
  value: bigint;
  /** Who set it, in words: "init_size alignment (kernel_alignment)", "--mem-max". */
  reason: string;
}

export interface PlacementRequest {
  /** The segment's kind, for messages ("kernel", "initrd", ...). */
  what: string;
  size: bigint;
  align: bigint;
  /** Every lower bound that applies; the highest wins. */
  mins: Bound[];
  /** Every exclusive upper limit that applies; the lowest wins. */
  limits: Bound[];
  topDown: boolean;
}

export interface Placed {
  mem: bigint;
  memsz: bigint;
}

/** One placement and the bounds that framed it, for pictures of the plan (the web page draws them). */
export interface PlacementRecord {
  what: string;
  mem: bigint;
  memsz: bigint;
  align: bigint;
  topDown: boolean;
  /** The bound that won on each side: the window was [min, limit). */
  min: Bound;
  limit: Bound;
  /** Every bound that applied, the winners included. */
  mins: Bound[];
  limits: Bound[];
  /** A fixed address (a non-relocatable kernel, an ELF's p_paddr): no window. */
  fixed: boolean;
}

function strongest(bounds: Bound[], pick: "max" | "min", fallback: Bound): Bound {
  let best = fallback;
  for (const b of bounds) if (pick === "max" ? b.value > best.value : b.value < best.value) best = b;
  return best;
}

export class Placer {
  private free: Range[];
  private readonly used: Range[] = [];
  /** Every placement so far, in order, with its bounds. */
  readonly log: PlacementRecord[] = [];
  /** The memory the placer may use at all, for messages ("System RAM", "the crash region"). */
  readonly poolName: string;
  readonly pool: readonly Range[];

  constructor(pool: readonly Range[], poolName: string) {
    this.pool = normalize(pool);
    this.free = this.pool.slice();
    this.poolName = poolName;
  }

  /** Reserve a fixed range (e.g. a non-relocatable kernel at pref_address). */
  reserveFixed(what: string, mem: bigint, memsz: bigint): Placed {
    const r = { start: mem, size: alignUp(memsz, PAGE_SIZE) };
    const inside = this.free.some((f) => f.start <= r.start && end(r) <= end(f));
    if (!inside) {
      throw new KexecError("plan", `${what}: needs ${hex(r.size)} bytes at the fixed address ${hex(mem)}, but that is not free in ${this.poolName}`,
        { field: what, expected: `free memory at ${hex(mem)}-${hex(end(r))}`, actual: this.describeFree() }, "this image is not relocatable: it can only go at its preferred address");
    }
    this.take(r);
    const here: Bound = { value: mem, reason: `${what}: a fixed address` };
    this.log.push({ what, mem, memsz: r.size, align: PAGE_SIZE, topDown: false, min: here, limit: { value: end(r), reason: here.reason }, mins: [], limits: [], fixed: true });
    return { mem, memsz: r.size };
  }

  place(req: PlacementRequest): Placed {
    const memsz = alignUp(req.size, PAGE_SIZE);
    const align = req.align > PAGE_SIZE ? req.align : PAGE_SIZE;
    const min = strongest(req.mins, "max", { value: 0n, reason: "address 0" });
    const limit = strongest(req.limits, "min", { value: 1n << 64n, reason: "the 64-bit address space" });
    const at = findHole(this.free, { size: memsz, align, min: alignUp(min.value, align), limit: limit.value, topDown: req.topDown });
    if (at === undefined) {
      const window = limit.value > min.value ? `${hex(min.value)}-${hex(limit.value)}` : "empty";
      throw new KexecError("plan",
        `no room for the ${req.what}: ${hex(memsz)} bytes (${size(memsz)}) aligned to ${hex(align)} must lie in ${window} — at or above ${hex(min.value)} (${min.reason}) and below ${hex(limit.value)} (${limit.reason}); free in ${this.poolName} there: ${this.describeFree(min.value, limit.value)}`,
        { field: req.what, size: hex(memsz), align: hex(align), min: hex(min.value), minReason: min.reason, limit: hex(limit.value), limitReason: limit.reason, free: this.free.map((f) => ({ start: hex(f.start), size: hex(f.size) })) },
        `the ${req.what} needs a larger ${this.poolName === "the crash region" ? "crash region (crashkernel=)" : "hole"}, or relax the limit that binds (${limit.reason}; ${min.reason})`);
    }
    this.take({ start: at, size: memsz });
    this.log.push({ what: req.what, mem: at, memsz, align, topDown: req.topDown, min, limit, mins: req.mins, limits: req.limits, fixed: false });
    return { mem: at, memsz };
  }

  private take(r: Range): void {
    this.used.push(r);
    this.free = subtract(this.free, [r]);
  }

  describeFree(from = 0n, to = 1n << 64n): string {
    const parts = this.free
      .map((f) => ({ start: f.start > from ? f.start : from, end: end(f) < to ? end(f) : to }))
      .filter((f) => f.end > f.start)
      .map((f) => `${hex(f.start)}-${hex(f.end)} (${size(f.end - f.start)})`);
    return parts.length ? parts.join(", ") : "none";
  }

  freeRanges(): Range[] {
    return this.free.slice();
  }
}
