/**
 * The lab's cache outside the repository, filled by .ci/setup-debian.sh: Debian kernels (with
 * kernels.json naming them), a 32-bit Node and busybox for i386 user space, and built
 * initramfs parts.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, isAbsolute } from "node:path";
import { KexecError } from "../core/errors.js";
import type { UserArch } from "../core/initramfs/elf-deps.js";
import { readKernelImage } from "../core/image/index.js";
import { cacheDir } from "../node/kernel-cache.js";

export const SETUP_HINT = "run `sudo bash .ci/setup-debian.sh` (installs QEMU and fetches the Debian kernels into the cache)";

/** The cache the lab shares with the tests (node/kernel-cache.ts defines its place once). */
export const labCacheDir = cacheDir;

export interface LabKernel {
  /** Short name: "amd64-6.1", "686-pae-6.1". */
  name: string;
  package: string;
  /** `uname -r` of the kernel: "6.1.0-50-amd64". */
  version: string;
  /** Debian architecture of the package. */
  debianArch: "amd64" | "i386";
  /** What the kernel runs natively, which decides the QEMU binary. */
  kernelArch: UserArch;
  vmlinuz: string;
  modules: string;
}

interface IndexEntry {
  package?: unknown;
  version?: unknown;
  arch?: unknown;
  vmlinuz?: unknown;
  modules?: unknown;
}

export function kernelIndexPath(cache = labCacheDir()): string {
  return join(cache, "kernels.json");
}

export function loadKernelIndex(cache = labCacheDir()): Map<string, LabKernel> {
  const file = kernelIndexPath(cache);
  if (!existsSync(file)) {
    throw new KexecError("lab", `no lab kernels: ${file} does not exist`, { file }, SETUP_HINT);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new KexecError("lab", `${file} is not valid JSON: ${(e as Error).message}`, { file }, SETUP_HINT);
  }
  if (typeof raw !== "object" || raw === null) throw new KexecError("lab", `${file}: expected an object of kernels`, { file }, SETUP_HINT);
  const out = new Map<string, LabKernel>();
  for (const [name, value] of Object.entries(raw as Record<string, IndexEntry>)) {
    const { package: pkg, version, arch, vmlinuz, modules } = value;
    if (typeof pkg !== "string" || typeof version !== "string" || (arch !== "amd64" && arch !== "i386") || typeof vmlinuz !== "string" || typeof modules !== "string") {
      throw new KexecError("lab", `${file}: entry ${JSON.stringify(name)} lacks package, version, arch, vmlinuz or modules`, { file, field: name }, SETUP_HINT);
    }
    const abs = (p: string): string => (isAbsolute(p) ? p : join(cache, p));
    out.set(name, { name, package: pkg, version, debianArch: arch, kernelArch: arch === "amd64" ? "x86_64" : "i386", vmlinuz: abs(vmlinuz), modules: abs(modules) });
  }
  return out;
}

/**
 * A bzImage the user hands the lab by path rather than by lab name: its arch
 * and release come from its own setup header. It has no modules directory.
 */
export function kernelFromPath(path: string): LabKernel {
  if (!existsSync(path)) throw new KexecError("lab", `${path}: no such kernel image`, { file: path }, "give a bzImage path or a lab kernel name such as amd64-6.1");
  let image;
  try {
    image = readKernelImage(new Uint8Array(readFileSync(path)));
  } catch (e) {
    if (e instanceof KexecError) throw new KexecError("lab", `${path}: ${e.message}`, { file: path, ...e.data }, e.hint ?? "give the lab a bzImage");
    throw e;
  }
  if (image.kind !== "bzImage") throw new KexecError("lab", `${path}: an ELF vmlinux cannot be booted by QEMU -kernel; give the bzImage`, { file: path, expected: "bzImage", actual: "ELF" }, "give the bzImage (vmlinuz)");
  const bz = image.bzImage;
  const version = bz.version?.split(" ")[0] ?? "unknown";
  const kernelArch: UserArch = bz.is64 ? "x86_64" : "i386";
  return { name: path, package: "(user image)", version, debianArch: kernelArch === "x86_64" ? "amd64" : "i386", kernelArch, vmlinuz: path, modules: "" };
}

/** A kernel by short name (or by path to a bzImage), checked to exist on disk. */
export function findKernel(name: string, cache = labCacheDir()): LabKernel {
  if (name.includes("/")) return kernelFromPath(name);
  const index = loadKernelIndex(cache);
  const k = index.get(name);
  if (k === undefined) {
    throw new KexecError("lab", `no lab kernel named ${JSON.stringify(name)}; known: ${[...index.keys()].join(", ")}`, {
      field: "kernel",
      actual: name,
      expected: [...index.keys()].join(" | "),
    }, "use one of the known names, or a path to a bzImage");
  }
  if (!existsSync(k.vmlinuz)) {
    throw new KexecError("lab", `lab kernel ${name}: ${k.vmlinuz} is missing`, { file: k.vmlinuz }, SETUP_HINT);
  }
  return k;
}

/** The debug vmlinux of a cached kernel (setup-debian.sh extracts it from linux-image-VERSION-dbg), for crash and drgn. */
export function debugVmlinuxPath(name: string, cache = labCacheDir()): string {
  const k = findKernel(name, cache);
  const path = join(cache, "debian-dbg", `vmlinux-${k.version}`);
  if (!existsSync(path)) {
    throw new KexecError("lab", `no debug vmlinux for ${name}: ${path} is missing`, { file: path }, SETUP_HINT);
  }
  return path;
}

/** The extracted nodejs:i386 tree (Debian 12's Node 18 and its libraries). */
export function i386NodeRoot(cache = labCacheDir()): string {
  const root = join(cache, "i386-node", "root");
  if (!existsSync(join(root, "usr", "bin", "node"))) {
    throw new KexecError("lab", `no 32-bit Node: ${join(root, "usr/bin/node")} is missing`, { file: join(root, "usr/bin/node") }, SETUP_HINT);
  }
  return root;
}

/** A static busybox for the user-space arch: the host's for x86_64, Debian's i386 build from the cache. */
export function busyboxPath(arch: UserArch, cache = labCacheDir()): string {
  const path = arch === "x86_64" ? "/bin/busybox" : join(cache, "i386-busybox", "root", "bin", "busybox");
  if (!existsSync(path)) {
    throw new KexecError("lab", `no ${arch} busybox: ${path} is missing`, { file: path }, arch === "x86_64" ? "apt-get install busybox-static, or " + SETUP_HINT : SETUP_HINT);
  }
  return path;
}
