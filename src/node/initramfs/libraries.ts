/**
 * The loader and shared libraries a program needs, found the way ld.so would look in a
 * Debian tree (multiarch paths first), so a program copied into an initramfs runs there.
 */
import { readFileSync, existsSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { readDynamicInfo, type UserArch } from "../../core/initramfs/elf-deps.js";

/** Where the loader looks, per arch (Debian's multiarch paths first). Relative to a root. */
export const LIBRARY_DIRS: Record<UserArch, string[]> = {
  x86_64: ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib"],
  i386: ["lib/i386-linux-gnu", "usr/lib/i386-linux-gnu", "lib", "usr/lib"],
};

export interface LibraryFile {
  /** Absolute path in the guest, as the loader will look for it. */
  guestPath: string;
  /** The real file on the host (symlinks resolved). */
  hostPath: string;
}

/**
 * The interpreter and the transitive DT_NEEDED closure of `programs`, looked up under `root`
 * ("/" for the host, or an extracted package tree). Each library keeps the name the loader
 * asks for, in the directory where it was found. `missingHint` says how to get what is missing.
 */
export function resolveLibraries(root: string, programs: string[], arch: UserArch, missingHint = "install the package that provides it"): LibraryFile[] {
  const found = new Map<string, LibraryFile>();
  const queue: { hostPath: string; what: string }[] = programs.map((p) => ({ hostPath: p, what: p }));
  const seen = new Set<string>();
  while (queue.length > 0) {
    const { hostPath, what } = queue.shift()!;
    const real = realpathSync(hostPath);
    if (seen.has(real)) continue;
    seen.add(real);
    const info = readDynamicInfo(readFileSync(real), what);
    if (info.arch !== arch) {
      throw new KexecError("io", `${what} is ${info.arch} code, but the user space being built is ${arch}`, { file: what, expected: arch, actual: info.arch }, "give the build of the program for the user space being built");
    }
    if (info.interpreter !== undefined && !found.has(info.interpreter)) {
      const host = join(root, info.interpreter);
      if (!existsSync(host)) {
        throw new KexecError("io", `${what} needs the loader ${info.interpreter}, which is not under ${root}`, { file: what, field: "PT_INTERP", expected: host }, missingHint);
      }
      found.set(info.interpreter, { guestPath: info.interpreter, hostPath: realpathSync(host) });
    }
    for (const name of info.needed) {
      if ([...found.values()].some((f) => f.guestPath.endsWith(`/${name}`))) continue;
      const dir = LIBRARY_DIRS[arch].find((d) => existsSync(join(root, d, name)));
      if (dir === undefined) {
        throw new KexecError("io", `${what} needs ${name}, found in none of ${LIBRARY_DIRS[arch].map((d) => join(root, d)).join(", ")}`,
          { file: what, field: "DT_NEEDED", expected: name }, missingHint);
      }
      const lib = join(root, dir, name);
      found.set(`/${dir}/${name}`, { guestPath: `/${dir}/${name}`, hostPath: realpathSync(lib) });
      queue.push({ hostPath: lib, what: lib });
    }
  }
  return [...found.values()];
}
