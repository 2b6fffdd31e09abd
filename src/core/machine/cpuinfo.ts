/** /proc/cpuinfo (arch/x86/kernel/cpu/proc.c show_cpuinfo): one "key\t: value" block per processor. */
import { lineError, numberedLines, type Line } from "./text.js";

export interface CpuInfo {
  /** Number of "processor" blocks: the online CPUs. */
  count: number;
  vendor: string | null;
  modelName: string | null;
  /** Flags of the first processor; the kernel keeps them identical across CPUs. */
  flags: string[];
  /** From "address sizes": what the CPU supports, not the paging mode in use. */
  physicalBits: number | null;
  virtualBits: number | null;
}

/** The chars below 0x100 that String.prototype.trim removes (ECMAScript WhiteSpace and LineTerminator); above, trim decides. */
const TRIMMED = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0]);

const HINT = "/proc/cpuinfo should be the kernel's own output; re-take it with `kexec-ts snapshot`";

/** A run of non-blank lines (a processor's "key : value" lines): where it lies in the text and its first line's number. */
interface Block {
  from: number;
  to: number;
  line: number;
}

interface Blocks {
  /** Blocks with a "processor" line. */
  count: number;
  first: Block | undefined;
  firstProcessor: Block | undefined;
}

/**
 * `scan`: "blocks" reads the file a processor's block at a time where it has the kernel's shape,
 * and line by line where it has not (as "lines" always does); both give the same answer.
 */
export function parseCpuinfo(text: string, scan: "blocks" | "lines" = "blocks"): CpuInfo {
  const { count, first: firstBlock, firstProcessor: firstProcessorBlock } = (scan === "blocks" ? blocksAtATime(text) : undefined) ?? blocksLineByLine(text);
  const chosen = firstProcessorBlock ?? firstBlock;
  const first = chosen === undefined ? undefined : blockFields(text.slice(chosen.from, chosen.to), chosen.line);
  let physicalBits: number | null = null;
  let virtualBits: number | null = null;
  const sizes = first?.get("address sizes");
  if (sizes) {
    const m = /^(\d+) bits physical, (\d+) bits virtual$/.exec(sizes.value);
    if (!m) throw lineError(sizes.line, `"N bits physical, M bits virtual"`, JSON.stringify(sizes.value), HINT);
    physicalBits = Number(m[1]);
    virtualBits = Number(m[2]);
  }
  const flags = first?.get("flags")?.value;
  return {
    count,
    vendor: first?.get("vendor_id")?.value ?? null,
    modelName: first?.get("model name")?.value ?? null,
    flags: flags ? flags.split(/\s+/).filter((f) => f !== "") : [],
    physicalBits,
    virtualBits,
  };
}

// Sticky: each matches at lastIndex. A blank line (what trim() empties: \s is its set), its newline included.
const BLANK_LINE = /[^\S\n]*(?:\n|$)/y;
// A line whose key (before its first ':') trims to "processor".
const PROCESSOR_LINE = /[^\S\n]*processor[^\S\n]*:/y;
// Lines that each have a ':', up to (not into) the newline of the last.
const COLON_LINES = /[^\n:]*:[^\n]*(?:\n[^\n:]*:[^\n]*)*/y;

/**
 * The kernel's shape, a block at a time: blank lines, and blocks of "key : value" lines that each
 * start with their processor line. Three searches in native code per block, where the line loop
 * below runs V8's interpreter through each of a block's ~28 lines: 1,024 CPUs' 1 MiB of cpuinfo
 * took 4-7 ms of `plan -p` so. undefined where the text has another shape (a block that does not
 * start with its processor line, a line without ':'): the line loop then says what it says.
 */
function blocksAtATime(text: string): Blocks | undefined {
  let count = 0;
  let first: Block | undefined;
  let at = 0;
  while (at < text.length) {
    BLANK_LINE.lastIndex = at;
    if (BLANK_LINE.test(text)) {
      at = BLANK_LINE.lastIndex;
      continue;
    }
    PROCESSOR_LINE.lastIndex = at;
    if (!PROCESSOR_LINE.test(text)) return undefined;
    COLON_LINES.lastIndex = at;
    COLON_LINES.test(text);
    // The block ends at a newline before a line without ':', which must be blank (the loop's next test), or at the end.
    const to = COLON_LINES.lastIndex;
    first ??= { from: at, to, line: lineNumberAt(text, at) };
    count++;
    at = to + 1;
  }
  return { count, first, firstProcessor: first };
}

/** The 1-based number of the line that starts at `at`. */
function lineNumberAt(text: string, at: number): number {
  let number = 1;
  for (let nl = text.indexOf("\n"); nl >= 0 && nl < at; nl = text.indexOf("\n", nl + 1)) number++;
  return number;
}

/** Line by line, as the kernel's shape or not: one pass without making an object per line. */
function blocksLineByLine(text: string): Blocks {
  // A machine with 1,024 CPUs has 28,000 lines, and only the first processor's block is read in full.
  let count = 0;
  let firstBlock: Block | undefined;
  let firstProcessorBlock: Block | undefined;
  let block: (Block & { processor: boolean }) | undefined;
  const endBlock = () => {
    if (!block) return;
    firstBlock ??= block;
    if (block.processor) {
      count++;
      firstProcessorBlock ??= block;
    }
    block = undefined;
  };
  for (let at = 0, number = 1; at < text.length; number++) {
    let end = text.indexOf("\n", at);
    if (end < 0) end = text.length;
    // A line that starts with a char trim() keeps is not blank: the line is cut out only when it might be.
    const first = text.charCodeAt(at);
    if ((end === at || first > 0xff || TRIMMED.has(first)) && text.slice(at, end).trim() === "") endBlock();
    else {
      const found = text.indexOf(":", at);
      const colon = found >= 0 && found < end ? found - at : -1;
      if (colon < 0) {
        const line = text.slice(at, end);
        throw lineError({ number, text: line.endsWith("\r") ? line.slice(0, -1) : line }, `"key : value"`, "a line without ':'", HINT);
      }
      block ??= { from: at, to: end, line: number, processor: false };
      block.to = end;
      if (!block.processor && text.slice(at, at + colon).trim() === "processor") block.processor = true;
    }
    at = end + 1;
  }
  endBlock();
  return { count, first: firstBlock, firstProcessor: firstProcessorBlock };
}

/** A block's "key : value" lines, the first of each key kept; line numbers from `firstLine` on. */
function blockFields(block: string, firstLine: number): Map<string, { value: string; line: Line }> {
  const fields = new Map<string, { value: string; line: Line }>();
  for (const line of numberedLines(block)) {
    const colon = line.text.indexOf(":");
    const key = line.text.slice(0, colon).trim();
    if (!fields.has(key)) fields.set(key, { value: line.text.slice(colon + 1).trim(), line: { ...line, number: line.number + firstLine - 1 } });
  }
  return fields;
}
