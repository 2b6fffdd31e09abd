import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const src = new URL("../../src/", import.meta.url).pathname;

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith(".test.ts") ? [join(dir, e.name)] : []);
}

test("every skipped test goes through missingInput: no t.skip, { skip }, or CI check of its own", () => {
  // A skip written by hand passes in CI when its input is missing; missingInput fails there.
  // `{ skip: ... }` counts as a test option only on a test(...) line: other functions may take a skip option.
  const own = /\bt\.skip\(|\b(test|it|describe)\(.*[{,]\s*skip\s*:|process\.env(\.CI\b|\[["']CI["']\])/;
  const found = testFiles(src).flatMap((file) => readFileSync(file, "utf8").split("\n")
    .map((line, i) => (own.test(line) ? `${relative(src, file)}:${i + 1}: ${line.trim()}` : undefined))
    .filter((x): x is string => x !== undefined));
  assert.deepEqual(found, [], "use missingInput(t, why) from src/node/test-inputs.ts");
});
