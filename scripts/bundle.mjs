#!/usr/bin/env node
/**
 * The installed command line's start-up (issue 15, target 2). `npm run build` runs this after tsc:
 *
 *   1. esbuild bundles dist/cli/main.js and everything it imports (lazily imported command
 *      modules included, still evaluated only when used) into one CommonJS file,
 *      dist/cli/kexec-ts.bundle.cjs. Node then resolves, reads and compiles one file instead of
 *      a hundred ES modules, each found through the ESM resolver (most of start-up in a slow VM).
 *      koffi stays outside (native code); every module keeps its own import.meta.url, rewritten to
 *      the URL its unbundled twin has in dist/, so workers, createRequire and relative paths
 *      resolve as before (dist/ ships whole beside the bundle).
 *   2. bin/kexec-ts.cjs compiles the bundle with V8's code cache (vm.Script cachedData: Node 18 and
 *      20 have no module.enableCompileCache). The cache is made here by running the bundle once
 *      and saving what V8 compiled, so the functions a command runs are bytecode already. It is
 *      named for this V8 version; another Node compiles as usual. There are two, one for each JIT
 *      mode bin/kexec-ts.cjs starts the bundle in, as V8 takes a cache only under the flags it was
 *      made with, and each is made by the work its mode runs:
 *        - baseline (check, plan, machine, kexec's actions): `demo` on the sample snapshot;
 *        - full (vmcore, makedumpfile, kdump...): `vmcore save` of a small synthetic vmcore
 *          (src/core/vmcore/testing.ts). Made by `demo`, it held none of a save's functions:
 *          a save of that vmcore started in 59 ms against 51, and a 1 GiB -d 31 save's peak RSS
 *          was 2.5 MiB higher (the cache read whole, and the save's functions compiled besides).
 *
 *   node scripts/bundle.mjs [--no-cache]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const outfile = join(dist, "cli", "kexec-ts.bundle.cjs");

const { build } = await import("esbuild");

/** Each module's import.meta.url becomes the URL of its file in dist/, computed from where the bundle is at run time. */
const importMetaUrl = {
  name: "import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, (args) => {
      const contents = readFileSync(args.path, "utf8");
      if (!args.path.startsWith(dist) || !contents.includes("import.meta")) return undefined;
      const rel = JSON.stringify(relative(dist, args.path).split("\\").join("/"));
      return { contents: contents.replace(/\bimport\.meta\.url\b/g, `__kexecTsModuleUrl(${rel})`), loader: "js" };
    });
  },
};

/**
 * The JavaScript zlib and zstd page decoders' libraries, fflate and fzstd, loaded when a page is
 * first decoded with them rather than when dist/core/vmcore/codecs.js is. Every vmcore command
 * imports that module, and nearly none of them calls these decoders: Node decodes a dump's pages
 * with the system's libraries (native-codecs.ts), and a save from /proc/vmcore decodes none. Yet
 * fflate builds its Huffman tables as it loads, in loops hot enough for V8 to compile them
 * optimised: about 7 ms of TurboFan (--trace-opt) in the main thread, and again in each
 * compression worker. A 1 GiB -d 31 lzo save on one CPU (taskset, as in a capture kernel booted
 * with nr_cpus=1) took 0.232 s with them loaded with the module, 0.223 s with them loaded on first
 * use (11 alternating runs, stop 41).
 * Only in the bundle: unbundled (the tests, a build without it) the imports stay as written,
 * with the same functions. The import lines are rewritten as they are written; if codecs.ts
 * changes them, the build fails here instead of quietly loading the libraries again.
 */
const lazyPageDecoderLibraries = {
  name: "lazy-page-decoder-libraries",
  setup(b) {
    // Each library through a module of its own that re-exports only the function used: required
    // as it is, the whole library came with it (its namespace object keeps every export: 60 KiB
    // more bundle), and as its CommonJS build, a second copy beside the ES module build that the
    // kernel image decoders import.
    b.onResolve({ filter: /^lazy-page-decoder:/ }, (args) => ({ path: args.path.slice("lazy-page-decoder:".length), namespace: "lazy-page-decoder", pluginData: { resolveDir: args.resolveDir } }));
    b.onLoad({ filter: /.*/, namespace: "lazy-page-decoder" }, (args) => {
      const [library, name] = args.path.split("/");
      return { contents: `export { ${name} } from "${library}";`, loader: "js", resolveDir: args.pluginData.resolveDir };
    });
    b.onLoad({ filter: /[\\/]core[\\/]vmcore[\\/]codecs\.js$/ }, (args) => {
      if (!args.path.startsWith(dist)) return undefined;
      let contents = readFileSync(args.path, "utf8");
      const imports = [
        ['import { unzlibSync } from "fflate";', 'let fflateLoaded; const unzlibSync = (...args) => (fflateLoaded ??= require("lazy-page-decoder:fflate/unzlibSync")).unzlibSync(...args);'],
        ['import { decompress as zstdDecompress } from "fzstd";', 'let fzstdLoaded; const zstdDecompress = (...args) => (fzstdLoaded ??= require("lazy-page-decoder:fzstd/decompress")).decompress(...args);'],
      ];
      for (const [written, lazy] of imports) {
        if (!contents.includes(written)) throw new Error(`bundle: ${relative(root, args.path)} no longer has \`${written}\`: update lazyPageDecoderLibraries in scripts/bundle.mjs`);
        contents = contents.replace(written, lazy);
      }
      return { contents, loader: "js" };
    });
  },
};

/**
 * One entry point and all it imports as one CommonJS file (koffi stays outside: native code).
 * `up` is the path from the output's directory back to dist/, for the banner's module URLs.
 */
