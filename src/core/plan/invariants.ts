/**
 * What every kexec_load plan must satisfy, checked independently of how the
 * planner got there: the kernel's own rules for segments (kernel/kexec.c,
 * kimage_load_segment and sanity_check_segment_list) and the boot protocol's
 * rules for the image. The planner runs this on its own output before
 * returning it, and the tests run it on plans for random machines and images.
 *
 * Independent means it shares nothing with the planner but the machine model:
 * the memory a segment may use and the destination limit are derived here again,
 * from the kernel's rules as written, not taken from the planner's own helpers
 * (a bug in those would otherwise pass its own check).
 */
import { hex } from "../format.js";
import type { BzImage } from "../image/bzimage.js";
import type { Machine } from "../machine/model.js";
import { KEXEC_SEGMENT_MAX } from "./kexec-abi.js";
import type { PlacedLoad, PlacedSegment } from "./plan.js";
import { PAGE_SIZE, contains, end, overlaps, type Range } from "./ranges.js";


/**
 * Where the kernel lets segments go. kexec_load of a crash kernel: inside
 * crashk_res only (sanity_check_segment_list, else EADDRNOTAVAIL); with two
 * "Crash kernel" ranges (crashkernel=,high) crashk_res is the upper one and
 * the lower one is crashk_low_res. A normal load: System RAM (kexec_load itself
 * only checks the limit below, but a segment outside RAM is lost).
 */
function allowedMemory(machine: Machine, crash: boolean): { ranges: Range[]; name: string } {
  if (crash) {
    const sorted = [...machine.crashRegions].sort((a, b) => (a.start < b.start ? 1 : -1));
    return { ranges: sorted.slice(0, 1).map((r) => ({ start: r.start, size: r.size })), name: "crashk_res" };
  }
  // Adjacent System RAM resources are one stretch of RAM: a kernel entered by kexec lists the
  // pages of its setup_data (E820_TYPE_RESERVED_KERN) as System RAM entries of their own.
  const ram = machine.memory.filter((r) => r.type === "System RAM").map((r) => ({ start: r.start, size: r.size })).sort((a, b) => (a.start < b.start ? -1 : 1));
  const merged: Range[] = [];
  for (const r of ram) {
    const last = merged[merged.length - 1];
    if (last !== undefined && r.start <= end(last)) merged[merged.length - 1] = { start: last.start, size: (end(r) > end(last) ? end(r) : end(last)) - last.start };
    else merged.push(r);
  }
  return { ranges: merged, name: "System RAM" };
}

/**
 * KEXEC_DESTINATION_MEMORY_LIMIT of the running kernel: -1UL on i386 (32-bit
 * physical, paging off), MAXMEM - 1 on x86_64, where MAXMEM is 1 << MAX_PHYSMEM_BITS:
 * 46 bits with 4-level paging, 52 with 5-level (arch/x86/include/asm/kexec.h, sparsemem.h).
 */
function destinationLimit(machine: Machine): bigint {
  if (machine.kernelArch === "i386") return 1n << 32n;
  return 1n << (machine.pagingLevels === 5 ? 52n : 46n);
}

