/**
 * /proc/iomem: the kernel's resource tree, one "start-end : name" per line,
 * nested by indentation (two spaces per level, kernel/resource.c r_show()).
 */
import { MAX_U64, lineError, numberedLines, type Line } from "./text.js";

export interface IomemEntry {
  /** Half-open: the kernel prints an inclusive end, converted once in parseIomem. */
  start: bigint;
  size: bigint;
  name: string;
  /** 0 for top-level resources. */
  depth: number;
  /** Line in the file, for messages that point back at the source. */
  line: number;
  children: IomemEntry[];
}

export interface Iomem {
  /**
   * Without CAP_SYS_ADMIN the kernel prints every range as 00000000-00000000;
   * then `roots` and `flat` are empty, because the addresses are not facts.
   */
  addressesHidden: boolean;
  /** Number of lines, so a hidden map still says how much it hid. */
  lineCount: number;
  roots: IomemEntry[];
  /** Every entry in file order (pre-order walk of the tree). */
  flat: IomemEntry[];
}

const LINE = /^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$/;
const HINT = "/proc/iomem should be the kernel's own output; if it came from a snapshot, re-take it with `kexec-ts snapshot`";

export function parseIomem(text: string): Iomem {
  const lines = numberedLines(text);
  const parsed: { line: Line; depth: number; first: bigint; last: bigint; name: string }[] = [];
  for (const line of lines) {
    if (line.text.trim() === "") continue;
    const m = LINE.exec(line.text);
    if (!m) {
      throw lineError(line, `"<indent><start>-<end> : <name>" with hex start and end`, describeMismatch(line.text), HINT);
    }
    const indent = m[1]!.length;
    if (indent % 2 !== 0) {
      throw lineError(line, "an indentation of a multiple of 2 spaces", `${indent} spaces`, HINT);
    }
    // LINE matched hex digits only: no second check per number (4,000 lines on a large machine).
    const first = BigInt(`0x${m[2]!}`);
    const last = BigInt(`0x${m[3]!}`);
    if (last > MAX_U64 || first > MAX_U64) {
      throw lineError(line, "addresses of 64 bits at most", `${(last > MAX_U64 ? m[3]! : m[2]!).length} hex digits`, HINT);
    }
    // A resource's size is 64 bits too (resource_size_t): all of [0, 2^64) is none.
    if (first === 0n && last === MAX_U64) throw lineError(line, "a range whose size fits 64 bits", "all of [0, 2^64)", HINT);
    parsed.push({ line, depth: indent / 2, first, last, name: m[4]! });
  }

  const hidden = parsed.length > 0 && parsed.every((p) => p.first === 0n && p.last === 0n);
  if (hidden) return { addressesHidden: true, lineCount: parsed.length, roots: [], flat: [] };

  const roots: IomemEntry[] = [];
  const flat: IomemEntry[] = [];
  // stack[d] is the most recent entry at depth d: the parent of the next entry at depth d+1.
  const stack: IomemEntry[] = [];
  for (const p of parsed) {
    if (p.last < p.first) {
      throw lineError(p.line, "end >= start", `end 0x${p.last.toString(16)} below start 0x${p.first.toString(16)}`, HINT);
    }
    if (p.depth > stack.length) {
      throw lineError(p.line, `nesting depth at most ${stack.length} (one deeper than the line before)`, `depth ${p.depth}`, HINT);
    }
    // The kernel prints [first, last] inclusive; this is the one place it becomes half-open.
    const entry: IomemEntry = { start: p.first, size: p.last - p.first + 1n, name: p.name, depth: p.depth, line: p.line.number, children: [] };
    stack.length = p.depth;
    const parent = stack[p.depth - 1];
    const siblings = parent ? parent.children : roots;
    if (parent && (entry.start < parent.start || end(entry) > end(parent))) {
      throw lineError(p.line, `a range inside its parent ${describe(parent)}`, describe(entry), HINT);
    }
    const previous = siblings[siblings.length - 1];
    if (previous && entry.start < end(previous)) {
      throw lineError(p.line, `a range starting at or after the end of the previous sibling ${describe(previous)}`, describe(entry), HINT);
    }
    siblings.push(entry);
    flat.push(entry);
    stack.push(entry);
  }
  return { addressesHidden: false, lineCount: parsed.length, roots, flat };
}

/** Prints entries the way the kernel does (inclusive end), for tests and fixtures. */
export function formatIomem(roots: IomemEntry[]): string {
  const out: string[] = [];
  const walk = (entries: IomemEntry[], depth: number): void => {
    for (const e of entries) {
      // r_show() pads to 8 digits for iomem; longer values just print longer.
      const a = e.start.toString(16).padStart(8, "0");
      const b = (e.start + e.size - 1n).toString(16).padStart(8, "0");
      out.push(`${"  ".repeat(depth)}${a}-${b} : ${e.name}`);
      walk(e.children, depth + 1);
    }
  };
  walk(roots, 0);
  return out.map((l) => `${l}\n`).join("");
}

/** Every entry, at any depth, whose name is exactly `name` ("Crash kernel", "Kernel code"). */
export function findIomem(iomem: Iomem, name: string): IomemEntry[] {
  return iomem.flat.filter((e) => e.name === name);
}

function end(e: IomemEntry): bigint {
  return e.start + e.size;
}

function describe(e: IomemEntry): string {
  return `[0x${e.start.toString(16)}, 0x${end(e).toString(16)}) "${e.name}" (line ${e.line})`;
}

function describeMismatch(text: string): string {
  if (!/^ *[0-9a-fA-F]/.test(text)) return "a line that does not start with a hex address";
  if (!/^ *[0-9a-fA-F]+-/.test(text)) return "no '-' after the start address";
  if (!/^ *[0-9a-fA-F]+-[0-9a-fA-F]+ : /.test(text)) return "no \" : \" after the end address";
  return "something else";
}