function bundle(entry, out, up, comment, more = {}) {
  return build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node18",
    external: ["koffi"],
    plugins: [importMetaUrl, lazyPageDecoderLibraries],
    banner: {
      js: [
        `/* ${comment} */`,
        `const __kexecTsDist = require("node:url").pathToFileURL(require("node:path").join(__dirname, ${up.map((p) => JSON.stringify(p)).join(", ")}) + "/");`,
        "function __kexecTsModuleUrl(rel) { return new URL(rel, __kexecTsDist).href; }",
      ].join("\n"),
    },
    // fflate's build without its Node shim, which serves only fflate's asynchronous (worker) API,
    // unused here, and loads node:worker_threads with every vmcore command: 2 ms of their start
    // (pool.ts loads it when a save starts a worker). The synchronous decoders are the same code.
    // Only in the bundle: unbundled, Node 18 takes that build's .js files for CommonJS.
    alias: { fflate: "fflate/browser" },
    // ASCII only (esbuild's default, stated): bin/kexec-ts.cjs reads the bundle as latin1, which
    // is that text only where every byte is below 0x80 (checked after the build, below).
    charset: "ascii",
    logLevel: "warning",
    ...more,
  });
}

const result = await bundle(join(dist, "cli", "main.js"), outfile, [".."],
  "kexec-ts command line, bundled by scripts/bundle.mjs from dist/; run it through bin/kexec-ts.cjs.", { metafile: true });
// The compression worker (dist/node/vmcore/worker.js) as one file too: a save's threads are idle
// until theirs has started, and through the ESM loader its thirty modules took 150-250 ms to
// load beside a busy main thread, against about 50 ms bundled. pool.ts runs it when it is there.
const workerOut = join(dist, "node", "vmcore", "worker.bundle.cjs");
await bundle(join(dist, "node", "vmcore", "worker.js"), workerOut, ["..", ".."],
  "kexec-ts's compression worker, bundled by scripts/bundle.mjs from dist/ (pool.ts starts it).");
process.stdout.write(`bundle: ${relative(root, workerOut)}\n`);
// bin/kexec-ts.cjs decodes the bundle as latin1: a byte above 0x7f would be another character there.
{
  const bytes = readFileSync(outfile);
  const at = bytes.findIndex((b) => b > 0x7f);
  if (at >= 0) throw new Error(`bundle: ${relative(root, outfile)} has byte 0x${bytes[at].toString(16)} at offset ${at}, but bin/kexec-ts.cjs reads it as latin1, which needs ASCII: keep esbuild's charset "ascii"`);
}
const inputs = Object.keys(result.metafile.inputs).length;
const bytes = result.metafile.outputs[relative(root, outfile)]?.bytes ?? readFileSync(outfile).length;
process.stdout.write(`bundle: ${relative(root, outfile)} (${inputs} modules, ${(bytes / 1024).toFixed(0)} KiB)\n`);

// Old caches (another V8, an older bundle) go; new ones are made for this bundle and this Node.
for (const f of readdirSync(dirname(outfile))) if (f.startsWith("kexec-ts.bundle.cjs.") && f.endsWith(".cache")) rmSync(join(dirname(outfile), f));
if (!process.argv.includes("--no-cache")) {
  // One cache for each of bin/kexec-ts.cjs's JIT modes: V8 accepts a cache only under the flags it was made with.
  const sample = join(root, "testdata", "snapshots", "qemu-amd64-6.1-5level-crash1968M");
  const scratch = mkdtempSync(join(tmpdir(), "kexec-ts-bundle-"));
  const { syntheticVmcore } = await import(pathToFileURL(join(dist, "core", "vmcore", "testing.js")).href);
  const vmcore = join(scratch, "vmcore");
  writeFileSync(vmcore, syntheticVmcore(1024).bytes);
  const work = {
    baseline: { what: "demo on the sample snapshot", args: ["demo", "--root", sample] },
    // A save without threads: the workers run their own bundle, and start without a cache.
    full: { what: "vmcore save on a synthetic vmcore", args: ["vmcore", "save", "--threads", "0", "--compress", "lzo", "-d", "1", vmcore, join(scratch, "dump")] },
  };
  let failed = false;
  for (const jit of ["baseline", "full"]) {
    const started = Date.now();
    const r = spawnSync(process.execPath, [join(root, "bin", "kexec-ts.cjs"), ...work[jit].args], {
      env: { ...process.env, KEXEC_TS_WRITE_CODE_CACHE: "1", KEXEC_TS_JIT: jit, KEXEC_TS_DEBUG: "1" },
      encoding: "utf8",
    });
    // A V8 for which the bin knows no flag runs everything with full JIT: one cache then, made by
    // `demo` (the full iteration is skipped below), as the short commands' start counts most.
    const ran = /\((\w+) JIT\)/.exec(r.stderr)?.[1];
    const made = readdirSync(dirname(outfile)).find((f) => f.startsWith("kexec-ts.bundle.cjs.") && f.endsWith(".cache") && statSync(join(dirname(outfile), f)).mtimeMs >= started - 1000 && (ran === "baseline") === f.endsWith("-baseline.cache"));
    if (r.status !== 0 || made === undefined) {
      process.stderr.write(`bundle: the ${jit} JIT code cache was not made (${work[jit].what} exited ${r.status}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" / ")}\n`);
      failed = true;
      break;
    }
    process.stdout.write(`code cache: dist/cli/${made} (${(readFileSync(join(dirname(outfile), made)).length / 1024).toFixed(0)} KiB, made by running ${work[jit].what} with ${ran} JIT)\n`);
    if (ran !== jit) break;
  }
  rmSync(scratch, { recursive: true, force: true });
  if (failed) process.exit(1);
}
if (!existsSync(outfile)) process.exit(1);
