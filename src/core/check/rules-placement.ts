/**
 * Where the image may go, from its header: relocatable or not, above 4 GiB
 * or not, initrd_addr_max, cmdline_size, the protocol version; and the
 * placement itself (kexec-ts' planner for kexec_load, the kernel's top-down
 * search for kexec_file_load), whose failure names the bound that blocked.
 */
import { hex, size } from "../format.js";
import { PAGE_SIZE, alignUp, end, findHole, totalSize, clip, type Range } from "../plan/ranges.js";
import { usablePool } from "../plan/limits.js";
import { GiB4, LOADED_HIGH, LOWMEM_896M, MAX_ELFCOREHDR_STR_LEN, MiB, fileCmdlineLength, protocolText, type Context } from "./context.js";
import { fail, ok, syscallEvidence, warn, type Rule } from "./result.js";
import { initSizeProblem, kernelAlignmentProblem } from "../image/bzimage.js";

/** The memory kexec_load places into: the crash regions, or System RAM. */
function loadPool(c: Context): { pool: Range[]; name: string } {
  if (c.req.crash) return usablePool(c.machine, true) ?? { pool: [], name: "the crash region" };
  return { pool: c.machine.memory.filter((m) => m.type === "System RAM").map((m) => ({ start: m.start, size: m.size })), name: "System RAM" };
}

export const protocolVersion: Rule = (c) => {
  const id = "protocol-version";
  const bz = c.bz;
  if (!bz) return ok(id, "an ELF vmlinux has no boot protocol header");
  const evidence = { protocol: hex(bz.protocol, 4), version: protocolText(bz.protocol), loadflags: hex(bz.loadflags, 2), ...syscallEvidence(c) };
  if ((bz.loadflags & LOADED_HIGH) === 0) return fail(id, "loadflags lacks LOADED_HIGH: a zImage, which must be loaded at 0x10000 in real mode; kexec cannot start it", evidence, "use a bzImage");
  const badInitSize = initSizeProblem(bz);
  if (badInitSize) return fail(id, badInitSize.message, { ...evidence, ...badInitSize.data }, badInitSize.hint);
  if (c.effective === "kexec_file_load") {
    if (bz.protocol < 0x20c) return fail(id, `boot protocol ${protocolText(bz.protocol)} is older than 2.12, which kexec_file_load needs (xloadflags); the kernel logs "kexec-bzImage64: Must be at least protocol version 2.12"`, evidence, "use kexec_load (-c), or a kernel from Linux 3.8 or later");
    return ok(id, `boot protocol ${protocolText(bz.protocol)} (kexec_file_load needs 2.12)`, evidence);
  }
  if (bz.protocol < 0x20a) return fail(id, `boot protocol ${protocolText(bz.protocol)} has no init_size (2.10), so the memory the kernel needs from its load address cannot be known`, evidence, "use a kernel from Linux 2.6.31 or later");
  return ok(id, `boot protocol ${protocolText(bz.protocol)} (kexec_load needs 2.10 for init_size)`, evidence);
};

export const relocatable: Rule = (c) => {
  const id = "relocatable";
  const bz = c.bz;
  if (!bz) return ok(id, "an ELF vmlinux is loaded at its program headers' addresses");
  const fixed = bz.prefAddress ?? MiB;
  const need = alignUp(bz.initSize ?? BigInt(bz.kernelFileSize), PAGE_SIZE);
  const evidence = { relocatable: bz.relocatable, prefAddress: fixed, initSize: bz.initSize ?? null, kernelAlignment: bz.kernelAlignment ?? null };
  const badAlignment = kernelAlignmentProblem(bz);
  if (badAlignment) return fail(id, `relocatable, but ${badAlignment.message}`, { ...evidence, ...badAlignment.data }, badAlignment.hint);
  if (bz.relocatable) return ok(id, `relocatable: the kernel may go at any ${size(bz.kernelAlignment ?? 0x200000n)}-aligned address`, evidence);
  if (c.effective === "kexec_file_load") return ok(id, "not relocatable, which the bzImage64 probe refuses (no XLF_CAN_BE_LOADED_ABOVE_4G: see kexec-file-probe)", evidence);
  const r = { start: fixed, size: need };
  const { pool, name } = loadPool(c);
  const fits = pool.some((p) => p.start <= r.start && end(r) <= end(p));
  if (fits) return ok(id, `not relocatable: it runs at its fixed address ${hex(fixed)}-${hex(end(r))}, which is free ${name}`, evidence);
  if (c.req.crash) {
    return fail(id, `not relocatable: the kernel can only run at ${hex(fixed)}-${hex(end(r))}, outside the crash region, so it cannot be a kdump kernel here`, { ...evidence, crashRegions: pool.map((p) => `${hex(p.start)}-${hex(end(p))}`) }, `use a relocatable kernel (CONFIG_RELOCATABLE), or reserve crashkernel=${size(need)}@${fixed / MiB}M`);
  }
  return fail(id, `not relocatable: the kernel can only run at ${hex(fixed)}-${hex(end(r))}, which is not all System RAM`, evidence, "use a relocatable kernel (CONFIG_RELOCATABLE)");
};

