/**
 * kexec-ts's own capture initramfs (no dracut, no initramfs-tools): busybox, the modules the
 * root and target devices need (their closure in the capture kernel's modules.dep, plus the
 * soft dependencies such as ext4's crc32c), a generated /init and the capture settings; in
 * self-contained mode also Node with its libraries and kexec-ts. It is rebuilt only when its
 * content changes: the uncompressed archive's SHA-256 is kept in a manifest beside the image.
 */
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { KexecError } from "../../core/errors.js";
import { CpioWriter, concatBytes } from "../../core/initramfs/cpio.js";
import { SquashfsTree, writeSquashfs } from "../../core/initramfs/squashfs.js";
import { readDynamicInfo, readModinfo } from "../../core/initramfs/elf-deps.js";
import { resolveModules, type ModuleLookup, type ResolvedModule } from "../../core/initramfs/modules.js";
import { SELF_CONTAINED_IMAGE, generateCaptureInit, targetDirForNode, type CaptureFilesystem, type CaptureInitSpec } from "../../core/kdump/capture-init.js";
import type { CaptureSettings } from "../../core/kdump/capture-settings.js";
import { DEFAULT_CONFIG_PATH, type KdumpConfig } from "../../core/kdump/config.js";
import type { MountEntry } from "../../core/kdump/mounts.js";
import { resolveLibraries } from "../initramfs/libraries.js";
import { moduleLookup, readModule } from "../initramfs/modules.js";
import { addTree, kexecTsPackage, walkTree, type ArchiveSink } from "../initramfs/tree.js";
import { squashfsCodec } from "../initramfs/block-codec.js";
import { readInputFile, replaceFileDurably } from "../files.js";
import { describeFilesystem, describeRawDevice, loadedModules, readMounts, type DriverFact, type FilesystemFacts } from "./devices.js";
import { initrdPath, manifestPath, type KdumpPaths } from "./paths.js";

/** busybox applets the capture init calls; checked against `busybox --list` at build time. */
const APPLETS = ["sh", "mount", "umount", "insmod", "mkdir", "cp", "cut", "grep", "tr", "echo", "cat", "sleep", "findfs", "chroot", "setsid", "cttyhack",
  "reboot", "halt", "poweroff", "blockdev", "stat", "dd", "head", "date", "sync", "ls", "dmesg"];

const BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox"];

export interface CaptureBuildInput {
  config: KdumpConfig;
  /** The capture kernel's release: its modules are /lib/modules/<release>. */
  kernelRelease: string;
  modulesDir?: string;
  /** kexec-ts' version, written into the init. */
  version: string;
  /** The installed kexec-ts (the directory with package.json and dist/). */
  packageRoot: string;
  /** The Node that runs kexec-ts (default mode: found again on the root in the capture kernel). */
  nodeProgram: string;
  mounts?: MountEntry[];
  /** The config file the settings came from, for the hints (default /etc/kexec-ts/kdump.conf). */
  configFile?: string;
}

export interface CapturePlan {
  spec: CaptureInitSpec;
  settings: CaptureSettings;
  root: FilesystemFacts | null;
  target: FilesystemFacts;
  raw: { devPath: string; drivers: DriverFact[] } | null;
  modules: ResolvedModule[];
  /** Module names the devices use that the capture kernel has built in. */
  builtin: string[];
  busybox: string;
}

export interface CaptureManifest {
  format: 1;
  hash: string;
  kernelRelease: string;
  mode: KdumpConfig["mode"];
  builtAt: string;
  builtBy: string;
  /** Sizes the memory estimate uses. */
  compressedBytes: number;
  unpackedBytes: number;
  moduleBytes: number;
  nodeBytes: number;
  modules: string[];
  target: string;
  root: string | null;
  rawTarget: string | null;
}

export interface BuiltCapture {
  path: string;
  manifest: CaptureManifest;
  rebuilt: boolean;
  plan: CapturePlan;
}

function findBusybox(): string {
  const found = BUSYBOX_CANDIDATES.find((p) => existsSync(p));
  if (found === undefined) throw new KexecError("machine", "no busybox: the capture initramfs' /init runs on it", { expected: BUSYBOX_CANDIDATES.join(" or ") }, "apt-get install busybox-static (or busybox)");
  const r = spawnSync(found, ["--list"], { encoding: "utf8" });
  const have = new Set((r.stdout ?? "").split("\n"));
  const missing = APPLETS.filter((a) => !have.has(a));
  if (missing.length) throw new KexecError("machine", `${found} lacks the applets ${missing.join(", ")} that the capture init uses`, { file: found, expected: APPLETS.join(" ") }, "install Debian's busybox-static");
  return found;
}

