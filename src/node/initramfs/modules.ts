/**
 * A kernel's modules on disk: the lookup from its modules.dep, or, where depmod never ran
 * (Debian's kernel packages ship none; the postinst writes it), from each module's .modinfo;
 * and a module's bytes, decompressed, since the kernel's finit_module wants them plain unless
 * it was built with in-kernel decompression.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { decompress } from "../../core/image/compression/index.js";
import { readModinfo } from "../../core/initramfs/elf-deps.js";
import { moduleName, modulesDepLookup, type ModuleLookup } from "../../core/initramfs/modules.js";
import { readInputFile } from "../files.js";
import { walkTree } from "./tree.js";

/** A lookup that walks the modules directory and reads each needed module's .modinfo depends=. */
export function modinfoLookup(modulesDir: string): ModuleLookup {
  const byName = new Map<string, string>();
  for (const t of walkTree(modulesDir)) if (t.kind === "file" && /\.ko(\.[a-z0-9]+)?$/.test(t.rel)) byName.set(moduleName(t.rel), t.rel);
  return (name) => {
    const path = byName.get(name);
    if (path === undefined) return undefined;
    const info = readModinfo(readModule(join(modulesDir, path)), join(modulesDir, path));
    const depends = (info.get("depends") ?? []).flatMap((d) => d.split(",")).filter((d) => d !== "").map((d) => d.replace(/-/g, "_"));
    return { path, depends };
  };
}

/** modules.dep when depmod wrote one, else the .modinfo walk. */
export function moduleLookup(modulesDir: string): ModuleLookup {
  const dep = join(modulesDir, "modules.dep");
  return existsSync(dep) ? modulesDepLookup(readFileSync(dep, "utf8")) : modinfoLookup(modulesDir);
}

/**
 * A module file's ELF bytes (.ko, .ko.xz, .ko.zst, .ko.gz), decompressed in process: Debian's
 * 6.12 ships its modules as .ko.xz, and a minimal system has no xz program (seen: building the
 * capture initramfs for a newly installed 6.12 failed with "spawnSync xz ENOENT").
 */
export function readModule(path: string): Uint8Array {
  const kind = path.endsWith(".xz") ? "xz" : path.endsWith(".zst") ? "zstd" : path.endsWith(".gz") ? "gzip" : undefined;
  const bytes = readInputFile(path, "kernel module");
  if (kind === undefined) return bytes;
  try {
    return decompress(kind, bytes, { maxSize: 256 << 20 });
  } catch (e) {
    if (!(e instanceof KexecError)) throw e;
    throw new KexecError("io", `cannot decompress the kernel module ${path} (${kind}): ${e.message}`, { file: path, ...(e.data.offset === undefined ? {} : { offset: e.data.offset }) },
      "the module file is damaged: reinstall the kernel package it belongs to (dpkg -S names it)", { cause: e });
  }
}
