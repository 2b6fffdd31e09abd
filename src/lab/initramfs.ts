/**
 * Builds a lab guest's initramfs as a concatenation of cpio archives (the kernel unpacks them
 * one after another, each compressed on its own): busybox, Node for the user-space arch, the
 * built kexec-ts, and a small last part with /init, the step scripts and extra files. The
 * first three change rarely and are cached under <cache>/initramfs/parts keyed by the identity
 * (path, size, mtime) of every input file, so a rebuild costs only the last part.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, lstatSync, rmSync, statSync, utimesSync, writeFileSync, renameSync, openSync, readSync, writeSync, closeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gzip as gzipCallback, gunzipSync, constants as zlibConstants } from "node:zlib";
import { KexecError } from "../core/errors.js";
import { LAUNCH_NODE_FLAGS } from "../core/launch.js";
import { size as formatSize } from "../core/format.js";
import { CpioWriter, readCpio, type CpioEntry } from "../core/initramfs/cpio.js";
import { resolveModules } from "../core/initramfs/modules.js";
import { moduleLookup, readModule } from "../node/initramfs/modules.js";
import { addTree, kexecTsPackage, walkTree } from "../node/initramfs/tree.js";
import { readDynamicInfo, type UserArch } from "../core/initramfs/elf-deps.js";
import { resolveLibraries as resolveFrom } from "../node/initramfs/libraries.js";
import { generateInit, type InitSpec } from "./init-script.js";
import { busyboxPath, i386NodeRoot, labCacheDir, findKernel } from "./kernels.js";

/** The lab fetches missing libraries with its setup script. */
const resolveLibraries = (root: string, programs: string[], arch: UserArch) => resolveFrom(root, programs, arch, "run .ci/setup-debian.sh to fetch the libraries");

const gzip = promisify(gzipCallback);

/** A file to put into the guest. Exactly one source: host, text, kernel or initramfs. */
export interface ExtraFile {
  /** Absolute guest path. */
  guest: string;
  /** A host file to copy. */
  host?: string;
  /** Literal contents. */
  text?: string;
  /** The vmlinuz of a lab kernel, by short name ("amd64-6.12"). */
  kernel?: string;
  /** Another initramfs, built from this spec (for the kernel a guest kexecs into). */
  initramfs?: InitramfsSpec;
  /** A program (e.g. "/usr/sbin/kexec"), copied with its loader and DT_NEEDED libraries. */
  program?: string;
  /**
   * Where `program` comes from: the host (default), or "i386", the cached 32-bit Debian user
   * space (.ci/setup-debian.sh puts kexec-tools, makedumpfile and Node there).
   */
  from?: "host" | "i386";
  mode?: number;
}

export interface InitramfsSpec {
  userArch: UserArch;
  /**
   * What the kernel that boots this initramfs runs. An x86_64 kernel also runs x86_64
   * programs in an i386 user space; an i386 kernel runs only i386 ones. Default: userArch.
   */
  kernelArch?: UserArch;
  init: InitSpec;
  /** Put Node into the guest (/usr/bin/node). */
  node?: boolean;
  /** Put the built kexec-ts into /opt/kexec-ts with /bin/kexec-ts; true uses this checkout. */
  kexecTs?: boolean | { repoRoot: string };
  files?: ExtraFile[];
  /** Kernel modules (by name, "virtio_blk") of this lab kernel, loaded with their dependencies before the init marker. */
  modules?: { kernel: string; names: string[] };
}

export interface InitramfsPart {
  name: string;
  bytes: number;
  cached: boolean;
}

export interface BuiltInitramfs {
  path: string;
  bytes: number;
  parts: InitramfsPart[];
  buildMs: number;
}

export interface BuildOptions {
  cache?: string;
  /** Where to write the image; default <cache>/initramfs/out/<content hash>.img. */
  outPath?: string;
}

/** The kernel wants each archive that follows another to start 4-byte aligned. */
function padTo4(bytes: Uint8Array): Uint8Array {
  const pad = (4 - (bytes.length % 4)) % 4;
  if (pad === 0) return bytes;
  const out = new Uint8Array(bytes.length + pad);
  out.set(bytes, 0);
  return out;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Buffer.concat(chunks);
}

