/**
 * Host steps: shell commands a scenario runs on the host once its guest has passed, to
 * check what the guest left behind (a vmcore dd'd to a virtio disk) with the tools a user
 * has: the built `kexec-ts` CLI, `makedumpfile`, and crash and drgn with the kernel's debug vmlinux. Each step is `sh -e -c RUN` in a
 * scratch directory, with stdout and stderr in <run dir>/host-NAME.log; its output is
 * checked like a guest step's, as step "host/NAME". The disk images and the scratch
 * directory are removed afterwards, pass or fail: they are as big as the guest's RAM
 * (KEXEC_TS_LAB_KEEP=1 keeps them for a post-mortem), except a vmcore the scenario asks to keep
 * (`keepVmcore`): that one goes to the cache when the cache has none, where the unit tests of
 * real dumps look for it.
 * Steps run asynchronously, so a suite running scenarios side by side keeps reading the other
 * guests' consoles while a long step (a vmcore save) runs.
 */
import { spawn } from "node:child_process";
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { KexecError, isKexecError } from "../core/errors.js";
import { readElfCore } from "../core/vmcore/elf-core.js";
import { cachedVmcorePath } from "../node/kernel-cache.js";
import { openRandomAccess } from "../node/vmcore/file.js";
import type { StepResult } from "./console.js";
import { defaultRepoRoot } from "./initramfs.js";
import { debugVmlinuxPath, i386NodeRoot, SETUP_HINT } from "./kernels.js";
import { findOnPath } from "./qemu.js";

export interface HostStep {
  /** Letters, digits, "._-"; checks name it "host/NAME". */
  name: string;
  /** Shell text for `sh -e -c`. */
  run: string;
  /** Default 300 s. */
  timeoutSec?: number;
}

export interface HostSpec {
  /** Index into the scenario's disks of one that holds an ELF core from offset 0: cut to the core's length and named by $VMCORE. */
  vmcoreDisk?: number;
  /**
   * What `makedumpfile` runs: the host's (Debian's x86_64 build, which reads x86_64 dumps only),
   * or Debian's i386 build from the lab cache, run on the host through its own loader (i386 dumps).
   */
  makedumpfile?: "host" | "i386";
  /** A cached kernel's short name ("amd64-6.1"): its debug vmlinux is $DEBUG_VMLINUX, for crash and drgn. */
  debugVmlinux?: string;
  steps: HostStep[];
  /**
   * After every step passed, keep $VMCORE in the cache as vmcores/NAME.elf, as
   * `node dist/lab/capture-vmcore.js --name NAME` would, when the cache has none: CI's unit
   * tests of a real dump then read the one its e2e run captured instead of booting the guest
   * again. One already there stays (tests running meanwhile may be reading it, and a dump
   * swapped under a test that opens it twice reads as two mixed dumps); capture-vmcore.js
   * replaces it on purpose.
   */
  keepVmcore?: string;
}

export interface HostResult {
  ok: boolean;
  steps: Record<string, StepResult>;
  /** What failed, with the last lines of its output. */
  failure?: string;
  /** Where host.keepVmcore put the vmcore (undefined when the cache had one already). */
  keptVmcore?: string;
}

function script(path: string, body: string): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A bin directory with `kexec-ts` (this checkout's dist/cli/main.js) and the chosen `makedumpfile`. */
function toolDir(dir: string, spec: HostSpec, repoRoot: string): void {
  mkdirSync(dir, { recursive: true });
  const cli = join(repoRoot, "dist", "cli", "main.js");
  if (!existsSync(cli)) throw new KexecError("lab", `host steps need the built CLI, and ${cli} is missing`, { file: cli }, "run `npm run build`");
  script(join(dir, "kexec-ts"), `exec ${quote(process.execPath)} ${quote(cli)} "$@"`);
  if (spec.makedumpfile === "i386") {
    const root = i386NodeRoot();
    const program = join(root, "usr", "bin", "makedumpfile");
    if (!existsSync(program)) throw new KexecError("lab", `no i386 makedumpfile: ${program} is missing`, { file: program }, SETUP_HINT);
    const libs = [join(root, "lib", "i386-linux-gnu"), join(root, "usr", "lib", "i386-linux-gnu")].join(":");
    script(join(dir, "makedumpfile"), `exec ${quote(join(root, "lib", "ld-linux.so.2"))} --library-path ${quote(libs)} ${quote(program)} "$@"`);
  } else if (spec.makedumpfile === "host") {
    const host = findOnPath("makedumpfile");
    if (host === undefined) throw new KexecError("lab", "makedumpfile is not installed on the host", { expected: "makedumpfile" }, "apt-get install makedumpfile, or " + SETUP_HINT);
    script(join(dir, "makedumpfile"), `exec ${quote(host)} "$@"`);
  }
}

/** Cuts a disk image that starts with an ELF core to the end of its last PT_LOAD's data. */
export function cutToElfCore(disk: string): bigint {
  const file = openRandomAccess(disk);
  let end = 0n;
  try {
    const core = readElfCore(file, disk);
    for (const l of core.loads) if (l.p_offset + l.p_filesz > end) end = l.p_offset + l.p_filesz;
  } finally {
    file.close();
  }
  truncateSync(disk, Number(end));
  return end;
}

function tail(text: string, n = 15): string {
  const lines = text.trimEnd().split("\n");
  return lines.slice(-n).map((l) => `    ${l}`).join("\n");
}

interface Exit {
  status: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** `sh -e -c RUN` with stdout and stderr to `fd`, killed after `timeoutMs`. */
function runShell(run: string, cwd: string, env: NodeJS.ProcessEnv, fd: number, timeoutMs: number): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn("sh", ["-e", "-c", run], { cwd, env, stdio: ["ignore", fd, fd], timeout: timeoutMs, killSignal: "SIGKILL" });
    child.on("error", (error) => resolve({ status: null, signal: null, error }));
    child.on("close", (status, signal) => resolve({ status, signal }));
  });
}

