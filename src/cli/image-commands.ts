/** The commands that read an image or a machine and report: inspect, machine, snapshot, demo. */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { KexecError, isKexecError } from "../core/errors.js";
import { inspectJson, renderInspect } from "../core/image/describe.js";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { renderChecks, runChecks } from "../core/check/index.js";
import { planLoad } from "../core/plan/plan.js";
import { sha256 } from "../node/crypto.js";
import { cachedKernels } from "../node/kernel-cache.js";
import { renderMachine, toMachineJson } from "../core/machine/model.js";
import { readInputFile, writeOutputFile } from "../node/files.js";
import { readMachine } from "../node/machine.js";
import { snapshot, snapshotTar } from "../node/snapshot.js";
import { has, value, type ParsedArgs } from "./options.js";
import { renderPlan } from "./load.js";

function print(args: ParsedArgs, json: unknown, text: () => string): void {
  if (has(args, "json")) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

export async function inspectCommand(args: ParsedArgs, rest: string[]): Promise<number> {
  const path = rest[0];
  if (path === undefined) throw new KexecError("usage", "inspect needs an IMAGE", {}, "kexec-ts inspect /boot/vmlinuz-$(uname -r)");
  const extract = value(args, "extract");
  const image = loadImage(path, has(args, "vmlinux") || extract !== undefined);
  if (extract !== undefined) {
    const vmlinux = image.kind === "bzImage" ? image.vmlinuxBytes : image.bytes;
    if (!vmlinux) throw new KexecError("usage", `${path}: no payload to extract`, { file: path });
    writeOutputFile(extract, vmlinux, "vmlinux");
  }
  print(args, inspectJson(image), () => renderInspect(image, path));
  return 0;
}

export function loadImage(path: string, decompressPayload: boolean) {
  const bytes = readInputFile(path, "kernel image");
  try {
    return readKernelImage(bytes, { decompressPayload });
  } catch (e) {
    if (isKexecError(e)) throw e.inFile(path);
    throw e;
  }
}

export async function machineCommand(args: ParsedArgs): Promise<number> {
  const machine = await readMachine(value(args, "root") ?? "/");
  print(args, toMachineJson(machine), () => renderMachine(machine));
  return 0;
}

export async function snapshotCommand(args: ParsedArgs, rest: string[]): Promise<number> {
  const tar = value(args, "tar");
  const dest = rest[0];
  if (tar !== undefined) {
    if (dest !== undefined) throw new KexecError("usage", "snapshot takes a DIR or --tar FILE, not both", { actual: dest }, "kexec-ts snapshot --tar /tmp/my-machine.tar");
    process.stdout.write(`${JSON.stringify(await snapshotTar(value(args, "root") ?? "/", tar))}\n`);
    return 0;
  }
  if (dest === undefined) throw new KexecError("usage", "snapshot needs a destination DIR (or --tar FILE)", {}, "kexec-ts snapshot /tmp/my-machine, or kexec-ts snapshot --tar /tmp/my-machine.tar");
  const result = await snapshot(value(args, "root") ?? "/", dest);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

/**
 * What `npm start` runs: the whole prediction on an embedded default. With a
 * kernel in /boot it is this machine's live state and that kernel; otherwise
 * the sample QEMU snapshot shipped in the repo (a 5-level guest with
 * crashkernel=256M@1968M) and a Debian kernel from the lab cache, or failing
 * that a header-only image shaped like Debian's 6.1 amd64 kernel.
 */
export async function demoCommand(args: ParsedArgs): Promise<number> {
  const bootKernel = has(args, "root") ? undefined : findBootKernel("/boot");
  const sample = new URL("../../testdata/snapshots/qemu-amd64-6.1-5level-crash1968M", import.meta.url).pathname;
  const root = value(args, "root") ?? (bootKernel ? "/" : sample);
  const out = (text: string) => process.stdout.write(`${text}\n`);
  if (root === sample) out(`(no kernel in /boot: using the sample snapshot ${root})\n`);
  const machine = await readMachine(root);
  out(`== machine (${root}) ==\n${renderMachine(machine)}\n`);

  let image;
  let imageName: string;
  const cached = cachedKernels().find((k) => k.flavour === (machine.kernelArch === "i386" ? "686-pae" : "amd64"));
  if (bootKernel ?? cached) {
    imageName = (bootKernel ?? cached!.vmlinuz);
    image = loadImage(imageName, false);
  } else {
    imageName = "(sample header of a Debian 6.1 amd64 bzImage; no kernel on this machine)";
    image = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n }, tail: 0x4000 }));
  }
  out(`== kernel image ==\n${renderInspect(image, imageName)}\n`);

  const arch = machine.kernelArch ?? "x86_64";
  for (const crash of machine.crashRegions.length ? [false, true] : [false]) {
    const cmdline = crash ? "console=ttyS0 irqpoll nr_cpus=1 reset_devices" : "console=ttyS0";
    const request = { crash, syscall: "auto" as const, cmdline, userArch: arch, initrdSize: 32 * 0x100000 };
    out(`== ${crash ? "kdump (-p)" : "kexec (-l)"} with a 32 MiB initrd: checks ==\n${renderChecks(runChecks({ image, machine, request }))}\n`);
    try {
      const plan = planLoad(image, machine, { crash, cmdline, initrd: new Uint8Array(32 * 0x100000), userArch: arch, sha256 });
      out(`== ${crash ? "kdump" : "kexec"} plan for kexec_load ==\n${renderPlan(plan)}\n`);
    } catch (e) {
      if (!isKexecError(e)) throw e;
      out(`== ${crash ? "kdump" : "kexec"} plan for kexec_load ==\nkexec-ts: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
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
