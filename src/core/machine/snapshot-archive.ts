/**
 * A `kexec-ts snapshot --tar` archive as the machine model's input: the same MachineFiles the
 * reader collects under --root DIR, taken from the archive's entries by the same list
 * (MACHINE_FILES), so a browser that is handed the archive builds the same model.
 */
import { readTar, safeRelativePath } from "../archive/tar.js";
import { KexecError } from "../errors.js";
import { describeBytes, describeJsonValue } from "../format.js";
import { decompress, detectCompression } from "../image/compression/index.js";
import { KERNEL_LAYOUT_FILE, parseSavedKernelLayout, type KernelLayout } from "../plan/crash.js";
import { MACHINE_FILES, expandGlob, type MachineFiles } from "./files.js";

export const SNAPSHOT_MANIFEST = "SNAPSHOT.json";

export interface SnapshotArchive {
  files: MachineFiles;
  /** The manifest's text, when the archive has one. */
  manifest: { version?: string; created?: string; root?: string } | null;
  /** What /proc/kcore said when the snapshot was taken (kernel-layout.json), when it was readable. */
  kernelLayout: KernelLayout | undefined;
}

export function machineFilesFromArchive(bytes: Uint8Array, what = "snapshot archive"): SnapshotArchive {
  // `.tar.gz` as well as `.tar`: a gzip stream is unpacked first (the tar inside is not the kernel's appended-size kind).
  const tarBytes = detectCompression(bytes) === "gzip" ? decompress("gzip", bytes, { maxSize: 256 << 20 }) : bytes;
  // A tar header has "ustar" at 257 (or is an old v7 header whose checksum readTar verifies).
  const ustar = tarBytes.length >= 263 && String.fromCharCode(...tarBytes.subarray(257, 262)) === "ustar";
  if (!ustar) {
    throw new KexecError("parse", `${what}: not a tar archive (no "ustar" magic at offset 257)`, { offset: 257, expected: "ustar", actual: describeBytes(tarBytes.subarray(0, 16)) },
      "make one with `kexec-ts snapshot --tar FILE` (a .tar or .tar.gz)");
  }
  let entries;
  try {
    entries = readTar(tarBytes);
  } catch (e) {
    if (e instanceof KexecError) throw new KexecError(e.code, `${what}: ${e.message}`, { file: what, ...e.data }, e.hint);
    throw e;
  }
  const byPath = new Map<string, Uint8Array>();
  const dirs = new Set<string>();
  for (const e of entries) {
    const rel = safeRelativePath(e.name);
    if (rel === undefined) continue;
    if (e.type === "file") byPath.set(rel, e.data);
    // Every directory on the way to a file exists too, whether the archive lists it or not.
    const parts = rel.split("/");
    for (let i = 1; i < (e.type === "dir" ? parts.length + 1 : parts.length); i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const files: Record<string, Uint8Array> = {};
  const present: string[] = [];
  for (const spec of MACHINE_FILES) {
    if (spec.kind === "file") {
      const b = byPath.get(spec.path);
      if (b) files[spec.path] = b;
    } else if (spec.kind === "dir") {
      if (dirs.has(spec.path)) present.push(spec.path);
    } else {
      const names = new Set<string>();
      for (const p of [...byPath.keys(), ...dirs]) if (p.startsWith(`${spec.dir}/`)) names.add(p.slice(spec.dir.length + 1).split("/")[0]!);
      for (const rel of expandGlob(spec, [...names])) {
        const b = byPath.get(rel);
        if (b) files[rel] = b;
      }
    }
  }
  const manifestBytes = byPath.get(SNAPSHOT_MANIFEST);
  let manifest: SnapshotArchive["manifest"] = null;
  let unreadable: string[] = [];
  let errors: Record<string, string> = {};
  if (manifestBytes) {
    const m = readManifest(manifestBytes, what);
    manifest = { version: m.version, created: m.created, root: m.root };
    unreadable = m.unreadable;
    errors = m.errors;
    // The manifest lists what was copied: a file it lists but the archive lacks is damage, not a
    // fact about the machine (seen: a cut archive's missing /proc/iomem reported as "no resource map").
    const lacking = m.files.filter((rel) => !byPath.has(rel));
    if (lacking.length > 0) {
      throw new KexecError("parse", `${what}: ${SNAPSHOT_MANIFEST} lists ${m.files.length} files, the archive lacks ${lacking.length} of them: ${lacking.slice(0, 5).join(", ")}${lacking.length > 5 ? ", ..." : ""}`,
        { file: SNAPSHOT_MANIFEST, field: "files", expected: `${m.files.length} files`, actual: `${m.files.length - lacking.length} of them`, missing: lacking },
        "the archive is damaged or was changed after it was made; take or copy the snapshot again");
    }
  }
  if (Object.keys(files).length === 0) {
    throw new KexecError("parse", `${what}: a tar archive, but not a kexec-ts snapshot: none of the files the machine model reads (proc/iomem, proc/cpuinfo, ...) is in it`,
      { expected: "proc/iomem, proc/cmdline, proc/cpuinfo, sys/kernel/...", actual: `${entries.length} entries${entries[0] ? `, the first ${entries[0].name}` : ""}` },
      "make one with `kexec-ts snapshot --tar FILE` on the machine (as root)");
  }
  const layoutBytes = byPath.get(KERNEL_LAYOUT_FILE);
  const kernelLayout = layoutBytes ? parseSavedKernelLayout(new TextDecoder().decode(layoutBytes), `${what}:/${KERNEL_LAYOUT_FILE}`) : undefined;
  return { files: { files, dirs: present, unreadable, errors }, manifest, kernelLayout };
}

/** SNAPSHOT.json as `snapshot` writes it (src/node/snapshot.ts SnapshotManifest); what the reader relies on is checked. */
function readManifest(bytes: Uint8Array, what: string): { version?: string; created?: string; root?: string; files: string[]; unreadable: string[]; errors: Record<string, string> } {
  const damaged = "the archive is damaged; take the snapshot again";
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new KexecError("parse", `${what}: ${SNAPSHOT_MANIFEST} is not JSON`, { file: SNAPSHOT_MANIFEST, actual: describeBytes(bytes.subarray(0, 16)) }, damaged);
  }
  const wrong = (field: string | undefined, expected: string, value: unknown) => new KexecError("parse",
    `${what}: ${SNAPSHOT_MANIFEST}${field ? `: ${field}` : ""} is ${describeJsonValue(value)}, expected ${expected}`,
    { file: SNAPSHOT_MANIFEST, ...(field ? { field } : {}), expected, actual: describeJsonValue(value) }, damaged);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw wrong(undefined, "an object", raw);
  const m = raw as Record<string, unknown>;
  const text = (field: string) => {
    const v = m[field];
    if (v !== undefined && typeof v !== "string") throw wrong(field, "a string", v);
    return v;
  };
  // Absent in a hand-made archive: then there is nothing to hold the archive to.
  const files = m.files === undefined ? [] : m.files;
  if (!Array.isArray(files) || !files.every((f): f is string => typeof f === "string")) throw wrong("files", "a list of paths", files);
  const unreadable = m.unreadable === undefined ? {} : m.unreadable;
  if (unreadable === null || typeof unreadable !== "object" || Array.isArray(unreadable)) throw wrong("unreadable", "an object of path: errno", unreadable);
  const errors = Object.fromEntries(Object.entries(unreadable).filter((e): e is [string, string] => typeof e[1] === "string"));
  return { version: text("version"), created: text("created"), root: text("root"), files, unreadable: Object.keys(unreadable), errors };
}
