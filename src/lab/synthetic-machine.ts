/**
 * Synthetic machine snapshots for planning at scale (issue 15, target 3): a real
 * QEMU guest's snapshot (testdata/snapshots) with its memory map, CPUs and crash
 * reservation scaled up to machines the lab cannot boot — 64 TiB with 4-level
 * paging, 4 PiB with 5-level, thousands of iomem ranges, a thousand CPUs'
 * crash notes, crashkernel=,high plus ,low. Everything the guest's kernel
 * said about itself (version, vmcoreinfo, boot protocol, CPU model) is kept;
 * only what scales with the machine is rewritten, the way the kernel would
 * print it. Generated on demand, never committed:
 *
 *   npm run build && node dist/lab/synthetic-machine.js OUT --model 64T-4level
 *   node dist/lab/synthetic-machine.js OUT --paging 4 --ram 8T --ram-ranges 400 --reserved-holes --cpus 8
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeStruct } from "../core/bytes/layout.js";
import { BOOT_PARAMS, E820_MAX_ENTRIES_ZEROPAGE } from "../core/image/boot-params.js";
import { encodeE820 } from "../core/plan/zero-page.js";
import { latin1 } from "../core/bytes/reader.js";
import type { MachineFiles } from "../core/machine/files.js";
import { formatIomem, parseIomem, type IomemEntry } from "../core/machine/iomem.js";
import { e820TypeFromName } from "../core/plan/zero-page.js";
import { collectMachineFiles } from "../node/rootfs.js";

export interface SyntheticMachineOptions {
  /** 4 (up to 64 TiB of physical address space) or 5 (up to 4 PiB). */
  paging: 4 | 5;
  /** Where the physical address space ends: the highest System RAM range stops a hole short of it. */
  ramTop: bigint;
  /** System RAM ranges in all: the base's below 4 GiB, then equal ones up to ramTop with a hole after each. */
  ramRanges: number;
  /** List each hole as a "Reserved" range (in /proc/iomem and the e820 table), as much firmware does; else leave it unlisted. */
  reservedHoles: boolean;
  cpus: number;
  /** crashkernel=HIGH,high crashkernel=LOW,low */
  crashHigh: bigint;
  crashLow: bigint;
}

export const GiB = 1n << 30n;
export const TiB = 1n << 40n;
export const PiB = 1n << 50n;
const MiB = 1n << 20n;
/** arch/x86/include/asm/crash_reserve.h: 16 MiB alignment, low below 4 GiB, high below 64 TiB (even with 5-level paging). */
const CRASH_ALIGN = 16n * MiB;
const CRASH_ADDR_LOW_MAX = 4n * GiB;
const CRASH_ADDR_HIGH_MAX = 64n * TiB;

/** The committed guest snapshot each paging mode starts from. */
export function baseSnapshotFor(paging: 4 | 5): string {
  const name = paging === 5 ? "qemu-amd64-6.1-5level-crash1968M" : "qemu-amd64-6.1-no5lvl-crash1968M";
  return fileURLToPath(new URL(`../../testdata/snapshots/${name}`, import.meta.url));
}

/** The presets the bench and the tests use: the two machines. */
export const SCALE_MODELS: Record<string, SyntheticMachineOptions> = {
  "64T-4level": { paging: 4, ramTop: 64n * TiB, ramRanges: 4096, reservedHoles: false, cpus: 1024, crashHigh: 2n * GiB, crashLow: 256n * MiB },
  "4P-5level": { paging: 5, ramTop: 4n * PiB, ramRanges: 4096, reservedHoles: false, cpus: 1024, crashHigh: 2n * GiB, crashLow: 256n * MiB },
};

