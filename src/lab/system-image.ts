/**
 * The system tier's disk images: an installed Debian 12 built from Debian's packages with
 * mmdebstrap, with kexec-ts installed the way a user installs it (`npm pack` of this checkout,
 * then `npm install -g` of that tarball inside the image, with Debian's own node and npm).
 *
 * Two layers, cached under <lab cache>/system/:
 *
 *   <recipe>-<base key>/root/          the Debian tree (minutes to build; keyed by the recipe:
 *                                      architectures, package list, the hook that runs in it)
 *   <recipe>-<base key>/base.json      what it holds: packages, kernel versions, build time
 *   <recipe>-<base key>/images/<key>.img
 *                                      the tree plus kexec-ts and the lab's systemd unit, as an
 *                                      ext4 image (about a minute; keyed by the base, the npm
 *                                      pack tarball's bytes and the lab layer)
 *   npm-cache/                         the production dependencies, so the install inside the
 *                                      image runs offline
 *
 * The image layer is made in a private mount namespace (unshare): an overlay over the tree, so
 * the tree stays as mmdebstrap left it, with /proc mounted for npm; `mke2fs -d` writes the
 * merged tree into the image without mounting it (no loop device needed). Guests boot it with
 * QEMU's snapshot=on, so the cached image is never written.
 */
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { KexecError } from "../core/errors.js";
import { productionPackages } from "../node/initramfs/tree.js";
import { defaultRepoRoot } from "./initramfs.js";
import { findKernel, labCacheDir, SETUP_HINT, type LabKernel } from "./kernels.js";
import { findOnPath } from "./qemu.js";

export type SystemImageName = "amd64" | "i386";

export interface SystemRecipe {
  name: SystemImageName;
  /** Debian architectures, the native one (user space) first. */
  architectures: string[];
  /** Lab kernels (kernels.json names) installed from Debian's packages of the same version. */
  kernels: string[];
  /** Everything else mmdebstrap installs (minbase variant, no recommends). */
  packages: string[];
}

const COMMON_PACKAGES = [
  "systemd-sysv", "udev", "initramfs-tools", "kmod", "zstd", "e2fsprogs", "procps", "file",
  // Debian's Node 18 and npm: what a Debian 12 user installs kexec-ts with.
  "nodejs", "npm",
  // kdump-tools itself comes later (see BASE_HOOK); these are its peers.
  "kexec-tools", "makedumpfile",
];

export const SYSTEM_RECIPES: Record<SystemImageName, SystemRecipe> = {
  amd64: { name: "amd64", architectures: ["amd64"], kernels: ["amd64-6.1", "amd64-6.12"], packages: [...COMMON_PACKAGES, "efibootmgr"] },
  // Seed 002's machine: i386 user space; a 686-pae kernel, and the amd64 kernel from the
  // amd64 architecture added beside it (dpkg --add-architecture amd64), as Debian documents.
  i386: { name: "i386", architectures: ["i386", "amd64"], kernels: ["686-pae-6.1", "amd64-6.1"], packages: [...COMMON_PACKAGES] },
};

const SUITE = "bookworm";
const MIRROR = "http://deb.debian.org/debian";
const SOURCES = [
  `deb ${MIRROR} bookworm main`,
  `deb ${MIRROR} bookworm-updates main`,
  "deb http://deb.debian.org/debian-security bookworm-security main",
  // The 6.12 kernel comes from backports.
  `deb ${MIRROR} bookworm-backports main`,
];

/** Suites a base can be built without when the mirror serves a broken index of theirs: updates only, never the release itself. */
const UPDATE_SUITES = new Set(["bookworm-security", "bookworm-updates"]);

/**
 * The sources again, with each (suite, architecture) whose index apt could not fetch in `log`
 * (mmdebstrap's `apt-get update --error-on=any`) restricted to the other architectures. A mirror
 * mid-sync served bookworm-security's i386 index at the wrong size for over an hour (seen
 * 2026-12-05: "File has unexpected size ... Mirror sync in progress?"), and the i386 base could
 * not be built at all. Undefined when nothing can be left out: a failure in the release suite,
 * or none recognised.
 */
