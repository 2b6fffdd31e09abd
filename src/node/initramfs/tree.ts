/**
 * Host trees copied into an initramfs: a directory walk, a copy into a cpio writer, and an
 * installed Node package (kexec-ts itself) with its production dependencies, which both the
 * lab's guests and kdump's self-contained capture initramfs carry.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { KexecError } from "../../core/errors.js";
/** What a tree is copied into: a cpio archive (CpioWriter) or a squashfs image's file list (SquashfsTree). */
export interface ArchiveSink {
  dir(path: string, perm?: number): unknown;
  file(path: string, data: Uint8Array | string, perm?: number): unknown;
  symlink(path: string, target: string): unknown;
}
import { readInputFile } from "../files.js";

export interface TreeEntry {
  /** Relative to the walked directory. */
  rel: string;
  kind: "file" | "dir" | "symlink";
}

/** Every regular file, symlink and directory below `dir`, relative paths, sorted per directory. */
export function walkTree(dir: string, skip: (rel: string) => boolean = () => false): TreeEntry[] {
  const out: TreeEntry[] = [];
  const visit = (rel: string): void => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel === "" ? name : `${rel}/${name}`;
      if (skip(r)) continue;
      const st = lstatSync(join(dir, r));
      if (st.isSymbolicLink()) out.push({ rel: r, kind: "symlink" });
      else if (st.isDirectory()) {
        out.push({ rel: r, kind: "dir" });
        visit(r);
      } else if (st.isFile()) out.push({ rel: r, kind: "file" });
    }
  };
  visit("");
  return out;
}

/** Copies a walked tree into the archive under `guestDir`, keeping links and permissions. */
export function addTree(w: ArchiveSink, hostDir: string, guestDir: string, tree: readonly TreeEntry[]): void {
  for (const t of tree) {
    const host = join(hostDir, t.rel);
    const guest = `${guestDir}/${t.rel}`;
    if (t.kind === "dir") w.dir(guest);
    else if (t.kind === "symlink") w.symlink(guest, readlinkSync(host));
    else w.file(guest, readInputFile(host, "file of a copied tree"), statSync(host).mode & 0o777);
  }
}

/** Production dependencies, transitively, as directories under node_modules. */
export function productionPackages(packageRoot: string): string[] {
  const found = new Set<string>();
  const visit = (fromDir: string, pkgJson: string): void => {
    const deps = Object.keys((JSON.parse(readFileSync(pkgJson, "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {});
    for (const dep of deps) {
      // Node's lookup: <dir>/node_modules/<dep> for the requiring package's dir and each parent.
      let hit: string | undefined;
      for (let dir = fromDir; ; dir = dirname(dir)) {
        const candidate = join(dir, "node_modules", dep);
        if (existsSync(join(candidate, "package.json"))) {
          hit = candidate;
          break;
        }
        if (resolve(dir) === resolve(packageRoot) || dirname(dir) === dir) break;
      }
      if (hit === undefined) {
        throw new KexecError("io", `production dependency ${dep} (of ${pkgJson}) is not installed`, { file: pkgJson, field: "dependencies", expected: dep }, "run `npm ci` (or `npm install`) in the repository");
      }
      if (found.has(hit)) continue;
      found.add(hit);
      visit(hit, join(hit, "package.json"));
    }
  };
  visit(packageRoot, join(packageRoot, "package.json"));
  return [...found].sort();
}

// koffi ships prebuilt binaries for many systems; kexec-ts runs on Linux x86_64 and i386.
const KOFFI_KEEP = new Set(["linux_x64", "linux_ia32"]);
/** What to leave out of a package directory (`rel` is relative to it). */
export function skipInPackage(packageDir: string, rel: string): boolean {
  const full = `${packageDir}/${rel}`;
  const m = /(^|\/)koffi\/build\/koffi\/([^/]+)$/.exec(full);
  if (m !== null && !KOFFI_KEEP.has(m[2]!)) return true;
  return /(^|\/)node_modules\/\.bin$/.test(full);
}

/** An installed kexec-ts (a checkout's build, or `npm install -g`'s copy): what to copy and the files that identify it. */
export interface PackageTree {
  root: string;
  /** Every host file copied, for a cache key or a content hash. */
  files: string[];
  /** Copies it under `guestDir` (package.json, dist/ without tests, production node_modules). */
  addTo(w: ArchiveSink, guestDir: string): void;
}

export function kexecTsPackage(packageRoot: string): PackageTree {
  const dist = join(packageRoot, "dist");
  if (!existsSync(join(dist, "cli", "main.js"))) {
    throw new KexecError("io", `kexec-ts is not built: ${join(dist, "cli/main.js")} is missing`, { file: join(dist, "cli/main.js") }, "run `npm run build`");
  }
  const distTree = walkTree(dist, (rel) => rel.endsWith(".test.js"));
  const packageTrees = productionPackages(packageRoot).map((p) => ({ dir: p, tree: walkTree(p, (rel) => skipInPackage(p, rel)) }));
  // The installed entry point (package.json "bin"): the bundle with its code cache, when built.
  const launcher = join(packageRoot, "bin", "kexec-ts.cjs");
  const launchers = existsSync(launcher) ? [launcher] : [];
  return {
    root: packageRoot,
    files: [join(packageRoot, "package.json"), ...launchers, ...distTree.map((t) => join(dist, t.rel)), ...packageTrees.flatMap((p) => p.tree.map((t) => join(p.dir, t.rel)))],
    addTo(w, guestDir) {
      w.file(`${guestDir}/package.json`, readInputFile(join(packageRoot, "package.json"), "package.json"));
      for (const l of launchers) w.file(`${guestDir}/bin/kexec-ts.cjs`, readInputFile(l, "bin/kexec-ts.cjs"), 0o755);
      addTree(w, dist, `${guestDir}/dist`, distTree);
      for (const p of packageTrees) addTree(w, p.dir, `${guestDir}/${p.dir.slice(resolve(packageRoot).length + 1)}`, p.tree);
    },
  };
}
