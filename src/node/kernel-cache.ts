/**
 * Where the Debian kernels fetched by .ci/setup-debian.sh live: a cache outside
 * the repository (never committed), `${KEXEC_TS_CACHE:-~/.cache/kexec-ts}`; the
 * vmcores captured in the lab are kept there too.
 * Each package is extracted under debian/x/<package>/, so the kernel's own
 * config file sits next to it — tests cross-check the image reader against it.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export interface CachedKernel {
  /** Debian package name, e.g. linux-image-6.1.0-50-amd64-unsigned. */
  packageName: string;
  /** Kernel release, e.g. 6.1.0-50-amd64. */
  release: string;
  vmlinuz: string;
  config: string | undefined;
  modulesDir: string | undefined;
  flavour: "amd64" | "686-pae" | "686" | "other";
}

/** The one definition of the cache's place; an empty KEXEC_TS_CACHE counts as unset. */
export function cacheDir(): string {
  const env = process.env["KEXEC_TS_CACHE"];
  return env !== undefined && env !== "" ? env : join(homedir(), ".cache", "kexec-ts");
}

/** A real vmcore kept by capture-vmcore.js or by the suite's vmcore scenario (host.keepVmcore): vmcores/NAME.elf. */
export function cachedVmcorePath(name: string): string {
  return join(cacheDir(), "vmcores", `${name}.elf`);
}

export function cachedKernels(): CachedKernel[] {
  const base = join(cacheDir(), "debian", "x");
  if (!existsSync(base)) return [];
  const out: CachedKernel[] = [];
  for (const packageName of readdirSync(base).sort()) {
    const boot = join(base, packageName, "boot");
    if (!existsSync(boot)) continue;
    for (const name of readdirSync(boot)) {
      if (!name.startsWith("vmlinuz-")) continue;
      const release = name.slice("vmlinuz-".length);
      const config = join(boot, `config-${release}`);
      const modulesDir = join(base, packageName, "lib", "modules", release);
      const flavour = release.endsWith("-amd64") ? "amd64" : release.endsWith("-686-pae") ? "686-pae" : release.endsWith("-686") ? "686" : "other";
      out.push({ packageName, release, vmlinuz: join(boot, name), config: existsSync(config) ? config : undefined, modulesDir: existsSync(modulesDir) ? modulesDir : undefined, flavour });
    }
  }
  return out;
}

/** CONFIG_* values from a kernel config file ("y", "0x200000", ...). */
export function readKernelConfig(path: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) map.set(m[1]!, m[2]!.replace(/^"(.*)"$/, "$1"));
  }
  return map;
}