/** The lowest exclusive limit the image's own header puts on the kernel, with its reason. */
function imageLimit(c: Context): { value: bigint; reason: string } | null {
  const bz = c.bz;
  if (!bz) return null;
  if (!bz.is64) return { value: LOWMEM_896M, reason: "a 32-bit kernel must lie in its low memory (below 896 MiB)" };
  if (c.machine.kernelArch === "i386") return { value: GiB4, reason: "an i386 running kernel copies the segments with paging off (32-bit addresses)" };
  if (!bz.canBeLoadedAbove4G) return { value: GiB4, reason: "the image lacks XLF_CAN_BE_LOADED_ABOVE_4G" };
  if (c.req.entry32) return { value: GiB4, reason: "the 32-bit entry runs with paging off" };
  return null;
}

export const above4G: Rule = (c) => {
  const id = "above-4g";
  const bz = c.bz;
  if (!bz) return ok(id, "an ELF vmlinux (see placement-hole)");
  const evidence = { canBeLoadedAbove4G: bz.canBeLoadedAbove4G, is64: bz.is64, entry32: c.req.entry32 === true, ...syscallEvidence(c) };
  if (c.effective === "kexec_file_load") return ok(id, bz.canBeLoadedAbove4G ? "XLF_CAN_BE_LOADED_ABOVE_4G: the kernel's loader may put it anywhere" : "see kexec-file-probe (XLF_CAN_BE_LOADED_ABOVE_4G)", evidence);
  const limit = imageLimit(c);
  if (!limit) return ok(id, "XLF_CAN_BE_LOADED_ABOVE_4G: kernel, initrd and boot data may go anywhere", evidence);
  const { pool, name } = loadPool(c);
  const below = clip(pool, { start: MiB, size: limit.value - MiB });
  const room = totalSize(below);
  const withRoom = { ...evidence, limit: limit.value, limitReason: limit.reason, poolBelowLimit: room, pool: name };
  if (room === 0n) {
    return fail(id, `everything must lie below ${hex(limit.value)} (${limit.reason}), and ${name} has nothing there`, withRoom,
      c.req.crash ? `reserve the crash region lower: crashkernel=256M@${limit.value > GiB4 / 2n ? "1968M" : "64M"}` : "use a relocatable x86_64 image (XLF_CAN_BE_LOADED_ABOVE_4G)");
  }
  return ok(id, `must lie below ${hex(limit.value)} (${limit.reason}): ${size(room)} of ${name} there`, withRoom);
};

export const initrdAddrMax: Rule = (c) => {
  const id = "initrd-addr-max";
  const bz = c.bz;
  if (!bz || c.req.initrdSize === undefined) return ok(id, "no initrd");
  const initrd = BigInt(c.req.initrdSize);
  const evidence = { initrdSize: initrd, initrdAddrMax: bz.initrdAddrMax, ...syscallEvidence(c) };
  if (c.effective === "kexec_file_load" || (bz.is64 && bz.canBeLoadedAbove4G && !c.req.entry32 && c.machine.kernelArch !== "i386")) {
    return ok(id, "XLF_CAN_BE_LOADED_ABOVE_4G: the initrd may go above initrd_addr_max (ext_ramdisk_image holds the high bits)", evidence);
  }
  let limit = bz.initrdAddrMax + 1n;
  let why = `initrd_addr_max ${hex(bz.initrdAddrMax)}`;
  const img = imageLimit(c);
  if (img && img.value < limit) {
    limit = img.value;
    why = img.reason;
  }
  const { pool, name } = loadPool(c);
  const at = findHole(pool, { size: alignUp(initrd, PAGE_SIZE), align: PAGE_SIZE, min: 16n * MiB, limit, topDown: true });
  const withWindow = { ...evidence, window: `${hex(16n * MiB)}-${hex(limit)}`, limitReason: why, pool: name };
  if (at === undefined) {
    return fail(id, `the ${size(initrd)} initrd must end below ${hex(limit)} (${why}) and start at 16 MiB or above, and ${name} has no such room (free there: ${size(totalSize(clip(pool, { start: 16n * MiB, size: limit > 16n * MiB ? limit - 16n * MiB : 0n })))})`, withWindow,
      c.req.crash ? "reserve the crash region below the initrd limit, or use a smaller initrd" : "use a smaller initrd");
  }
  return ok(id, `the ${size(initrd)} initrd fits below ${hex(limit)} (${why})`, withWindow);
};

