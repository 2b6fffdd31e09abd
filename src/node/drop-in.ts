/**
 * kexec-ts standing in for a tool by its name, so scripts that call `/sbin/kexec` or
 * `makedumpfile` (Debian's kdump-tools, systemd's kexec.target) run kexec-ts unchanged: run as
 * `kexec` it takes kexec-tools' command line, as `makedumpfile` makedumpfile's.
 *
 * On a dpkg system the tool's own file is diverted, the Debian way a package replaces another
 * package's file: `dpkg-divert --package kexec-ts --divert /sbin/kexec.kexec-tools --rename
 * --add /sbin/kexec` moves kexec-tools' binary aside (and keeps upgrades of kexec-tools writing
 * there, not over the link), then /sbin/kexec becomes a symbolic link to kexec-ts. `remove`
 * undoes both: the link goes, and `dpkg-divert --rename --remove` puts the binary back. Without
 * dpkg the original is renamed to <path>.kexec-ts-orig and renamed back.
 */
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readlinkSync, realpathSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { KexecError } from "../core/errors.js";

export interface DropInTool {
  /** The name scripts call. */
  name: string;
  /** Where the distribution installs it (what the scripts run). */
  path: string;
  /** The package that owns it, for messages. */
  package: string;
}

export const DROP_IN_TOOLS: readonly DropInTool[] = [
  { name: "kexec", path: "/sbin/kexec", package: "kexec-tools" },
  // Run through a link of this name, kexec-ts takes makedumpfile's own command line (cli/commands/makedumpfile.ts).
  { name: "makedumpfile", path: "/usr/bin/makedumpfile", package: "makedumpfile" },
];

/** dpkg-divert --package: who owns our diversions. */
export const DIVERT_PACKAGE = "kexec-ts";

export function dropInTool(name: string): DropInTool {
  const tool = DROP_IN_TOOLS.find((t) => t.name === name);
  if (tool === undefined) {
    throw new KexecError("usage", `kexec-ts cannot stand in for ${JSON.stringify(name)}`, { field: "tool", actual: name, expected: DROP_IN_TOOLS.map((t) => t.name).join(" | ") }, `kexec-ts drop-in install ${DROP_IN_TOOLS.map((t) => t.name).join("|")}`);
  }
  return tool;
}

export interface DropInStatus {
  tool: string;
  path: string;
  /** The path is a link to kexec-ts. */
  installed: boolean;
  /** What the path is now: a link target, "file", or null when absent. */
  current: string | null;
  /** dpkg's diversion of the path, if any. */
  diversion: { to: string; by: string } | null;
  /** Where the original tool is kept while kexec-ts stands in (null: nowhere). */
  original: string | null;
}

export interface Env {
  /** The file system root (tests use a scratch directory); paths are joined under it. */
  root: string;
  /** The kexec-ts program the link points to. */
  program: string;
  /** dpkg-divert, or null where there is no dpkg. */
  dpkgDivert: string | null;
}

function under(env: Env, path: string): string {
  return env.root === "/" ? path : join(env.root, path);
}

function dpkgDivert(env: Env, args: string[]): string {
  const r = spawnSync(env.dpkgDivert!, [...(env.root === "/" ? [] : ["--root", env.root]), ...args], { encoding: "utf8" });
  if (r.error !== undefined) throw new KexecError("io", `cannot run ${env.dpkgDivert}: ${r.error.message}`, { file: env.dpkgDivert! }, "dpkg-divert comes with dpkg; reinstall dpkg");
  if (r.status !== 0) {
    throw new KexecError("io", `dpkg-divert ${args.join(" ")} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim()}`, { file: env.dpkgDivert! }, "run as root; see dpkg-divert(1)");
  }
  return r.stdout;
}

/** `dpkg-divert --listpackage` and `--truename` of a path: the diversion, if any. */
function diversion(env: Env, path: string): { to: string; by: string } | null {
  if (env.dpkgDivert === null) return null;
  const by = dpkgDivert(env, ["--listpackage", path]).trim();
  if (by === "") return null;
  return { to: dpkgDivert(env, ["--truename", path]).trim(), by };
}

function current(env: Env, path: string): string | null {
  const p = under(env, path);
  try {
    const st = lstatSync(p);
    return st.isSymbolicLink() ? readlinkSync(p) : "file";
  } catch {
    return null;
  }
}

