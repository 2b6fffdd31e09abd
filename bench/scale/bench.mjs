// Scale by simulation (issue 15, target 3), two tables:
//
//   planning: `machine`, `check` and `plan` on synthetic machines (src/lab/synthetic-machine.ts:
//             64 TiB 4-level and 4 PiB 5-level, 4,096 RAM ranges, 1,024 CPUs, crashkernel=,high
//             plus ,low), beside the real QEMU guest they were scaled from; median wall time of
//             N runs of the CLI, each a fresh process, as a user runs it, in rounds over all
//             the commands.
//   dumps:    makedumpfile -l -d 31 and kexec-ts vmcore save -d 31 --compress lzo on sparse
//             synthetic vmcores (src/lab/synthetic-vmcore.ts) of 16 GiB and 1 TiB made from the
//             real 1 GiB guest's, and on that guest's own: wall, CPU, peak RSS, cost per TiB.
//
//   npm run build && node bench/scale/bench.mjs [--runs 7] [--dumps 1G,16G,1T] [--no-dumps] [--no-plans]
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CA_CERTS_SET, KEXEC_TS as cli, RUN_ENV, inputIdentity, launchedNode, sameIdentity, timed } from "../lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const cacheDir = process.env.KEXEC_TS_CACHE ?? join(homedir(), ".cache", "kexec-ts");

/**
 * One cell of the planning table: a command, run once per round. The rounds go over every cell
 * in turn, so that a few busy seconds on a shared host spread over all the cells instead of
 * landing on the few commands that happened to run then (in a run of 7 in a row, the 4 PiB
 * model's plan -p once measured 150 ms where the 64 TiB model's measured 100, and interleaved
 * the two take the same time). Every run's exit status must be in `okStatus`, or the cell says
 * why it has no number.
 */
function cell(cmd, args, okStatus, env = RUN_ENV) {
  return { cmd, args, okStatus, env, wall: [], cpu: [], failed: undefined };
}
// The installed entry point (bundle and code cache), run as a user runs it: through its #! line.
const cliCell = (args, okStatus = [0, 1]) => cell(cli, args, okStatus);
// Node's start, as the bin starts it; `extraEnv`: the machine's own environment on top (NODE_EXTRA_CA_CERTS).
const nodeFloorCell = (extraEnv = {}) => {
  const { cmd, args, env } = launchedNode(["-e", "0"]);
  return cell(cmd, args, [0], { ...env, ...extraEnv });
};

function sample(c) {
  if (c.failed) return;
  const r = timed(c.cmd, c.args, { env: c.env });
  if (!c.okStatus.includes(r.status)) {
    c.failed = `exit ${r.status}: ${r.stderr.trim().split("\n").filter((l) => !l.startsWith("TIME ")).slice(-2).join(" / ")}`;
    return;
  }
  c.wall.push(r.wall * 1000);
  c.cpu.push(r.cpu * 1000);
}

/** Median wall and CPU (user + sys) milliseconds of a cell's fresh processes, as a user runs them. On a shared machine wall time includes waiting for a CPU; CPU time is what the command itself cost. */
function summary(c) {
  if (c.failed) return { failed: c.failed };
  const med = (xs) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];
  return { wall: med(c.wall), cpu: med(c.cpu), wallMax: Math.max(...c.wall) };
}

/** A Debian amd64 kernel from the lab cache and an initrd of a real size (the lab's Node initramfs). */
async function planInputs(dir) {
  const { cachedKernels } = await import(join(repo, "dist", "node", "kernel-cache.js"));
  const kernel = cachedKernels().find((k) => k.flavour === "amd64");
  if (!kernel) throw new Error("no Debian amd64 kernel in the cache: run bash .ci/setup-debian.sh");
  const { buildInitramfs } = await import(join(repo, "dist", "lab", "initramfs.js"));
  const built = await buildInitramfs({ userArch: "x86_64", init: { steps: [] }, node: true, kexecTs: true });
  // A copy of our own: the lab's cache of built images is shared and may be cleaned while we run.
  const initrd = join(dir, "initrd.img");
  copyFileSync(built.path, initrd);
  return { kernel: kernel.vmlinuz, initrd, initrdBytes: built.bytes };
}

