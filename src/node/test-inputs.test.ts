import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const src = new URL("../../src/", import.meta.url).pathname;

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith(".test.ts") ? [join(dir, e.name)] : []);
}

test("every skipped test goes through missingInput, never a skip or a CI check of its own", () => {
  // A skip written by hand passes in CI when its input is missing; missingInput fails there.
  // The context's skip method, test's skip variant, a skip option on a test, a CI check of the file's own.
  const own = /\b(t|test|it|describe)\.skip\(|\b(test|it|describe)\(.*\{[^}]*\bskip\b|process\.env(\.CI\b|\[["']CI["']\])/;
  const found = testFiles(src).flatMap((file) => readFileSync(file, "utf8").split("\n")
    .map((line, i) => (own.test(line) ? `${relative(src, file)}:${i + 1}: ${line.trim()}` : undefined))
    .filter((x): x is string => x !== undefined));
  assert.deepEqual(found, [], "use missingInput(t, why) from src/node/test-inputs.ts");
});
