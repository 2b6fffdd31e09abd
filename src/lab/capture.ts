/**
 * Machine-state capture: boot a guest with a given kernel, command line, memory and CPU, let
 * it write its view of /proc and /sys into a directory, and bring that directory back to
 * testdata/snapshots/<name>/ (the layout `--root DIR` reads). The guest runs `kexec-ts snapshot`
 * when this checkout has it built; until then, or with mode "busybox", a shell fallback copies
 * the files the planner is known to read.
 *
 *   node dist/lab/capture.js NAME --kernel amd64-6.1 --append "crashkernel=256M@1968M nokaslr" --mem 4G --cpu max
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { KexecError } from "../core/errors.js";
import type { UserArch } from "../core/initramfs/elf-deps.js";
import { buildInitramfs, defaultRepoRoot, describeInitramfs } from "./initramfs.js";
import { findKernel } from "./kernels.js";
import { runGuest, writeTree, type GuestResult } from "./qemu.js";
import { runEntryPoint } from "../node/entry.js";

export type CaptureMode = "auto" | "kexec-ts" | "busybox";

export interface CaptureOptions {
  /** testdata/snapshots/<name>. */
  name: string;
  kernel: string;
  append?: string;
  mem?: string;
  cpu?: string;
  smp?: number;
  /** Default: the kernel's own arch. */
  userArch?: UserArch;
  mode?: CaptureMode;
  /** Guest shell text that fills $SNAPSHOT_DIR; overrides mode. */
  command?: string;
  /** Default <repo>/testdata/snapshots. */
  destRoot?: string;
  repoRoot?: string;
  onLine?: (line: string) => void;
}

export interface CaptureResult {
  dir: string;
  files: string[];
  mode: "kexec-ts" | "busybox" | "command";
  guest: GuestResult;
}

const GUEST_DIR = "/tmp/snapshot";

/**
 * Files the planner reads (DESIGN.md "Facts that matter"), copied with their paths. `cat`,
 * not `cp`: /proc and /sys files report size 0 or 4096 whatever they hold.
 */
export const BUSYBOX_SNAPSHOT_COMMAND = [
  `D="$SNAPSHOT_DIR"`,
  `for f in /proc/iomem /proc/cmdline /proc/cpuinfo /proc/version /proc/meminfo /proc/sys/kernel/kexec_load_disabled \\`,
  `    /sys/kernel/kexec_loaded /sys/kernel/kexec_crash_loaded /sys/kernel/kexec_crash_size /sys/kernel/security/lockdown \\`,
  `    /sys/firmware/efi/systab /sys/kernel/boot_params/version /sys/kernel/boot_params/data; do`,
  `  [ -r "$f" ] || continue`,
  `  mkdir -p "$D$(dirname "$f")" && cat "$f" > "$D$f" 2>/dev/null || rm -f "$D$f"`,
  `done`,
  `for e in /sys/firmware/memmap/*; do`,
  `  [ -d "$e" ] || continue`,
  `  mkdir -p "$D$e" && for f in start end type; do cat "$e/$f" > "$D$e/$f"; done`,
  `done`,
].join("\n");

function kexecTsHasSnapshot(repoRoot: string): boolean {
  return existsSync(join(repoRoot, "dist", "cli", "main.js")) && existsSync(join(repoRoot, "dist", "node", "snapshot.js"));
}

