// Shared by the benches: timing a command, and telling that two tools ran on the same input.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
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

/** One run under GNU time (in RUN_ENV unless options.env says otherwise): wall and user+sys seconds, peak RSS, exit status, stderr. */
export function timed(cmd, args, options = {}) {
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %U %S %M", cmd, ...args], { encoding: "latin1", maxBuffer: 1 << 26, env: RUN_ENV, ...options });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr ?? "");
  if (!m) return { status: r.status ?? -1, wall: NaN, cpu: NaN, rssMiB: NaN, sync: NaN, stderr: r.stderr ?? String(r.error) };
  const sync = /fsync ([\d.]+) s/.exec(r.stderr ?? "");
  return { status: r.status, wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rssMiB: Number(m[4]) / 1024, sync: sync ? Number(sync[1]) : NaN, stderr: r.stderr };
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
