/**
 * One bundle, two pages: with report data embedded (what `kexec-ts report` writes) it shows that
 * report; without, it is the web app that builds the report from dropped files.
 */
import type { ReportData } from "../../src/core/report/model.js";
import { startApp } from "./app.js";
import { renderReport, walkTable } from "./view.js";
import "./style.css";

function main(): void {
  const root = document.getElementById("root")!;
  const embedded = document.getElementById("report-data")?.textContent?.trim();
  if (embedded) {
    const data = JSON.parse(embedded) as ReportData;
    document.title = data.title;
    root.replaceChildren(renderReport(data));
    (window as unknown as { kexecTsReport?: ReportData }).kexecTsReport = data;
    root.setAttribute("data-ready", "1");
    // Time from navigation start to a drawn page (bench/web reads it).
    root.setAttribute("data-render-ms", performance.now().toFixed(1));
  } else startApp(root);
  // Tooltips: the explanation of whatever is hovered or focused (limits, ranges, segments).
  const tip = document.getElementById("tip")!;
  const show = (e: Event) => {
    const el = (e.target as Element | null)?.closest?.("[data-tip]");
    if (!el) return;
    tip.textContent = el.getAttribute("data-tip");
    const r = el.getBoundingClientRect();
    tip.style.left = `${Math.min(window.innerWidth - 420, r.left + window.scrollX + 10)}px`;
    tip.style.top = `${r.top + window.scrollY + Math.min(r.height, 24) + 4}px`;
    tip.hidden = false;
  };
  const hide = () => { tip.hidden = true; };
  document.addEventListener("mouseover", show);
  document.addEventListener("focusin", show);
  document.addEventListener("mouseout", hide);
  document.addEventListener("focusout", hide);
  // For the browser tests and the curious: walk a table of the shown report from the console.
  (window as unknown as Record<string, unknown>).kexecTsWalk = (tableId: string, vaddr: string) => {
    const data = (window as unknown as { kexecTsReport?: ReportData }).kexecTsReport;
    const t = data?.handover?.tables.find((x) => x.id === tableId);
    if (!t) throw new Error(`no table ${tableId}`);
    const r = walkTable(t, BigInt(vaddr));
    return { paddr: `0x${r.paddr.toString(16)}`, pageSize: `0x${r.pageSize.toString(16)}` };
  };
}

main();