export async function planTable({ runs = 7 } = {}) {
  const { SCALE_MODELS, readBaseSnapshot, syntheticMachineFiles, writeSnapshotDir } = await import(join(repo, "dist", "lab", "synthetic-machine.js"));
  // On tmpfs when there is one: the files stand in for /proc and /sys, which live in memory too.
  const dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "kexec-ts-scale-"));
  const inputs = await planInputs(dir);
  const machines = [{ name: "qemu-amd64-6.1-high-6G (the real guest)", root: join(repo, "testdata", "snapshots", "qemu-amd64-6.1-high-6G"), ranges: 3, cpus: 1 }];
  for (const [name, o] of Object.entries(SCALE_MODELS)) {
    const root = join(dir, name);
    writeSnapshotDir(root, syntheticMachineFiles(await readBaseSnapshot(o.paging), o));
    machines.push({ name, root, ranges: o.ramRanges, cpus: o.cpus });
  }
  const rows = [];
  try {
    const floor = nodeFloorCell();
    // Node's start as this machine's own environment would have it (lib.mjs RUN_ENV).
    const floorAsSet = CA_CERTS_SET ? nodeFloorCell(process.env) : undefined;
    const version = cliCell(["--version"], [0]);
    const cells = [floor, ...(floorAsSet ? [floorAsSet] : []), version];
    // Each row's cells by column, sampled with all the others below.
    const rowCells = new Map();
    for (const m of machines) {
      const common = [inputs.kernel, `--initrd=${inputs.initrd}`, "--append=console=ttyS0 irqpoll nr_cpus=1 reset_devices", "--root", m.root];
      const byColumn = { machine: cliCell(["machine", "--root", m.root], [0]) };
      for (const what of ["-p", "-l"]) {
        byColumn[`check ${what}`] = cliCell(["check", what, ...common]);
        byColumn[`plan ${what}`] = cliCell(["plan", "-c", what, ...common]);
      }
      const row = { machine: m.name, ranges: m.ranges, cpus: m.cpus, times: {} };
      rowCells.set(row, byColumn);
      cells.push(...Object.values(byColumn));
      rows.push(row);
    }
    for (let round = 0; round < runs; round++) for (const c of cells) sample(c);
    for (const [row, byColumn] of rowCells) row.times = Object.fromEntries(Object.entries(byColumn).map(([k, c]) => [k, summary(c)]));
    return { rows, floor: summary(floor), floorAsSet: floorAsSet && summary(floorAsSet), version: summary(version), inputs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The synthetic vmcores live in the cache beside the real one they are made from (made once, reused). */
export function syntheticPath(size) {
  return join(cacheDir, "vmcores", "synthetic", `amd64-6.1-${size}.elf`);
}

export async function ensureSynthetic(size, log = () => {}) {
  const real = join(cacheDir, "vmcores", "amd64-6.1.elf");
  if (size === "1G") return real;
  const out = syntheticPath(size);
  // Remade when the source is newer (a fresh capture) or the file is missing.
  if (existsSync(out) && statSync(out).mtimeMs > statSync(real).mtimeMs) return out;
  mkdirSync(dirname(out), { recursive: true });
  const { writeSyntheticVmcore, parseSize } = await import(join(repo, "dist", "lab", "synthetic-vmcore.js"));
  const t0 = Date.now();
  writeSyntheticVmcore({ source: real, out, ram: parseSize(size), log });
  log(`${out}: made in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return out;
}

function dmesgOf(file, dir) {
  const out = join(dir, `dmesg-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync("makedumpfile", ["--dump-dmesg", file, out], { encoding: "latin1" });
  return r.status === 0 && existsSync(out) ? readFileSync(out, "latin1") : undefined;
}

/** Timed runs per tool and row, alternating: one run of a second moved by a second with the host (16 GiB: 1.83 s of wall for 0.84 s of CPU in one run, 0.55-0.65 s by hand). The 1 TiB row takes half a minute a run. */
export const DUMP_RUNS = { small: 3, large: 2 };

/** The fastest and slowest of a tool's runs, with the fastest run's CPU and the highest peak RSS. */
function bestOf(runs, out) {
  const ok = runs.filter((r) => r.status === 0);
  const fastest = ok.reduce((a, b) => (b.wall < a.wall ? b : a), ok[0] ?? runs[0]);
  return { ...fastest, slowest: Math.max(...runs.map((r) => r.wall)), rssMiB: Math.max(...runs.map((r) => r.rssMiB)), runs: runs.length, ...out };
}

export async function dumpTable({ sizes = ["1G", "16G", "1T"], log = () => {} } = {}) {
  const rows = [];
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-scale-dump-"));
  try {
    for (const size of sizes) {
      const core = await ensureSynthetic(size, log);
      const st = statSync(core);
      const { openVmcore } = await import(join(repo, "dist", "core", "vmcore", "vmcore.js"));
      const { openRandomAccess } = await import(join(repo, "dist", "node", "vmcore", "file.js"));
      const f = openRandomAccess(core);
      const ramBytes = openVmcore(f, core).memory.ranges.reduce((n, r) => n + Number(r.end - r.start), 0);
      f.close();
      const before = inputIdentity(core);
      const reference = dmesgOf(core, dir);
      const md = join(dir, "md.kdump");
      const ts = join(dir, "ts.kdump");
      rmSync(md, { force: true });
      rmSync(ts, { force: true });
      // Untimed, a first save reads what both tools read (the mem_map, the pages -d 31 keeps): the
      // timed makedumpfile ran first on a cold page cache before, and paid reads that kexec-ts, right
      // after it, did not (1 GiB: 0.87 s of wall for 0.13 s of CPU, against 0.29 s warm).
      timed("makedumpfile", ["-l", "-d", "31", core, md]);
      rmSync(md, { force: true });
      const runs = ramBytes >= 2 ** 40 ? DUMP_RUNS.large : DUMP_RUNS.small;
      const mdRuns = [];
      const tsRuns = [];
      const outSizes = { md: new Set(), ts: new Set() };
      let mdOk = false;
      let tsOk = false;
      // Alternating; before each run, untimed, `sync`: neither pays for writing back the other's output.
      for (let i = 0; i < runs; i++) {
        spawnSync("sync");
        const a = timed("makedumpfile", ["-l", "-d", "31", core, md]);
        mdRuns.push(a);
        if (a.status === 0) {
          outSizes.md.add(statSync(md).size);
          // The first output is read back: the others must be the same size, which the set says.
          if (i === 0) mdOk = reference !== undefined && dmesgOf(md, dir) === reference;
        }
        rmSync(md, { force: true });
        spawnSync("sync");
        const b = timed(cli, ["vmcore", "save", "--dump-level", "31", "--compress", "lzo", core, ts]);
        tsRuns.push(b);
        if (b.status === 0) {
          outSizes.ts.add(statSync(ts).size);
          if (i === 0) tsOk = reference !== undefined && dmesgOf(ts, dir) === reference;
        }
        rmSync(ts, { force: true });
      }
      const a = bestOf(mdRuns, { ok: mdOk, out: outSizes.md.size === 1 ? [...outSizes.md][0] : NaN });
      const b = bestOf(tsRuns, { ok: tsOk, out: outSizes.ts.size === 1 ? [...outSizes.ts][0] : NaN });
      const same = sameIdentity(before, inputIdentity(core));
      const failed = (rs) => rs.find((r) => r.status !== 0);
      const refused = [
        failed(mdRuns) ? `makedumpfile exited ${failed(mdRuns).status}` : undefined,
        failed(tsRuns) ? `kexec-ts exited ${failed(tsRuns).status}` : undefined,
        !failed(mdRuns) && !mdOk ? "makedumpfile's output does not read back" : undefined,
        !failed(tsRuns) && !tsOk ? "kexec-ts's output does not read back" : undefined,
        !failed(mdRuns) && outSizes.md.size > 1 ? "makedumpfile's outputs differ in size between runs" : undefined,
        !failed(tsRuns) && outSizes.ts.size > 1 ? "kexec-ts's outputs differ in size between runs" : undefined,
        same ? undefined : "the input changed between the runs",
      ].filter(Boolean);
      rows.push({ size, file: core, runs, ramGiB: ramBytes / 2 ** 30, apparentGiB: st.size / 2 ** 30, allocatedGiB: (st.blocks * 512) / 2 ** 30, md: a, ts: b, refused });
      log(`${size}: makedumpfile ${a.wall.toFixed(3)} s (${a.slowest.toFixed(3)}) ${a.rssMiB.toFixed(0)} MiB | kexec-ts ${b.wall.toFixed(3)} s (${b.slowest.toFixed(3)}) ${b.rssMiB.toFixed(0)} MiB${refused.length ? ` | ${refused.join("; ")}` : ""}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
  const log = (l) => console.error(l);
  if (!argv.includes("--no-plans")) {
    const p = await planTable({ runs: Number(opt("--runs", "7")) });
    console.log(JSON.stringify(p, null, 2));
  }
  if (!argv.includes("--no-dumps")) {
    const d = await dumpTable({ sizes: opt("--dumps", "1G,16G,1T").split(","), log });
    console.log(JSON.stringify(d, (k, v) => (k === "stderr" ? undefined : v), 2));
  }
}