async function compress(cpio: CpioWriter, level: number): Promise<Uint8Array> {
  return padTo4(await gzip(concat(cpio.chunks()), { level, memLevel: zlibConstants.Z_DEFAULT_MEMLEVEL }));
}

function readHostFile(path: string, why: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new KexecError("lab", `cannot read ${path} (${why}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: path }, "check the path; `bash .ci/setup-debian.sh` installs what the lab copies into guests");
  }
}

/** A key for a set of host files: changes when any path, size or mtime does. */
function identityKey(label: string, paths: string[]): string {
  const h = createHash("sha256").update(label);
  for (const p of paths) {
    const st = lstatSync(p);
    h.update(`\0${p}\0${st.size}\0${st.mtimeMs}`);
  }
  return h.digest("hex").slice(0, 16);
}

// Every change to the checkout makes a new kexec-ts part and a new image of ~50 MB; keep the
// most recently used few so the cache does not grow without bound.
const KEEP_PARTS = 6;
const KEEP_IMAGES = 24;

function touch(file: string): void {
  const now = new Date();
  try {
    utimesSync(file, now, now);
  } catch {
    // removed by another process's prune; the bytes are already read
  }
}

/** Removes all but the `keep` most recently used files of `dir` that `match`. */
function prune(dir: string, match: (file: string) => boolean, keep: number): void {
  const files = readdirSync(dir)
    .filter(match)
    .map((f) => {
      try {
        return { f, t: statSync(join(dir, f)).mtimeMs };
      } catch {
        return undefined;
      }
    })
    .filter((x): x is { f: string; t: number } => x !== undefined)
    .sort((a, b) => b.t - a.t);
  for (const { f } of files.slice(keep)) rmSync(join(dir, f), { force: true });
}

/** A cached part: built once per key, then read from <cache>/initramfs/parts. */
async function cachedPart(cache: string, name: string, key: string, build: () => CpioWriter, level: number): Promise<{ bytes: Uint8Array; part: InitramfsPart }> {
  const dir = join(cache, "initramfs", "parts");
  const file = join(dir, `${name}-${key}.cpio.gz`);
  if (existsSync(file)) {
    const bytes = readFileSync(file);
    touch(file);
    return { bytes, part: { name, bytes: bytes.length, cached: true } };
  }
  const bytes = await compress(build(), level);
  mkdirSync(dir, { recursive: true });
  // Test files run in parallel processes; each writes its own temporary file, and rename is atomic.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
  prune(dir, (f) => f.startsWith(`${name}-`) && f.endsWith(".cpio.gz"), KEEP_PARTS);
  return { bytes, part: { name, bytes: bytes.length, cached: false } };
}

// Applets /init and the lab's steps rely on, linked in the archive so they work before
// `busybox --install` has run (and in a second kernel's initramfs that never runs it).
const APPLETS = ["sh", "ash", "mount", "umount", "cat", "echo", "mkdir", "ls", "sleep", "poweroff", "reboot", "halt", "dmesg", "base64", "tar", "gzip", "sync",
  "grep", "cut", "wc", "md5sum", "cp", "rm", "insmod", "head", "tail", "sed", "uname", "mknod", "true", "false", "test", "[", "tr", "od", "hexdump", "dd", "xxd", "find", "stty"];

function busyboxPart(arch: UserArch, cache: string): { key: string; build: () => CpioWriter } {
  const bb = busyboxPath(arch, cache);
  return {
    // The applet list is part of what this piece holds: a new applet makes a new piece.
    key: identityKey(`busybox-${arch}\0${APPLETS.join(",")}`, [bb]),
    build: () => {
      const data = readHostFile(bb, "busybox");
      const info = readDynamicInfo(data, bb);
      if (info.interpreter !== undefined) {
        throw new KexecError("lab", `${bb} is dynamically linked; the lab needs a static busybox`, { file: bb, field: "PT_INTERP", actual: info.interpreter },
          "apt-get install busybox-static");
      }
      if (info.arch !== arch) throw new KexecError("lab", `${bb} is ${info.arch}, the guest user space is ${arch}`, { file: bb, expected: arch, actual: info.arch }, "install busybox-static for the guest's architecture (`bash .ci/setup-debian.sh`)");
      const w = new CpioWriter();
      for (const d of ["proc", "sys", "dev", "tmp", "run", "root", "etc", "sbin", "usr/bin", "usr/sbin", "lab"]) w.dir(d);
      w.dir("tmp", 0o1777);
      // The kernel opens /dev/console for /init's stdio before anything is mounted.
      w.device("dev/console", "char", 5, 1, 0o600);
      w.device("dev/null", "char", 1, 3, 0o666);
      w.file("bin/busybox", data, 0o755);
      for (const applet of APPLETS) w.symlink(`bin/${applet}`, "busybox");
      w.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
      w.file("etc/group", "root:x:0:\n");
      return w;
    },
  };
}

function addLibraries(w: CpioWriter, root: string, programs: string[], arch: UserArch): void {
  for (const lib of resolveLibraries(root, programs, arch)) w.file(lib.guestPath, readHostFile(lib.hostPath, "shared library"), 0o755);
}

/** The Node running the lab (so the guest gets the same one), else /usr/bin/node. */
function hostX86_64Node(): string {
  for (const candidate of [process.execPath, "/usr/bin/node"]) {
    try {
      const real = realpathSync(candidate);
      // e_ident and e_machine are in the first 20 bytes; node itself is ~100 MB.
      const head = Buffer.alloc(20);
      const fd = openSync(real, "r");
      try {
        readSync(fd, head, 0, 20, 0);
      } finally {
        closeSync(fd);
      }
      if (head.readUInt32BE(0) === 0x7f454c46 && head.readUInt16LE(18) === 62) return real;
    } catch {
      // not there, or not an ELF we can read: try the next
    }
  }
  throw new KexecError("lab", "no x86_64 Node on the host to put into an x86_64 guest", { file: process.execPath }, "install Node 18 or newer");
}

function nodePart(arch: UserArch, cache: string): { key: string; build: () => CpioWriter } {
  if (arch === "x86_64") {
    const node = hostX86_64Node();
    return {
      key: identityKey("node-x86_64", [node, ...resolveLibraries("/", [node], "x86_64").map((l) => l.hostPath)]),
      build: () => {
        const w = new CpioWriter();
        w.file("usr/bin/node", readHostFile(node, "node"), 0o755);
        addLibraries(w, "/", [node], "x86_64");
        return w;
      },
    };
  }
  const root = i386NodeRoot(cache);
  const node = join(root, "usr/bin/node");
  const shared = join(root, "usr/share/nodejs");
  const tree = existsSync(shared) ? walkTree(shared) : [];
  return {
    key: identityKey("node-i386", [node, ...resolveLibraries(root, [node], "i386").map((l) => l.hostPath), ...tree.map((t) => join(shared, t.rel))]),
    build: () => {
      const w = new CpioWriter();
      w.file("usr/bin/node", readHostFile(node, "node"), 0o755);
      w.symlink("usr/bin/nodejs", "node");
      addLibraries(w, root, [node], "i386");
      // Debian's Node 18 takes undici, acorn and cjs-module-lexer from /usr/share/nodejs.
      addTree(w, shared, "usr/share/nodejs", tree);
      return w;
    },
  };
}

/** This checkout: dist/lab/initramfs.js → the repository root. */
export function defaultRepoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
}

function kexecTsPart(repoRoot: string): { key: string; build: () => CpioWriter } {
  const pkg = kexecTsPackage(repoRoot);
  return {
    key: identityKey("kexec-ts", pkg.files),
    build: () => {
      const w = new CpioWriter();
      pkg.addTo(w, "opt/kexec-ts");
      // The installed entry point: the bundled command line with its code cache (scripts/bundle.mjs).
      // Node started as the bin's #! line starts it (src/core/launch.ts): busybox's env has no -S.
      const wrapper = `#!/bin/sh\nexec node ${LAUNCH_NODE_FLAGS.join(" ")} /opt/kexec-ts/bin/kexec-ts.cjs "$@"\n`;
      w.file("usr/bin/kexec-ts", wrapper, 0o755);
      return w;
    },
  };
}

