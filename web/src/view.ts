/**
 * The report page from a ReportData: it only reads the model. The map is in map.ts; here are the
 * verdicts, the checks (each linked to what it is about), the hand-over with its page tables
 * (walkable: the tables' bytes are in the model), the image's header and the vmcore.
 */
import { hex, size } from "../../src/core/format.js";
import type { CheckJson, HandoverJson, PageTableJson, ReportData } from "../../src/core/report/model.js";
import type { PagingFormat } from "../../src/core/pgtable/format.js";
import { walkPageTable, type Translation } from "../../src/core/pgtable/walk.js";
import { h } from "./dom.js";
import { mapSection } from "./map.js";

/** The page's tables, decoded once, for walks typed into the page (and the browser tests). */
export function tableReader(t: PageTableJson): (paddr: bigint, size: 4 | 8) => bigint {
  const pages = new Map<bigint, DataView>();
  for (const [pa, b64] of Object.entries(t.pages)) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    pages.set(BigInt(pa), new DataView(bytes.buffer));
  }
  return (paddr, sz) => {
    const dv = pages.get(paddr & ~0xfffn);
    if (!dv) throw new Error(`no table page at ${hex(paddr)}`);
    const at = Number(paddr & 0xfffn);
    return sz === 8 ? dv.getBigUint64(at, true) : BigInt(dv.getUint32(at, true));
  };
}

export function walkTable(t: PageTableJson, vaddr: bigint): Translation {
  return walkPageTable(t.format as PagingFormat, BigInt(t.top), vaddr, tableReader(t));
}

function verdictBadge(v: string): HTMLElement {
  return h("span", { class: `verdict v-${v}` }, v.toUpperCase());
}

function checksSection(checks: CheckJson[]): HTMLElement {
  const order = { fail: 0, warn: 1, ok: 2 } as const;
  const sorted = [...checks].sort((a, b) => order[a.verdict] - order[b.verdict]);
  return h("section", { id: "checks", "aria-labelledby": "checks-title" },
    h("h2", { id: "checks-title" }, "Checks"),
    checks.length === 0 ? h("p", {}, "No image given: the checks need a kernel image (-l or -p IMAGE).") : null,
    h("ol", { class: "checks" }, sorted.map((c) => h("li", { class: `check c-${c.verdict}`, id: `check-${c.id}`, tabindex: 0, "data-check": c.id, "data-verdict": c.verdict },
      h("div", { class: "check-head" }, verdictBadge(c.verdict), h("code", {}, c.id), " ", c.reason),
      c.remedy ? h("p", { class: "remedy" }, h("strong", {}, "remedy: "), c.remedy) : null,
      h("p", { class: "links" }, "about: ", c.links.flatMap((l, i) => [i ? ", " : "", h("a", { href: `#${l.anchor}`, "data-anchor": l.anchor }, l.label)])),
      Object.keys(c.evidence).length ? h("details", {}, h("summary", {}, "evidence"), h("dl", {}, Object.entries(c.evidence).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "string" ? v : JSON.stringify(v))]))) : null,
    ))));
}

function imageSection(data: ReportData): HTMLElement | null {
  const img = data.image;
  if (!img) return null;
  const s = img.summary as Record<string, unknown>;
  const payload = s.payload as { offset: string; length: string; compression: string } | undefined;
  return h("section", { id: "image", "aria-labelledby": "image-title" },
    h("h2", { id: "image-title" }, `Image: ${img.name}`),
    h("p", {}, `${String(s.format)}${s.version ? `, Linux ${String(s.version)}` : ""}${s.protocol ? `, boot protocol ${String(s.protocol)}` : ""}${s.is64 ? ", 64-bit" : ", 32-bit"}`),
    payload ? h("p", { id: "payload", tabindex: 0 }, `payload: ${payload.compression}, ${payload.length} bytes at ${payload.offset}`) : null,
    img.xloadflags ? h("div", {}, h("h3", {}, "xloadflags"), h("ul", { class: "flags" }, img.xloadflags.map((x) => h("li", { class: x.set ? "set" : "unset", tabindex: 0, id: `xlf-${x.name}` }, `${x.set ? "✔" : "✘"} bit ${x.bit} ${x.name}: ${x.meaning}`)))) : null,
    img.fields.length ? h("details", { open: true }, h("summary", {}, "setup header (boot.rst)"),
      h("table", { class: "fields" }, h("thead", {}, h("tr", {}, h("th", {}, "field"), h("th", {}, "offset"), h("th", {}, "size"), h("th", {}, "since"), h("th", {}, "value"))),
        h("tbody", {}, img.fields.map((f) => h("tr", { id: `field-${f.name}`, tabindex: 0, "data-field": f.name }, h("td", {}, h("code", {}, f.name)), h("td", {}, f.offset), h("td", {}, String(f.size)), h("td", {}, f.since), h("td", {}, f.value ?? "(not in this protocol)")))))) : null);
}

