/**
 * The memory map: /proc/iomem's tree (nested boxes), the crash region(s), the plan's segments and
 * the windows the planner searched, and the limits that bounded them as lines across the map.
 * Addresses grow downwards. Every drawn thing carries data-start/data-end (hex, end exclusive) and
 * is reachable with Tab; its explanation shows on hover and on focus.
 */
import { hex, size } from "../../src/core/format.js";
import { makeScale, type Scale, type ScaleKind } from "../../src/core/report/scale.js";
import type { BoundJson, MapRange, ReportData } from "../../src/core/report/model.js";
import { h } from "./dom.js";

const AXIS = 150;
const LANE_IOMEM = 330;
const LANE_GAP = 16;
const LANE_CRASH = 120;
const LANE_PLAN = 190;
const LANE_VMCORE = 120;
const LIMIT_LABELS = 300;
const NEST = 12;

interface View {
  lo: bigint;
  hi: bigint;
  kind: ScaleKind;
}

function flatten(ranges: readonly MapRange[], out: MapRange[] = []): MapRange[] {
  for (const r of ranges) {
    out.push(r);
    flatten(r.children, out);
  }
  return out;
}

function tip(el: Element, text: string): Element {
  el.setAttribute("data-tip", text);
  el.setAttribute("aria-label", text);
  el.append(h("title", {}, text));
  return el;
}

export function mapSection(data: ReportData, checksById: Map<string, string[]>): HTMLElement {
  const all = flatten(data.machine.map);
  const top = all.reduce((m, r) => (BigInt(r.end) > m ? BigInt(r.end) : m), 0n);
  const limits: (BoundJson & { from: string })[] = [
    ...data.machine.limits.map((l) => ({ ...l, from: "machine" })),
    ...(data.plan?.limits ?? []).map((l) => ({ ...l, from: "plan" })),
  ];
  const full: View = { lo: 0n, hi: top > 0n ? top : 1n << 32n, kind: "piecewise" };
  const history: View[] = [];
  let view = full;
  const holder = h("div", { class: "map-holder" });
  const caption = h("p", { class: "scale-note", id: "scale-note" });
  const back = h("button", { type: "button", id: "zoom-back", onclick: () => { if (history.length) { view = history.pop()!; draw(); } } }, "zoom out");
  const whole = h("button", { type: "button", id: "zoom-whole", onclick: () => { history.length = 0; view = full; draw(); } }, "whole map");
  const scaleToggle = h("button", { type: "button", id: "scale-toggle", onclick: () => { view = { ...view, kind: view.kind === "piecewise" ? "linear" : "piecewise" }; draw(); } }, "switch scale");
  const zoomTo = (start: bigint, end: bigint) => {
    history.push(view);
    const pad = (end - start) / 8n;
    view = { lo: start - pad > 0n ? start - pad : 0n, hi: end + pad, kind: view.kind };
    draw();
  };

  const draw = () => {
    const boundaries: bigint[] = [];
    for (const r of all) boundaries.push(BigInt(r.start), BigInt(r.end));
    for (const s of data.plan?.segments ?? []) boundaries.push(BigInt(s.mem), BigInt(s.end));
    // A dump's ranges cut the map; its left-out runs (thousands) are drawn inside the pieces.
    for (const r of data.vmcore?.dumped ?? []) boundaries.push(BigInt(r.start), BigInt(r.end));
    if (data.handover) boundaries.push(BigInt(data.handover.controlPage), BigInt(data.handover.controlPage) + 0x1000n);
    for (const l of limits) boundaries.push(BigInt(l.value));
    const w = data.plan?.error?.window;
    if (w) boundaries.push(BigInt(w.min.value), BigInt(w.limit.value));
    const scale = makeScale(view.kind, view.lo, view.hi, boundaries);
    caption.textContent = `Scale: ${scale.describe}. Showing ${hex(view.lo)}–${hex(view.hi)}. Enter or click on a range zooms to it.`;
    holder.replaceChildren(svg(data, scale, all, limits, checksById, zoomTo));
  };
  draw();
  return h("section", { id: "map", "aria-labelledby": "map-title" },
    h("h2", { id: "map-title" }, "Memory map"),
    h("div", { class: "controls" }, back, whole, scaleToggle),
    caption,
    holder);
}