function captureFs(f: FilesystemFacts): CaptureFilesystem {
  return { device: { uuid: f.uuid, path: f.devPath }, fstype: f.fstype };
}

/** "pre: a b post: c" (modinfo softdep= or a modules.softdep line's tail) → [a, b, c]. */
export function softdepNames(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== "" && w !== "pre:" && w !== "post:");
}

/**
 * Soft dependencies of `names` (ext4 and jbd2 want "crypto-crc32c"), resolved to modules:
 * an alias becomes the loaded module that provides it (else every module that does).
 */
function softdeps(modulesDir: string, lookup: ModuleLookup, names: readonly string[], loaded: Set<string>): string[] {
  const softFile = join(modulesDir, "modules.softdep");
  const aliasFile = join(modulesDir, "modules.alias");
  const fromFile = new Map<string, string[]>();
  if (existsSync(softFile)) {
    for (const line of readFileSync(softFile, "utf8").split("\n")) {
      const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line);
      if (m) fromFile.set(m[1]!.replace(/-/g, "_"), softdepNames(m[2]!));
    }
  }
  const aliases = new Map<string, string[]>();
  if (existsSync(aliasFile)) {
    for (const line of readFileSync(aliasFile, "utf8").split("\n")) {
      const m = /^alias\s+(\S+)\s+(\S+)$/.exec(line);
      if (m) aliases.set(m[1]!, [...(aliases.get(m[1]!) ?? []), m[2]!.replace(/-/g, "_")]);
    }
  } else {
    // No depmod output (the lab's kernels): the loaded modules' own aliases.
    for (const name of loaded) {
      const entry = lookup(name);
      if (entry === undefined) continue;
      const info = readModinfoOf(join(modulesDir, entry.path));
      for (const a of info.get("alias") ?? []) aliases.set(a, [...(aliases.get(a) ?? []), name]);
    }
  }
  const out: string[] = [];
  for (const n of names) {
    let wanted = fromFile.get(n);
    if (wanted === undefined && !existsSync(softFile)) {
      const entry = lookup(n);
      wanted = entry === undefined ? [] : (readModinfoOf(join(modulesDir, entry.path)).get("softdep") ?? []).flatMap(softdepNames);
    }
    for (const w of wanted ?? []) {
      const name = w.replace(/-/g, "_");
      if (lookup(name) !== undefined) {
        out.push(name);
        continue;
      }
      const providers = aliases.get(w) ?? [];
      const inUse = providers.filter((p) => loaded.has(p));
      out.push(...(inUse.length ? inUse : providers));
    }
  }
  return [...new Set(out)];
}

function readModinfoOf(path: string): Map<string, string[]> {
  return readModinfo(readModule(path), path);
}

function builtinModules(modulesDir: string): Set<string> {
  const file = join(modulesDir, "modules.builtin");
  if (!existsSync(file)) return new Set();
  return new Set(readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => l.slice(l.lastIndexOf("/") + 1).replace(/\.ko$/, "").replace(/-/g, "_")));
}

