/**
 * The running kernel's virtual layout, which the ELF core header must state
 * for the dump to be readable: page_offset_base (randomized with KASLR) and
 * the kernel text mapping. /proc/kcore's program headers carry both —
 * KCORE_RAM entries map __va(paddr) to paddr, the KCORE_TEXT entry is
 * [_text, _end) with its physical address (fs/proc/kcore.c) — so only its
 * header is read. /proc/kcore cannot be copied into a snapshot, so `snapshot`
 * saves these few facts as kernel-layout.json and a replay with --root reads
 * them there. Without either (not root, lockdown, an old snapshot) the
 * defaults are used and the plan says what they assume.
 */
import { closeSync, readSync } from "node:fs";
import { join } from "node:path";
import { hex } from "../core/format.js";
import { parseElf, PT_LOAD } from "../core/image/elf.js";
import type { Machine } from "../core/machine/model.js";
import { KexecError } from "../core/errors.js";
import { openRegularFile, readFully } from "./rootfs.js";
import { errnoText } from "./files.js";
import { KERNEL_LAYOUT_FILE, defaultKernelLayout, parseSavedKernelLayout, savedLayoutForMachine, type KernelLayout } from "../core/plan/crash.js";

const KERNEL_TEXT_MAP = 0xffffffff80000000n;
const NO_PADDR = (1n << 64n) - 1n;
export { KERNEL_LAYOUT_FILE };

/** What /proc/kcore under `root` says, or why it says nothing (an x86_64 kernel's; i386 has no KASLR to read). */
export function layoutFromKcore(root: string): { layout: KernelLayout } | { why: string } {
  const path = join(root, "proc/kcore");
  let header: Uint8Array;
  try {
    const fd = openRegularFile(path);
    try {
      const buf = Buffer.alloc(65536);
      const n = readSync(fd, buf, 0, buf.length, 0);
      header = new Uint8Array(buf.buffer, buf.byteOffset, n);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    return { why: `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
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
    if (pageOffset === undefined) return { why: `${path} has no direct-map PT_LOAD` };
    return { layout: { pageOffset, text, source: text ? "/proc/kcore" : "/proc/kcore (page_offset_base; no text PT_LOAD)" } };
  } catch (e) {
    return { why: `${path}: ${(e as Error).message}` };
  }
}

export function readKernelLayout(root: string, machine: Machine): KernelLayout {
  const fallback = defaultKernelLayout(machine);
  if (machine.kernelArch !== "x86_64") return fallback;
  const kcore = layoutFromKcore(root);
  if ("layout" in kcore) return { ...kcore.layout, text: kcore.layout.text ?? fallback.text };
  const saved = readSavedLayout(root);
  if (saved) {
    const fitting = savedLayoutForMachine(saved, machine, join(root, KERNEL_LAYOUT_FILE));
    return { ...fitting, text: fitting.text ?? fallback.text };
  }
  if (root !== "/") return { ...fallback, source: `${fallback.source}; the snapshot has no ${KERNEL_LAYOUT_FILE} (taken without root, or by an older kexec-ts)` };
  return fallback;
}

/** The layout as a snapshot stores it: hex strings, as in every kexec-ts JSON. */
export function kernelLayoutJson(layout: KernelLayout): Record<string, unknown> {
  return {
    pageOffset: hex(layout.pageOffset),
    text: layout.text ? { vaddr: hex(layout.text.vaddr), paddr: hex(layout.text.paddr), size: hex(layout.text.size) } : null,
    source: layout.source,
  };
}

/** The snapshot's kernel-layout.json; undefined when there is none. A file that is there but wrong is an error, not a silent default. */
function readSavedLayout(root: string): KernelLayout | undefined {
  const path = join(root, KERNEL_LAYOUT_FILE);
  let text: string;
  try {
    text = new TextDecoder().decode(readFully(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KexecError("io", `${path}: cannot read: ${errnoText(e, path)}`, { file: path }, "check that the snapshot directory is readable");
  }
  return parseSavedKernelLayout(text, path);
}