function visible(scale: Scale, start: bigint, end: bigint): boolean {
  return end > scale.lo && start < scale.hi;
}

function svg(data: ReportData, scale: Scale, all: MapRange[], limits: (BoundJson & { from: string })[], checksById: Map<string, string[]>, zoomTo: (s: bigint, e: bigint) => void): Element {
  const laneCrash = AXIS + LANE_IOMEM + LANE_GAP;
  const lanePlan = laneCrash + LANE_CRASH + LANE_GAP;
  const laneVmcore = lanePlan + LANE_PLAN + LANE_GAP;
  const width = laneVmcore + (data.vmcore ? LANE_VMCORE + LANE_GAP : 0) + LIMIT_LABELS;
  const height = Math.ceil(scale.height) + 30;
  const root = h("svg", { width, height, viewBox: `0 -20 ${width} ${height}`, role: "img", "aria-label": "physical memory map", id: "memory-map", "data-scale": scale.kind });
  const y = (a: bigint) => scale.y(a);
  const box = (start: bigint, end: bigint, x: number, wdt: number, cls: string, label: string, attrs: Record<string, string>, tipText: string) => {
    const y0 = y(start);
    const y1 = y(end);
    const g = h("g", { class: `range ${cls}`, tabindex: 0, "data-start": hex(start), "data-end": hex(end), ...attrs,
      onclick: () => zoomTo(start, end), onkeydown: (e: Event) => { if ((e as KeyboardEvent).key === "Enter") zoomTo(start, end); } });
    g.append(h("rect", { x, y: y0, width: wdt, height: Math.max(1, y1 - y0), rx: 2 }));
    if (y1 - y0 >= 12) g.append(h("text", { x: x + 4, y: y0 + Math.min(13, (y1 - y0) / 2 + 4) }, label));
    tip(g, tipText);
    return g;
  };
  root.append(h("text", { x: AXIS, y: -6, class: "lane-title" }, "/proc/iomem"), h("text", { x: laneCrash, y: -6, class: "lane-title" }, "crash region"), h("text", { x: lanePlan, y: -6, class: "lane-title" }, data.plan ? `plan ${data.plan.mode} (${data.plan.syscall})` : "plan"));
  // Axis: an address at every boundary.
  let lastY = -100;
  for (const t of scale.ticks) {
    if (t.y - lastY < 11 && t !== scale.ticks[scale.ticks.length - 1]) continue;
    lastY = t.y;
    root.append(h("text", { x: AXIS - 6, y: t.y + 4, class: "tick" }, hex(t.address)), h("line", { x1: AXIS - 4, x2: AXIS, y1: t.y, y2: t.y, class: "tick-line" }));
  }
  for (const r of all) {
    const start = BigInt(r.start);
    const end = BigInt(r.end);
    if (!visible(scale, start, end)) continue;
    const x = AXIS + r.depth * NEST;
    const checks = checksById.get(`range:${r.name}`) ?? [];
    root.append(box(start, end, x, LANE_IOMEM - r.depth * NEST * 2, `iomem kind-${r.kind}`, r.name, { id: `map-${r.id}`, "data-kind": r.kind, "data-name": r.name, "data-depth": String(r.depth), ...(checks.length ? { "data-checks": checks.join(" ") } : {}) },
      `${r.name}: ${r.start}–${r.end} (${size(end - start)})${r.depth ? `, inside its parent (depth ${r.depth})` : ""}`));
  }
  data.machine.crashRegions.forEach((c, i) => {
    const start = BigInt(c.start);
    const end = BigInt(c.end);
    if (!visible(scale, start, end)) return;
    const checks = checksById.get("crash") ?? [];
    root.append(box(start, end, laneCrash, LANE_CRASH, "crash", "Crash kernel", { id: `map-crash-${i}`, "data-kind": "crash-region", ...(checks.length ? { "data-checks": checks.join(" ") } : {}) }, `crash region ${i}: ${c.start}–${c.end} (${size(end - start)})`));
  });
  for (const s of data.plan?.segments ?? []) {
    const start = BigInt(s.mem);
    const end = BigInt(s.end);
    if (!visible(scale, start, end)) continue;
    const why = s.window ? ` — placed ${s.window.topDown ? "top-down" : "bottom-up"} in ${s.window.min.value}–${s.window.limit.value}: at or above ${s.window.min.value} (${s.window.min.reason}), below ${s.window.limit.value} (${s.window.limit.reason}), aligned to ${s.window.align}` : " — at a fixed address";
    root.append(box(start, end, lanePlan, LANE_PLAN, `segment seg-${s.kind}`, s.kind, { id: `segment-${s.kind}`, "data-kind": "segment", "data-segment": s.kind }, `${s.kind} segment: ${s.mem}–${s.end} (${size(end - start)})${why}`));
  }
  // Where the model puts kexec's control page (relocate_kernel's copy) and its table pages.
  const control = data.handover ? BigInt(data.handover.controlPage) : undefined;
  if (control !== undefined && visible(scale, control, control + 0x1000n)) {
    root.append(box(control, control + 0x1000n, lanePlan + LANE_PLAN * 0.5, LANE_PLAN * 0.5, "control-page", "control page", { id: "control-page", "data-kind": "control-page" },
      `kexec's control page ${data.handover!.controlPage}: relocate_kernel's copy, identity-mapped (its place is modelled: ${data.handover!.notes[0] ?? ""})`));
  }
  const failed = data.plan?.error?.window;
  if (failed) {
    const start = BigInt(failed.min.value);
    const end = BigInt(failed.limit.value);
    if (end > start && visible(scale, start, end)) {
      root.append(box(start, end, lanePlan, LANE_PLAN, "segment failed", `no room: ${failed.what}`, { id: "segment-failed", "data-kind": "failed-window" },
        `no room for the ${failed.what} (${failed.size}) between ${failed.min.value} (${failed.min.reason}) and ${failed.limit.value} (${failed.limit.reason})`));
    }
  }
  if (data.vmcore) {
    root.append(h("text", { x: laneVmcore, y: -6, class: "lane-title" }, "vmcore"));
    for (const r of data.vmcore.dumped) {
      const start = BigInt(r.start);
      const end = BigInt(r.end);
      if (visible(scale, start, end)) root.append(box(start, end, laneVmcore, LANE_VMCORE, "vmcore dumped", "dumped", { "data-kind": "vmcore-dumped" }, `in the dump: ${r.start}–${r.end} (${size(end - start)})`));
    }
    // Left-out runs: thin marks over the dumped lane, not focusable one by one (there can be thousands); the list below has them.
    for (const l of data.vmcore.leftOut) {
      for (const r of l.ranges) {
        const start = BigInt(r.start);
        const end = BigInt(r.end);
        if (!visible(scale, start, end)) continue;
        const y0 = scale.y(start);
        root.append(h("rect", { class: `left-out left-${l.type}`, x: laneVmcore + LANE_VMCORE / 2, y: y0, width: LANE_VMCORE / 2, height: Math.max(1, scale.y(end) - y0), "data-kind": "vmcore-left-out", "data-type": l.type, "data-start": r.start, "data-end": r.end }));
      }
    }
  }
  // Limits: a line across every lane, the reason on hover and focus.
  const seen = new Set<string>();
  limits.forEach((l, i) => {
    const at = BigInt(l.value);
    if (at < scale.lo || at > scale.hi || seen.has(`${l.value}|${l.reason}`)) return;
    seen.add(`${l.value}|${l.reason}`);
    const ly = y(at);
    const g = h("g", { class: `limit from-${l.from}`, tabindex: 0, id: `limit-${i}`, "data-kind": "limit", "data-start": l.value, "data-end": l.value });
    const x2 = width - LIMIT_LABELS;
    g.append(h("line", { x1: AXIS, x2, y1: ly, y2: ly }), h("line", { x1: AXIS, x2, y1: ly, y2: ly, class: "hit" }),
      h("text", { x: x2 + 6, y: ly + 4 }, `${l.value} ${shorten(l.reason)}`));
    tip(g, `limit ${l.value}: ${l.reason}`);
    root.append(g);
  });
  return root;
}

function shorten(s: string): string {
  return s.length > 44 ? `${s.slice(0, 43)}…` : s;
}