/** Works out what goes into the capture initramfs: devices, modules, the init's settings. Reads /sys and /proc; writes nothing. */
export function planCapture(input: CaptureBuildInput): CapturePlan {
  const c = input.config;
  const configFile = input.configFile ?? DEFAULT_CONFIG_PATH;
  const mounts = input.mounts ?? readMounts();
  const modulesDir = input.modulesDir ?? `/lib/modules/${input.kernelRelease}`;
  if (!existsSync(modulesDir)) {
    throw new KexecError("machine", `the capture kernel ${input.kernelRelease} has no modules directory ${modulesDir}`, { file: modulesDir }, `install the kernel's package (its modules), or set kernel = in ${configFile} to an installed kernel`);
  }
  const target = describeFilesystem(c.target, "target", mounts, configFile);
  const root = c.mode === "default" ? describeFilesystem("/", "root file system", mounts, configFile) : null;
  const raw = c.rawTarget === null ? null : describeRawDevice(c.rawTarget);
  const onRoot = root !== null && root.majMin === target.majMin;
  if (root !== null) {
    // The system's Node and kexec-ts are run from the root the capture kernel mounts: they must be on it.
    for (const [what, path] of [["Node", input.nodeProgram], ["kexec-ts", input.packageRoot]] as const) {
      const fs = describeFilesystem(path, what, mounts, configFile);
      if (fs.majMin !== root.majMin) {
        throw new KexecError("machine", `${what} (${fs.path}) is on ${fs.devPath} mounted at ${fs.mount.mountPoint}, not on the root file system the capture kernel mounts`,
          { file: fs.path, expected: root.devPath, actual: fs.devPath }, `set mode = self-contained in ${configFile} (Node and kexec-ts then go into the capture initramfs)`);
      }
    }
  }
  const loaded = loadedModules();
  const lookup = moduleLookup(modulesDir);
  const builtin = builtinModules(modulesDir);
  const wanted = new Set<string>();
  const builtinUsed: string[] = [];
  const drivers = [...(root?.drivers ?? []), ...target.drivers, ...(raw?.drivers ?? [])];
  for (const d of drivers) {
    if (d.module === null) continue;
    if (lookup(d.module) !== undefined) wanted.add(d.module);
    else if (builtin.has(d.module)) builtinUsed.push(d.module);
    else {
      throw new KexecError("machine", `the driver ${d.driver} of ${d.device} is the module ${d.module}, which the capture kernel ${input.kernelRelease} has neither as a module (${modulesDir}) nor built in`,
        { file: modulesDir, expected: d.module }, `use a capture kernel that has it (kernel = in ${configFile})`);
    }
  }
  for (const fstype of new Set([root?.fstype, target.fstype].filter((x): x is string => x !== undefined))) {
    if (lookup(fstype) !== undefined) wanted.add(fstype);
    else if (!builtin.has(fstype)) {
      throw new KexecError("machine", `the capture kernel ${input.kernelRelease} has no ${fstype} module and does not have it built in`, { file: modulesDir, expected: fstype }, "use a capture kernel with that file system");
    } else builtinUsed.push(fstype);
  }
  // The self-contained mode mounts its image of Node through a loop device.
  if (c.mode === "self-contained") {
    for (const m of ["loop", "squashfs"]) {
      if (lookup(m) !== undefined) wanted.add(m);
      else if (builtin.has(m)) builtinUsed.push(m);
      else throw new KexecError("machine", `the capture kernel ${input.kernelRelease} has no ${m} module and does not have it built in: the self-contained mode mounts its image of Node with it`, { file: modulesDir, expected: m }, "use mode = default, or a capture kernel with loop and squashfs");
    }
  }
  const first = resolveModules(lookup, [...wanted], modulesDir);
  const soft = softdeps(modulesDir, lookup, first.map((m) => m.name), loaded).filter((n) => !first.some((m) => m.name === n));
  // Soft "pre" dependencies load first, so that ext4 finds crc32c registered when it mounts.
  const modules = resolveModules(lookup, [...soft, ...first.map((m) => m.name)], modulesDir);

  const packageMain = join(input.packageRoot, "dist", "cli", "main.js");
  const spec: CaptureInitSpec = {
    version: input.version,
    mode: c.mode,
    modules: modules.map((m) => moduleGuestPath(input.kernelRelease, m)),
    root: root === null ? null : captureFs(root),
    target: { fs: captureFs(target), onRoot, mountPoint: target.mount.mountPoint, dir: target.path },
    rawTarget: raw?.devPath ?? null,
    node: c.mode === "default" ? { program: input.nodeProgram, main: packageMain, heapMiB: c.heapMiB } : { program: "/usr/bin/node", main: "/opt/kexec-ts/dist/cli/main.js", heapMiB: c.heapMiB },
    failureAction: c.failureAction,
    finalAction: c.finalAction,
    deviceWaitSec: 30,
    configFile,
  };
  const settings: CaptureSettings = {
    format: 1,
    builtBy: input.version,
    host: hostname(),
    mode: c.mode,
    target: targetDirForNode(spec, target.pathInFs),
    targetInSystem: target.path,
    codec: c.codec,
    dumpLevel: c.dumpLevel,
    keep: c.keep,
    minFree: c.minFree.toString(),
    threads: c.threads,
    failureAction: c.failureAction,
    finalAction: c.finalAction,
    kernelRelease: input.kernelRelease,
  };
  return { spec, settings, root, target, raw: raw === null ? null : { devPath: raw.devPath, drivers: raw.drivers }, modules, builtin: [...new Set(builtinUsed)], busybox: findBusybox() };
}

function moduleGuestPath(release: string, m: ResolvedModule): string {
  return `/lib/modules/${release}/${m.path.replace(/\.ko\.[a-z0-9]+$/, ".ko")}`;
}

/** Libraries kexec-ts loads with dlopen (through koffi) to compress pages as makedumpfile does; copied when present. */
const CODEC_LIBRARIES = ["libz.so.1", "liblzo2.so.2", "libzstd.so.1"];
/** Debian's Node 18 loads these from /usr/share/nodejs (cjs-module-lexer: ESM importing CommonJS, as kexec-ts imports koffi). */
const DEBIAN_NODE_SHARED = ["cjs-module-lexer", "acorn", "acorn-walk"];

