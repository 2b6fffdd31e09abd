#!/usr/bin/env node
/**
 * Installs the npm dependencies when any is missing, so that `npm start`, `npm test` and
 * `npm run build` work as the first command typed in a fresh clone (npm runs this as the
 * `prebuild` script). Plain JavaScript with no imports outside node:, since nothing else is
 * installed yet. When everything is present it only looks at a few files.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const wanted = Object.keys({ ...manifest.dependencies, ...manifest.devDependencies });
const missing = wanted.filter((name) => !existsSync(join(root, "node_modules", name, "package.json")));

if (missing.length > 0) {
  // `npm ci` installs exactly the locked versions; without a lock file only `npm install` can.
  const command = existsSync(join(root, "package-lock.json")) ? "ci" : "install";
  process.stderr.write(`kexec-ts: node_modules lacks ${missing.join(", ")}: running npm ${command} first\n`);
  // Under `npm run`, npm_execpath is the npm that ran us; called directly, the one on PATH.
  const npm = process.env.npm_execpath;
  const args = [command, "--no-audit", "--no-fund"];
  const r = npm !== undefined && npm.endsWith(".js")
    ? spawnSync(process.execPath, [npm, ...args], { cwd: root, stdio: "inherit" })
    : spawnSync("npm", args, { cwd: root, stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write(`kexec-ts: npm ${command} failed (${r.error?.message ?? `exit ${r.status}`}); the registry must be reachable once\n`);
    process.exit(1);
  }
}
