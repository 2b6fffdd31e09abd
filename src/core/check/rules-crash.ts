/**
 * The crash region: is there one, and if not why the kernel reserved nothing
 * (kernel/crash_reserve.c: a fixed crashkernel=X@Y is one
 * memblock_phys_alloc_range(X, 16 MiB, Y, Y+X) — it must be free, 16 MiB
 * aligned System RAM, or "crashkernel reservation failed - memory is in use.");
 * is it big enough for what the loader puts there; can the loader and the
 * capture kernel use where it is.
 */
import { hex, size } from "../format.js";
import { formatMemory } from "../machine/crashkernel.js";
import type { Machine, Span } from "../machine/model.js";
import { end, overlaps, subtract, totalSize, normalize, type Range } from "../plan/ranges.js";
import { usablePool } from "../plan/limits.js";
import { GiB4, LOWMEM_896M, MiB, TiB64, fileSegments, type Context } from "./context.js";
import { fail, ok, syscallEvidence, warn, type Rule } from "./result.js";
import { newKernelPaging } from "./rules-paging.js";
import type { Evidence } from "./types.js";

const CRASH_ALIGN = 16n * MiB;

function memorySourceName(m: Machine): string {
  return m.memorySource === "iomem" ? "/proc/iomem" : m.memorySource === "firmware-memmap" ? "/sys/firmware/memmap" : "boot_params e820";
}

function span(s: Span): string {
  return `${hex(s.start)}-${hex(s.start + s.size)}`;
}

/** Why a machine whose command line asks for a crash region has none. */
export function diagnoseNoReservation(m: Machine): { reason: string; evidence: Evidence; remedy: string } {
  const add = "add crashkernel=256M (or more) to the running kernel's command line and reboot";
  if (m.cmdline === null) return { reason: "no crash region, and /proc/cmdline is unknown, so why cannot be told", evidence: {}, remedy: add };
  const occurrences = m.cmdline.split(/\s+/).filter((w) => w.startsWith("crashkernel="));
  const evidence: Evidence = { cmdline: m.cmdline, crashkernel: occurrences };
  if (m.crashkernel === null) return { reason: "no crash region: crashkernel= is not on /proc/cmdline, so the kernel reserved nothing", evidence, remedy: add };
  if (m.crashkernel.error) {
    return { reason: `no crash region: crashkernel= is on /proc/cmdline but does not parse (${m.crashkernel.error.message}); the kernel ignored it`, evidence, remedy: m.crashkernel.error.hint ?? "fix the crashkernel= syntax" };
  }
  const r = m.crashkernel.resolution;
  if (r === null) {
    // A memory map without System RAM: an empty /proc/iomem, as a hand-made or damaged snapshot has.
    if (m.memorySource !== null) {
      return { reason: `no crash region: crashkernel= is on /proc/cmdline, but the memory map (${memorySourceName(m)}) lists no System RAM, so whether the kernel could reserve it cannot be told`,
        evidence: { ...evidence, memorySource: m.memorySource }, remedy: "read the machine as root (kexec-ts snapshot copies /proc/iomem); a snapshot's proc/iomem must list the System RAM" };
    }
    return { reason: "no crash region: crashkernel= is on /proc/cmdline, but the RAM size is unknown, so whether the kernel could reserve it cannot be told", evidence, remedy: "run as root so /proc/iomem shows the memory map" };
  }
  const withSize: Evidence = { ...evidence, systemRam: r.systemRam, asked: r.size, offset: r.offset };
  // A reason that starts with the value says it is on the command line; else the rule says so.
  if (!r.ok) return { reason: `no crash region: ${r.reason.startsWith("crashkernel=") ? "" : "crashkernel= is on /proc/cmdline but "}${r.reason}`, evidence: withSize, remedy: "ask for less than the machine's RAM, e.g. crashkernel=256M" };
  const ram = normalize(m.memory.filter((x) => x.type === "System RAM").map((x) => ({ start: x.start, size: x.size })));
  const kernelParts = [m.kernelImage.code, m.kernelImage.rodata, m.kernelImage.data, m.kernelImage.bss].filter((x): x is Span => x !== null);
  if (r.offset !== null) {
    const want: Range = { start: r.offset, size: r.size };
    const wanted = `${formatMemory(r.size)}@${formatMemory(r.offset)} (${hex(want.start)}-${hex(end(want))})`;
    const missing = subtract([want], ram);
    const withRange: Evidence = { ...withSize, wanted: `${hex(want.start)}-${hex(end(want))}`, systemRamRanges: ram.map((x) => `${hex(x.start)}-${hex(end(x))}`) };
    if (missing.length) {
      const below = ram.filter((x) => x.start < want.start);
      const ramEnd = below.length ? below.reduce((a, b) => (end(b) > end(a) ? b : a)) : null;
      const where = ramEnd && end(ramEnd) <= want.start ? `: System RAM ${want.start < GiB4 ? "below 4 GiB " : ""}ends at ${hex(end(ramEnd))}${ramEnd && end(ramEnd) === 0xc0000000n ? " (3 GiB)" : ""}` : `: ${missing.map((x) => `${hex(x.start)}-${hex(end(x))}`).join(", ")} is not RAM`;
      return {
        reason: `no crash region: crashkernel=${wanted} asks for a range that is not all System RAM in the memory map${where}; the kernel's fixed-address reservation fails ("crashkernel reservation failed - memory is in use.")`,
        evidence: { ...withRange, notRam: missing.map((x) => `${hex(x.start)}-${hex(end(x))}`) },
        remedy: "pick an @offset inside System RAM (see `kexec-ts machine`), or drop @offset and let the kernel choose",
      };
    }
    if (r.offset % CRASH_ALIGN !== 0n) {
      return { reason: `no crash region: crashkernel=${wanted} is not aligned to 16 MiB (CRASH_ALIGN), so the fixed-address reservation cannot start there ("crashkernel reservation failed - memory is in use.")`, evidence: withRange, remedy: `use an offset that is a multiple of 16M, e.g. @${(r.offset / CRASH_ALIGN) * 16n}M` };
    }
    const hit = kernelParts.find((k) => overlaps(k, want));
    if (hit) {
      return { reason: `no crash region: crashkernel=${wanted} overlaps the running kernel's own image (${span(hit)} in /proc/iomem), which is in use`, evidence: { ...withRange, kernelImage: kernelParts.map(span) }, remedy: "pick an @offset clear of the kernel (boot with nokaslr so it stays put), or drop @offset" };
    }
    return { reason: `no crash region, although crashkernel=${wanted} is System RAM in today's map: at boot that memory was in use (firmware, initrd or early allocations)`, evidence: withRange, remedy: "look for \"crashkernel reservation failed\" in dmesg; try another @offset or none" };
  }
  const largest = ram.reduce((a, b) => (b.size > a.size ? b : a), { start: 0n, size: 0n });
  if (r.size > largest.size) {
    return { reason: `no crash region: crashkernel= asks for ${formatMemory(r.size)}, more than the largest System RAM range (${size(largest.size)} at ${hex(largest.start)})`, evidence: { ...withSize, largestRam: largest.size }, remedy: "ask for less" };
  }
  return { reason: `no crash region, although ${r.reason} and RAM has room: look for "cannot allocate crashkernel" in dmesg`, evidence: withSize, remedy: "try crashkernel=X,high, or a smaller size" };
}

