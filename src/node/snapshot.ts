/**
 * `kexec-ts snapshot DIR`: copies every file readMachine reads into DIR, at
 * the same relative paths, so `--root DIR` replays the same model elsewhere
 * (a bug report, the web page, a test fixture). /proc/kcore is the one input
 * that cannot be copied: what a -p plan needs from it (the KASLR layout) is
 * saved as kernel-layout.json instead. Works with nothing but /proc and /sys
 * mounted, as in a busybox initramfs.
 */
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeTar } from "../core/archive/tar.js";
import { KexecError } from "../core/errors.js";
import { checkOutputPath, makeDirectories, refuseOutputInsideRoot, fileKind, writeError, writeOutputFile, type OutputPath } from "./files.js";
import { SNAPSHOT_MANIFEST } from "../core/machine/snapshot-archive.js";
import { KERNEL_LAYOUT_FILE, kernelLayoutJson, layoutFromKcore } from "./kernel-layout.js";
import { collectMachineFiles, type CollectedFiles } from "./rootfs.js";

export { SNAPSHOT_MANIFEST };

export interface SnapshotManifest {
  tool: "kexec-ts";
  version: string;
  /** When the snapshot was taken (ISO 8601). */
  created: string;
  /** The root it was taken from. */
  root: string;
  files: string[];
  dirs: string[];
  /** Listed paths that did not exist on the machine. */
  absent: string[];
  /** Paths that existed but could not be read, with the errno. */
  unreadable: Record<string, string>;
  /** The KASLR layout read from /proc/kcore, saved for -p replays; null with why when it could not be read. */
  kernelLayout: { file: string } | { file: null; why: string };
}

export async function snapshot(root: string, destDir: string): Promise<SnapshotManifest> {
  // Said as such, not as the ENOTDIR of the first file written under it.
  const st = await stat(destDir).catch(() => null);
  if (st !== null && !st.isDirectory()) {
    const kind = st.isFile() ? "a file" : fileKind(st);
    throw new KexecError("usage", `${destDir}: ${kind}, expected a new or empty directory for the snapshot`, { file: destDir, expected: "a new or empty directory", actual: kind },
      "choose a new directory, or --tar FILE for one archive");
  }
  const existing = await readdir(destDir).catch(() => null);
  if (existing !== null && existing.length > 0) {
    throw new KexecError(
      "usage",
      `${destDir}: not empty, expected a new or empty directory for the snapshot`,
      { file: destDir, expected: "an empty directory", actual: `${existing.length} entries` },
      "choose a new directory (old files would mix with the new snapshot)",
    );
  }
  const collected = await collectMachineFiles(root);
  const write = async (rel: string, bytes: Uint8Array): Promise<void> => {
    const path = join(destDir, rel);
    try {
      // Not mkdir's { recursive: true }: under /proc, or through a dangling link, Node retries it forever.
      makeDirectories(dirname(path));
      await writeFile(path, bytes);
    } catch (e) {
      throw writeError(e, path, "the snapshot file");
    }
  };
  const files = Object.keys(collected.files).sort();
  for (const rel of files) await write(rel, collected.files[rel]!);
  for (const dir of collected.dirs) {
    try {
      makeDirectories(join(destDir, dir));
    } catch (e) {
      throw writeError(e, join(destDir, dir), "the snapshot's directory");
    }
    // git drops empty directories, and an existing /sys/firmware/efi is itself a fact (EFI boot).
    if ((await readdir(join(destDir, dir))).length === 0) await write(`${dir}/.keep`, new Uint8Array(0));
  }
  const { manifest, layout } = await manifestFor(root, collected);
  if (layout) await write(KERNEL_LAYOUT_FILE, layout);
  await write(SNAPSHOT_MANIFEST, new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`));
  return manifest;
}

/** The manifest, and the kernel layout file's bytes when /proc/kcore said where the kernel is. */
async function manifestFor(root: string, collected: CollectedFiles): Promise<{ manifest: SnapshotManifest; layout: Uint8Array | undefined }> {
  const kcore = layoutFromKcore(root);
  const layout = "layout" in kcore ? new TextEncoder().encode(`${JSON.stringify(kernelLayoutJson(kcore.layout), null, 2)}\n`) : undefined;
  const manifest: SnapshotManifest = {
    tool: "kexec-ts",
    version: await toolVersion(),
    created: new Date().toISOString(),
    root,
    files: Object.keys(collected.files).sort(),
    dirs: collected.dirs,
    absent: collected.missing,
    unreadable: collected.errors,
    kernelLayout: "layout" in kcore ? { file: KERNEL_LAYOUT_FILE } : { file: null, why: kcore.why },
  };
  return { manifest, layout };
}

/**
 * `snapshot --tar FILE`: the same files in one ustar archive (the web app reads it in the
 * browser); the manifest first, then directories, then files, at their relative paths.
 */
export async function snapshotTar(root: string, file: string): Promise<SnapshotManifest> {
  // As report -o and inspect --extract: written whole under a temporary name and renamed, never into a
  // device or a FIFO (a FIFO blocked for ever), nor into the --root snapshot it copies (it replaced proc/iomem).
  const output: OutputPath = { path: file, what: "the archive", command: "snapshot --tar", inputs: [], exampleName: "snapshot.tar" };
  const { target } = checkOutputPath(output);
  refuseOutputInsideRoot(output, target, root);
  const collected = await collectMachineFiles(root);
  const { manifest, layout } = await manifestFor(root, collected);
  const mtime = Math.floor(Date.now() / 1000);
  const entries = [
    { name: SNAPSHOT_MANIFEST, type: "file" as const, data: new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`), mtime },
    ...(layout ? [{ name: KERNEL_LAYOUT_FILE, type: "file" as const, data: layout, mtime }] : []),
    ...collected.dirs.map((d) => ({ name: d, type: "dir" as const, mtime })),
    ...manifest.files.map((rel) => ({ name: rel, type: "file" as const, data: collected.files[rel]!, mtime })),
  ];
  writeOutputFile(output, writeTar(entries));
  return manifest;
}

/** The version in package.json next to dist/; "unknown" when the package was copied without it. */
async function toolVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