function programPath(f: ExtraFile, cache: string): string {
  return f.from === "i386" ? join(i386NodeRoot(cache), f.program!) : f.program!;
}

async function lastPart(spec: InitramfsSpec, cache: string): Promise<CpioWriter> {
  const w = new CpioWriter();
  const modulePaths: string[] = [];
  if (spec.modules !== undefined && spec.modules.names.length > 0) {
    const k = findKernel(spec.modules.kernel, cache);
    for (const m of resolveModules(moduleLookup(k.modules), spec.modules.names, k.modules)) {
      const guest = `/lib/modules/${k.version}/${m.path.replace(/\.ko\.[a-z0-9]+$/, ".ko")}`;
      w.file(guest, readModule(join(k.modules, m.path)));
      modulePaths.push(guest);
    }
  }
  const init = generateInit({ ...spec.init, modules: [...(spec.init.modules ?? []), ...modulePaths] });
  for (const [path, text] of init.files) w.file(path, text, 0o755);
  for (const [i, f] of (spec.files ?? []).entries()) {
    const sources = [f.host, f.text, f.kernel, f.initramfs, f.program].filter((s) => s !== undefined).length;
    if (sources !== 1) {
      throw new KexecError("usage", `files[${i}] (${f.guest}) needs exactly one of host, text, kernel, initramfs, program; it has ${sources}`, { field: `files[${i}]` }, "see lab/README.md for the file sources");
    }
    let data: Uint8Array;
    if (f.program !== undefined) {
      const path = programPath(f, cache);
      data = readHostFile(path, `files[${i}].program`);
      // Libraries of the program's own arch from the same root (x86_64 and i386 paths do not collide).
      addLibraries(w, f.from === "i386" ? i386NodeRoot(cache) : "/", [path], readDynamicInfo(data, path).arch);
      w.file(f.guest, data, f.mode ?? 0o755);
      continue;
    }
    if (f.host !== undefined) data = readHostFile(f.host, `files[${i}]`);
    else if (f.text !== undefined) data = new TextEncoder().encode(f.text);
    else if (f.kernel !== undefined) data = readHostFile(findKernel(f.kernel, cache).vmlinuz, `files[${i}].kernel`);
    else data = readFileSync((await buildInitramfs(f.initramfs!, { cache })).path);
    // A kernel's file is named by its release, which moves with Debian's kernel ABI (6.1.0-57 on
    // one machine, 6.1.0-50 on the next): "{version}" in its guest path is that release.
    const guest = f.kernel === undefined ? f.guest : f.guest.replaceAll("{version}", findKernel(f.kernel, cache).version);
    w.file(guest, data, f.mode ?? 0o644);
  }
  return w;
}

