/**
 * What a test does when something it needs is not on this machine: a Debian kernel from the
 * cache, QEMU, a compiler, a peer tool (makedumpfile, readelf, cpio...), a captured vmcore.
 * On a developer's machine it skips and says what is missing. Under CI=true it fails instead:
 * CI installs every such input (.ci/setup-debian.sh, .ci/run), so a skip there would be a test
 * that passes because nothing ran. Every test with an input the repository does not hold goes
 * through missingInput, never through its own `if (process.env.CI)`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { TestContext } from "node:test";

/** True in CI (`.ci/run` sets CI=true when the environment does not). */
export function inCI(): boolean {
  return process.env["CI"] === "true";
}

/** Skips `t` saying `why`, or under CI=true fails it with the same words. Use as `return missingInput(t, ...)`. */
export function missingInput(t: TestContext, why: string): void {
  if (inCI()) assert.fail(`${why} (CI=true: a test whose input is missing fails instead of skipping)`);
  t.skip(why);
}

/** The first of `tools` that does not run with --version, -V or -v (makedumpfile knows only -v), or undefined when all do. */
export function missingTool(...tools: string[]): string | undefined {
  return tools.find((tool) => !["--version", "-V", "-v"].some((flag) => spawnSync(tool, [flag], { stdio: "ignore" }).status === 0));
}
