#!/usr/bin/env node
/**
 * The unit-test runner behind `npm test`:
 *
 *   node scripts/test.mjs [--jobs N] [PATH...]     PATH: a built test file or a directory (default: dist)
 *
 * It finds the compiled tests itself (dist/**\/*.test.js) and hands node:test an explicit list,
 * because `node --test DIR` means "every test under DIR" on Node 18 and 20 but is a glob that
 * matches nothing on Node 21 and later. A compiled test whose source (src/**\/*.test.ts) is
 * gone is stale and not run. At the end it prints how many tests ran, passed, failed and
 * skipped, and lists every skip with its reason: a skip means something was not tested.
 * Under CI=true a skip fails the run, since CI must provide every input the tests need.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { run } from "node:test";
import { spec } from "node:test/reporters";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function usage(message) {
  process.stderr.write(`scripts/test.mjs: ${message}\nusage: node scripts/test.mjs [--jobs N] [PATH...]\n`);
  process.exit(64);
}

const args = process.argv.slice(2);
let jobs = Math.max(1, availableParallelism() - 1); // what `node --test` itself uses
const paths = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--jobs" || a === "-j") {
    jobs = Number(args[++i]);
    if (!Number.isInteger(jobs) || jobs < 1) usage(`${a} needs a positive whole number`);
  } else if (a.startsWith("-")) usage(`unknown option ${a}`);
  else paths.push(resolve(a));
}
if (paths.length === 0) paths.push(join(root, "dist"));

function testsUnder(path) {
  if (!existsSync(path)) usage(`${path} does not exist (run \`npm run build\` first)`);
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testsUnder(join(path, e.name)) : e.name.endsWith(".test.js") ? [join(path, e.name)] : []);
}

/** dist/a/b.test.js comes from src/a/b.test.ts; when that is gone the compiled file is left over from an old build. */
function sourceOf(file) {
  const rel = relative(join(root, "dist"), file);
  return rel.startsWith("..") ? undefined : join(root, "src", rel.replace(/\.js$/, ".ts"));
}

const found = [...new Set(paths.flatMap(testsUnder))].sort();
const stale = found.filter((f) => { const s = sourceOf(f); return s !== undefined && !existsSync(s); });
const files = found.filter((f) => !stale.includes(f));
for (const f of stale) process.stdout.write(`not run (stale, its source is gone): ${relative(root, f)}\n`);
if (files.length === 0) usage(`no *.test.js under ${paths.map((p) => relative(root, p) || ".").join(", ")}`);

const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
const skips = [];
const todos = [];
/** Node 18 reports the file as a file: URL, later versions as a path. */
const where = (file) => (file === undefined ? "?" : relative(root, file.startsWith("file:") ? fileURLToPath(file) : file));

// A test file that runs longer than this is killed and counts as failed: a parser that loops
// forever on some input must fail the run, not hang CI. The slowest files (QEMU boots) take
// about two minutes on a loaded 2-core machine.
const FILE_TIMEOUT_MS = 10 * 60_000;
const stream = run({ files, concurrency: jobs, timeout: FILE_TIMEOUT_MS });
stream.on("test:pass", (t) => {
  if (t.todo !== undefined) { counts.todo++; todos.push(t); } else if (t.skip !== undefined) { counts.skip++; skips.push(t); } else counts.pass++;
});
stream.on("test:fail", (t) => {
  if (t.todo !== undefined) { counts.todo++; todos.push(t); } else counts.fail++;
});

const started = Date.now();
const reported = stream.compose(new spec());
reported.pipe(process.stdout);
reported.on("end", () => {
  const lines = [""];
  const reason = (r) => (typeof r === "string" && r !== "" ? r : "no reason given");
  if (skips.length > 0) {
    lines.push(`skipped (${skips.length}):`);
    for (const t of skips) lines.push(`  ${where(t.file)}: ${t.name} — ${reason(t.skip)}`);
  }
  if (todos.length > 0) {
    lines.push(`todo (${todos.length}):`);
    for (const t of todos) lines.push(`  ${where(t.file)}: ${t.name} — ${reason(t.todo)}`);
  }
  const ran = counts.pass + counts.fail;
  lines.push(`tests: ${ran} ran (${counts.pass} passed, ${counts.fail} failed), ${counts.skip} skipped${counts.todo > 0 ? `, ${counts.todo} todo` : ""}; ${files.length} files in ${((Date.now() - started) / 1000).toFixed(1)} s (jobs ${jobs})`);
  const ciSkips = process.env.CI === "true" && counts.skip > 0;
  if (ciSkips) lines.push(`CI=true: ${counts.skip} skipped test(s) count as failures — CI must provide what they need (.ci/setup-debian.sh)`);
  process.stdout.write(`${lines.join("\n")}\n`);
  process.exitCode = counts.fail > 0 || ciSkips ? 1 : 0;
});