function tableView(t: PageTableJson): HTMLElement {
  const out = h("output", { class: "walk-result", id: `walk-result-${t.id}`, "aria-live": "polite" });
  const input = h("input", { type: "text", id: `walk-input-${t.id}`, placeholder: "virtual address, e.g. 0x1000000", "aria-label": `virtual address to walk in ${t.title}` }) as unknown as HTMLInputElement;
  const walk = (e: Event) => {
    e.preventDefault();
    try {
      const va = BigInt(input.value.trim());
      const r = walkTable(t, va);
      out.textContent = `${hex(va)} → ${hex(r.paddr)} (${size(r.pageSize)} page): ${r.steps.map((s) => `${s.level}[${s.index}] @${hex(s.table)} = ${hex(s.entry)}`).join(" → ")}`;
      out.setAttribute("data-paddr", hex(r.paddr));
    } catch (err) {
      out.textContent = (err as Error).message;
      out.setAttribute("data-paddr", "");
    }
  };
  return h("div", { class: "pgtable", id: `table-${t.id}` },
    h("h4", {}, `${t.title}: ${t.format}, CR3 = ${t.top}, ${Object.keys(t.pages).length} table pages`),
    h("ul", { class: "notes" }, t.notes.map((n) => h("li", {}, n))),
    h("form", { class: "walk", onsubmit: walk }, input, h("button", { type: "submit" }, "walk")), out,
    h("details", {}, h("summary", {}, `${t.leaves.length} mappings`),
      h("table", { class: "leaves" }, h("thead", {}, h("tr", {}, h("th", {}, "virtual"), h("th", {}, "physical"), h("th", {}, "size"), h("th", {}, "pages"))),
        h("tbody", {}, t.leaves.map((l) => h("tr", { tabindex: 0, class: "leaf", "data-table": t.id, "data-vaddr": l.vaddr, "data-paddr": l.paddr, "data-size": l.size, "data-page-size": l.pageSize },
          h("td", {}, l.vaddr), h("td", {}, l.paddr), h("td", {}, size(BigInt(l.size))), h("td", {}, size(BigInt(l.pageSize)))))))));
}

function handoverSection(ho: HandoverJson | undefined, data: ReportData): HTMLElement | null {
  if (!ho) return data.plan ? h("section", { id: "handover" }, h("h2", {}, "Hand-over"), h("p", {}, "No placement, so no hand-over to show (see placement-hole).")) : null;
  const tableName = (id: string | null | undefined) => (id === null ? "paging off" : ho.tables.find((t) => t.id === id)?.title ?? String(id));
  return h("section", { id: "handover", "aria-labelledby": "handover-title" },
    h("h2", { id: "handover-title" }, `Hand-over (${ho.format})`),
    h("ol", { class: "steps" }, ho.steps.map((s) => {
      const inv = ho.invariants.filter((i) => i.step === s.id);
      return h("li", { id: `step-${s.id}`, tabindex: 0, class: `step ${inv.some((i) => !i.holds) ? "broken" : ""}`, "data-step": s.id, "data-table": s.table ?? "none" },
        h("strong", {}, s.title), ` at ${s.runsAt.vaddr} (${s.runsAt.what}) — live table: ${tableName(s.table)}${s.switchesTo !== undefined ? ` → ${tableName(s.switchesTo)}` : ""}`,
        h("p", {}, s.detail),
        inv.length ? h("ul", { class: "invariants" }, inv.map((i) => h("li", { class: i.holds ? "holds" : "broken", tabindex: 0, "data-invariant": i.id, "data-holds": String(i.holds), "data-address": i.address }, `${i.holds ? "✔" : "✘ BROKEN"} ${i.reason}`))) : null);
    })),
    h("ul", { class: "notes" }, ho.notes.map((n) => h("li", {}, n))),
    h("h3", {}, "Page tables (real bytes, walked here)"),
    ho.tables.map(tableView));
}

