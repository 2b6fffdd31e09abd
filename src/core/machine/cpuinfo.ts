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

const HINT = "/proc/cpuinfo should be the kernel's own output; re-take it with `kexec-ts snapshot`";

export function parseCpuinfo(text: string): CpuInfo {
  const blocks: Map<string, { value: string; line: Line }>[] = [];
  let current: Map<string, { value: string; line: Line }> | null = null;
  for (const line of numberedLines(text)) {
    if (line.text.trim() === "") {
      current = null;
      continue;
    }
    const colon = line.text.indexOf(":");
    if (colon < 0) throw lineError(line, `"key : value"`, "a line without ':'", HINT);
    const key = line.text.slice(0, colon).trim();
    const value = line.text.slice(colon + 1).trim();
    if (current === null) {
      current = new Map();
      blocks.push(current);
    }
    if (!current.has(key)) current.set(key, { value, line });
  }
  const processors = blocks.filter((b) => b.has("processor"));
  const first = processors[0] ?? blocks[0];
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
    count: processors.length,
    vendor: first?.get("vendor_id")?.value ?? null,
    modelName: first?.get("model name")?.value ?? null,
    flags: flags ? flags.split(/\s+/).filter((f) => f !== "") : [],
    physicalBits,
    virtualBits,
  };
}
