// npm run bench: every table of issue 15 in one run, written to bench/RESULTS.md.
//
//   npm run bench                          (npm run build, then this)
//   node bench/run.mjs [--only vmcore,threads0,plans,dumps,load] [--vmcores 1G,4G,16G] [--dumps 1G,16G,1T]
//                      [--repeat 2] [--rounds 5] [--runs 7] [--out bench/RESULTS.md]
//
// Inputs it makes when they are missing (in ${KEXEC_TS_CACHE:-~/.cache/kexec-ts}, never in git):
// real vmcores of 1, 4 and 16 GiB guests (dist/lab/capture-vmcore.js, QEMU), the sparse
// synthetic 16 GiB and 1 TiB vmcores made from the 1 GiB one (src/lab/synthetic-vmcore.ts), the
// synthetic machine snapshots (src/lab/synthetic-machine.ts, in a temporary directory). A ratio is
// never given for a run that failed, an output that did not read back, or an input that changed
// between the two tools' runs: the table says which of these happened instead.
//
// The hand-written "why" under each target in RESULTS.md is kept from run to run: the text between
// <!-- why:N --> and <!-- /why:N --> survives, everything else is rewritten.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, homedir, loadavg, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CA_CERTS_SET, fmt as f, timerCost } from "./lib.mjs";
import { MD_FLAG, SHORT_ROW_REPEAT, SHORT_ROW_S, bestRatio, compressors, realVmcores, renderVmcoreTable, vmcoreTable } from "./vmcore/bench.mjs";
import { DUMP_RUNS, dumpTable, planTable } from "./scale/bench.mjs";
import { runLoadBench } from "./load/bench.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..");
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const only = new Set(opt("--only", "vmcore,threads0,plans,dumps,load").split(","));
const outFile = opt("--out", join(here, "RESULTS.md"));
const cache = process.env.KEXEC_TS_CACHE ?? join(homedir(), ".cache", "kexec-ts");
const started = Date.now();
const log = (line) => process.stderr.write(`[bench ${((Date.now() - started) / 60000).toFixed(1)} min, load ${loadavg()[0].toFixed(1)}] ${line}\n`);
const results = {};
const loads = {};

function section(name, fn) {
  return async () => {
    if (!only.has(name)) return;
    const t0 = Date.now();
    const before = loadavg()[0];
    log(`${name}: start`);
    try {
      results[name] = await fn();
    } catch (e) {
      results[name] = { error: e instanceof Error ? e.message : String(e) };
      log(`${name}: failed: ${results[name].error}`);
    }
    loads[name] = { minutes: (Date.now() - t0) / 60000, loadBefore: before, loadAfter: loadavg()[0] };
    log(`${name}: done in ${loads[name].minutes.toFixed(1)} min`);
  };
}

