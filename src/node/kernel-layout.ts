/**
 * The running kernel's virtual layout, which the ELF core header must state
 * for the dump to be readable: page_offset_base (randomized with KASLR) and
 * the kernel text mapping. /proc/kcore's program headers carry both —
 * KCORE_RAM entries map __va(paddr) to paddr, the KCORE_TEXT entry is
 * [_text, _end) with its physical address (fs/proc/kcore.c) — so only its
 * header is read. Without it (not root, lockdown, --root) the defaults are
 * used and the plan says so.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { parseElf, PT_LOAD } from "../core/image/elf.js";
import type { Machine } from "../core/machine/model.js";
import { defaultKernelLayout, type KernelLayout } from "../core/plan/crash.js";

const KERNEL_TEXT_MAP = 0xffffffff80000000n;
const NO_PADDR = (1n << 64n) - 1n;

export function readKernelLayout(root: string, machine: Machine): KernelLayout {
  const fallback = defaultKernelLayout(machine);
  if (machine.kernelArch !== "x86_64") return fallback;
  const path = join(root, "proc/kcore");
  let header: Uint8Array;
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(65536);
      const n = readSync(fd, buf, 0, buf.length, 0);
      header = new Uint8Array(buf.buffer, buf.byteOffset, n);
    } finally {
      closeSync(fd);
    }
  } catch {
    return fallback;
  }
  try {
    const elf = parseElf(header, "/proc/kcore");
    let pageOffset: bigint | undefined;
    let text: KernelLayout["text"];
    for (const ph of elf.programHeaders) {
      if (ph.p_type !== PT_LOAD || ph.p_paddr === NO_PADDR) continue;
      if (ph.p_vaddr >= KERNEL_TEXT_MAP) {
        if (text === undefined) text = { vaddr: ph.p_vaddr, paddr: ph.p_paddr, size: ph.p_memsz };
      } else if (pageOffset === undefined && ph.p_vaddr > ph.p_paddr) {
        pageOffset = ph.p_vaddr - ph.p_paddr;
      }
    }
    if (pageOffset === undefined) return fallback;
    return { pageOffset, text: text ?? fallback.text, source: text ? "/proc/kcore" : "/proc/kcore (page_offset_base) and defaults (text)" };
  } catch {
    return fallback;
  }
}