/** Builds (or reuses) the initramfs for `spec` and writes it to a file. */
export async function buildInitramfs(spec: InitramfsSpec, options: BuildOptions = {}): Promise<BuiltInitramfs> {
  const started = performance.now();
  const cache = options.cache ?? labCacheDir();
  const pieces: { bytes: Uint8Array; part: InitramfsPart }[] = [];
  // Programs the guest's kernel cannot run fail before any part is built.
  const kernelArch = spec.kernelArch ?? spec.userArch;
  for (const [i, f] of (spec.files ?? []).entries()) {
    if (f.program === undefined) continue;
    const path = programPath(f, cache);
    const arch = readDynamicInfo(readHostFile(path, `files[${i}].program`), path).arch;
    if (arch === "x86_64" && kernelArch === "i386") {
      throw new KexecError("lab", `files[${i}].program ${path} is x86_64 code, and the kernel that boots this initramfs runs only i386 programs`,
        { file: path, expected: "i386", actual: arch }, `use the i386 build ("from": "i386"), or boot this stage with an amd64 kernel`);
    }
  }

  const bb = busyboxPart(spec.userArch, cache);
  pieces.push(await cachedPart(cache, `busybox-${spec.userArch}`, bb.key, bb.build, 9));
  if (spec.node === true) {
    const n = nodePart(spec.userArch, cache);
    // Level 1: the part is ~100 MB and built once per Node version; the guest inflates it either way.
    pieces.push(await cachedPart(cache, `node-${spec.userArch}`, n.key, n.build, 1));
  }
  if (spec.kexecTs !== undefined && spec.kexecTs !== false) {
    const root = spec.kexecTs === true ? defaultRepoRoot() : spec.kexecTs.repoRoot;
    const k = kexecTsPart(root);
    pieces.push(await cachedPart(cache, "kexec-ts", k.key, k.build, 6));
  }
  const last = await compress(await lastPart(spec, cache), 1);
  pieces.push({ bytes: last, part: { name: "init", bytes: last.length, cached: false } });

  const hash = createHash("sha256");
  for (const p of pieces) hash.update(p.bytes);
  const digest = hash.digest("hex").slice(0, 16);
  const path = options.outPath ?? join(cache, "initramfs", "out", `${digest}.img`);
  const total = pieces.reduce((n, p) => n + p.bytes.length, 0);
  if (!(options.outPath === undefined && existsSync(path) && statSync(path).size === total)) {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      for (const p of pieces) writeSync(fd, p.bytes);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    if (options.outPath === undefined) prune(dirname(path), (f) => f.endsWith(".img"), KEEP_IMAGES);
  } else touch(path);
  return { path, bytes: total, parts: pieces.map((p) => p.part), buildMs: Math.round(performance.now() - started) };
}