/**
 * Moves `file` to the cache as the vmcore `name` unless one is there, through a temporary name so
 * a reader never sees half a file; undefined when the cache already had it.
 */
function keepInCache(file: string, name: string): string | undefined {
  const dest = cachedVmcorePath(name);
  if (existsSync(dest)) return undefined;
  mkdirSync(dirname(dest), { recursive: true });
  const tmp = `${dest}.${process.pid}.tmp`;
  try {
    renameSync(file, tmp);
  } catch {
    copyFileSync(file, tmp); // the run directory is on another file system
  }
  renameSync(tmp, dest);
  return dest;
}

/** Runs `spec.steps` in order and stops at the first that fails; `disks` are the guest's disk images. */
export async function runHostSteps(spec: HostSpec, disks: string[], outDir: string, repoRoot = defaultRepoRoot()): Promise<HostResult> {
  const work = join(outDir, "host");
  const steps: Record<string, StepResult> = {};
  try {
    rmSync(work, { recursive: true, force: true });
    toolDir(join(work, "bin"), spec, repoRoot);
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(work, "bin")}:${process.env["PATH"] ?? "/usr/bin:/bin"}`, WORK: work };
    disks.forEach((d, i) => (env[`DISK${i}`] = d));
    // Scripts the steps may run (lab/host/*.sh).
    env["LAB_DIR"] = join(repoRoot, "lab");
    if (spec.debugVmlinux !== undefined) env["DEBUG_VMLINUX"] = debugVmlinuxPath(spec.debugVmlinux);
    if (spec.vmcoreDisk !== undefined) {
      const disk = disks[spec.vmcoreDisk];
      if (disk === undefined) throw new KexecError("lab", `host.vmcoreDisk ${spec.vmcoreDisk}: the run has ${disks.length} disk(s)`, { field: "host.vmcoreDisk" }, "give the scenario a disk (\"disks\") for the host step to read");
      cutToElfCore(disk);
      env["VMCORE"] = disk;
    }
    for (const step of spec.steps) {
      const logPath = join(outDir, `host-${step.name}.log`);
      const fd = openSync(logPath, "w");
      let r: Exit;
      try {
        r = await runShell(step.run, work, env, fd, (step.timeoutSec ?? 300) * 1000);
      } finally {
        closeSync(fd);
      }
      const output = readFileSync(logPath, "utf8");
      steps[`host/${step.name}`] = { rc: r.status ?? undefined, output: output.split("\n") };
      if (r.status !== 0) {
        const why = r.error !== undefined ? r.error.message : r.signal !== null ? `killed by ${r.signal}${r.signal === "SIGKILL" ? ` (over ${step.timeoutSec ?? 300} s)` : ""}` : `exit ${r.status}`;
        return { ok: false, steps, failure: `host step ${step.name} failed (${why}); its output (${logPath}) ends:\n${tail(output)}` };
      }
    }
    if (spec.keepVmcore !== undefined && env["VMCORE"] !== undefined) {
      try {
        const kept = keepInCache(env["VMCORE"], spec.keepVmcore);
        return { ok: true, steps, ...(kept !== undefined ? { keptVmcore: kept } : {}) };
      } catch (e) {
        return { ok: false, steps, failure: `could not keep the vmcore as ${cachedVmcorePath(spec.keepVmcore)}: ${(e as Error).message}` };
      }
    }
    return { ok: true, steps };
  } catch (e) {
    if (!isKexecError(e)) throw e;
    return { ok: false, steps, failure: `host steps not run: ${e.message}${e.hint !== undefined ? ` (hint: ${e.hint})` : ""}` };
  } finally {
    if (process.env["KEXEC_TS_LAB_KEEP"] !== "1") {
      for (const d of disks) rmSync(d, { force: true });
      rmSync(work, { recursive: true, force: true });
    }
  }
}
