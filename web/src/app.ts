/**
 * The web app: the user drops a `kexec-ts snapshot --tar` archive and a kernel image (and, if it
 * fits in memory, a vmcore); the same core that runs in the CLI builds the machine model, the
 * checks, the plan and the hand-over, here in the browser. Nothing is sent anywhere: files are
 * read with File.arrayBuffer() and never leave the page.
 */
import { KexecError } from "../../src/core/errors.js";
import { readKernelImage, type KernelImage } from "../../src/core/image/index.js";
import { buildMachine } from "../../src/core/machine/build.js";
import type { Machine } from "../../src/core/machine/model.js";
import { machineFilesFromArchive } from "../../src/core/machine/snapshot-archive.js";
import { newKernelCommandLine } from "../../src/core/plan/cmdline.js";
import { KERNEL_LAYOUT_FILE, savedLayoutForMachine, type KernelLayout } from "../../src/core/plan/crash.js";
import { buildReport, reportError, type ReportData } from "../../src/core/report/model.js";
import { vmcoreReport, type VmcoreReport } from "../../src/core/report/vmcore.js";
import { looksLikeElfCore } from "../../src/core/vmcore/elf-core.js";
import { looksLikeKdump } from "../../src/core/vmcore/kdump.js";
import { bytesAccess } from "../../src/core/vmcore/memory.js";
import { openVmcore } from "../../src/core/vmcore/vmcore.js";
import type { SyscallRequest } from "../../src/core/check/types.js";
import { validatedRequest, type Request } from "../../src/core/plan/request.js";
import { h } from "./dom.js";
import { errorBanner, renderReport } from "./view.js";

/** Larger vmcores stay with the CLI: the browser would hold the whole file in memory. */
const VMCORE_MAX = 1 << 30;

interface Inputs {
  machine?: { machine: Machine; name: string; kernelLayout: KernelLayout | undefined };
  image?: { image: KernelImage; name: string };
  vmcore?: VmcoreReport;
  errors: ReportData["errors"];
}

function isTar(b: Uint8Array): boolean {
  const gz = b[0] === 0x1f && b[1] === 0x8b;
  return gz || (b.length >= 262 && String.fromCharCode(...b.subarray(257, 262)) === "ustar");
}

/** Which input a file is, by its bytes; errors are said as the CLI says them and the rest stays. */
export async function readDropped(files: readonly File[], inputs: Inputs): Promise<void> {
  for (const file of files) {
    const head = new Uint8Array(await file.slice(0, 512).arrayBuffer());
    try {
      if (isTar(head)) {
        const archive = machineFilesFromArchive(new Uint8Array(await file.arrayBuffer()), file.name);
        const machine = buildMachine(archive.files, { displayPath: (rel) => `${file.name}:/${rel}` });
        const kernelLayout = archive.kernelLayout && savedLayoutForMachine(archive.kernelLayout, machine, `${file.name}:/${KERNEL_LAYOUT_FILE}`);
        inputs.machine = { machine, name: file.name, kernelLayout };
      } else if (looksLikeElfCore(head) || looksLikeKdump(head)) {
        if (file.size > VMCORE_MAX) throw new KexecError("io", `${file.name}: ${file.size} bytes is more than the browser should hold`, { file: file.name }, `use the CLI: kexec-ts report --vmcore ${file.name} -o report.html`);
        inputs.vmcore = vmcoreReport(openVmcore(bytesAccess(new Uint8Array(await file.arrayBuffer()), file.name), file.name), file.name);
      } else {
        try {
          inputs.image = { image: readKernelImage(new Uint8Array(await file.arrayBuffer())), name: file.name };
        } catch (e) {
          throw e instanceof KexecError ? e.inFile(file.name) : e;
        }
      }
    } catch (e) {
      inputs.errors.push(droppedError(file.name, e));
    }
  }
}

/** A KexecError as the CLI says it; anything else is a bug, said as one, and the page goes on. */
function droppedError(what: string, e: unknown): ReportData["errors"][number] {
  if (e instanceof KexecError) return reportError(what, e);
  return { what, message: `${what}: a bug in kexec-ts: ${e instanceof Error ? e.message : String(e)}`, hint: "please report it, with the file if you can share it" };
}

/** The initrd size box: a number or empty; what the browser could not read as a number is said, not taken as empty. */
function initrdSizeField(field: HTMLInputElement): number | undefined {
  if (field.validity.badInput) {
    throw new KexecError("usage", "initrd size: not a number", { field: "initrdSize", expected: "a whole number of bytes" }, "give the initrd's size in bytes (ls -l INITRD), or none for no initrd");
  }
  return field.value === "" ? undefined : Number(field.value);
}