/**
 * Every entry of an initramfs as the kernel would unpack it: gzip members and plain cpio
 * archives one after another, with zero padding between them.
 */
export function readInitramfs(bytes: Uint8Array, what = "initramfs"): CpioEntry[] {
  const entries: CpioEntry[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes[at] === 0) {
      at++;
      continue;
    }
    if (bytes[at] === 0x1f && bytes[at + 1] === 0x8b) {
      let out: { buffer: Buffer; engine: { bytesWritten: number } };
      try {
        out = gunzipSync(bytes.subarray(at), { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
      } catch (e) {
        throw new KexecError("decompress", `${what}: gzip member at offset 0x${at.toString(16)}: ${(e as Error).message}`, { file: what, offset: at }, "the initramfs is corrupt");
      }
      entries.push(...readCpio(out.buffer));
      at += out.engine.bytesWritten;
      continue;
    }
    // A plain cpio archive runs to its trailer; readCpio stops there only at the end, so cut it.
    const rest = bytes.subarray(at);
    const trailer = findTrailerEnd(rest);
    if (trailer === undefined) {
      throw new KexecError("parse", `${what}: offset 0x${at.toString(16)} is neither gzip nor a complete cpio archive`, { file: what, offset: at }, "the initramfs is corrupt, or its compression is not gzip");
    }
    entries.push(...readCpio(rest.subarray(0, trailer)));
    at += trailer;
  }
  return entries;
}

function findTrailerEnd(bytes: Uint8Array): number | undefined {
  const marker = new TextEncoder().encode("TRAILER!!!\0");
  outer: for (let i = 110; i + marker.length <= bytes.length; i++) {
    for (let j = 0; j < marker.length; j++) if (bytes[i + j] !== marker[j]) continue outer;
    const end = i + marker.length;
    return end + ((4 - (end % 4)) % 4);
  }
  return undefined;
}

export function describeInitramfs(built: BuiltInitramfs): string {
  const parts = built.parts.map((p) => `${p.name} ${formatSize(p.bytes)}${p.cached ? " (cached)" : ""}`).join(", ");
  return `initramfs ${built.path}: ${formatSize(built.bytes)} [${parts}] in ${built.buildMs} ms`;
}
