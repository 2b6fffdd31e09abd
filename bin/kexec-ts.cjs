#!/usr/bin/env -S node --v8-pool-size=1
"use strict";
/**
 * kexec-ts as installed (package.json "bin"). It runs dist/cli/kexec-ts.bundle.cjs, the whole
 * command line in one file (scripts/bundle.mjs), compiled with the V8 code cache made for it at
 * build time: Node 18 and 20 have no module.enableCompileCache, but vm.Script takes cachedData.
 * A cache from another V8 (another Node) is rejected by V8 itself and the bundle is compiled as
 * usual; without a bundle (tsc alone was run) the unbundled dist/cli/main.js runs instead.
 * KEXEC_TS_WRITE_CODE_CACHE=1 saves what V8 compiled during this run as the cache (the build does).
 *
 * The #! line gives Node an option that only counts when it starts (src/core/launch.ts says why;
 * a test holds the line to it). `node bin/kexec-ts.cjs` runs without it: the same results, with
 * more memory.
 *
 * Short commands run without V8's optimising compiler (jitMode below), and a code cache is only
 * accepted under the V8 flags it was made with: there is one cache for each mode.
 */
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const Module = require("node:module");
const { pathToFileURL } = require("node:url");

/** Commands whose loops run for seconds (vmcore save, makedumpfile, kdump's save and estimate, the lab, a report with a vmcore, inspect --vmlinux). */
const LONG_RUNNING = new Set(["vmcore", "makedumpfile", "kdump", "lab", "report", "inspect"]);
/** V8 10 (Node 18) has --opt; V8 11 (Node 20) keeps it as an alias of --turbofan. Other versions keep V8's defaults. */
const V8_MAJOR = Number(process.versions.v8.split(".")[0]);
const CAN_CHOOSE = V8_MAJOR === 10 || V8_MAJOR === 11;

/**
 * "baseline": check, plan, machine and kexec's own actions (-l, -p, -u, -e...) are over in a
 * fraction of a second, too soon for TurboFan's code to pay for itself. It compiled their hot
 * loops (thousands of memory ranges and program headers on large machines) on background
 * threads, and the process waited for those compiles before it could exit: `plan -p` on the
 * 64 TiB model took 155 ms with it and 124 ms without (CPU 190 → 120 ms, peak RSS 77 → 68 MiB).
 * Ignition and Sparkplug still run everything. "full" for the long commands, where TurboFan's
 * code is several times faster (inflating a 60 MB kernel: 0.3 s against 2.3 s); a short command
 * that turns out to need such a loop turns TurboFan back on (src/node/jit.ts).
 * Only speed depends on this choice, never behaviour. KEXEC_TS_JIT=full|baseline chooses (the
 * build makes both caches so).
 */
function jitMode() {
  if (!CAN_CHOOSE) return "full";
  const chosen = process.env.KEXEC_TS_JIT;
  if (chosen === "full" || chosen === "baseline") return chosen;
  if (path.basename(process.argv[1] || "") === "makedumpfile") return "full";
  return process.argv.slice(2).some((a) => LONG_RUNNING.has(a)) ? "full" : "baseline";
}
const jit = jitMode();
// Before the bundle is compiled: the flags are part of what the code cache must match.
if (jit === "baseline") require("node:v8").setFlagsFromString("--no-opt");
// The choice, for src/node/jit.ts: the one place that knows whether TurboFan was turned off.
globalThis[Symbol.for("kexec-ts.jit")] = jit;

const dist = path.join(__dirname, "..", "dist", "cli");
const bundle = path.join(dist, "kexec-ts.bundle.cjs");
const cacheFile = `${bundle}.${process.versions.v8}-${process.arch}${jit === "baseline" ? "-baseline" : ""}.cache`;

let source;
try {
  // A #! line is not JavaScript inside the module wrapper: made a comment (same length, same line numbers).
  // As latin1, not utf8: the build keeps the bundle ASCII (scripts/bundle.mjs), and for its
  // megabyte Node's UTF-8 decoding took 2-3 ms of every start, latin1 under 1 (stop 42).
  const bytes = fs.readFileSync(bundle);
  if (bytes[0] === 0x23 && bytes[1] === 0x21) bytes[0] = bytes[1] = 0x2f;
  source = bytes.toString("latin1");
} catch {
  source = undefined;
}
if (source === undefined) {
  import(pathToFileURL(path.join(dist, "main.js")).href);
} else {
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const script = new vm.Script(Module.wrap(source), { filename: bundle, ...(cachedData ? { cachedData } : {}) });
  if (process.env.KEXEC_TS_DEBUG === "1") process.stderr.write(`kexec-ts: code cache ${cachedData === undefined ? `none at ${cacheFile}` : script.cachedDataRejected ? "rejected (another V8, or other V8 flags)" : "accepted"} (${jit} JIT)\n`);
  if (process.env.KEXEC_TS_WRITE_CODE_CACHE === "1") {
    // At exit V8 has compiled every function this run called: the next run starts with their bytecode.
    process.on("exit", () => fs.writeFileSync(cacheFile, script.createCachedData()));
  } else {
    // V8 doubles its young generation (up to 2 x 16 MiB) whenever much of it survives a collection,
    // and a save's batches keep it growing. Kept at its first size instead: a 16 GiB -d 31 lzo save
    // peaked at 62 MiB instead of 65, in the same time (stop 27). Set only now, after the bundle is
    // compiled: the code cache is checked against the flags, and a cache written with this one set
    // (at exit, above) would not match the next run's flags at compile time.
    require("node:v8").setFlagsFromString("--semi-space-growth-factor=1");
    // Recorded for src/node/jit.ts, which sets it again after a worker thread's start undoes it.
    globalThis[Symbol.for("kexec-ts.semi-space-growth")] = 1;
  }
  const bundled = new Module(bundle, module);
  bundled.filename = bundle;
  bundled.paths = Module._nodeModulePaths(dist);
  script.runInThisContext().call(bundled.exports, bundled.exports, Module.createRequire(bundle), bundled, bundle, dist);
}