function addNode(w: ArchiveSink, nodeProgram: string): number {
  const real = realpathSync(nodeProgram);
  const bytes = readInputFile(real, "node");
  const arch = readDynamicInfo(bytes, real).arch;
  w.file("usr/bin/node", bytes, 0o755);
  let total = bytes.length;
  const libs = resolveLibraries("/", [real], arch, "reinstall nodejs");
  for (const lib of libs) {
    const data = readInputFile(lib.hostPath, "shared library");
    w.file(lib.guestPath, data, 0o755);
    total += data.length;
  }
  const libDir = arch === "x86_64" ? "/lib/x86_64-linux-gnu" : "/lib/i386-linux-gnu";
  for (const name of CODEC_LIBRARIES) {
    for (const dir of [libDir, `/usr${libDir}`]) {
      const p = join(dir, name);
      if (!existsSync(p)) continue;
      w.file(p, readInputFile(realpathSync(p), "codec library"), 0o755);
      break;
    }
  }
  for (const name of DEBIAN_NODE_SHARED) {
    const dir = join("/usr/share/nodejs", name);
    if (existsSync(dir)) addTree(w, dir, `usr/share/nodejs/${name}`, walkTree(dir));
  }
  for (const file of sharedBuiltinFiles(real)) {
    // Those under a tree copied whole above are in the image already.
    if (DEBIAN_NODE_SHARED.some((name) => file.startsWith(`/usr/share/nodejs/${name}/`))) continue;
    const data = readInputFile(file, "Node's externalized builtin");
    w.file(file.slice(1), data, 0o644);
    total += data.length;
  }
  return total;
}

/**
 * The files a Node build loads some of its own builtins from at start (Debian's: undici's fetch,
 * acorn, cjs-module-lexer under /usr/share/nodejs), named by NODE_SHARED_BUILTIN_*_PATH in the
 * build's defines. Without one, Node aborts before running anything (seen in the self-contained
 * capture: 'Cannot load externalized builtin: "internal/deps/undici/undici..."', exit 134).
 * Asked of the program itself, since the capture's Node need not be the one running this.
 */
export function sharedBuiltinFiles(nodeProgram: string): string[] {
  const r = spawnSync(nodeProgram, ["-p", "JSON.stringify(process.config.target_defaults?.defines ?? [])"], { encoding: "utf8" });
  if (r.status !== 0) {
    throw new KexecError("io", `cannot ask ${nodeProgram} for its build settings: ${r.error?.message ?? r.stderr.trim()}`, { file: nodeProgram }, "the capture's Node must run here: reinstall nodejs, or set mode = default");
  }
  let defines: unknown;
  try {
    defines = JSON.parse(r.stdout);
  } catch {
    defines = [];
  }
  if (!Array.isArray(defines)) return [];
  const files = defines
    .map((d) => (typeof d === "string" ? /^NODE_SHARED_BUILTIN_\w+_PATH=(\/.+)$/.exec(d)?.[1] : undefined))
    .filter((f): f is string => f !== undefined && existsSync(f));
  return [...new Set(files)];
}

/**
 * What goes into the capture initramfs, before anything is compressed: the archive and, in the
 * self-contained mode, the squashfs image's entries. The hash covers both, so deciding whether
 * to rebuild (and `status` asking whether the image is current) never compresses 100 MiB.
 */
export interface CaptureContent {
  cpio: CpioWriter;
  squashfs: SquashfsTree | null;
  hash: string;
  moduleBytes: number;
  nodeBytes: number;
}

