/**
 * Runs a lab guest under QEMU (TCG) and watches its serial console: the markers /init prints
 * (init-script.ts), a kernel panic, a reset (with -no-reboot QEMU exits instead of rebooting,
 * so a triple fault ends the process), or silence past a stage's bound. The console log and the
 * exact command line are always kept, so a failure can be reproduced by pasting one line.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, readFileSync, createWriteStream, accessSync, constants as fsConstants } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, delimiter, resolve } from "node:path";
import { KexecError } from "../core/errors.js";
import type { UserArch } from "../core/initramfs/elf-deps.js";
import { ConsoleWatcher, lastLines, type ExpectedMarker, type MarkerTime, type StepResult } from "./console.js";
import { findKernel, SETUP_HINT } from "./kernels.js";
import { safeRelativePath, type TarEntry } from "../core/archive/tar.js";

export { decodeExtract, type ExpectedMarker, type MarkerTime, type StepResult } from "./console.js";

export type GuestOutcome =
  | "ok"            // every expected marker appeared
  | "panic"         // "Kernel panic" on the console (and the run did not allow it)
  | "reset"         // QEMU exited before the markers: the CPU reset (triple fault) or the guest rebooted
  | "timeout"       // a stage took longer than its bound; QEMU was killed
  | "step-failed"   // a step exited nonzero
  | "extract-error" // a file sent by the guest did not decode or verify
  | "qemu-error";   // QEMU could not start the machine

export interface GuestSpec {
  /** Names the run in messages and its output directory. */
  name: string;
  /** A lab kernel by short name ("amd64-6.1") or a vmlinuz path with the arch it runs. */
  kernel: string | { path: string; arch: UserArch };
  initrd: string;
  /** Added after "console=ttyS0 panic=-1 no_timer_check". */
  append?: string;
  /** QEMU -m, default "1G". */
  mem?: string;
  /** QEMU -cpu, default "max". */
  cpu?: string;
  smp?: number;
  /** More QEMU arguments (a different machine, a device). */
  qemuArgs?: string[];
  /**
   * Raw virtio disks (/dev/vda, /dev/vdb...), created sparse in the run directory; the host
   * reads them after the run (how a capture kernel carries a vmcore out). The guest kernel
   * needs virtio_pci and virtio_blk (modules in Debian's 6.1).
   */
  disks?: { sizeMiB: number }[];
  /**
   * Existing images attached before `disks`, in order (the first is /dev/vda). A `serial`
   * names the disk in the guest: /dev/disk/by-id/virtio-<serial>.
   */
  drives?: GuestDrive[];
  /**
   * The guest may reboot (a kdump capture kernel reboots when it has saved the dump): QEMU
   * restarts it instead of exiting (no -no-reboot). A triple fault then restarts it too, so
   * such a run relies on its marker bounds.
   */
  reboot?: boolean;
  expect: (string | ExpectedMarker)[];
  /** Bound for the first marker (boot to /init), default 180 s: TCG on a busy machine. */
  bootTimeoutSec?: number;
  /** Bound between later markers, default 120 s. */
  stepTimeoutSec?: number;
  /** Kdump scenarios panic on purpose; then a panic is not a failure. */
  allowPanic?: boolean;
  /** Where console.log and command.sh go; default <tmp>/kexec-ts-lab/<name>. */
  outDir?: string;
  /** Write files the guest sends into <extractTo>/<step name>/. */
  extractTo?: string;
  /** Called with every console line as it arrives. */
  onLine?: (line: string) => void;
}

export interface GuestDrive {
  file: string;
  format: "raw" | "qcow2";
  serial?: string;
  readonly?: boolean;
  /** Writes go to a temporary overlay that QEMU drops at exit (it survives the guest's reboots). */
  snapshot?: boolean;
}

export interface GuestResult {
  name: string;
  outcome: GuestOutcome;
  /** One line saying what happened, with the evidence. */
  reason: string;
  markersSeen: MarkerTime[];
  missing: string[];
  steps: Record<string, StepResult>;
  extractedFiles: Record<string, TarEntry[]>;
  log: string[];
  commandLine: string;
  outDir: string;
  durationMs: number;
  /** QEMU's -d log noticed a triple fault. */
  tripleFault: boolean;
  /** Host paths of spec.disks, in order. */
  disks: string[];
}