export async function readBaseSnapshot(paging: 4 | 5): Promise<MachineFiles> {
  const { files, dirs } = await collectMachineFiles(baseSnapshotFor(paging));
  return { files, dirs };
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The scaled machine's files, from the base guest's: what a `kexec-ts snapshot` of such a machine would hold. */
export function syntheticMachineFiles(base: MachineFiles, o: SyntheticMachineOptions): MachineFiles {
  const files: Record<string, Uint8Array> = {};
  const keep = (rel: string): void => {
    if (base.files[rel] && !rel.startsWith("sys/firmware/memmap/") && !rel.startsWith("sys/devices/system/cpu/cpu")) files[rel] = base.files[rel]!;
  };
  Object.keys(base.files).forEach(keep);

  const iomem = scaledIomem(latin1(base.files["proc/iomem"]!), o);
  files["proc/iomem"] = text(formatIomem(iomem));

  // The firmware's view (e820): RAM and reserved ranges, without the kernel's own children and PCI windows.
  const e820 = iomem.filter((r) => e820TypeFromName(r.name) !== undefined).slice(0, E820_BOOT_ENTRIES);
  e820.forEach((r, i) => {
    files[`sys/firmware/memmap/${i}/start`] = text(`0x${r.start.toString(16)}\n`);
    files[`sys/firmware/memmap/${i}/end`] = text(`0x${(r.start + r.size - 1n).toString(16)}\n`);
    files[`sys/firmware/memmap/${i}/type`] = text(`${r.name}\n`);
  });
  files["sys/kernel/boot_params/data"] = bootParamsWithE820(base.files["sys/kernel/boot_params/data"]!, e820);

  const ramBytes = iomem.filter((r) => r.name === "System RAM").reduce((n, r) => n + r.size, 0n);
  files["proc/meminfo"] = text(latin1(base.files["proc/meminfo"]!).replace(/^MemTotal:\s+\d+ kB$/m, `MemTotal:       ${ramBytes >> 10n} kB`));
  const cmdline = latin1(base.files["proc/cmdline"]!).trim().split(/\s+/).filter((w) => !w.startsWith("crashkernel="));
  cmdline.push(`crashkernel=${o.crashHigh >> 20n}M,high`, `crashkernel=${o.crashLow >> 20n}M,low`);
  files["proc/cmdline"] = text(`${cmdline.join(" ")}\n`);
  files["sys/kernel/kexec_crash_size"] = text(`${o.crashHigh}\n`);

  files["proc/cpuinfo"] = text(scaledCpuinfo(latin1(base.files["proc/cpuinfo"]!), o));
  files["sys/devices/system/cpu/possible"] = text(`0-${o.cpus - 1}\n`);
  files["sys/devices/system/cpu/present"] = text(`0-${o.cpus - 1}\n`);
  // Per-CPU areas: each CPU's crash_notes at the same offset in its own per-CPU chunk, as the kernel's allocator lays them out.
  const note0 = BigInt(latin1(base.files["sys/devices/system/cpu/cpu0/crash_notes"]!).trim().replace(/^(0x)?/, "0x"));
  const noteSize = base.files["sys/devices/system/cpu/cpu0/crash_notes_size"]!;
  for (let cpu = 0; cpu < o.cpus; cpu++) {
    files[`sys/devices/system/cpu/cpu${cpu}/crash_notes`] = text(`${(note0 + BigInt(cpu) * 0x40000n).toString(16)}\n`);
    files[`sys/devices/system/cpu/cpu${cpu}/crash_notes_size`] = noteSize;
  }
  return { files, dirs: [...base.dirs] };
}

/**
 * The base's map below 4 GiB as it is (firmware, the kernel's own ranges, PCI),
 * with its crash region moved to where crashkernel=,low puts it; above 4 GiB,
 * System RAM ranges with holes between them up to ramTop, the ,high region at
 * the top of the RAM below 64 TiB.
 */
function scaledIomem(baseText: string, o: SyntheticMachineOptions): IomemEntry[] {
  const entry = (start: bigint, size: bigint, name: string, children: IomemEntry[] = []): IomemEntry => ({ start, size, name, depth: 0, line: 0, children });
  const low = parseIomem(baseText).roots.filter((r) => r.start < 4n * GiB).map((r) => ({ ...r, children: r.children.filter((c) => c.name !== "Crash kernel") }));
  const lowRam = low.filter((r) => r.name === "System RAM").at(-1)!;
  const lowEnd = alignDown(min(lowRam.start + lowRam.size, CRASH_ADDR_LOW_MAX), CRASH_ALIGN);
  lowRam.children.push(entry(lowEnd - o.crashLow, o.crashLow, "Crash kernel"));

  const lowRamCount = low.filter((r) => r.name === "System RAM").length;
  const count = BigInt(o.ramRanges - lowRamCount);
  if (count < 1n) throw new Error(`--ram-ranges ${o.ramRanges}: the base map alone has ${lowRamCount} below 4 GiB`);
  // Each step is a RAM range and a hole a 64th of its size (between DIMMs, nodes, hot-plug slots).
  const step = alignDown((o.ramTop - 4n * GiB) / count, 128n * MiB);
  if (step < 256n * MiB) throw new Error(`--ram ${o.ramTop}: too little above 4 GiB for ${count} ranges`);
  const hole = step / 64n;
  const high: IomemEntry[] = [];
  for (let i = 0n; i < count; i++) {
    high.push(entry(4n * GiB + i * step, step - hole, "System RAM"));
    if (o.reservedHoles && i < count - 1n) high.push(entry(4n * GiB + (i + 1n) * step - hole, hole, "Reserved"));
  }
  const highRam = high.filter((r) => r.name === "System RAM" && r.start < CRASH_ADDR_HIGH_MAX).at(-1)!;
  const highEnd = alignDown(min(highRam.start + highRam.size, CRASH_ADDR_HIGH_MAX), CRASH_ALIGN);
  highRam.children.push(entry(highEnd - o.crashHigh, o.crashHigh, "Crash kernel"));
  return [...low, ...high];
}

/**
 * The e820 table holds at most E820_MAX_ENTRIES (128 + 3 * MAX_NUMNODES: 3,200 with
 * Debian's NODES_SHIFT=10) and the kernel drops the rest, so a machine with more
 * ranges than that got them by memory hot-plug (ACPI memory devices, virtio-mem):
 * System RAM in /proc/iomem that the firmware memmap never listed. Here the RAM
 * above the first E820_BOOT_ENTRIES ranges is such hot-added memory.
 */
const E820_BOOT_ENTRIES = 2048;

function scaledCpuinfo(baseText: string, o: SyntheticMachineOptions): string {
  const block = baseText.split(/\n\n/)[0]!;
  const physicalBits = o.paging === 5 ? 52 : 46;
  const virtualBits = o.paging === 5 ? 57 : 48;
  let template = block.replace(/^address sizes\t: .*$/m, `address sizes\t: ${physicalBits} bits physical, ${virtualBits} bits virtual`);
  template = template.replace(/^(flags\t\t: .*?)( la57)?$/m, (_, flags: string) => (o.paging === 5 ? `${flags} la57` : flags));
  const out: string[] = [];
  for (let cpu = 0; cpu < o.cpus; cpu++) {
    out.push(template.replace(/^processor\t: \d+$/m, `processor\t: ${cpu}`).replace(/^(apicid|initial apicid)\t: \d+$/gm, `$1\t: ${cpu}`)
      .replace(/^siblings\t: \d+$/m, `siblings\t: ${o.cpus}`).replace(/^core id\t\t: \d+$/m, `core id\t\t: ${cpu}`).replace(/^cpu cores\t: \d+$/m, `cpu cores\t: ${o.cpus}`));
  }
  return `${out.join("\n\n")}\n\n`;
}

/** The guest's zero page with the first 128 e820 entries of the new map, as firmware hands them to the kernel. */
function bootParamsWithE820(base: Uint8Array, e820: IomemEntry[]): Uint8Array {
  const page = base.slice();
  const entries = e820.slice(0, E820_MAX_ENTRIES_ZEROPAGE).map((e) => ({ addr: e.start, size: e.size, type: e820TypeFromName(e.name)! }));
  writeStruct(BOOT_PARAMS, page, 0, { e820_entries: entries.length, e820_table: encodeE820(entries) });
  return page;
}

/** Writes the files as a snapshot directory that `--root DIR` replays. */
export function writeSnapshotDir(dir: string, m: MachineFiles): void {
  for (const [rel, bytes] of Object.entries(m.files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), bytes);
  }
  for (const d of m.dirs) mkdirSync(join(dir, d), { recursive: true });
}

