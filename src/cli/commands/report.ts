/**
 * `kexec-ts report [-l|-p IMAGE] [load flags] [--root DIR] [--vmcore FILE] -o report.html`: one
 * self-contained HTML page (dist/web/index.html, built by web/build.mjs, with the report's data
 * embedded) showing the memory map, the plan, the checks, the image, the hand-over's page tables
 * and a vmcore. An input that cannot be read is said on the page and here, as the CLI says it,
 * and the rest of the page is still written.
 */
import { readFileSync } from "node:fs";
import { EXIT_STATUS, KexecError, isKexecError } from "../../core/errors.js";
import { buildReport, reportError, type ReportData } from "../../core/report/model.js";
import { vmcoreReport } from "../../core/report/vmcore.js";
import { openVmcoreWithSystemCodecs } from "../../node/vmcore/open.js";
import type { KernelImage } from "../../core/image/index.js";
import { checkOutputPath, refuseOutputInsideRoot, writeOutputFile, type OutputPath } from "../../node/files.js";
import { readKernelImageFile } from "../../node/image.js";
import { readKernelLayout } from "../../node/kernel-layout.js";
import { readMachine } from "../../node/machine.js";
import { openRandomAccess } from "../../node/vmcore/file.js";
import { has, value, type ParsedArgs } from "../options.js";
import { loadRequest, loaderIsRoot, machineRoot } from "../request.js";

const DATA_SLOT = '<script id="report-data" type="application/json"></script>';

function pageTemplate(): string {
  const url = new URL("../../web/index.html", import.meta.url);
  try {
    return readFileSync(url, "utf8");
  } catch {
    throw new KexecError("io", `${url.pathname}: the web page is not built`, { file: url.pathname }, "run `npm run build` (it bundles web/ with esbuild)");
  }
}

/** The page with `data` in its JSON slot; "<" escaped so no string in the data can close the script. */
export function reportHtml(data: ReportData, template = pageTemplate()): string {
  if (!template.includes(DATA_SLOT)) throw new KexecError("parse", "the web page template has no report-data slot", { expected: DATA_SLOT }, "rebuild with `npm run build`");
  const json = JSON.stringify(data).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
  return template.replace(DATA_SLOT, () => `<script id="report-data" type="application/json">${json}</script>`);
}

export async function run(args: ParsedArgs, rest: string[]): Promise<number> {
  const out = value(args, "output");
  if (out === undefined) throw new KexecError("usage", "report needs -o FILE (the HTML page to write)", { field: "output" }, "kexec-ts report -p /boot/vmlinuz-$(uname -r) --reuse-cmdline -o report.html");
  const root = machineRoot(args);
  const imagePath = rest[0];
  const inputs = [[imagePath, "the image"], [value(args, "vmcore"), "the vmcore"], [value(args, "initrd"), "the initrd"]]
    .filter((i): i is [string, string] => i[0] !== undefined).map(([path, what]) => ({ path, what }));
  const output: OutputPath = { path: out, what: "the report", command: "report", exampleName: "report.html", inputs };
  // Before anything is read: a refused output is said at once, not after a vmcore's worth of work.
  const { target } = checkOutputPath(output);
  if (has(args, "root")) refuseOutputInsideRoot(output, target, root);
  const machine = await readMachine(root);
  const errors: ReportData["errors"] = [];
  const failures: KexecError[] = [];
  const failed = (what: string, e: unknown): undefined => {
    errors.push(reportError(what, e));
    if (isKexecError(e)) failures.push(e);
    return undefined;
  };
  const attempt = <T>(what: string, f: () => T): T | undefined => {
    try {
      return f();
    } catch (e) {
      return failed(what, e);
    }
  };
  const wantsPlan = has(args, "load") || has(args, "load-panic");
  if (wantsPlan && imagePath === undefined) throw new KexecError("usage", `report ${has(args, "load-panic") ? "-p" : "-l"} needs a kernel IMAGE`, {}, "kexec-ts report -l /boot/vmlinuz-$(uname -r) -o report.html");
  let image: KernelImage | undefined;
  if (imagePath !== undefined) image = await readKernelImageFile(imagePath).catch((e: unknown) => failed(imagePath, e));
  const request = image ? loadRequest(args, machine, image, value(args, "initrd")) : undefined;
  const vmcorePath = value(args, "vmcore");
  const vmcore = vmcorePath === undefined ? undefined : attempt(vmcorePath, () => {
    const file = openRandomAccess(vmcorePath);
    try {
      return vmcoreReport(openVmcoreWithSystemCodecs(file, vmcorePath), vmcorePath);
    } finally {
      file.close();
    }
  });
  const data = buildReport({
    machine, source: root === "/" ? "this machine" : `--root ${root}`,
    image: image && imagePath !== undefined ? { image, name: imagePath } : undefined,
    request, isRoot: loaderIsRoot(args), vmcore, errors,
    kernelLayout: machine.kernelArch === "x86_64" ? readKernelLayout(root, machine) : undefined,
  });
  writeOutputFile(output, new TextEncoder().encode(reportHtml(data)));
  const verdict = data.summary ? `${data.summary.verdict}: ${data.summary.counts.fail} fail, ${data.summary.counts.warn} warn, ${data.summary.counts.ok} ok` : "machine only (no image)";
  process.stdout.write(`wrote ${out} (${verdict}; open it in a browser, it needs no network)\n`);
  for (const e of failures) process.stderr.write(`kexec-ts: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
  // The page is written either way; an input it could not read still sets the exit status.
  return failures.length ? EXIT_STATUS[failures[0]!.code] : 0;
}