export function captureContent(plan: CapturePlan, input: CaptureBuildInput): CaptureContent {
  const w = new CpioWriter();
  for (const d of ["proc", "sys", "dev", "tmp", "run", "sysroot", "target", "etc/kexec-ts", "sbin", "usr/bin", "usr/sbin"]) w.dir(d);
  w.dir("tmp", 0o1777);
  // The kernel opens /dev/console for /init before anything is mounted.
  w.device("dev/console", "char", 5, 1, 0o600);
  const busybox = readInputFile(plan.busybox, "busybox");
  w.file("bin/busybox", busybox, 0o755);
  const info = readDynamicInfo(busybox, plan.busybox);
  if (info.interpreter !== undefined) for (const lib of resolveLibraries("/", [plan.busybox], info.arch, "reinstall busybox")) w.file(lib.guestPath, readInputFile(lib.hostPath, "shared library"), 0o755);
  for (const a of APPLETS) w.symlink(`bin/${a}`, "busybox");
  let moduleBytes = 0;
  const modulesDir = input.modulesDir ?? `/lib/modules/${input.kernelRelease}`;
  for (const m of plan.modules) {
    const data = readModule(join(modulesDir, m.path));
    moduleBytes += data.length;
    w.file(moduleGuestPath(input.kernelRelease, m), data, 0o644);
  }
  w.file("etc/kexec-ts/capture.json", `${JSON.stringify(plan.settings, null, 2)}\n`);
  w.file("init", generateCaptureInit(plan.spec), 0o755);
  const hash = createHash("sha256");
  for (const chunk of w.chunks()) hash.update(chunk);
  let squashfs: SquashfsTree | null = null;
  let nodeBytes = 0;
  if (plan.spec.mode === "self-contained") {
    squashfs = new SquashfsTree();
    // Mount points the capture init binds into the image it chroots into.
    for (const d of ["proc", "sys", "dev", "run", "tmp", "target"]) squashfs.dir(d);
    nodeBytes = addNode(squashfs, input.nodeProgram);
    kexecTsPackage(input.packageRoot).addTo(squashfs, "opt/kexec-ts");
    for (const e of squashfs.inputs) hash.update(`\0${e.type}\0${e.name}\0${e.perm}\0${e.data.length}\0`).update(e.data);
  }
  return { cpio: w, squashfs, hash: hash.digest("hex"), moduleBytes, nodeBytes };
}

/** The uncompressed archive: the squashfs image (compressed by its own codec) goes in as one file. */
export function captureArchiveBytes(content: CaptureContent): Uint8Array {
  if (content.squashfs !== null) {
    const codec = squashfsCodec();
    content.cpio.file(SELF_CONTAINED_IMAGE, concatBytes(writeSquashfs(content.squashfs.inputs, codec.compression, codec.compress)), 0o644);
  }
  return content.cpio.bytes();
}

export function readManifest(paths: KdumpPaths, release: string): CaptureManifest | null {
  try {
    const m = JSON.parse(readFileSync(manifestPath(paths, release), "utf8")) as CaptureManifest;
    return m.format === 1 ? m : null;
  } catch {
    return null;
  }
}

/** Builds the capture initramfs unless one with the same content is already there (or `force`). */
export function buildCaptureInitramfs(input: CaptureBuildInput, paths: KdumpPaths, options: { force?: boolean } = {}): BuiltCapture {
  const plan = planCapture(input);
  const content = captureContent(plan, input);
  const hash = content.hash;
  const path = initrdPath(paths, input.kernelRelease);
  const old = readManifest(paths, input.kernelRelease);
  if (!options.force && old !== null && old.hash === hash && existsSync(path)) return { path, manifest: old, rebuilt: false, plan };
  const archive = { bytes: captureArchiveBytes(content), moduleBytes: content.moduleBytes, nodeBytes: content.nodeBytes };
  // gzip: every Debian kernel unpacks it (CONFIG_RD_GZIP=y). The self-contained mode's squashfs
  // image inside is compressed already: a low level costs little and gains little.
  const compressed = gzipSync(archive.bytes, { level: plan.spec.mode === "self-contained" ? 1 : 9 });
  replaceFileDurably(path, compressed, 0o600);
  const manifest: CaptureManifest = {
    format: 1,
    hash,
    kernelRelease: input.kernelRelease,
    mode: plan.spec.mode,
    builtAt: new Date().toISOString(),
    builtBy: input.version,
    compressedBytes: compressed.length,
    unpackedBytes: archive.bytes.length,
    moduleBytes: archive.moduleBytes,
    nodeBytes: archive.nodeBytes,
    modules: plan.modules.map((m) => m.name),
    target: input.config.target,
    root: plan.root?.devPath ?? null,
    rawTarget: input.config.rawTarget,
  };
  replaceFileDurably(manifestPath(paths, input.kernelRelease), `${JSON.stringify(manifest, null, 2)}\n`);
  return { path, manifest, rebuilt: true, plan };
}

/** Whether the image on disk is what `input` would build now (status: "stale" otherwise). */
export function captureIsCurrent(input: CaptureBuildInput, paths: KdumpPaths): { current: boolean; manifest: CaptureManifest | null; hash: string } {
  const plan = planCapture(input);
  const hash = captureContent(plan, input).hash;
  const manifest = readManifest(paths, input.kernelRelease);
  return { current: manifest !== null && manifest.hash === hash && existsSync(initrdPath(paths, input.kernelRelease)), manifest, hash };
}