/** Broken rules, in words; empty for a good plan. Takes a placement (no bytes) or a whole plan. */
export function planViolations(plan: PlacedLoad, image: BzImage, machine: Machine, limits: { memMin?: bigint | undefined; memMax?: bigint | undefined } = {}): string[] {
  const v: string[] = [];
  const segs: readonly (PlacedSegment & { buf?: Uint8Array })[] = plan.segments;
  if (segs.length > KEXEC_SEGMENT_MAX) v.push(`${segs.length} segments, more than ${KEXEC_SEGMENT_MAX}`);
  const { ranges: pool, name } = allowedMemory(machine, plan.crash);
  if (pool.length === 0) v.push(`no ${name} to place segments in`);
  const limit = destinationLimit(machine);
  for (const s of segs) {
    const r = { start: s.mem, size: s.memsz };
    const label = `${s.kind} ${hex(s.mem)}+${hex(s.memsz)}`;
    if (s.mem % PAGE_SIZE !== 0n) v.push(`${label}: mem not page aligned`);
    if (s.memsz % PAGE_SIZE !== 0n) v.push(`${label}: memsz not page aligned`);
    if (s.buf !== undefined && BigInt(s.buf.length) > s.memsz) v.push(`${label}: bufsz ${hex(s.buf.length)} > memsz`);
    if (!pool.some((p) => contains(p, r))) v.push(`${label}: not inside one ${name} range`);
    if (end(r) > limit) v.push(`${label}: beyond the running kernel's destination limit ${hex(limit)}`);
    if (plan.userArch === "i386" && end(r) > 1n << 32n) v.push(`${label}: above 4 GiB, unreachable for a 32-bit kexec_load`);
    if (plan.entryMode === "entry32" && end(r) > 1n << 32n) v.push(`${label}: above 4 GiB with a 32-bit entry`);
    if (limits.memMin !== undefined && s.mem < limits.memMin) v.push(`${label}: below --mem-min`);
    if (limits.memMax !== undefined && end(r) - 1n > limits.memMax) v.push(`${label}: above --mem-max`);
  }
  for (let i = 0; i < segs.length; i++) {
    for (let j = i + 1; j < segs.length; j++) {
      const a = segs[i]!;
      const b = segs[j]!;
      if (overlaps({ start: a.mem, size: a.memsz }, { start: b.mem, size: b.memsz })) v.push(`${a.kind} and ${b.kind} overlap`);
    }
  }
  const kernel = segs.find((s) => s.kind === "kernel");
  if (!kernel) v.push("no kernel segment");
  else {
    if (image.initSize !== undefined && kernel.memsz < image.initSize) v.push(`kernel memsz ${hex(kernel.memsz)} < init_size ${hex(image.initSize)}`);
    if (image.relocatable && image.kernelAlignment !== undefined && kernel.mem % image.kernelAlignment !== 0n) v.push(`kernel at ${hex(kernel.mem)} not aligned to kernel_alignment ${hex(image.kernelAlignment)}`);
    if (image.relocatable && image.prefAddress !== undefined && kernel.mem < image.prefAddress) v.push(`kernel at ${hex(kernel.mem)} below pref_address ${hex(image.prefAddress)}`);
    if (!image.relocatable && kernel.mem !== (image.prefAddress ?? 0x100000n)) v.push("non-relocatable kernel not at its fixed address");
    if (!image.canBeLoadedAbove4G && end({ start: kernel.mem, size: kernel.memsz }) > 1n << 32n) v.push("kernel above 4 GiB without XLF_CAN_BE_LOADED_ABOVE_4G");
    if (!image.is64 && end({ start: kernel.mem, size: kernel.memsz }) > 0x38000000n) v.push("32-bit kernel above 896 MiB");
    if (plan.imageFormat === "bzImage") {
      const expectedEntry = plan.entryMode === "entry64" ? kernel.mem + 0x200n : kernel.mem;
      if (plan.kernelEntry !== expectedEntry) v.push(`kernel entry ${hex(plan.kernelEntry)}, expected ${hex(expectedEntry)}`);
    } else if (plan.kernelEntry < kernel.mem || plan.kernelEntry >= kernel.mem + kernel.memsz) {
      v.push(`ELF entry ${hex(plan.kernelEntry)} outside the kernel segment`);
    }
  }
  const initrd = segs.find((s) => s.kind === "initrd");
  // memsz, not the buffer's length: the page the initrd ends in must be below the limit too.
  if (initrd && (!image.canBeLoadedAbove4G || !image.is64) && initrd.mem + initrd.memsz - 1n > image.initrdAddrMax) {
    v.push(`initrd ends above initrd_addr_max ${hex(image.initrdAddrMax)}`);
  }
  // In bytes, as the zero page holds it (UTF-8).
  const cmdlineBytes = new TextEncoder().encode(plan.cmdline).length;
  if (cmdlineBytes > image.cmdlineSize) v.push(`command line ${cmdlineBytes} bytes > cmdline_size ${image.cmdlineSize}`);
  const purgatory = segs.find((s) => s.kind === "purgatory");
  if (!purgatory || plan.entry < purgatory.mem || plan.entry >= purgatory.mem + purgatory.memsz) v.push("entry is not inside the purgatory");
  const bootParams = segs.find((s) => s.kind === "bootparams");
  if (!bootParams || plan.bootParams !== bootParams.mem) v.push("boot_params pointer does not match its segment");
  return v;
}