export const crashRegion: Rule = (c) => {
  const id = "crash-region";
  if (!c.req.crash) return ok(id, "not a crash load (-l)");
  const m = c.machine;
  if (m.crashRegions.length) return ok(id, `crash region ${m.crashRegions.map((s) => `${span(s)} (${size(s.size)})`).join(", ")}`, { crashRegions: m.crashRegions.map(span) });
  if (m.iomem?.addressesHidden) return fail(id, "no crash region visible: /proc/iomem hides addresses from non-root users", { addressesHidden: true }, "run as root");
  const d = diagnoseNoReservation(m);
  return fail(id, d.reason, d.evidence, d.remedy);
};

/** What the loader puts into the crash region, in bytes: segments plus alignment slack. */
function neededInRegion(c: Context): { needed: bigint; parts: Evidence } {
  const parts: Evidence = {};
  let needed = 0n;
  if (!c.bz) return { needed, parts };
  for (const s of fileSegments(c.bz, c.req)) {
    const sz = ((s.size + 0xfffn) / 0x1000n) * 0x1000n;
    parts[s.kind] = sz;
    needed += sz;
  }
  return { needed, parts };
}

/** Leftover below which a capture kernel is unlikely to boot to user space and save a dump. */
const MIN_RUN_ROOM = 64n * MiB;

export const crashRegionSize: Rule = (c) => {
  const id = "crash-region-size";
  if (!c.req.crash) return ok(id, "not a crash load (-l)");
  if (c.machine.crashRegions.length === 0 || !c.bz) return ok(id, "not computed (see crash-region)");
  const pool = usablePool(c.machine, true)!.pool;
  const available = totalSize(pool);
  const { needed, parts } = neededInRegion(c);
  const evidence: Evidence = { available, needed, ...Object.fromEntries(Object.entries(parts).map(([k, v]) => [`${k}Size`, v])), ...syscallEvidence(c) };
  const remedy = `reserve more: crashkernel=${formatMemory(((needed + MIN_RUN_ROOM + 128n * MiB) / (64n * MiB)) * 64n * MiB)} or larger`;
  const p = c.placement();
  if (needed > available || (!p.ok && /no room/.test(p.message))) {
    return fail(id, `the crash region holds ${size(available)}, but the loader needs about ${size(needed)} there (kernel init_size, initrd, boot params, purgatory, core header)${!p.ok ? `: ${p.message}` : ""}`, evidence, remedy);
  }
  const left = available - needed;
  if (left < MIN_RUN_ROOM) {
    return warn(id, `the segments fit (${size(needed)} of ${size(available)}), but only ${size(left)} is left for the capture kernel to run in: it is likely to run out of memory before it saves the dump`, { ...evidence, left }, remedy);
  }
  return ok(id, `about ${size(needed)} of the ${size(available)} crash region, ${size(left)} left for the capture kernel to run in`, { ...evidence, left });
};