export const cmdlineSize: Rule = (c) => {
  const id = "cmdline-size";
  const bz = c.bz;
  if (!bz) return ok(id, "an ELF vmlinux: the command line goes where the loader puts it");
  const bytes = fileCmdlineLength(c.req.cmdline) - 1;
  const evidence = { length: bytes, cmdlineSize: bz.cmdlineSize, ...syscallEvidence(c) };
  const fileNeeds = bytes + 1 + MAX_ELFCOREHDR_STR_LEN;
  if (c.tries.includes("kexec_file_load") && fileNeeds > bz.cmdlineSize) {
    const words = bytes + 1 > bz.cmdlineSize ? "Kernel command line too long" : "Appending elfcorehdr=<addr> to command line exceeds maximum allowed length";
    const reason = `kexec_file_load counts ${bytes} bytes + the NUL + ${MAX_ELFCOREHDR_STR_LEN} kept for "elfcorehdr=0x... " (even for a non-crash load) = ${fileNeeds}, more than the image's cmdline_size ${bz.cmdlineSize}: EINVAL, and the kernel logs "kexec-bzImage64: ${words}"`;
    const extra = { ...evidence, fileNeeds, appended: MAX_ELFCOREHDR_STR_LEN, kernelSays: words };
    const remedy = `shorten the command line to at most ${bz.cmdlineSize - 1 - MAX_ELFCOREHDR_STR_LEN} bytes`;
    if (c.effective === "kexec_load") {
      if (bytes <= bz.cmdlineSize) return warn(id, `${reason}; -a falls back to kexec_load, where ${bytes} bytes fit`, extra, remedy);
      return fail(id, `${reason}; the kexec_load fallback also fails: ${bytes} > ${bz.cmdlineSize}`, extra, remedy);
    }
    return fail(id, reason, extra, remedy);
  }
  if (c.effective === "kexec_load" && bytes > bz.cmdlineSize) {
    return fail(id, `the command line is ${bytes} bytes, longer than the image's cmdline_size (${bz.cmdlineSize})`, evidence, `shorten it to ${bz.cmdlineSize} bytes`);
  }
  return ok(id, `${bytes} bytes fit the image's cmdline_size ${bz.cmdlineSize}${c.effective === "kexec_file_load" ? ` with the ${MAX_ELFCOREHDR_STR_LEN} kept for elfcorehdr=` : ""}`, evidence);
};

/**
 * --mem-min/--mem-max bound kexec-ts' own placement, which only kexec_load uses. kexec_file_load
 * is handed no addresses: the kernel places the segments itself (kexec_locate_mem_hole). kexec-tools
 * ignores both flags there without a word (they reach only locate_hole and add_segment, kexec/kexec.c);
 * kexec-ts ignores them too, and says so.
 */
export const memBounds: Rule = (c) => {
  const id = "mem-bounds";
  const { memMin, memMax } = c.req;
  const given = [memMin === undefined ? "" : `--mem-min=${hex(memMin)}`, memMax === undefined ? "" : `--mem-max=${hex(memMax)}`].filter(Boolean);
  const evidence = { memMin: memMin ?? null, memMax: memMax ?? null, ...syscallEvidence(c) };
  if (given.length === 0) return ok(id, "no --mem-min or --mem-max", evidence);
  const flags = given.join(" and ");
  if (c.effective === "kexec_file_load") {
    const loader = c.req.syscall === "auto" ? "-a loads with kexec_file_load here, which" : "kexec_file_load";
    return warn(id, `${flags} ${given.length > 1 ? "have" : "has"} no effect: ${loader} is handed no addresses, and the kernel places the segments itself (kexec-tools ignores ${given.length > 1 ? "them" : "it"} there too, without a word)`, evidence,
      `to keep the segments within ${given.length > 1 ? "them" : "it"}, load with kexec_load (-c), which kexec-ts places; or leave ${given.length > 1 ? "them" : "it"} out`);
  }
  return ok(id, `${flags} ${given.length > 1 ? "bound" : "bounds"} kexec-ts' placement for kexec_load${c.tries.length > 1 ? ", which -a falls back to" : ""}`, evidence);
};

export const placementHole: Rule = (c) => {
  const id = "placement-hole";
  if (c.req.crash && c.machine.crashRegions.length === 0) return ok(id, "not computed: there is no crash region (see crash-region)", syscallEvidence(c));
  const p = c.placement();
  if (!p.ok) return fail(id, `${p.syscall}: ${p.message}`, { ...syscallEvidence(c), ...p.data }, p.hint);
  const segments = p.segments.map((s) => `${s.kind} ${hex(s.mem)}-${hex(s.mem + s.memsz)}`);
  const how = p.estimated ? "as the kernel's kexec_file loader would place them (top-down; purgatory and core header sizes estimated)" : "as kexec-ts' planner places them for kexec_load";
  return ok(id, `every segment fits in ${p.pool}, ${how}`, { ...syscallEvidence(c), segments });
};

