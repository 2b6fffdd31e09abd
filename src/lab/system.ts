/**
 * Runs a system-tier scenario (lab/system/*.json): an installed Debian 12 (system-image.ts)
 * boots from its virtio disk under QEMU, through SeaBIOS or OVMF, with the kernel and
 * initramfs-tools initrd from its own /boot (QEMU's direct kernel boot; through OVMF that
 * enters the kernel's EFI stub, so /sys/firmware/efi is there). systemd runs the lab's unit,
 * which runs this boot's steps from a small read-only disk and prints the markers the
 * initramfs tier prints; the same runner (qemu.ts) watches the console.
 *
 * A scenario lists the steps of its first boot (`steps`) and of each later one (`boots`): the
 * boot after a kexec, after a crash's capture kernel has rebooted, and so on.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { KexecError } from "../core/errors.js";
import { expectedMarkers, generateSystemRun, type InitSpec } from "./init-script.js";
import { findKernel } from "./kernels.js";
import { freshRunDir, runGuest, type ExpectedMarker, type GuestResult, type GuestSpec } from "./qemu.js";
import { imageKernel, systemImage, STEPS_DIR, STEPS_SERIAL, type SystemImage, type SystemImageName } from "./system-image.js";

export type Firmware = "bios" | "efi";

/** OVMF's code (read-only) and a per-run copy of its variable store, as a real machine has. */
const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/** A file the first boot copies into place before its steps: from the host, literal text, or a lab kernel's vmlinuz. */
export interface SystemFile {
  guest: string;
  host?: string;
  text?: string;
  kernel?: string;
  mode?: number;
}

export interface SystemBoot {
  /** Marker prefix of this boot ("second" → "second/init"); the first boot has none. */
  stage?: string;
  steps: InitSpec["steps"];
}

export interface SystemRunSpec {
  name: string;
  image: SystemImageName;
  firmware: Firmware;
  /** The lab kernel (kernels.json name) the guest boots first; its image's /boot copy is used. */
  kernel: string;
  mem?: string;
  cpu?: string;
  smp?: number;
  /** After "console=ttyS0 panic=-1 root=/dev/vda rw". */
  append?: string;
  files?: SystemFile[];
  boots: SystemBoot[];
  disks?: { sizeMiB: number }[];
  reboot?: boolean;
  qemuArgs?: string[];
  expect?: (string | ExpectedMarker)[];
  allowPanic?: boolean;
  bootTimeoutSec?: number;
  stepTimeoutSec?: number;
}

/** Under TCG an installed Debian takes 1-2 min to reach multi-user, more while others run. */
const BOOT_TIMEOUT_SEC = 900;
const STEP_TIMEOUT_SEC = 600;

/** The markers a run prints: each boot's, in order, up to a step that does not return. */
export function systemMarkers(boots: SystemBoot[]): ExpectedMarker[] {
  return boots.flatMap((b) =>
    expectedMarkers({ steps: b.steps, ...(b.stage !== undefined ? { stage: b.stage } : {}) }).map((name) => {
      const step = b.steps.find((s) => name === (b.stage !== undefined ? `${b.stage}/${s.name}` : s.name));
      const marker: ExpectedMarker = { name };
      if (step?.timeoutSec !== undefined) marker.timeoutSec = step.timeoutSec;
      if (step?.mayFail === true) marker.mayFail = true;
      return marker;
    }),
  );
}

