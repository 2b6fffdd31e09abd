/**
 * What each check is about, so the page can link a verdict to the range on the map, the header
 * field, the plan's segment or the hand-over step it concerns. Anchors are element ids the view
 * gives those things: "map-crash-0", "field-xloadflags", "segment-initrd", "step-relocate_kernel".
 */
import type { CheckResult } from "../check/types.js";
import type { ReportData } from "./model.js";

export interface CheckLink {
  anchor: string;
  label: string;
}

/** Header fields a rule reads. */
const FIELDS: Record<string, string[]> = {
  "paging-5level": ["xloadflags"],
  "paging-physmem-limit": ["xloadflags"],
  "image-arch": ["xloadflags"],
  "kexec-file-probe": ["version", "loadflags", "xloadflags"],
  "above-4g": ["xloadflags"],
  "relocatable": ["relocatable_kernel", "pref_address"],
  "protocol-version": ["version"],
  "initrd-addr-max": ["initrd_addr_max"],
  "cmdline-size": ["cmdline_size"],
  "entry-mode": ["code32_start", "xloadflags"],
};

/** Segments a rule is about. */
const SEGMENTS: Record<string, string[]> = {
  "initrd-addr-max": ["initrd"],
  "kexec-file-size": ["kernel", "initrd"],
  "above-4g": ["kernel", "initrd"],
  "cmdline-size": ["bootparams"],
  "paging-physmem-limit": ["kernel"],
};

const CRASH_RULES = new Set(["crash-region", "crash-region-size", "crash-region-reach", "crash-cmdline"]);

export function linksFor(r: CheckResult, data: ReportData): CheckLink[] {
  const links: CheckLink[] = [];
  if (CRASH_RULES.has(r.id)) data.machine.crashRegions.forEach((c, i) => links.push({ anchor: `map-crash-${i}`, label: `crash region ${c.start}-${c.end}` }));
  const fields = FIELDS[r.id] ?? [];
  if (data.image) for (const f of fields) if (data.image.fields.some((x) => x.name === f)) links.push({ anchor: `field-${f}`, label: f });
  const kinds = r.id === "placement-hole" ? (data.plan?.segments.map((s) => s.kind) ?? []) : (SEGMENTS[r.id] ?? []);
  for (const k of kinds) if (data.plan?.segments.some((s) => s.kind === k)) links.push({ anchor: `segment-${k}`, label: `${k} segment` });
  if (r.id === "placement-hole" && data.plan?.error?.window) links.push({ anchor: "segment-failed", label: `the window that could not hold the ${data.plan.error.window.what}` });
  if (r.id === "handover-page-tables" && data.handover) {
    const broken = data.handover.invariants.filter((i) => !i.holds);
    for (const step of new Set((broken.length ? broken : data.handover.invariants).map((i) => i.step))) links.push({ anchor: `step-${step}`, label: `hand-over step ${step}` });
  }
  if (links.length === 0) links.push({ anchor: "machine", label: "the machine" });
  return links;
}