/** The real vmcores target 1 names, captured in the lab when missing (1 GiB ~1 min, 4 GiB ~3 min, 16 GiB ~9 min). */
function ensureRealVmcores(sizes) {
  for (const size of sizes) {
    const name = size === "1G" ? "amd64-6.1" : `amd64-6.1-${size}`;
    const path = join(cache, "vmcores", `${name}.elf`);
    if (existsSync(path)) continue;
    log(`capturing a ${size} vmcore in the lab (${path})`);
    const r = spawnSync(process.execPath, [join(repo, "dist", "lab", "capture-vmcore.js"), "--mem", size], { stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0) throw new Error(`capturing the ${size} vmcore failed (exit ${r.status})`);
  }
  return sizes.map((s) => join(cache, "vmcores", `${s === "1G" ? "amd64-6.1" : `amd64-6.1-${s}`}.elf`));
}

const vmcoreSizes = opt("--vmcores", "1G,4G,16G").split(",");
const repeat = Number(opt("--repeat", "2"));
await section("vmcore", async () => vmcoreTable({ cores: ensureRealVmcores(vmcoreSizes), repeat, log }))();
await section("threads0", async () => vmcoreTable({ cores: ensureRealVmcores(vmcoreSizes), repeat, threads: "0", oneCpu: true, log }))();
await section("plans", async () => planTable({ runs: Number(opt("--runs", "7")) }))();
await section("dumps", async () => {
  ensureRealVmcores(["1G"]);
  return dumpTable({ sizes: opt("--dumps", "1G,16G,1T").split(","), log });
})();
await section("load", async () => runLoadBench({ rounds: Number(opt("--rounds", "5")) }))();

// ---- RESULTS.md ----

const previous = existsSync(outFile) ? readFileSync(outFile, "utf8") : "";
const why = (n, fallback) => {
  const m = new RegExp(`<!-- why:${n} -->\\n([\\s\\S]*?)<!-- /why:${n} -->`).exec(previous);
  return `<!-- why:${n} -->\n${m ? m[1] : `${fallback}\n`}<!-- /why:${n} -->`;
};
const version = (cmd, args, re = /.*/) => {
  const r = spawnSync(cmd, args, { encoding: "latin1" });
  return r.status === 0 || r.stdout ? (re.exec(`${r.stdout}${r.stderr}`)?.[0] ?? "?").trim() : "(not installed)";
};
const git = spawnSync("git", ["-C", repo, "log", "-1", "--format=%h %cs"], { encoding: "utf8" }).stdout.trim();
const failedSection = (name) => results[name]?.error ? `**The ${name} section failed: ${results[name].error}**` : undefined;
const ran = (name) => only.has(name) && results[name] && !results[name].error;
const when = (name) => (loads[name] ? ` (${loads[name].minutes.toFixed(1)} min; 1-minute load average ${f(loads[name].loadBefore, 1)} before, ${f(loads[name].loadAfter, 1)} after)` : "");

const out = [];
out.push("# Issue 15: where kexec-ts stands against kexec-tools and makedumpfile");
out.push("");
out.push(`Made by \`npm run bench\` (bench/run.mjs) at ${new Date().toISOString()} from ${git}, in ${((Date.now() - started) / 60000).toFixed(0)} minutes.`);
out.push(`Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${version("uname", ["-sr"])}; shared with other work while it ran (load averages per section below; on 2 CPUs a load of 2 is a busy machine).`);
out.push(`Versions: Node ${process.version}; ${version("makedumpfile", ["-v"], /makedumpfile: version \S+/)}; ${version("kexec", ["--version"], /kexec-tools \S+/)}; ${version("readelf", ["--version"], /GNU readelf.*$/m)}; ${version("qemu-system-x86_64", ["--version"], /QEMU emulator version \S+/)}; kexec-ts compresses with ${compressors()}.`);
out.push("");

// Target 1
out.push("## Target 1: vmcore save vs makedumpfile");
out.push("");
out.push("Goals: lzo -d 1 ≥ 1.0x, lzo -d 31 ≥ 1.0x, zlib -d 31 ≥ 1.2x, zlib -d 1 ≥ 1.9x; with `--threads 0` (one core, as in a capture kernel with nr_cpus=1) no row below 0.9x; peak RSS ≤ 64 MiB and flat; outputs the same size as makedumpfile's and read back by it.");
out.push("");
const goal1 = { "lzo 1": 1.0, "lzo 31": 1.0, "zlib 31": 1.2, "zlib 1": 1.9 };
for (const [name, title] of [["vmcore", "default threads"], ["threads0", "`--threads 0` on one CPU"]]) {
  if (!only.has(name)) continue;
  out.push(`### ${title}${when(name)}`);
  out.push("");
  if (failedSection(name)) { out.push(failedSection(name)); out.push(""); continue; }
  out.push(`Same vmcore, dump level and codec in one run; page cache dropped, then warm with that vmcore only; every output read back (\`makedumpfile --dump-dmesg\`; zstd by \`kexec-ts vmcore dmesg\`) and compared with the source's log. kexec-ts ran as installed: its bin, executed, whose #! line starts Node with the option of src/core/launch.ts. Each tool ran ${repeat} times per row, alternating, and ${SHORT_ROW_REPEAT} times where every run took under ${SHORT_ROW_S} s (a run of a tenth of a second moves by a tenth with the host's noise); wall is the fastest (slowest in brackets). Times are to the millisecond: wall timed around each run, user+sys CPU from getrusage, each less what timing \`true\` costs (${f(timerCost().wall * 1000, 1)} ms wall here; bench/lib.mjs timed()); GNU time, which gives the peak RSS, prints its times in hundredths cut down, a tenth of the shortest rows. kexec-ts fsyncs its output, makedumpfile does not; each output is read back and removed before the other tool runs, and before each run, untimed, \`sync\`: each starts from a page cache holding the vmcore only, and neither pays for writing back or reclaiming the other's output.${CA_CERTS_SET ? " Both ran without NODE_EXTRA_CA_CERTS, which this machine sets and which costs Node about 0.1 s of start (bench/lib.mjs RUN_ENV; the planning table below gives Node's start with it)." : ""}`);
  const fl = results[name].floor;
  if (fl.oneCpu) {
    out.push("");
    out.push("Both tools ran on one CPU (`taskset -c 0`, bench/vmcore/bench.mjs ONE_CPU), as in a capture kernel booted with nr_cpus=1, kdump-tools' default: V8's compiler and garbage collector threads take their time from that CPU too. Until stop 41 this table ran `--threads 0` on both CPUs, where those threads had the other one to themselves.");
  }
  out.push("");
  out.push(`*best possible* is a measured bound: the ratio kexec-ts would reach if, after its start (\`kexec-ts --version\`, median ${f(fl.startFloor, 3)} s here), it did the row's work at makedumpfile's own CPU cost (the same pages through the same codec library, in C) spread perfectly over ${fl.computeCores} core${fl.computeCores === 1 ? "" : "s"}: makedumpfile's wall / (start + its CPU / ${fl.computeCores}). Where it is below a goal, the goal is out of reach on this machine.`);
  if (fl.rss) {
    out.push("");
    out.push(`*Memory floor*, measured the same way: Node doing nothing peaks at ${f(fl.rss.node, 0)} MiB (\`node -e 0\`, started as the bin starts Node: src/core/launch.ts), and at ${f(fl.rss.nodeWithWorker, 0)} MiB with one idle worker thread (on two cores a save with the default threads has one when the dump is large enough to need it: for lzo, from 512 MiB of guessed dump; src/node/vmcore/save.ts autoThreads). What a save adds to that before the vmcore's size counts (the bundle, and the worker's bundle with one; koffi and the codec library; a batch's buffers; the file's mapping): \`vmcore save\` of a 4 MiB synthetic vmcore, lzo -d 1, peaks at ${f(fl.rss.save, 0)} MiB without a worker and ${f(fl.rss.saveWithWorker, 0)} MiB with one. Medians of 5 runs.`);
  }
  out.push("");
  out.push(renderVmcoreTable(results[name]));
  out.push("");
}
if (ran("vmcore") || ran("threads0")) {
  const rows = [...(results.vmcore?.rows ?? []), ...(results.threads0?.rows ?? [])].filter((r) => r.codec in MD_FLAG);
  const misses = [];
  // A miss says whether the goal was within reach at all (bench/vmcore/bench.mjs bestRatio).
  const reach = (r, floor, goal) => { const b = bestRatio(r, floor); return b < goal ? ` (out of reach: at best ${f(b)}x)` : ` (at best ${f(b)}x)`; };
  for (const r of results.vmcore?.rows ?? []) {
    if (!(r.codec in MD_FLAG)) continue;
    if (r.refused.length) misses.push(`${r.vmcore} -d ${r.level} ${r.codec}: no ratio (${r.refused.join("; ")})`);
    else if (r.md.wall / r.ts.wall < goal1[`${r.codec} ${r.level}`]) misses.push(`${r.vmcore} -d ${r.level} ${r.codec} ${f(r.md.wall / r.ts.wall)}x < ${goal1[`${r.codec} ${r.level}`]}x${reach(r, results.vmcore.floor, goal1[`${r.codec} ${r.level}`])}`);
  }
  for (const r of results.threads0?.rows ?? []) if (r.codec in MD_FLAG && !r.refused.length && r.md.wall / r.ts.wall < 0.9) misses.push(`--threads 0 on one CPU ${r.vmcore} -d ${r.level} ${r.codec} ${f(r.md.wall / r.ts.wall)}x < 0.9x${reach(r, results.threads0.floor, 0.9)}`);
  const rss = Math.max(...(results.vmcore?.rows ?? []).map((r) => r.ts.rssMiB));
  const rssFloor = results.vmcore?.floor?.rss;
  if (rss > 64) misses.push(`peak RSS up to ${f(rss, 0)} MiB > 64 MiB${rssFloor ? ` (Node alone ${f(rssFloor.node, 0)} MiB, with one idle worker thread ${f(rssFloor.nodeWithWorker, 0)} MiB; a save of a 4 MiB vmcore ${f(rssFloor.save, 0)} MiB, with one worker ${f(rssFloor.saveWithWorker, 0)} MiB)` : ""}`);
  const sizes = rows.filter((r) => !r.refused.length && r.ts.out !== r.md.out).map((r) => `${r.vmcore} -d ${r.level} ${r.codec}`);
  if (sizes.length) misses.push(`outputs of another size than makedumpfile's: ${sizes.join(", ")}`);
  out.push(`**Verdict: ${misses.length ? `not met** (${misses.length} misses): ${misses.join("; ")}.` : "met** on every row."}`);
  out.push("");
}
out.push(why(1, "(why: to be written after looking at this run's numbers)"));
out.push("");

// Target 2
out.push("## Target 2: start-up and load against kexec-tools");
out.push("");
out.push(`Goal: \`kexec-ts -l\` and \`-p\` with both syscalls, \`check\` and \`plan\`, each ≤ 1.5x the wall time of kexec-tools' \`kexec -l\`/\`-p\` with the same image and initrd, side by side in one lab guest (the initramfs tier: Debian 6.1 amd64 under QEMU TCG, one vCPU, Node ${process.version} and kexec-ts's bundle in the initramfs, Debian's kexec-tools copied in). Timed in the guest from /proc/uptime (10 ms steps), median of ${opt("--rounds", "5")} rounds; the tools alternate which goes first.${when("load")}`);
out.push("");
if (failedSection("load")) out.push(failedSection("load"));
else if (ran("load")) {
  const l = results.load;
  if (!l.ok) out.push(`**The guest failed: ${l.reason}**`);
  else {
    out.push("```");
    out.push(l.sizes.trim());
    out.push("```");
    out.push("");
    out.push("| kexec-ts | median s (max) | kexec-tools | median s (max) | ratio | ≤ 1.5x |");
    out.push("|---|---:|---|---:|---:|---|");
    for (const r of l.rows) out.push(`| ${r.what} | ${f(r.ts)} (${f(r.tsMax)}) | ${r.peer || "–"} | ${f(r.md)} (${f(r.mdMax)}) | ${r.ratio === undefined ? r.refused : `${f(r.ratio)}x`} | ${r.ratio === undefined ? "–" : r.outsideVerdict ? "outside the verdict" : r.ratio <= 1.5 ? "yes" : "no"} |`);
    out.push("");
    out.push("The check row is the crash load again with OpenSSL's AVX2 and SHA extension paths masked (`OPENSSL_ia32cap=\":~0x20000020\"`, bench/load/guest.sh): it measures what hashing the segments with AVX2 under QEMU's TCG costs, where kexec-tools hashes them with plain C. It is outside the verdict: a user's kexec-ts runs with OpenSSL's own choice.");
    out.push("");
    const rated = l.rows.filter((r) => r.peer && !r.outsideVerdict);
    const miss = rated.filter((r) => r.ratio === undefined || r.ratio > 1.5);
    out.push(`**Verdict: ${miss.length ? `not met** on ${miss.length} of ${rated.length}: ${miss.map((r) => `${r.what} ${r.ratio === undefined ? r.refused : `${f(r.ratio)}x`}`).join("; ")}.` : `met** on all ${rated.length}.`}`);
  }
}
out.push("");
out.push(why(2, "(why: to be written after looking at this run's numbers)"));
out.push("");

// Target 3
out.push("## Target 3: scale, by simulation");
out.push("");
out.push("### Planning on synthetic machines" + when("plans"));
out.push("");
if (failedSection("plans")) out.push(failedSection("plans"));
else if (ran("plans")) {
  const p = results.plans;
  out.push(`src/lab/synthetic-machine.ts scales the committed QEMU guest snapshots up: 64 TiB with 4-level paging and 4 PiB with 5-level, 4,096 System RAM ranges (2,048 in the firmware memmap, the rest hot-added), 1,024 CPUs' crash notes, crashkernel=2G,high plus 256M,low; the files sit on tmpfs, standing in for /proc and /sys. Each command is the installed \`kexec-ts\` (bin/kexec-ts.cjs) with a Debian 6.1 amd64 kernel and a ${f(p.inputs.initrdBytes / 2 ** 20, 0)} MiB initrd, ${opt("--runs", "7")} runs each, in rounds that take every command in turn; median wall ms (CPU ms: user + sys), timed as above: to the millisecond, less what timing \`true\` costs.`);
  out.push("");
  const cols = ["machine", "check -p", "plan -p", "check -l", "plan -l"];
  out.push(`| machine | RAM ranges | CPUs | ${cols.join(" | ")} |`);
  out.push(`|---|---:|---:|${cols.map(() => "---:").join("|")}|`);
  const cell = (t) => (t?.failed ? `failed: ${t.failed}` : `${f(t.wall, 0)} (${f(t.cpu, 0)})`);
  for (const r of p.rows) out.push(`| ${r.machine} | ${r.ranges} | ${r.cpus} | ${cols.map((c) => cell(r.times[c])).join(" | ")} |`);
  out.push("");
  out.push(`Floors on this machine: \`node -e 0\` ${f(p.floor.wall, 0)} ms (${f(p.floor.cpu, 0)}), \`kexec-ts --version\` ${f(p.version.wall, 0)} ms (${f(p.version.cpu, 0)}).${p.floorAsSet ? ` Every command ran without NODE_EXTRA_CA_CERTS, which this machine sets (bench/lib.mjs RUN_ENV); with it, \`node -e 0\` alone takes ${f(p.floorAsSet.wall, 0)} ms (${f(p.floorAsSet.cpu, 0)}).` : ""}`);
  out.push("");
  const big = p.rows.filter((r) => r.ranges >= 4096);
  const misses = big.flatMap((r) => ["check -p", "plan -p"].filter((c) => !(r.times[c]?.wall <= 100)).map((c) => `${r.machine} ${c} ${cell(r.times[c])}`));
  out.push(`**Verdict (check and plan -p ≤ 100 ms each on both models): ${misses.length ? `not met** by wall time: ${misses.join("; ")}.` : "met.**"}`);
  out.push("");
}
out.push("### The ELF core header with 4,096+ PT_LOADs");
out.push("");
out.push("`src/lab/synthetic-machine.test.ts` builds the crash plan for the 64 TiB model and has `readelf -h -l -W` read its core header: 4,099 PT_LOADs (one per RAM range outside the crash regions, plus the kernel text) and 1,025 PT_NOTEs, no complaint from readelf, offsets and sizes equal to the RAM ranges. It runs with `npm test`.");
out.push("");
out.push("### Dumps: cost against size" + when("dumps"));
out.push("");
if (failedSection("dumps")) out.push(failedSection("dumps"));
else if (ran("dumps")) {
  const d = results.dumps;
  out.push("The 1 GiB vmcore is a real guest's (capture-vmcore.js); 16 GiB and 1 TiB are made from it by src/lab/synthetic-vmcore.ts: nodes of 64 GiB above 4 GiB with 1 GiB holes between them, each a copy of the guest's first GiB (its struct pages, and the data of the pages -d 31 keeps) then free memory in order-10 buddy blocks and its own vmemmap, reachable through the guest's extended page tables and mem_section. Sparse on disk. Both tools: `-d 31`, lzo, after an untimed makedumpfile run that reads what both read into the page cache; then " + DUMP_RUNS.small + " timed runs each, alternating (" + DUMP_RUNS.large + " at 1 TiB), with an untimed `sync` before each; wall and CPU are the fastest run's (the slowest wall in brackets), RSS the highest. Each tool's first output is read back by `makedumpfile --dump-dmesg` and compared with the source's log, and its other outputs are the same size to the byte.");
  out.push("");
  out.push("| vmcore | RAM GiB | on disk GiB | md wall s | md CPU s | md RSS MiB | md out MiB | ts wall s | ts CPU s | ts RSS MiB | ts out MiB | md/ts wall | md s per TiB | ts s per TiB |");
  out.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of d.rows) {
    const tib = r.ramGiB / 1024;
    const ratio = r.refused.length ? `no ratio: ${r.refused.join("; ")}` : `${f(r.md.wall / r.ts.wall)}x`;
    out.push(`| ${r.size} | ${f(r.ramGiB, 1)} | ${f(r.allocatedGiB, 1)} | ${f(r.md.wall, 3)} (${f(r.md.slowest, 3)}) | ${f(r.md.cpu, 3)} | ${f(r.md.rssMiB, 0)} | ${f(r.md.out / 2 ** 20, 1)} | ${f(r.ts.wall, 3)} (${f(r.ts.slowest, 3)}) | ${f(r.ts.cpu, 3)} | ${f(r.ts.rssMiB, 0)} | ${f(r.ts.out / 2 ** 20, 1)} | ${ratio} | ${r.refused.length ? "–" : f(r.md.wall / tib, 0)} | ${r.refused.length ? "–" : f(r.ts.wall / tib, 0)} |`);
  }
  out.push("");
  const [small, , large] = [d.rows[0], d.rows[1], d.rows.at(-1)];
  if (small && large && !small.refused.length && !large.refused.length) {
    const grow = (a, b) => f(b / a, 0);
    out.push(`From ${small.size} to ${large.size} (${f(large.ramGiB / small.ramGiB, 0)}x the RAM): makedumpfile's time grows ${grow(small.md.wall, large.md.wall)}x and its peak RSS ${grow(small.md.rssMiB, large.md.rssMiB)}x; kexec-ts's time ${grow(small.ts.wall, large.ts.wall)}x and its peak RSS ${grow(small.ts.rssMiB, large.ts.rssMiB)}x.`);
    out.push("");
  }
}
out.push(why(3, "(why: to be written after looking at this run's numbers)"));
out.push("");

mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, `${out.join("\n")}\n`);
// The raw numbers beside the cache, not in git: every run's medians, spreads and statuses.
const raw = join(cache, "bench", `results-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
mkdirSync(dirname(raw), { recursive: true });
writeFileSync(raw, `${JSON.stringify({ results, loads }, (k, v) => (k === "stderr" ? undefined : v), 2)}\n`);
log(`written to ${outFile}; raw numbers in ${raw}`);