export function startApp(root: HTMLElement): void {
  const inputs: Inputs = { errors: [] };
  const out = h("div", { id: "app-output" });
  const fileInput = h("input", { type: "file", multiple: true, id: "files", "aria-label": "snapshot archive, kernel image or vmcore" }) as unknown as HTMLInputElement;
  const mode = h("select", { id: "mode", "aria-label": "load mode" }, h("option", { value: "-l" }, "-l (kexec)"), h("option", { value: "-p" }, "-p (kdump)")) as unknown as HTMLSelectElement;
  const syscall = h("select", { id: "syscall", "aria-label": "syscall" }, h("option", { value: "auto" }, "-a (auto)"), h("option", { value: "kexec_file_load" }, "-s kexec_file_load"), h("option", { value: "kexec_load" }, "-c kexec_load")) as unknown as HTMLSelectElement;
  const append = h("input", { type: "text", id: "append", value: "console=ttyS0", "aria-label": "--append" }) as unknown as HTMLInputElement;
  const reuse = h("input", { type: "checkbox", id: "reuse-cmdline", "aria-label": "--reuse-cmdline" }) as unknown as HTMLInputElement;
  const initrd = h("input", { type: "number", id: "initrd-size", min: 1, step: 1, placeholder: "bytes", "aria-label": "initrd size in bytes" }) as unknown as HTMLInputElement;
  const userArch = h("select", { id: "userspace", "aria-label": "user space" }, h("option", { value: "" }, "user space: as the kernel"), h("option", { value: "x86_64" }, "x86_64"), h("option", { value: "i386" }, "i386")) as unknown as HTMLSelectElement;
  const status = h("p", { id: "app-status", "aria-live": "polite" });

  const recompute = () => {
    const errors = [...inputs.errors];
    if (!inputs.machine) {
      out.replaceChildren(...[errorBanner(errors), h("p", {}, "Drop a snapshot archive to see the machine; add a kernel image for the checks, the plan and the hand-over.")].filter((x): x is HTMLElement => x !== null));
      return;
    }
    const machine = inputs.machine.machine;
    const crash = mode.value === "-p";
    let request: Request | undefined;
    try {
      request = inputs.image
        ? validatedRequest({
          crash,
          syscall: syscall.value as SyscallRequest,
          cmdline: newKernelCommandLine(machine, { reuse: reuse.checked, append: append.value || undefined, crash }),
          initrdSize: initrdSizeField(initrd),
          userArch: (userArch.value || (machine.kernelArch === "i386" ? "i386" : "x86_64")) as "x86_64" | "i386",
        })
        : undefined;
    } catch (e) {
      // A form value the core refuses: said as the CLI says it, and the machine is still shown.
      errors.push(droppedError("request", e));
    }
    try {
      const data = buildReport({ machine, source: inputs.machine.name, image: inputs.image, request, vmcore: inputs.vmcore, kernelLayout: inputs.machine.kernelLayout, errors });
      out.replaceChildren(renderReport(data));
      (window as unknown as { kexecTsReport?: ReportData }).kexecTsReport = data;
      status.textContent = `computed in this browser from ${[inputs.machine.name, inputs.image?.name, inputs.vmcore?.file].filter(Boolean).join(", ")}`;
    } catch (e) {
      errors.push(droppedError("report", e));
      out.replaceChildren(errorBanner(errors)!);
    }
  };
  const take = async (files: File[]) => {
    inputs.errors = [];
    await readDropped(files, inputs);
    recompute();
    root.setAttribute("data-ready", String(Date.now()));
  };
  fileInput.addEventListener("change", () => void take([...(fileInput.files ?? [])]));
  for (const el of [mode, syscall, append, reuse, initrd, userArch]) el.addEventListener("change", recompute);
  const zone = h("div", { class: "drop", id: "drop", tabindex: 0 },
    h("p", {}, h("strong", {}, "Drop a snapshot archive (kexec-ts snapshot --tar FILE) and a kernel image here"), ", or choose them: ", fileInput),
    h("p", { class: "small" }, "Everything is computed in this page; no file leaves the browser."),
    h("div", { class: "options" }, mode, syscall, h("label", {}, "--append ", append), h("label", {}, reuse, " --reuse-cmdline"), h("label", {}, "initrd size ", initrd), userArch),
    status);
  zone.addEventListener("dragover", (e) => e.preventDefault());
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    void take([...((e as DragEvent).dataTransfer?.files ?? [])]);
  });
  root.setAttribute("data-ready", "0");
  root.replaceChildren(h("header", { class: "app-header" }, h("h1", {}, "kexec-ts: see the memory map, the plan and the hand-over")), zone, out);
  recompute();
}