const alignDown = (v: bigint, a: bigint): bigint => v - (v % a);
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);

function parseSize(s: string): bigint {
  const m = /^(\d+)([MGTP])$/i.exec(s);
  if (!m) throw new Error(`${s}: expected a size like 64T, 4P or 512M`);
  const shift = { M: 20n, G: 30n, T: 40n, P: 50n }[m[2]!.toUpperCase() as "M" | "G" | "T" | "P"];
  return BigInt(m[1]!) << shift;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const get = (flag: string): string | undefined => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const out = args[0];
  const preset = get("--model");
  if (!out || out.startsWith("--")) {
    process.stderr.write("usage: synthetic-machine.js OUT [--model 64T-4level|4P-5level] [--paging 4|5] [--ram 64T] [--ram-ranges N] [--reserved-holes] [--cpus N] [--crash-high 2G] [--crash-low 256M]\n");
    process.exit(64);
  }
  const o: SyntheticMachineOptions = { ...SCALE_MODELS[preset ?? "64T-4level"]! };
  if (get("--paging")) o.paging = get("--paging") === "5" ? 5 : 4;
  if (get("--ram")) o.ramTop = parseSize(get("--ram")!);
  if (get("--ram-ranges")) o.ramRanges = Number(get("--ram-ranges"));
  if (args.includes("--reserved-holes")) o.reservedHoles = true;
  if (get("--cpus")) o.cpus = Number(get("--cpus"));
  if (get("--crash-high")) o.crashHigh = parseSize(get("--crash-high")!);
  if (get("--crash-low")) o.crashLow = parseSize(get("--crash-low")!);
  readBaseSnapshot(o.paging).then((base) => {
    const m = syntheticMachineFiles(base, o);
    writeSnapshotDir(out, m);
    process.stdout.write(`${out}: ${Object.keys(m.files).length} files\n`);
  }, (e: Error) => {
    process.stderr.write(`synthetic-machine: ${e.message}\n`);
    process.exitCode = 1;
  });
}
