/**
 * Kernel modules by name and what they depend on: modules.dep as depmod writes it, and the
 * closure of a set of names in load order (dependencies first). Pure: the text comes from the
 * edge (src/node/initramfs/modules.ts), which also reads .modinfo where there is no modules.dep.
 */
import { KexecError } from "../errors.js";

export interface ResolvedModule {
  name: string;
  /** Path relative to the modules directory ("kernel/drivers/block/virtio_blk.ko.xz"). */
  path: string;
}

/** Where a module is and what it needs, by canonical name ("virtio_blk"). */
export type ModuleLookup = (name: string) => { path: string; depends: string[] } | undefined;

/** "kernel/drivers/block/virtio-blk.ko.xz" → "virtio_blk": the kernel treats - and _ alike in module names. */
export function moduleName(file: string): string {
  return file.slice(file.lastIndexOf("/") + 1).replace(/\.ko(\.[a-z0-9]+)?$/, "").replace(/-/g, "_");
}

/** A lookup over modules.dep text (as depmod writes it). */
export function modulesDepLookup(modulesDep: string): ModuleLookup {
  const byName = new Map<string, { path: string; depends: string[] }>();
  for (const line of modulesDep.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter((d) => d !== "");
    // modules.dep lists the whole closure, the deepest last; reversed, dependencies come first.
    byName.set(moduleName(path), { path, depends: deps.reverse().map(moduleName) });
  }
  return (name) => byName.get(name);
}

/** `names` and everything they depend on, dependencies first. */
export function resolveModules(lookup: ModuleLookup, names: readonly string[], where: string): ResolvedModule[] {
  const order: ResolvedModule[] = [];
  const added = new Set<string>();
  const add = (name: string): void => {
    if (added.has(name)) return;
    const entry = lookup(name);
    if (entry === undefined) {
      throw new KexecError("machine", `${where}: no module ${JSON.stringify(name)}`, { file: where, field: "modules", actual: name }, "it may be built into the kernel (see modules.builtin) or be spelled differently");
    }
    added.add(name);
    for (const dep of entry.depends) add(dep);
    order.push({ name, path: entry.path });
  };
  for (const n of names) add(n.replace(/-/g, "_"));
  return order;
}