export async function captureSnapshot(options: CaptureOptions): Promise<CaptureResult> {
  if (!/^[A-Za-z0-9._-]+$/.test(options.name)) {
    throw new KexecError("usage", `snapshot name ${JSON.stringify(options.name)} must be letters, digits, ._-`, { field: "name", actual: options.name }, "choose a name like qemu-amd64-6.1-crash256M");
  }
  const repoRoot = options.repoRoot ?? defaultRepoRoot();
  const kernel = findKernel(options.kernel);
  const userArch = options.userArch ?? kernel.kernelArch;
  const wanted = options.mode ?? "auto";
  let mode: CaptureResult["mode"];
  let command: string;
  if (options.command !== undefined) {
    mode = "command";
    command = options.command;
  } else if (wanted === "kexec-ts" || (wanted === "auto" && kexecTsHasSnapshot(repoRoot))) {
    if (!kexecTsHasSnapshot(repoRoot)) {
      throw new KexecError("lab", `kexec-ts snapshot is not built in ${repoRoot} (dist/node/snapshot.js is missing)`, { file: join(repoRoot, "dist/node/snapshot.js") },
        "run `npm run build`, or capture with mode busybox");
    }
    mode = "kexec-ts";
    command = `kexec-ts snapshot "$SNAPSHOT_DIR"`;
  } else {
    mode = "busybox";
    command = BUSYBOX_SNAPSHOT_COMMAND;
  }

  const initramfs = await buildInitramfs({
    userArch,
    node: mode === "kexec-ts",
    kexecTs: mode === "kexec-ts" ? { repoRoot } : false,
    init: {
      title: `kexec-ts lab capture of ${options.name}`,
      steps: [{ name: "snapshot", run: `SNAPSHOT_DIR=${GUEST_DIR}\nmkdir -p "$SNAPSHOT_DIR"\n${command}`, extract: GUEST_DIR }],
    },
  });
  options.onLine?.(describeInitramfs(initramfs));
  const guest = await runGuest({
    name: `capture-${options.name}`,
    kernel: options.kernel,
    initrd: initramfs.path,
    append: options.append ?? "",
    mem: options.mem ?? (mode === "kexec-ts" ? "2G" : "1G"),
    cpu: options.cpu ?? "max",
    smp: options.smp ?? 1,
    expect: ["init", "snapshot", "done"],
    ...(options.onLine !== undefined ? { onLine: options.onLine } : {}),
  });
  if (guest.outcome !== "ok") {
    throw new KexecError("lab", `capture ${options.name}: ${guest.outcome}: ${guest.reason}`, { field: "outcome", actual: guest.outcome },
      `console log: ${guest.outDir}/console.log; reproduce: ${guest.commandLine}`);
  }
  const entries = guest.extractedFiles["snapshot"] ?? [];
  const files = entries.filter((e) => e.type === "file").map((e) => e.name.replace(/^\.\//, ""));
  if (files.length === 0) {
    throw new KexecError("lab", `capture ${options.name}: the guest wrote nothing into ${GUEST_DIR}`, { field: "snapshot" }, `see the step output in ${guest.outDir}/console.log`);
  }

  const destRoot = options.destRoot ?? join(repoRoot, "testdata", "snapshots");
  const dir = join(destRoot, options.name);
  const staging = `${dir}.${process.pid}.tmp`;
  rmSync(staging, { recursive: true, force: true });
  writeTree(entries, staging);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  renameSync(staging, dir);
  // Provenance beside the tree, not in it, so the tree stays exactly what --root reads.
  writeFileSync(
    `${dir}.capture.json`,
    JSON.stringify({ name: options.name, kernel: kernel.name, kernelVersion: kernel.version, append: options.append ?? "", mem: options.mem ?? null, cpu: options.cpu ?? "max", smp: options.smp ?? 1, userArch, mode, qemu: guest.commandLine.replace(/ -initrd \S+/, " -initrd <lab initramfs>").replace(/ -D \S+/, "") }, null, 2) + "\n",
  );
  return { dir, files: files.sort(), mode, guest };
}

function parseArgs(argv: string[]): CaptureOptions {
  const options: Partial<CaptureOptions> = {};
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new KexecError("usage", `${flag} needs a value`, { field: flag }, "capture.js NAME --kernel K [--append S] [--mem M] [--cpu C] [--smp N] [--user-arch x86_64|i386] [--mode auto|kexec-ts|busybox] [--dest DIR]");
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case "--kernel": options.kernel = value(i++, a); break;
      case "--append": options.append = value(i++, a); break;
      case "--mem": options.mem = value(i++, a); break;
      case "--cpu": options.cpu = value(i++, a); break;
      case "--smp": options.smp = Number(value(i++, a)); break;
      case "--user-arch": options.userArch = value(i++, a) as UserArch; break;
      case "--mode": options.mode = value(i++, a) as CaptureMode; break;
      case "--command": options.command = value(i++, a); break;
      case "--dest": options.destRoot = value(i++, a); break;
      default:
        if (a.startsWith("-") || options.name !== undefined) throw new KexecError("usage", `unexpected argument ${a}`, { field: a }, "capture.js NAME --kernel K [--append S] [--mem M] [--cpu C] [--smp N] [--user-arch x86_64|i386] [--mode auto|kexec-ts|busybox] [--dest DIR]");
        options.name = a;
    }
  }
  if (options.name === undefined || options.kernel === undefined) {
    throw new KexecError("usage", "usage: capture.js NAME --kernel K [--append S] [--mem M] [--cpu C] [--smp N] [--user-arch x86_64|i386] [--mode auto|kexec-ts|busybox] [--dest DIR]", {}, "give a snapshot NAME and --kernel, e.g. capture.js qemu-amd64-6.1 --kernel amd64-6.1");
  }
  return options as CaptureOptions;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runEntryPoint("kexec-ts lab capture", async () => {
    const r = await captureSnapshot({ ...parseArgs(process.argv.slice(2)), onLine: (l) => (l.startsWith("initramfs ") ? console.log(l) : undefined) });
    console.log(`captured ${r.files.length} files (${r.mode}) into ${r.dir} in ${(r.guest.durationMs / 1000).toFixed(1)} s`);
    return 0;
  });
}