export function sourcesWithoutBrokenIndexes(sources: readonly string[], architectures: readonly string[], log: string): { sources: string[]; left: string[] } | undefined {
  const broken = new Map<string, Set<string>>();
  for (const m of log.matchAll(/Failed to fetch \S+\/dists\/([^/\s]+)\/\S*?binary-([a-z0-9]+)\/Packages/g)) {
    const [, suite, arch] = m;
    if (!UPDATE_SUITES.has(suite!)) return undefined;
    broken.set(suite!, (broken.get(suite!) ?? new Set()).add(arch!));
  }
  if (broken.size === 0) return undefined;
  const left: string[] = [];
  const out = sources.flatMap((line) => {
    const suite = line.split(/\s+/)[2];
    const archs = suite === undefined ? undefined : broken.get(suite);
    if (archs === undefined) return [line];
    const keep = architectures.filter((a) => !archs.has(a));
    left.push(...[...archs].map((a) => `${suite} (${a})`));
    return keep.length === 0 ? [] : [line.replace(/^deb /, `deb [arch=${keep.join(",")}] `)];
  });
  return { sources: out, left };
}

/**
 * Runs in the new tree (chroot) after the packages are installed. kdump-tools is installed only
 * now: its kernel hook builds the capture initrd with MODULES=dep, which fails in a chroot
 * ("failed to determine device for /") and would fail the kernels' installation. So its
 * capture initrds are built here, as the hook does but with MODULES=most, and the sysctl stamp
 * is recorded so kdump-config does not throw them away and rebuild them at the first boot
 * (about 6 minutes under TCG).
 */
const BASE_HOOK = `set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends kdump-tools
for v in $(linux-version list); do
  rm -rf /var/lib/kdump/initramfs-tools
  cp -pr /etc/initramfs-tools /var/lib/kdump/
  echo KDUMP=y >> /var/lib/kdump/initramfs-tools/initramfs.conf
  mkinitramfs -d /var/lib/kdump/initramfs-tools -o /var/lib/kdump/initrd.img-$v $v
  cp /etc/kdump/sysctl.conf /var/lib/kdump/latest_sysctls-$v
done
apt-get clean
rm -rf /var/lib/apt/lists/*
`;

/** The Debian package that holds a lab kernel: the same version, signed where Debian signs it. */
export function kernelPackage(k: LabKernel, nativeArch: string): string {
  const pkg = `linux-image-${k.version}`;
  return k.debianArch === nativeArch ? pkg : `${pkg}:${k.debianArch}`;
}

export interface BaseInfo {
  recipe: SystemImageName;
  key: string;
  architectures: string[];
  packages: string[];
  /** Lab kernel name → `uname -r`. */
  kernels: Record<string, string>;
  buildSeconds: number;
  builtAt: string;
  /** Update suites' indexes the mirror served broken, built without ("bookworm-security (i386)"). */
  indexesLeftOut?: string[];
}

export interface SystemImage {
  recipe: SystemRecipe;
  base: BaseInfo;
  /** The Debian tree; the guest boots <root>/boot/vmlinuz-V and initrd.img-V directly. */
  root: string;
  /** The ext4 image with kexec-ts installed (never written: guests use snapshot=on). */
  image: string;
  /** Whether anything was built this time, and how long it took. */
  built: { base: boolean; image: boolean; seconds: number };
}

export function systemCacheDir(cache = labCacheDir()): string {
  return join(cache, "system");
}

function sha(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The mmdebstrap command line for a recipe (without the output directory). */
export function baseCommand(recipe: SystemRecipe, cache = labCacheDir()): { packages: string[]; args: (out: string, hook: string, sources?: readonly string[]) => string[]; key: string } {
  const packages = [...recipe.packages, ...recipe.kernels.map((k) => kernelPackage(findKernel(k, cache), recipe.architectures[0]!))];
  const key = sha(JSON.stringify({ suite: SUITE, sources: SOURCES, architectures: recipe.architectures, packages: [...packages].sort(), hook: BASE_HOOK })).slice(0, 12);
  const args = (out: string, hook: string, sources: readonly string[] = SOURCES): string[] => [
    "--variant=minbase",
    `--architectures=${recipe.architectures.join(",")}`,
    `--include=${packages.join(",")}`,
    `--customize-hook=chroot "$1" sh < ${shq(hook)}`,
    SUITE, out, ...sources,
  ];
  return { packages, args, key };
}

interface RunOptions {
  log: string;
  timeoutSec: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command with its output appended to a log; a failure is a KexecError with the log's tail. */
async function run(what: string, argv: string[], o: RunOptions): Promise<void> {
  mkdirSync(dirname(o.log), { recursive: true });
  const fd = openSync(o.log, "a");
  try {
    writeFileSync(fd, `\n$ ${argv.join(" ")}\n`);
    const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolveRun) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", fd, fd], cwd: o.cwd, env: o.env ?? process.env });
      const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutSec * 1000);
      child.on("error", (error) => {
        clearTimeout(timer);
        resolveRun({ code: null, signal: null, error });
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolveRun({ code, signal });
      });
    });
    if (status.code !== 0) {
      const why = status.error !== undefined ? status.error.message : status.signal !== null ? `killed by ${status.signal}${status.signal === "SIGKILL" ? ` (over ${o.timeoutSec} s)` : ""}` : `exit ${status.code}`;
      const tail = readFileSync(o.log, "utf8").trimEnd().split("\n").slice(-20).map((l) => `  | ${l}`).join("\n");
      throw new KexecError("lab", `${what} failed (${why}); ${o.log} ends:\n${tail}`, { file: o.log }, "the log says what failed; the Debian mirror and the npm registry must be reachable for a first build");
    }
  } finally {
    closeSync(fd);
  }
}

