/**
 * What `npm start` runs: the whole prediction on an embedded default. With a
 * kernel in /boot it is this machine's live state and that kernel; otherwise
 * the sample QEMU snapshot shipped in the repo (a 5-level guest with
 * crashkernel=256M@1968M) and a Debian kernel from the lab cache, or failing
 * that a header-only image shaped like Debian's 6.1 amd64 kernel.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { renderChecks, runChecks } from "../../core/check/index.js";
import { isKexecError } from "../../core/errors.js";
import { renderInspect } from "../../core/image/describe.js";
import { readKernelImage, type KernelImage } from "../../core/image/index.js";
import { buildBzImage } from "../../core/image/testing/synthetic.js";
import { renderMachine } from "../../core/machine/model.js";
import { planLoad } from "../../core/plan/plan.js";
import { renderPlan } from "../../core/plan/render.js";
import type { Request } from "../../core/plan/request.js";
import { sha256 } from "../../node/crypto.js";
import { readKernelImageFile } from "../../node/image.js";
import { cachedKernels } from "../../node/kernel-cache.js";
import { readMachine } from "../../node/machine.js";
import { has, value, type ParsedArgs } from "../options.js";

const DEMO_INITRD = 32 * 0x100000;

export async function run(args: ParsedArgs): Promise<number> {
  const bootKernel = has(args, "root") ? undefined : findBootKernel("/boot");
  const sample = new URL("../../../testdata/snapshots/qemu-amd64-6.1-5level-crash1968M", import.meta.url).pathname;
  const root = value(args, "root") ?? (bootKernel ? "/" : sample);
  const out = (text: string) => process.stdout.write(`${text}\n`);
  if (root === sample) out(`(no kernel in /boot: using the sample snapshot ${root})\n`);
  const machine = await readMachine(root);
  out(`== machine (${root}) ==\n${renderMachine(machine)}\n`);

  let image: KernelImage;
  let imageName: string;
  const cached = cachedKernels().find((k) => k.flavour === (machine.kernelArch === "i386" ? "686-pae" : "amd64"));
  const path = bootKernel ?? cached?.vmlinuz;
  if (path !== undefined) {
    imageName = path;
    image = await readKernelImageFile(path);
  } else {
    imageName = "(sample header of a Debian 6.1 amd64 bzImage; no kernel on this machine)";
    image = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n }, tail: 0x4000 }));
  }
  out(`== kernel image ==\n${renderInspect(image, imageName)}\n`);

  const arch = machine.kernelArch ?? "x86_64";
  for (const crash of machine.crashRegions.length ? [false, true] : [false]) {
    const cmdline = crash ? "console=ttyS0 irqpoll nr_cpus=1 reset_devices" : "console=ttyS0";
    const request: Request = { crash, syscall: "auto", cmdline, userArch: arch, initrdSize: DEMO_INITRD };
    const name = crash ? "kdump" : "kexec";
    out(`== ${crash ? "kdump (-p)" : "kexec (-l)"} with a 32 MiB initrd: checks ==\n${renderChecks(runChecks({ image, machine, request }))}\n`);
    try {
      const plan = planLoad(image, machine, { ...request, syscall: "kexec_load" }, { initrd: new Uint8Array(DEMO_INITRD), sha256 });
      out(`== ${name} plan for kexec_load ==\n${renderPlan(plan)}\n`);
    } catch (e) {
      // The demo shows a refusal as a result, as `plan` does, and goes on to the next case.
      if (!isKexecError(e) || e.code !== "plan") throw e;
      out(`== ${name} plan for kexec_load ==\nno kexec_load plan: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
    }
  }
  return 0;
}

function findBootKernel(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const names = readdirSync(dir).filter((n) => n.startsWith("vmlinuz")).sort();
  const last = names[names.length - 1];
  return last === undefined ? undefined : join(dir, last);
}
