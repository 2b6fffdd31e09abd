// Shared by the benches: timing a command, and telling that two tools ran on the same input.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LAUNCH_NODE_FLAGS } from "../dist/core/launch.js";

/**
 * The environment every timed tool runs in: this one without NODE_EXTRA_CA_CERTS. A machine
 * behind a TLS-inspecting proxy sets it (the bench's own machine does), and Node then parses
 * every certificate of that bundle before it runs a line: `node -e 0` took 130 ms of CPU with
 * it and 30 ms without. kexec-ts makes no TLS connection, neither a login shell nor the kdump
 * service sets the variable, and makedumpfile and kexec do not pay for it. Where it is set,
 * the planning table also gives Node's start with it, so the difference is shown.
 */
export const RUN_ENV = (() => {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
})();
export const CA_CERTS_SET = process.env.NODE_EXTRA_CA_CERTS !== undefined;

/**
 * kexec-ts as installed: its bin, executed, so that its #! line starts Node with the option of
 * src/core/launch.ts, as the command `kexec-ts` does. (`node bin/kexec-ts.cjs` would leave it
 * out, and measure more memory than a user's runs take.)
 */
export const KEXEC_TS = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "kexec-ts.cjs");

/** A bare Node started the way the bin starts it (the floors): its arguments, and the environment for timed(). */
export function launchedNode(args) {
  return { cmd: process.execPath, args: [...LAUNCH_NODE_FLAGS, ...args], env: RUN_ENV };
}

/**
 * CPU seconds (user + sys) of this process's children that have ended and been waited for, from
 * getrusage(RUSAGE_CHILDREN) through koffi: to the microsecond, where GNU time prints hundredths.
 * undefined where koffi cannot load libc (timed() then takes GNU time's).
 */
const childrenCpu = (() => {
  try {
    const koffi = createRequire(import.meta.url)("koffi");
    const getrusage = koffi.load("libc.so.6").func("int getrusage(int who, void *usage)");
    // struct rusage begins with ru_utime and ru_stime, each a struct timeval of two longs.
    const long = process.arch === "ia32" ? 4 : 8;
    const usage = Buffer.alloc(256);
    const word = (i) => Number(long === 8 ? usage.readBigInt64LE(i * 8) : usage.readInt32LE(i * 4));
    return () => {
      if (getrusage(-1, usage) !== 0) throw new Error("getrusage(RUSAGE_CHILDREN) failed");
      return word(0) + word(1) / 1e6 + word(2) + word(3) / 1e6;
    };
  } catch {
    return undefined;
  }
})();

/**
 * One run under GNU time (in RUN_ENV unless options.env says otherwise): wall and user+sys seconds,
 * peak RSS (GNU time's %M), exit status, stderr. Wall is timed here and CPU taken from getrusage:
 * GNU time prints both in hundredths, cut down, not rounded (a 0.049 s run reads 0.04): a tenth
 * of a 0.1 s run, and ratios of such runs moved by as much. What the timing itself costs
 * (starting GNU time around the command: timerCost) is taken off both, the same for every tool.
 */
export function timed(cmd, args, options = {}) {
  const cost = timerCost();
  const r = timedRaw(cmd, args, options);
  return { ...r, wall: r.wall - cost.wall, cpu: r.cpu - cost.cpu };
}

function timedRaw(cmd, args, options) {
  const cpuBefore = childrenCpu?.();
  const start = process.hrtime.bigint();
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %U %S %M", cmd, ...args], { encoding: "latin1", maxBuffer: 1 << 26, env: RUN_ENV, ...options });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const cpuAfter = childrenCpu?.();
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr ?? "");
  if (!m) return { status: r.status ?? -1, wall: NaN, cpu: NaN, rssMiB: NaN, sync: NaN, stderr: r.stderr ?? String(r.error) };
  const sync = /fsync ([\d.]+) s/.exec(r.stderr ?? "");
  const cpu = cpuBefore === undefined || cpuAfter === undefined ? Number(m[2]) + Number(m[3]) : cpuAfter - cpuBefore;
  return { status: r.status, wall, cpu, rssMiB: Number(m[4]) / 1024, sync: sync ? Number(sync[1]) : NaN, stderr: r.stderr };
}

let measuredCost;
/** What timing a command adds to it: the medians of timing `true` 15 times (wall, CPU seconds), measured once. */
export function timerCost() {
  if (measuredCost === undefined) {
    const runs = Array.from({ length: 15 }, () => timedRaw("true", [], {}));
    const median = (k) => runs.map((r) => r[k]).sort((a, b) => a - b)[7];
    measuredCost = { wall: median("wall"), cpu: median("cpu") };
  }
  return measuredCost;
}

/**
 * What identifies an input file: where it is, its size and times, and a digest of its first
 * and last MiB and of 1 MiB at each 1/16th (cheap for a sparse TiB file, and any rewrite of
 * it by a capture or a generator changes the times anyway).
 */
export function inputIdentity(path) {
  const st = statSync(path);
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let i = 0; i <= 16; i++) {
      const at = Math.max(0, Math.min(st.size - buf.length, Math.floor((st.size / 16) * i)));
      const n = readSync(fd, buf, 0, buf.length, at);
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return { path, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, sample: h.digest("hex") };
}

export function sameIdentity(a, b) {
  return ["path", "dev", "ino", "size", "mtimeMs", "ctimeMs", "sample"].every((k) => a[k] === b[k]);
}

/** The 1-minute load average, to print beside numbers taken on a shared machine. */
export function load() {
  return loadavg()[0];
}

export const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "–");