export const crashRegionReach: Rule = (c) => {
  const id = "crash-region-reach";
  if (!c.req.crash) return ok(id, "not a crash load (-l)");
  const regions = usablePool(c.machine, true)?.pool ?? [];
  if (regions.length === 0 || !c.bz) return ok(id, "not computed (see crash-region)");
  const bz = c.bz;
  const lowest = regions.reduce((a, b) => (b.start < a.start ? b : a));
  const highestEnd = regions.reduce((a, b) => (end(b) > a ? end(b) : a), 0n);
  const evidence: Evidence = { regions: regions.map(span), ...syscallEvidence(c), userArch: c.req.userArch, imageIs64: bz.is64 };
  if (!bz.is64 && lowest.start >= LOWMEM_896M) {
    return fail(id, `a 32-bit kernel must run from below 896 MiB (its low memory), and the crash region starts at ${hex(lowest.start)}: the capture kernel would hang`, evidence, "reserve the crash region below 896M, e.g. crashkernel=256M@512M, or use a 64-bit capture kernel");
  }
  if (c.effective === "kexec_load") {
    if (c.req.userArch === "i386" && lowest.start >= GiB4) {
      return fail(id, `a 32-bit kexec_load can only name destinations below 4 GiB (compat_kexec_segment), and the crash region starts at ${hex(lowest.start)}`, evidence, "reserve the crash region below 4 GiB (crashkernel=256M, without ,high), or load from a 64-bit user space");
    }
    if (bz.is64 && (!bz.canBeLoadedAbove4G || c.req.entry32) && lowest.start >= GiB4) {
      return fail(id, `the image must lie below 4 GiB (${!bz.canBeLoadedAbove4G ? "no XLF_CAN_BE_LOADED_ABOVE_4G" : "32-bit entry"}), and the crash region starts at ${hex(lowest.start)}`, evidence, "reserve the crash region below 4 GiB");
    }
  }
  if (bz.is64) {
    const mode = newKernelPaging(bz, c.machine, c.req.cmdline);
    if (mode.levels === 4 && lowest.start >= TiB64) {
      return fail(id, `the capture kernel will run 4-level paging (${mode.why}) and the crash region starts above 64 TiB, which it cannot address`, evidence, "reserve the crash region below 64 TiB");
    }
  }
  return ok(id, `the crash region (${hex(lowest.start)}-${hex(highestEnd)}) is within what the loader and the capture kernel can use`, evidence);
};

/**
 * The capture kernel boots on a machine whose devices were left running by a
 * crashed kernel, usually with one CPU: distro kdump scripts add irqpoll
 * (interrupts from devices nobody reset), nr_cpus=1 (less memory, no AP
 * bring-up) and reset_devices (drivers reset hardware first). Their absence
 * is not fatal, so it is a warning.
 */
const CAPTURE_OPTIONS: readonly { word: RegExp; name: string; why: string }[] = [
  { word: /^irqpoll$/, name: "irqpoll", why: "devices of the crashed kernel may still raise interrupts nobody handles" },
  { word: /^(nr_cpus|maxcpus)=1$/, name: "nr_cpus=1", why: "one CPU keeps the capture kernel inside a small crash region" },
  { word: /^reset_devices$/, name: "reset_devices", why: "drivers then reset devices the crashed kernel left busy" },
];

export const crashCmdline: Rule = (c) => {
  const id = "crash-cmdline";
  if (!c.req.crash) return ok(id, "not a crash load (-l)");
  const words = c.req.cmdline.split(/\s+/).filter(Boolean);
  const missing = CAPTURE_OPTIONS.filter((o) => !words.some((w) => o.word.test(w)));
  if (missing.length === 0) return ok(id, "the capture kernel's command line has irqpoll, nr_cpus=1 and reset_devices", { cmdline: c.req.cmdline });
  return warn(id, `the capture kernel's command line lacks ${missing.map((m) => m.name).join(", ")}: ${missing.map((m) => m.why).join("; ")}`,
    { cmdline: c.req.cmdline, missing: missing.map((m) => m.name) },
    `add ${missing.map((m) => m.name).join(" ")} to --append (distro kdump services do)`);
};