function vmcoreSection(data: ReportData): HTMLElement | null {
  const v = data.vmcore;
  if (!v) return null;
  const s = v.summary;
  return h("section", { id: "vmcore", "aria-labelledby": "vmcore-title" },
    h("h2", { id: "vmcore-title" }, `vmcore: ${v.file}`),
    h("p", {}, `${s.format}${s.incomplete ? " (INCOMPLETE)" : ""}, ${s.arch}, ${s.kernelVersion ?? "kernel unknown"}, ${s.memoryTotal} in ${s.memory.length} ranges, dump level ${s.dumpLevel ?? "unknown"}, compression ${s.compression}`),
    h("h3", {}, "dumped ranges"),
    h("ul", { class: "dumped" }, v.dumped.map((r) => h("li", { tabindex: 0, "data-start": r.start, "data-end": r.end, class: "dumped-range" }, `${r.start}–${r.end} (${size(BigInt(r.end) - BigInt(r.start))})`))),
    h("h3", {}, "pages left out"),
    v.leftOut.length ? h("ul", { class: "left-out" }, v.leftOut.map((l) => h("li", { tabindex: 0, "data-type": l.type, "data-pages": String(l.pages) }, `${l.type}: ${l.pages} pages (${size(BigInt(l.pages) * BigInt(s.pageSize))}) in ${l.ranges.length} runs`))) : h("p", {}, "none"),
    v.problems.length ? h("ul", { class: "problems" }, v.problems.map((p) => h("li", {}, p))) : null,
    h("h3", {}, "the crash's last log lines"),
    h("pre", { class: "log", tabindex: 0 }, v.log.map((l) => h("span", { class: l.panic ? "panic" : "" }, `[${l.time.padStart(13)}] ${l.text}\n`))));
}

function machineSection(data: ReportData): HTMLElement {
  const m = data.machine;
  return h("section", { id: "machine", "aria-labelledby": "machine-title", tabindex: 0 },
    h("h2", { id: "machine-title" }, "Machine"),
    h("p", {}, `${m.kernelArch ?? "arch unknown"}, ${m.kernelRelease ?? "release unknown"}, ${m.pagingLevels ?? "?"}-level paging (${m.pagingEvidence}); memory map from ${m.memorySource ?? "nowhere"}; System RAM ${m.systemRam ? size(BigInt(m.systemRam)) : "unknown"}`),
    m.cmdline ? h("p", {}, "command line: ", h("code", {}, m.cmdline)) : null,
    m.facts.length ? h("details", {}, h("summary", {}, `${m.facts.length} things the snapshot does not say`), h("ul", {}, m.facts.map((f) => h("li", {}, h("code", {}, f.path), ": ", f.meaning)))) : null);
}

export function errorBanner(errors: ReportData["errors"]): HTMLElement | null {
  if (!errors.length) return null;
  return h("div", { class: "errors", role: "alert", id: "errors" }, errors.map((e) => h("p", { class: "error", "data-what": e.what }, h("strong", {}, `kexec-ts: ${e.message}`), e.hint ? h("br") : null, e.hint ? `hint: ${e.hint}` : null)));
}

export function renderReport(data: ReportData): HTMLElement {
  const checksById = new Map<string, string[]>();
  for (const c of data.checks.filter((x) => x.verdict !== "ok")) {
    for (const l of c.links) if (l.anchor.startsWith("map-crash")) (checksById.get("crash") ?? checksById.set("crash", []).get("crash")!).push(c.id);
  }
  const s = data.summary;
  return h("main", { id: "report" },
    h("header", {},
      h("h1", {}, data.title),
      h("p", { class: "source" }, `machine: ${data.source}${data.request ? ` · ${data.request.crash ? "-p (kdump)" : "-l (kexec)"}, ${data.request.syscall}, user space ${data.request.userArch}, command line "${data.request.cmdline}"${data.request.initrdSize !== null ? `, initrd ${size(BigInt(data.request.initrdSize))}` : ""}` : ""}`),
      s ? h("p", { class: "summary", id: "summary", "data-verdict": s.verdict }, verdictBadge(s.verdict), ` ${s.counts.fail} fail, ${s.counts.warn} warn, ${s.counts.ok} ok`) : null,
      h("nav", {}, ["map", "checks", "handover", "image", "vmcore", "machine"].map((id) => h("a", { href: `#${id}` }, id)))),
    errorBanner(data.errors),
    mapSection(data, checksById),
    data.plan?.error ? h("p", { class: "plan-error", role: "note" }, `no plan: ${data.plan.error.message}`) : null,
    checksSection(data.checks),
    handoverSection(data.handover, data),
    imageSection(data),
    vmcoreSection(data),
    machineSection(data));
}
