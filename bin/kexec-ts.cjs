#!/usr/bin/env node
"use strict";
/**
 * kexec-ts as installed (package.json "bin"). It runs dist/cli/kexec-ts.bundle.cjs, the whole
 * command line in one file (scripts/bundle.mjs), compiled with the V8 code cache made for it at
 * build time: Node 18 and 20 have no module.enableCompileCache, but vm.Script takes cachedData.
 * A cache from another V8 (another Node) is rejected by V8 itself and the bundle is compiled as
 * usual; without a bundle (tsc alone was run) the unbundled dist/cli/main.js runs instead.
 * KEXEC_TS_WRITE_CODE_CACHE=1 saves what V8 compiled during this run as the cache (the build does).
 */
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const Module = require("node:module");
const { pathToFileURL } = require("node:url");

const dist = path.join(__dirname, "..", "dist", "cli");
const bundle = path.join(dist, "kexec-ts.bundle.cjs");
const cacheFile = `${bundle}.${process.versions.v8}-${process.arch}.cache`;

let source;
try {
  // A #! line is not JavaScript inside the module wrapper: made a comment (same length, same line numbers).
  source = fs.readFileSync(bundle, "utf8").replace(/^#!/, "//");
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
  if (process.env.KEXEC_TS_DEBUG === "1") process.stderr.write(`kexec-ts: code cache ${cachedData === undefined ? `none at ${cacheFile}` : script.cachedDataRejected ? "rejected (another V8)" : "accepted"}\n`);
  if (process.env.KEXEC_TS_WRITE_CODE_CACHE === "1") {
    // At exit V8 has compiled every function this run called: the next run starts with their bytecode.
    process.on("exit", () => fs.writeFileSync(cacheFile, script.createCachedData()));
  }
  const bundled = new Module(bundle, module);
  bundled.filename = bundle;
  bundled.paths = Module._nodeModulePaths(dist);
  script.runInThisContext().call(bundled.exports, bundled.exports, Module.createRequire(bundle), bundled, bundle, dist);
}