function shellWord(arg: string): string {
  return /^[A-Za-z0-9_.,:=/+@%-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellCommandLine(argv: string[]): string {
  return argv.map(shellWord).join(" ");
}

export function findOnPath(program: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir === "") continue;
    const p = join(dir, program);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function qemuBinary(arch: UserArch): string {
  const program = arch === "x86_64" ? "qemu-system-x86_64" : "qemu-system-i386";
  const path = findOnPath(program);
  if (path === undefined) {
    throw new KexecError("lab", `${program} is not installed`, { expected: program }, `apt-get install qemu-system-x86, or ${SETUP_HINT}`);
  }
  return path;
}

export interface QemuInvocation {
  argv: string[];
  kernelPath: string;
  arch: UserArch;
}

export function qemuInvocation(spec: GuestSpec, debugLog?: string, disks: string[] = []): QemuInvocation {
  const { path: kernelPath, arch } =
    typeof spec.kernel === "string" ? (({ vmlinuz, kernelArch }) => ({ path: vmlinuz, arch: kernelArch }))(findKernel(spec.kernel)) : spec.kernel;
  if (!existsSync(kernelPath)) throw new KexecError("lab", `kernel ${kernelPath} does not exist`, { file: kernelPath }, SETUP_HINT);
  if (!existsSync(spec.initrd)) throw new KexecError("lab", `initramfs ${spec.initrd} does not exist`, { file: spec.initrd }, "build it first (runScenario does), or check the path");
  // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can time out
  // and panic ("IO-APIC + timer doesn't work!", seen with two suites' guests on 2 cores); the
  // check proves nothing about kexec, and virtualised guests commonly skip it.
  const append = ["console=ttyS0", "panic=-1", "no_timer_check", spec.append ?? ""].join(" ").trim();
  const argv = [
    qemuBinary(arch),
    "-accel", "tcg",
    "-cpu", spec.cpu ?? "max",
    "-m", spec.mem ?? "1G",
    "-smp", String(spec.smp ?? 1),
    "-nographic", ...(spec.reboot === true ? [] : ["-no-reboot"]),
    "-net", "none",
    "-kernel", resolve(kernelPath),
    "-initrd", resolve(spec.initrd),
    "-append", append,
    ...(debugLog !== undefined ? ["-d", "cpu_reset,guest_errors", "-D", debugLog] : []),
    ...(spec.drives !== undefined
      ? // -device, not if=virtio: the PCI order, and so vda, vdb..., is the order given here.
        [...spec.drives, ...disks.map((file): GuestDrive => ({ file, format: "raw" }))].flatMap((d, i) => [
          "-drive", `if=none,id=drive${i},file=${resolve(d.file)},format=${d.format}${d.readonly === true ? ",readonly=on" : ""}${d.snapshot === true ? ",snapshot=on" : ""}`,
          "-device", `virtio-blk-pci,drive=drive${i}${d.serial !== undefined ? `,serial=${d.serial}` : ""}`,
        ])
      : disks.flatMap((d) => ["-drive", `file=${resolve(d)},format=raw,if=virtio`])),
    ...(spec.qemuArgs ?? []),
  ];
  return { argv, kernelPath, arch };
}

const PANIC = /Kernel panic - not syncing/;

/**
 * <tmp>/kexec-ts-lab/<name>-XXXXXX: unique, because several test processes (and several people
 * on one machine) run guests at once. Runs older than a day are removed.
 */
export function freshRunDir(name: string): string {
  const base = join(tmpdir(), "kexec-ts-lab");
  mkdirSync(base, { recursive: true });
  const dayAgo = Date.now() - 24 * 3600 * 1000;
  for (const entry of readdirSync(base)) {
    try {
      if (statSync(join(base, entry)).mtimeMs < dayAgo) rmSync(join(base, entry), { recursive: true, force: true });
    } catch {
      // another process removed it first
    }
  }
  return mkdtempSync(join(base, `${name.replace(/[^A-Za-z0-9._-]/g, "_")}-`));
}

/** Boots the guest and waits for `spec.expect` in order; never throws for a guest failure. */
export async function runGuest(spec: GuestSpec): Promise<GuestResult> {
  const outDir = spec.outDir ?? freshRunDir(spec.name);
  mkdirSync(outDir, { recursive: true });
  const debugLog = join(outDir, "qemu-debug.log");
  writeFileSync(debugLog, "");
  const disks = (spec.disks ?? []).map((d, i) => {
    const path = join(outDir, `disk${i}.img`);
    writeFileSync(path, "");
    truncateSync(path, d.sizeMiB * 1024 * 1024);
    return path;
  });
  const { argv } = qemuInvocation(spec, debugLog, disks);
  const commandLine = shellCommandLine(argv);
  writeFileSync(join(outDir, "command.sh"), `#!/bin/sh\n# ${spec.name}: reproduce by running this line\n${commandLine}\n`, { mode: 0o755 });
  const consoleFile = createWriteStream(join(outDir, "console.log"));

  const watcher = new ConsoleWatcher(spec.expect, { allowPanic: spec.allowPanic === true });
  const log = watcher.log;
  let outcome: GuestOutcome | undefined;
  let reason = "";

  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));

  let timer: NodeJS.Timeout | undefined;
  const finish = (o: GuestOutcome, why: string): void => {
    if (outcome !== undefined) return;
    outcome = o;
    reason = why;
  };
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const armTimer = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    if (outcome !== undefined && outcome !== "ok") return;
    const waitingFor = watcher.waitingFor;
    // After the last marker: give the guest a while to power off by itself.
    const seconds = waitingFor === undefined ? 30 : waitingFor.timeoutSec ?? (watcher.next === 0 ? spec.bootTimeoutSec ?? 180 : spec.stepTimeoutSec ?? 120);
    timer = setTimeout(() => {
      if (waitingFor === undefined) {
        kill();
        return;
      }
      const after = watcher.lastMarker !== undefined ? `after marker ${watcher.lastMarker}` : "after start";
      finish("timeout", `no marker ${waitingFor.name} within ${seconds} s ${after}; QEMU killed. Last console lines:\n${lastLines(log)}`);
      kill();
    }, seconds * 1000);
  };

  const onLine = (raw: string): void => {
    if (outcome !== undefined && outcome !== "ok") {
      log.push(raw.replace(/\r/g, ""));
    } else {
      const event = watcher.feed(raw, elapsed());
      if (event?.kind === "complete") {
        finish("ok", `all ${watcher.expected.length} markers seen`);
        armTimer();
      } else if (event?.kind === "marker" && event.expected) {
        armTimer();
      } else if (event?.kind === "fail") {
        finish(event.outcome, event.reason);
        // After a panic, panic=-1 reboots at once and -no-reboot turns that into an exit; let the rest of the trace arrive.
        if (event.outcome === "panic") setTimeout(kill, 2000);
        else kill();
      }
    }
    const line = log[log.length - 1]!;
    consoleFile.write(`${line}\n`);
    spec.onLine?.(line);
  };

  let pending = "";
  child.stdout.on("data", (d: Buffer) => {
    pending += d.toString("latin1");
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });

  armTimer();
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.on("error", (e) => {
      finish("qemu-error", `cannot run ${argv[0]}: ${e.message}`);
      resolveExit({ code: null, signal: null });
    });
    child.on("close", (code, signal) => resolveExit({ code, signal }));
  });
  if (pending !== "") onLine(pending);
  if (timer !== undefined) clearTimeout(timer);
  await new Promise<void>((r) => consoleFile.end(r));

  const debug = existsSync(debugLog) ? readFileSync(debugLog, "latin1") : "";
  const tripleFault = /triple fault/i.test(debug);
  if (outcome === undefined) {
    const last = watcher.lastMarker !== undefined ? `after marker ${watcher.lastMarker}` : "before any marker";
    if (exit.code !== 0 && exit.code !== null && log.length === 0) {
      finish("qemu-error", `QEMU exited with status ${exit.code}: ${stderr.trim()}`);
    } else if (log.some((l) => PANIC.test(l))) {
      finish("panic", `the kernel panicked ${last}: ${log.find((l) => PANIC.test(l))!.trim()}`);
    } else {
      const powerDown = log.some((l) => /reboot: Power down/.test(l));
      const why = tripleFault ? "the CPU triple-faulted (QEMU -d log)" : powerDown ? "the guest powered off" : "the machine reset (a triple fault or a reboot; -no-reboot makes QEMU exit)";
      const state = cpuStateAtReset(debug);
      finish("reset", `QEMU exited ${last}, waiting for ${watcher.waitingFor?.name ?? "?"}: ${why}.${state !== undefined ? ` CPU state at the reset: ${state}.` : ""} The console stopped at:\n${lastLines(log)}`);
    }
  }
  const { markersSeen, steps, extractedFiles } = watcher;
  if (spec.extractTo !== undefined) writeExtracted(extractedFiles, spec.extractTo);
  const result: GuestResult = {
    name: spec.name,
    outcome: outcome!,
    reason,
    markersSeen,
    missing: watcher.missing,
    steps,
    extractedFiles,
    log,
    commandLine,
    outDir,
    durationMs: elapsed(),
    tripleFault,
    disks,
  };
  writeFileSync(join(outDir, "result.json"), JSON.stringify({ ...result, log: undefined, extractedFiles: Object.keys(extractedFiles) }, null, 2));
  return result;
}