function need(program: string, pkg: string): string {
  const path = findOnPath(program) ?? (existsSync(`/usr/sbin/${program}`) ? `/usr/sbin/${program}` : existsSync(`/sbin/${program}`) ? `/sbin/${program}` : undefined);
  if (path === undefined) throw new KexecError("lab", `the system tier needs ${program}, which is not installed`, { expected: program }, `apt-get install ${pkg}, or ${SETUP_HINT}`);
  return path;
}

function rootCheck(): void {
  if (process.getuid?.() !== 0) {
    throw new KexecError("lab", "building a system image needs root (mmdebstrap, chroot, a private mount namespace)", { expected: "uid 0", actual: `uid ${process.getuid?.()}` }, "run the system tier as root, as CI does");
  }
}

/**
 * One builder per directory at a time, across processes: a lock directory holding the owner's
 * pid. A lock whose owner is gone is taken over; others wait.
 */
async function withLock<T>(lockDir: string, what: string, body: () => Promise<T>, log: (line: string) => void): Promise<T> {
  let announced = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, "pid"), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(lockDir, "pid"), "utf8"));
      } catch {
        // the owner has not written its pid yet, or has just finished
      }
      let alive = true;
      if (Number.isInteger(owner) && owner > 0) {
        try {
          process.kill(owner, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!announced) log(`waiting for process ${owner} to finish ${what}`);
      announced = true;
      await new Promise((r) => setTimeout(r, 5000));
    }
  }
  try {
    return await body();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** The Debian tree for a recipe: built once (several minutes), then reused. */
async function ensureBase(recipe: SystemRecipe, cache: string, log: (line: string) => void): Promise<{ dir: string; info: BaseInfo; built: boolean }> {
  const { packages, args, key } = baseCommand(recipe, cache);
  const dir = join(systemCacheDir(cache), `${recipe.name}-${key}`);
  const infoFile = join(dir, "base.json");
  const done = (): BaseInfo | undefined => (existsSync(infoFile) ? (JSON.parse(readFileSync(infoFile, "utf8")) as BaseInfo) : undefined);
  const have = done();
  if (have !== undefined) return { dir, info: have, built: false };
  rootCheck();
  const mmdebstrap = need("mmdebstrap", "mmdebstrap");
  mkdirSync(systemCacheDir(cache), { recursive: true });
  return withLock(`${dir}.lock`, `building the ${recipe.name} base`, async () => {
    const again = done();
    if (again !== undefined) return { dir, info: again, built: false };
    const started = Date.now();
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const hook = join(dir, "base-hook.sh");
    writeFileSync(hook, BASE_HOOK);
    const logFile = join(dir, "build.log");
    let leftOut: string[] = [];
    log(`building the ${recipe.name} system base with mmdebstrap (several minutes; log: ${logFile})`);
    try {
      await run(`mmdebstrap (the ${recipe.name} base)`, [mmdebstrap, ...args(join(dir, "root"), hook)], { log: logFile, timeoutSec: 3600 });
    } catch (e) {
      // Once more without an update suite's index the mirror serves broken; said in the log and base.json.
      const fallback = sourcesWithoutBrokenIndexes(SOURCES, recipe.architectures, readFileSync(logFile, "utf8"));
      if (fallback === undefined) throw e;
      log(`the mirror served a broken index of ${fallback.left.join(", ")}: building the ${recipe.name} base without it`);
      rmSync(join(dir, "root"), { recursive: true, force: true });
      await run(`mmdebstrap (the ${recipe.name} base, without ${fallback.left.join(", ")})`, [mmdebstrap, ...args(join(dir, "root"), hook, fallback.sources)], { log: logFile, timeoutSec: 3600 });
      leftOut = fallback.left;
    }
    const kernels: Record<string, string> = {};
    for (const k of recipe.kernels) {
      const version = findKernel(k, cache).version;
      for (const f of [`vmlinuz-${version}`, `initrd.img-${version}`]) {
        if (!existsSync(join(dir, "root", "boot", f))) throw new KexecError("lab", `the ${recipe.name} base has no /boot/${f}`, { file: join(dir, "root", "boot", f) }, `see ${logFile}`);
      }
      kernels[k] = version;
    }
    const info: BaseInfo = { recipe: recipe.name, key, architectures: recipe.architectures, packages, kernels, buildSeconds: Math.round((Date.now() - started) / 1000), builtAt: new Date().toISOString(), ...(leftOut.length ? { indexesLeftOut: leftOut } : {}) };
    writeFileSync(`${infoFile}.tmp`, JSON.stringify(info, null, 2));
    renameSync(`${infoFile}.tmp`, infoFile);
    log(`built the ${recipe.name} system base in ${info.buildSeconds} s`);
    return { dir, info, built: true };
  }, log);
}

/** name@range of every production dependency, transitively (what `npm install -g` resolves). */
function dependencySpecs(repoRoot: string): string[] {
  const specs = new Set<string>();
  for (const pkgJson of [join(repoRoot, "package.json"), ...productionPackages(repoRoot).map((p) => join(p, "package.json"))]) {
    const deps = (JSON.parse(readFileSync(pkgJson, "utf8")) as { dependencies?: Record<string, string> }).dependencies ?? {};
    for (const [name, range] of Object.entries(deps)) specs.add(`${name}@${range}`);
  }
  return [...specs].sort();
}

/**
 * The lab's layer over the Debian tree: the systemd unit that runs a scenario's steps on every
 * boot (from the read-only disk the runner attaches with serial "kexec-ts-lab"), and what test
 * images need: an fstab, a host name, no getty on the serial console (it flushes ttyS0 and eats
 * a step's output), no timers that wake up during a run.
 */
export const LAB_UNIT = "kexec-ts-lab.service";
export const STEPS_SERIAL = "kexec-ts-lab";
export const STEPS_DIR = "/run/kexec-ts-lab";
/** systemd's unit name for a device path (systemd-escape --path, then ".device"). */
export function deviceUnit(path: string): string {
  const escaped = path
    .replace(/^\/+|\/+$/g, "")
    .split("/")
    .map((part) => [...part].map((ch, i) => (/[A-Za-z0-9:_]/.test(ch) || (ch === "." && i > 0) ? ch : `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`)).join(""))
    .join("-");
  return `${escaped}.device`;
}
const STEPS_DEVICE_UNIT = deviceUnit(`/dev/disk/by-id/virtio-${STEPS_SERIAL}`);
const MASKED = ["serial-getty@ttyS0.service", "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer", "fstrim.timer", "systemd-tmpfiles-clean.timer"];

export function labLayerFiles(): { files: Map<string, string>; symlinks: Map<string, string> } {
  const files = new Map<string, string>();
  const symlinks = new Map<string, string>();
  files.set("etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n");
  files.set("etc/hostname", "kexec-ts-lab\n");
  files.set(`etc/systemd/system/${LAB_UNIT}`, [
    "# The kexec-ts lab (src/lab/system-image.ts): runs a scenario's steps for this boot and",
    "# reports on the serial console. The steps come from a read-only disk the lab attaches.",
    "[Unit]",
    "Description=kexec-ts lab scenario steps",
    "After=multi-user.target",
    `Wants=${STEPS_DEVICE_UNIT}`,
    `After=${STEPS_DEVICE_UNIT}`,
    // A capture kernel started by kdump-tools runs its own unit only; never steps there.
    "ConditionPathExists=!/proc/vmcore",
    "",
    "[Service]",
    // idle: start once the boot's jobs are dispatched, so systemd's status lines do not interleave with the steps.
    "Type=idle",
    `ExecStart=/bin/sh -c 'mkdir -p ${STEPS_DIR} && mount -o ro /dev/disk/by-id/virtio-${STEPS_SERIAL} ${STEPS_DIR} && exec sh ${STEPS_DIR}/run'`,
    "StandardOutput=tty",
    "StandardError=tty",
    "TTYPath=/dev/ttyS0",
    "TTYReset=no",
    "TTYVHangup=no",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n"));
  symlinks.set(`etc/systemd/system/multi-user.target.wants/${LAB_UNIT}`, `/etc/systemd/system/${LAB_UNIT}`);
  for (const unit of MASKED) symlinks.set(`etc/systemd/system/${unit}`, "/dev/null");
  return { files, symlinks };
}

function layerKey(): string {
  const { files, symlinks } = labLayerFiles();
  return sha(JSON.stringify([[...files], [...symlinks]])).slice(0, 12);
}

const KEEP_IMAGES = 3;
const IMAGE_SIZE_GIB = 6;

function touch(path: string): void {
  const now = new Date();
  try {
    utimesSync(path, now, now);
  } catch {
    // pruned by another process meanwhile
  }
}

/** Removes all but the most recently used images (a guest running from one keeps its file open). */
function pruneImages(dir: string, keep: string): void {
  const images = readdirSync(dir)
    .filter((f) => f.endsWith(".img") && f !== keep)
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { f } of images.slice(KEEP_IMAGES - 1)) {
    rmSync(join(dir, f), { force: true });
    rmSync(join(dir, f.replace(/\.img$/, ".json")), { force: true });
  }
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The image for a recipe with this checkout's kexec-ts: the base (built if missing), then the
 * kexec-ts layer (rebuilt when the `npm pack` tarball or the lab layer changes).
 */
export async function systemImage(name: SystemImageName, options: { repoRoot?: string; cache?: string; log?: (line: string) => void } = {}): Promise<SystemImage> {
  const recipe = SYSTEM_RECIPES[name];
  if (recipe === undefined) throw new KexecError("usage", `no system image named ${JSON.stringify(name)}`, { field: "image", actual: String(name), expected: Object.keys(SYSTEM_RECIPES).join(" | ") }, `use one of ${Object.keys(SYSTEM_RECIPES).join(", ")}`);
  const repoRoot = options.repoRoot ?? defaultRepoRoot();
  const cache = options.cache ?? labCacheDir();
  const log = options.log ?? ((l: string) => process.stderr.write(`kexec-ts lab: ${l}\n`));
  const started = Date.now();
  const base = await ensureBase(recipe, cache, log);
  const root = join(base.dir, "root");

  if (!existsSync(join(repoRoot, "dist", "cli", "main.js"))) {
    throw new KexecError("lab", `kexec-ts is not built: ${join(repoRoot, "dist/cli/main.js")} is missing`, { file: join(repoRoot, "dist/cli/main.js") }, "run `npm run build`");
  }
  mkdirSync(systemCacheDir(cache), { recursive: true });
  const work = mkdtempSync(join(systemCacheDir(cache), "work-"));
  try {
    // npm pack: what `npm install -g` gets from the registry. Its tarball has fixed mtimes, so its bytes name its content.
    const npm = need("npm", "npm");
    await run("npm pack", [npm, "pack", "--silent", "--pack-destination", work, repoRoot], { log: join(work, "pack.log"), timeoutSec: 300, cwd: repoRoot });
    const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
    if (tarball === undefined) throw new KexecError("lab", `npm pack left no tarball in ${work}`, { file: work }, "run `npm pack` in the checkout by hand to see why");
    const key = sha(`${base.info.key}\0${sha(readFileSync(join(work, tarball)))}\0${layerKey()}`).slice(0, 16);
    const imagesDir = join(base.dir, "images");
    const image = join(imagesDir, `${key}.img`);
    if (existsSync(image)) {
      touch(image);
      return { recipe, base: base.info, root, image, built: { base: base.built, image: false, seconds: Math.round((Date.now() - started) / 1000) } };
    }
    rootCheck();
    const unshare = need("unshare", "util-linux");
    const mke2fs = need("mke2fs", "e2fsprogs");
    mkdirSync(imagesDir, { recursive: true });
    return await withLock(join(imagesDir, `${key}.lock`), "building a system image", async () => {
      if (existsSync(image)) return { recipe, base: base.info, root, image, built: { base: base.built, image: false, seconds: Math.round((Date.now() - started) / 1000) } };
      const logFile = join(work, "image.log");
      // The dependencies come from a cache that only the host fills (it has the registry), so the install in the image runs offline.
      const npmCache = join(systemCacheDir(cache), "npm-cache");
      await run("npm cache add (kexec-ts's dependencies)", [npm, "cache", "add", "--cache", npmCache, ...dependencySpecs(repoRoot)], { log: logFile, timeoutSec: 600 });
      const layer = join(work, "layer");
      const { files, symlinks } = labLayerFiles();
      for (const [path, text] of files) {
        mkdirSync(dirname(join(layer, path)), { recursive: true });
        writeFileSync(join(layer, path), text);
      }
      for (const [path, target] of symlinks) {
        mkdirSync(dirname(join(layer, path)), { recursive: true });
        symlinkSync(target, join(layer, path));
      }
      for (const d of ["upper", "work", "merged"]) mkdirSync(join(work, d));
      const merged = join(work, "merged");
      const tmpImage = `${image}.${process.pid}.tmp`;
      const script = [
        "set -eu",
        `mount -t overlay overlay -o ${shq(`lowerdir=${root},upperdir=${join(work, "upper")},workdir=${join(work, "work")}`)} ${shq(merged)}`,
        `mount -t proc proc ${shq(join(merged, "proc"))}`,
        `mkdir -p ${shq(join(merged, "tmp/kexec-ts-install"))}`,
        `cp ${shq(join(work, tarball))} ${shq(join(merged, "tmp/kexec-ts-install", tarball))}`,
        `cp -r ${shq(npmCache)} ${shq(join(merged, "tmp/kexec-ts-install/npm-cache"))}`,
        `chroot ${shq(merged)} npm install --global --offline --no-audit --no-fund --cache /tmp/kexec-ts-install/npm-cache ${shq(`/tmp/kexec-ts-install/${tarball}`)}`,
        `chroot ${shq(merged)} kexec-ts --version`,
        `rm -rf ${shq(join(merged, "tmp/kexec-ts-install"))} ${shq(join(merged, "root/.npm"))}`,
        `umount ${shq(join(merged, "proc"))}`,
        `cp -a ${shq(`${layer}/.`)} ${shq(merged)}`,
        `rm -f ${shq(tmpImage)}`,
        `truncate -s ${IMAGE_SIZE_GIB}G ${shq(tmpImage)}`,
        `${mke2fs} -q -t ext4 -L kexec-ts-lab -d ${shq(merged)} ${shq(tmpImage)}`,
      ].join("\n");
      log(`installing kexec-ts (${tarball}) into the ${recipe.name} image (log: ${logFile})`);
      try {
        await run("installing kexec-ts into the system image", [unshare, "--mount", "--propagation", "private", "--fork", "sh", "-c", script], { log: logFile, timeoutSec: 1200 });
        renameSync(tmpImage, image);
      } finally {
        rmSync(tmpImage, { force: true });
      }
      writeFileSync(join(imagesDir, `${key}.json`), JSON.stringify({ tarball, base: base.info.key, layer: layerKey(), builtAt: new Date().toISOString(), repoRoot }, null, 2));
      pruneImages(imagesDir, `${key}.img`);
      const seconds = Math.round((Date.now() - started) / 1000);
      log(`system image ${relative(cache, image)} ready in ${seconds} s`);
      return { recipe, base: base.info, root, image, built: { base: base.built, image: true, seconds } };
    }, log);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The kernel and initrd a guest boots directly: the image's own /boot files for a lab kernel. */
export function imageKernel(img: SystemImage, labKernel: string): { vmlinuz: string; initrd: string; version: string } {
  const version = img.base.kernels[labKernel];
  if (version === undefined) {
    throw new KexecError("lab", `the ${img.recipe.name} system image has no kernel ${JSON.stringify(labKernel)}`, { field: "kernel", actual: labKernel, expected: Object.keys(img.base.kernels).join(" | ") }, `the ${img.recipe.name} image boots ${Object.keys(img.base.kernels).join(" or ")}`);
  }
  return { vmlinuz: join(img.root, "boot", `vmlinuz-${version}`), initrd: join(img.root, "boot", `initrd.img-${version}`), version };
}
