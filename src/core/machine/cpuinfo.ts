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

export function parseCpuinfo(text: string): CpuInfo {
  // One pass over the lines without making an object per line: a machine with 1,024 CPUs has
  // 28,000 of them, and only the first processor's block is read in full.
  let count = 0;
  let firstBlock: { from: number; to: number; line: number } | undefined;
  let firstProcessorBlock: { from: number; to: number; line: number } | undefined;
  let block: { from: number; to: number; line: number; processor: boolean } | undefined;
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
