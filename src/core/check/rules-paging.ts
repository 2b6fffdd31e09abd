/**
 * Paging: a running 5-level kernel hands over with CR4.LA57 set (relocate_kernel
 * keeps it), so the image must be able to start under 5-level paging; and a
 * kernel that will run 4-level must sit below 64 TiB (MAX_PHYSMEM_BITS 46),
 * or __startup_64 spins forever without a word.
 */
import { hex, size } from "../format.js";
import type { BzImage } from "../image/bzimage.js";
import type { Machine } from "../machine/model.js";
import { TiB64, versionAtLeast } from "./context.js";
import { fail, ok, syscallEvidence, warn, type Rule } from "./result.js";

const ID_5LEVEL = "paging-5level";
const ID_PHYSMEM = "paging-physmem-limit";

export const paging5Level: Rule = (c) => {
  const bz = c.bz;
  const m = c.machine;
  const evidence = { pagingLevels: m.pagingLevels, pagingEvidence: m.pagingEvidence, xloadflags: bz ? hex(bz.xloadflags, 2) : null, xloadflagNames: bz?.xloadflagNames ?? [], ...syscallEvidence(c) };
  if (!bz) return ok(ID_5LEVEL, "an ELF vmlinux has no xloadflags to compare (see placement-hole)", evidence);
  if (m.kernelArch === "i386") return ok(ID_5LEVEL, "the running kernel is 32-bit: no 5-level paging to hand over", evidence);
  if (m.pagingLevels === null) {
    return warn(ID_5LEVEL, `the running kernel's paging mode is unknown (${m.pagingEvidence}), so whether the image must handle 5-level paging cannot be told`, evidence, "run check on the machine itself, or take a snapshot that includes /proc/cpuinfo");
  }
  if (m.pagingLevels !== 5) return ok(ID_5LEVEL, `the running kernel uses ${m.pagingLevels}-level paging (${m.pagingEvidence}): no LA57 to hand over`, evidence);
  if (bz.fiveLevel) return ok(ID_5LEVEL, "the running kernel uses 5-level paging and the image has XLF_5LEVEL: its decompressor can start with LA57 set", evidence);
  if (!bz.is64) return ok(ID_5LEVEL, "a 32-bit image starts through its 32-bit entry with paging off, so LA57 does not reach it", evidence);

  const remedy = "boot the running kernel with no5lvl (4-level paging), or pick an image with 5-level support (XLF_5LEVEL: x86_64 kernels from 5.3 on), or load it with kexec_load through the 32-bit entry (-c --entry-32bit): kexec-ts' purgatory leaves long mode and clears LA57 before jumping";
  const kernelWords = 'kexec-bzImage64: bzImage cannot handle 5-level paging mode.';
  if (c.effective === "kexec_file_load") {
    return fail(ID_5LEVEL, `the running kernel uses 5-level paging and the image lacks XLF_5LEVEL: kexec_file_load refuses it up front with ENOEXEC and logs "${kernelWords}" (kexec-tools only says "syscall kexec_file_load not available")`, evidence, remedy);
  }
  const prefix = c.tries.length > 1 ? `kexec_file_load refuses it ("${kernelWords}"), and -a falls back to kexec_load, which has no such check: ` : "kexec_load has no such check: ";
  if (c.req.entry32) {
    return ok(ID_5LEVEL, `${prefix}the image lacks XLF_5LEVEL, but it is entered through its 32-bit entry, and kexec-ts' purgatory clears CR4.LA57 when it leaves long mode`, evidence);
  }
  // XLF_5LEVEL appeared in 5.3 and header.S sets it for every x86_64 build since.
  const modern = versionAtLeast(bz.version, 5, 3);
  if (modern) {
    return warn(ID_5LEVEL, `${prefix}the header lacks XLF_5LEVEL, yet the image's version (${bz.version?.split(" ")[0]}) is 5.3 or newer, whose header always sets it: the header was edited, and the code inside probably copes with 5-level paging — the jump is untested`, { ...evidence, version: bz.version ?? null }, remedy);
  }
  return fail(ID_5LEVEL, `${prefix}it would load the image, and the jump would fail later: the decompressor is entered with LA57 set, which an image without XLF_5LEVEL cannot handle (#GP, seen as a reset or a hang)`, { ...evidence, version: bz.version ?? null }, remedy);
};

/** Whether the CPU can do LA57: the la57 flag, or 57 virtual address bits when no5lvl hid the flag. */
export function cpuHasLa57(m: Machine): boolean {
  return m.cpu !== null && (m.cpu.flags.includes("la57") || m.cpu.virtualBits === 57);
}

/** The paging mode the new kernel will run in, and why. */
export function newKernelPaging(bz: BzImage, m: Machine, cmdline: string): { levels: 4 | 5; why: string } {
  if (!bz.fiveLevelEnabled) return { levels: 4, why: "the image lacks XLF_5LEVEL_ENABLED (built without CONFIG_X86_5LEVEL)" };
  if (/(^|\s)no5lvl(\s|$)/.test(cmdline)) return { levels: 4, why: "no5lvl on the new command line" };
  if (!cpuHasLa57(m)) return { levels: 4, why: "the CPU has no LA57" };
  return { levels: 5, why: "a 5-level build on a CPU with LA57" };
}

export const pagingPhysmemLimit: Rule = (c) => {
  const bz = c.bz;
  if (!bz || !bz.is64 || c.machine.kernelArch === "i386") return ok(ID_PHYSMEM, "not a 64-bit hand-over: the 64 TiB limit of 4-level paging does not apply");
  const mode = newKernelPaging(bz, c.machine, c.req.cmdline);
  const limit = mode.levels === 5 ? 1n << 52n : TiB64;
  const evidence = { newKernelPaging: mode.levels, why: mode.why, maxPhysmemBits: mode.levels === 5 ? 52 : 46, limit: limit };
  const p = c.placement();
  if (!p.ok) return ok(ID_PHYSMEM, `the new kernel will run ${mode.levels}-level paging (${mode.why}); no placement to compare (see placement-hole)`, evidence);
  const kernel = p.segments.find((s) => s.kind === "kernel");
  if (!kernel) return ok(ID_PHYSMEM, "no kernel segment in the placement", evidence);
  const kernelEnd = kernel.mem + kernel.memsz;
  const withKernel = { ...evidence, kernel: kernel.mem, kernelEnd };
  if (kernelEnd <= limit) {
    return ok(ID_PHYSMEM, `the kernel at ${hex(kernel.mem)} lies below ${size(limit)}, all that ${mode.levels}-level paging addresses (MAX_PHYSMEM_BITS ${mode.levels === 5 ? 52 : 46})`, withKernel);
  }
  return fail(ID_PHYSMEM,
    `the kernel would be placed at ${hex(kernel.mem)}, above 64 TiB, but it will run 4-level paging (${mode.why}): MAX_PHYSMEM_BITS is 46 there, and __startup_64 spins forever for a kernel at or above 2^46`,
    withKernel,
    c.effective === "kexec_load" ? "pass --mem-max=0x3fffffffffff to keep every segment below 64 TiB" : "use kexec_load with --mem-max=0x3fffffffffff (kexec_file_load places top-down with no such limit), or an image built with CONFIG_X86_5LEVEL");
};