function fileBytes(f: SystemFile, where: string): Uint8Array | string {
  const sources = [f.host, f.text, f.kernel].filter((x) => x !== undefined).length;
  if (sources !== 1) throw new KexecError("usage", `${where}: give exactly one of host, text, kernel`, { field: where }, "see lab/README.md, the system tier");
  if (f.text !== undefined) return f.text;
  const path = f.host ?? findKernel(f.kernel!).vmlinuz;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new KexecError("lab", `${where}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: path }, "give a readable host file, or a lab kernel name (kernels.json)");
  }
}

/**
 * The steps disk: an ext2 image (mke2fs -d, no mount) with the run script, each boot's script
 * and step files, and `files/` that the first boot copies over `/`.
 */
export function buildStepsDisk(spec: SystemRunSpec, outDir: string): string {
  const dir = join(outDir, "steps");
  const title = `kexec-ts lab system scenario ${spec.name}`;
  const { files } = generateSystemRun(spec.boots.map((b) => ({ steps: b.steps, ...(b.stage !== undefined ? { stage: b.stage } : {}) })), STEPS_DIR, title);
  let bytes = 0;
  const put = (rel: string, data: Uint8Array | string, mode: number): void => {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data, { mode });
    bytes += typeof data === "string" ? data.length : data.length;
  };
  for (const [guest, text] of files) put(guest.slice(STEPS_DIR.length + 1), text, 0o755);
  for (const [i, f] of (spec.files ?? []).entries()) {
    if (!f.guest.startsWith("/") || f.guest.split("/").includes("..")) throw new KexecError("usage", `files[${i}].guest: expected an absolute path without "..", found ${JSON.stringify(f.guest)}`, { field: `files[${i}].guest` }, "e.g. /root/vmlinuz-unsigned");
    put(join("files", f.guest), fileBytes(f, `files[${i}]`), f.mode ?? 0o644);
  }
  const image = join(outDir, "steps.img");
  writeFileSync(image, "");
  const sizeMiB = Math.ceil(bytes / (1 << 20)) + 16;
  const r = spawnSync("mke2fs", ["-q", "-t", "ext2", "-L", STEPS_SERIAL, "-d", dir, image, `${sizeMiB}M`], { encoding: "utf8" });
  if (r.status !== 0) throw new KexecError("lab", `mke2fs could not build the steps disk ${image}: ${(r.stderr || r.error?.message || "").trim()}`, { file: image }, "apt-get install e2fsprogs");
  return image;
}

export function firmwareArgs(firmware: Firmware, outDir: string): string[] {
  if (firmware === "bios") return [];
  for (const f of [OVMF_CODE, OVMF_VARS]) {
    try {
      statSync(f);
    } catch {
      throw new KexecError("lab", `EFI guests need OVMF, and ${f} is missing`, { file: f }, "apt-get install ovmf");
    }
  }
  const vars = join(outDir, "OVMF_VARS.fd");
  copyFileSync(OVMF_VARS, vars);
  return ["-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,unit=1,file=${vars}`];
}

export interface SystemRunResult {
  image: SystemImage;
  guest: GuestResult;
}

export async function runSystem(spec: SystemRunSpec, options: { outDir?: string; onLine?: (line: string) => void; log?: (line: string) => void } = {}): Promise<SystemRunResult> {
  const image = await systemImage(spec.image, options.log !== undefined ? { log: options.log } : {});
  const kernel = imageKernel(image, spec.kernel);
  const outDir = options.outDir ?? freshRunDir(spec.name);
  mkdirSync(outDir, { recursive: true });
  const steps = buildStepsDisk(spec, outDir);
  const guestSpec: GuestSpec = {
    name: spec.name,
    // QEMU's x86_64 machine for every guest: a 686-pae kernel runs there too, and can kexec into an amd64 one.
    kernel: { path: kernel.vmlinuz, arch: "x86_64" },
    initrd: kernel.initrd,
    append: ["root=/dev/vda rw", spec.append ?? ""].join(" ").trim(),
    mem: spec.mem ?? "2G",
    drives: [
      { file: image.image, format: "raw", snapshot: true },
      { file: steps, format: "raw", serial: STEPS_SERIAL, readonly: true },
    ],
    qemuArgs: [...firmwareArgs(spec.firmware, outDir), ...(spec.qemuArgs ?? [])],
    outDir,
    expect: spec.expect ?? systemMarkers(spec.boots),
    bootTimeoutSec: spec.bootTimeoutSec ?? BOOT_TIMEOUT_SEC,
    stepTimeoutSec: spec.stepTimeoutSec ?? STEP_TIMEOUT_SEC,
  };
  if (spec.cpu !== undefined) guestSpec.cpu = spec.cpu;
  if (spec.smp !== undefined) guestSpec.smp = spec.smp;
  if (spec.disks !== undefined) guestSpec.disks = spec.disks;
  if (spec.reboot !== undefined) guestSpec.reboot = spec.reboot;
  if (spec.allowPanic !== undefined) guestSpec.allowPanic = spec.allowPanic;
  if (options.onLine !== undefined) guestSpec.onLine = options.onLine;
  const guest = await runGuest(guestSpec);
  return { image, guest };
}