function pointsToProgram(env: Env, path: string): boolean {
  try {
    return realpathSync(under(env, path)) === realpathSync(env.program);
  } catch {
    return false;
  }
}

const orig = (path: string): string => `${path}.${DIVERT_PACKAGE}-orig`;
const diverted = (tool: DropInTool): string => `${tool.path}.${tool.package}`;

export function dropInStatus(tool: DropInTool, env: Env): DropInStatus {
  const d = diversion(env, tool.path);
  const saved = env.dpkgDivert === null && existsSync(under(env, orig(tool.path))) ? orig(tool.path) : null;
  const original = d !== null ? (existsSync(under(env, d.to)) ? d.to : null) : saved;
  return { tool: tool.name, path: tool.path, installed: pointsToProgram(env, tool.path), current: current(env, tool.path), diversion: d, original };
}

/** Makes `tool.path` run kexec-ts; returns what was done, one line each. */
export function installDropIn(tool: DropInTool, env: Env): string[] {
  const done: string[] = [];
  const path = under(env, tool.path);
  const before = dropInStatus(tool, env);
  if (before.diversion !== null && before.diversion.by !== DIVERT_PACKAGE) {
    throw new KexecError("io", `${tool.path} is already diverted by ${before.diversion.by} (to ${before.diversion.to})`, { file: tool.path, actual: before.diversion.by }, `remove that diversion first (dpkg-divert --package ${before.diversion.by} --rename --remove ${tool.path})`);
  }
  if (env.dpkgDivert !== null) {
    if (before.diversion === null) {
      dpkgDivert(env, ["--package", DIVERT_PACKAGE, "--divert", diverted(tool), "--rename", "--add", tool.path]);
      done.push(`diverted ${tool.path} to ${diverted(tool)} (dpkg-divert --package ${DIVERT_PACKAGE}); ${tool.package} upgrades now write there`);
    }
  } else if (before.current !== null && !before.installed) {
    if (existsSync(under(env, orig(tool.path)))) throw new KexecError("io", `${tool.path} exists and so does ${orig(tool.path)}; not overwriting either`, { file: orig(tool.path) }, "move one of them away by hand");
    renameSync(path, under(env, orig(tool.path)));
    done.push(`moved ${tool.path} to ${orig(tool.path)}`);
  }
  if (!pointsToProgram(env, tool.path)) {
    // A new link beside the path, then rename over it: the path is never missing.
    const tmp = `${path}.${DIVERT_PACKAGE}-new`;
    rmSync(tmp, { force: true });
    symlinkSync(env.program, tmp);
    renameSync(tmp, path);
    done.push(`linked ${tool.path} -> ${env.program}`);
  }
  if (done.length === 0) done.push(`${tool.path} already runs kexec-ts (${env.program})`);
  return done;
}

/** Puts the original tool back; returns what was done. */
export function removeDropIn(tool: DropInTool, env: Env): string[] {
  const done: string[] = [];
  const path = under(env, tool.path);
  const before = dropInStatus(tool, env);
  if (before.installed) {
    rmSync(path);
    done.push(`removed the link ${tool.path}`);
  } else if (before.current !== null && before.diversion?.by === DIVERT_PACKAGE) {
    throw new KexecError("io", `${tool.path} is not kexec-ts's link (it is ${before.current === "file" ? "a file" : `a link to ${before.current}`}); leaving it, and the diversion, as they are`, { file: tool.path }, "move it away by hand, then run remove again");
  }
  if (before.diversion?.by === DIVERT_PACKAGE) {
    dpkgDivert(env, ["--package", DIVERT_PACKAGE, "--rename", "--remove", tool.path]);
    done.push(`removed the diversion: ${before.diversion.to} is ${tool.path} again`);
  } else if (env.dpkgDivert === null && existsSync(under(env, orig(tool.path)))) {
    renameSync(under(env, orig(tool.path)), path);
    done.push(`moved ${orig(tool.path)} back to ${tool.path}`);
  }
  if (done.length === 0) done.push(`kexec-ts is not standing in for ${tool.path}; nothing to undo`);
  return done;
}

/** The live system's environment: this kexec-ts's main.js, and dpkg-divert if there is dpkg. */
export function systemEnv(program: string, root = "/"): Env {
  const found = ["/usr/bin/dpkg-divert", "/usr/sbin/dpkg-divert", "/sbin/dpkg-divert"].find((p) => existsSync(p));
  return { root, program: resolve(program), dpkgDivert: found ?? null };
}
