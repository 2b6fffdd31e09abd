/**
 * The hand-over's page tables (src/core/pgtable/handover.ts), checked on the plan the other
 * rules predict: every segment identity-mapped where it is copied, the page that switches CR3
 * mapped at the same address in both tables (seed 003), the page that leaves long mode or LA57
 * identity-mapped below 4 GiB (seed 004), the kernel's entry mapped as its boot protocol wants.
 */
import { KexecError } from "../errors.js";
import type { Machine } from "../machine/model.js";
import { defaultKernelLayout, type KernelLayout } from "../plan/crash.js";
import { usablePool } from "../plan/limits.js";
import { modelHandover, type Handover, type HandoverInput, type HandoverTables } from "../pgtable/handover.js";
import type { Context, EntryFacts, PlacedSegment } from "./context.js";
import { fail, ok, syscallEvidence, type Rule } from "./result.js";

/** What the hand-over model needs from the machine and a placement. */
export function handoverInput(machine: Machine, crash: boolean, syscall: "kexec_load" | "kexec_file_load", segments: readonly PlacedSegment[], entry: EntryFacts, known?: KernelLayout): HandoverInput {
  const fallback = defaultKernelLayout(machine);
  const layout = known ? { ...known, text: known.text ?? fallback.text } : fallback;
  const pool = crash ? usablePool(machine, true) : null;
  return {
    kernelArch: machine.kernelArch ?? "x86_64",
    pagingLevels: machine.pagingLevels,
    ram: machine.memory.filter((m) => m.type === "System RAM"),
    acpi: machine.memory.filter((m) => m.type === "ACPI Tables" || m.type === "ACPI Non-volatile Storage"),
    gbpages: machine.cpu?.flags.includes("pdpe1gb") ?? false,
    text: layout.text,
    pageOffset: layout.pageOffset,
    crash,
    crashRegion: pool?.pool[0],
    segments,
    ...entry,
    syscall,
  };
}

/** Computed once per context: the rule (invariants only) and the report page (full tables) both ask. */
const modelled = new WeakMap<Context, Handover | { error: string } | undefined>();

/**
 * The hand-over for the context's placement. The check needs only its structure and the tables
 * its invariants walk, so the kernel's layout defaults (no KASLR); the report passes the one
 * /proc/kcore or the snapshot gave, for the true addresses, and asks for the full tables.
 */
export function handoverFor(c: Context, tables: HandoverTables = "full", layout?: KernelLayout): Handover | { error: string } | undefined {
  if (layout || tables === "full") return computeHandover(c, tables, layout);
  if (!modelled.has(c)) modelled.set(c, computeHandover(c, tables));
  return modelled.get(c);
}

function computeHandover(c: Context, tables: HandoverTables, layout?: KernelLayout): Handover | { error: string } | undefined {
  const p = c.placement();
  if (!p.ok || c.machine.kernelArch === null) return undefined;
  try {
    return modelHandover(handoverInput(c.machine, c.req.crash, p.syscall, p.segments, p.entry, layout), tables);
  } catch (e) {
    if (e instanceof KexecError) return { error: e.message };
    throw e;
  }
}

export const handoverPageTables: Rule = (c) => {
  const id = "handover-page-tables";
  // The invariants alone: the tables without the RAM ranges nothing walks (a 4 PiB machine's full
  // direct map is millions of entries; the report draws the full tables).
  const model = handoverFor(c, "invariants");
  if (model === undefined) return ok(id, "not computed: there is no placement to hand over from (see placement-hole)", syscallEvidence(c));
  if ("error" in model) return fail(id, `the hand-over cannot be modelled: ${model.error}`, syscallEvidence(c), "see the page tables in `kexec-ts report`");
  const broken = model.invariants.filter((i) => !i.holds);
  const evidence = {
    ...syscallEvidence(c),
    paging: model.format,
    controlPage: model.controlPage,
    steps: model.steps.map((s) => s.id),
    invariants: model.invariants.map((i) => `${i.holds ? "holds" : "BROKEN"} ${i.id} @${i.step}: ${i.reason}`),
  };
  if (broken.length) {
    return fail(id, broken.map((b) => b.reason).join("; "), evidence,
      broken.some((b) => b.id === "leave-paging-below-4g") ? "place the purgatory (and everything the 32-bit entry touches) below 4 GiB: --mem-max=0xffffffff, or use the 64-bit entry"
        : broken.some((b) => b.id === "segment-identity") ? "keep every segment below the running kernel's MAXMEM (--mem-max)" : "this is a bug in kexec-ts' plan; please report it with `kexec-ts snapshot --tar` and the image");
  }
  return ok(id, `${model.invariants.length} page-table invariants hold over ${model.steps.length} steps (${model.format}): segments identity-mapped, the CR3 switch page mapped in both tables${model.steps.some((s) => s.id === "leave_long_mode") || model.arch === "i386" ? ", paging left from an identity-mapped page below 4 GiB" : ""}`, evidence);
};