/**
 * With `-d cpu_reset` QEMU dumps the registers each time a CPU resets, before resetting it, so
 * after a triple fault the last dump is where the guest died. The dumps at power-on show the
 * zeroed or reset-vector state and are not worth reporting.
 */
export function cpuStateAtReset(debugLog: string): string | undefined {
  const blocks = debugLog.split(/^CPU Reset \(CPU \d+\)$/m);
  const last = blocks[blocks.length - 1];
  if (blocks.length < 2 || last === undefined) return undefined;
  const ip = /\b(RIP|EIP)=([0-9a-f]+)/.exec(last);
  const cr = /CR0=([0-9a-f]+) CR2=([0-9a-f]+) CR3=([0-9a-f]+) CR4=([0-9a-f]+)/.exec(last);
  if (ip === null || cr === null) return undefined;
  const ipValue = BigInt(`0x${ip[2]}`);
  if (ipValue === 0n || ipValue === 0xfff0n) return undefined;
  return `${ip[1]}=${ip[2]} CR0=${cr[1]} CR2=${cr[2]} CR3=${cr[3]} CR4=${cr[4]}`;
}

/** Writes tar entries under `dir`, refusing paths that leave it. Symlinks stay symlinks. */
export function writeTree(entries: TarEntry[], dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const e of entries) {
    const rel = safeRelativePath(e.name);
    if (rel === undefined) continue;
    const target = join(dir, rel);
    if (e.type === "dir") mkdirSync(target, { recursive: true });
    else if (e.type === "file" || e.type === "symlink") {
      mkdirSync(dirname(target), { recursive: true });
      rmSync(target, { force: true });
      if (e.type === "file") writeFileSync(target, e.data);
      else symlinkSync(e.linkName, target);
    }
  }
}

/** Writes each extracted tree to <dir>/<step name>/. */
export function writeExtracted(extracted: Record<string, TarEntry[]>, dir: string): void {
  for (const [name, entries] of Object.entries(extracted)) writeTree(entries, join(dir, name.replace(/\//g, "_")));
}

/** True when QEMU and the lab kernels are present; otherwise why not (for tests that skip). */
export function labAvailable(kernels: string[] = []): { ok: true } | { ok: false; why: string } {
  if (findOnPath("qemu-system-x86_64") === undefined) return { ok: false, why: `qemu-system-x86_64 not installed (${SETUP_HINT})` };
  try {
    for (const k of kernels) findKernel(k);
  } catch (e) {
    const hint = e instanceof KexecError && e.hint !== undefined ? `; hint: ${e.hint}` : "";
    return { ok: false, why: `${(e as Error).message}${hint}` };
  }
  return { ok: true };
}
