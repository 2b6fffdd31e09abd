/**
 * Rules about the source tree itself, read from src/ as written:
 *
 * - Dependencies point one way: cli → node → core, with lab beside node (lab may
 *   import node and core; node imports neither cli nor lab; core imports only core; a
 *   core test may read its inputs through node). Type-only imports count: a type from a
 *   higher layer couples the layers too.
 * - No import cycles among the modules that load at run time (`import type` is erased).
 * - Every KexecError made is given a hint (what to do), and every error code has an exit status.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import ts from "typescript";
import { EXIT_STATUS, type ErrorCode } from "../core/errors.js";

const repo = new URL("../../", import.meta.url).pathname;
const SRC = join(repo, "src");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sourceFiles(path);
    return d.name.endsWith(".ts") && !d.name.endsWith(".d.ts") ? [path] : [];
  });
}

interface Import { from: string; to: string; typeOnly: boolean }

function importsOf(file: string, source: ts.SourceFile): Import[] {
  const out: Import[] = [];
  const add = (spec: string, typeOnly: boolean) => {
    if (!spec.startsWith(".")) return;
    out.push({ from: rel(file), to: rel(join(dirname(file), spec).replace(/\.js$/, ".ts")), typeOnly });
  };
  const visit = (n: ts.Node) => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const typeOnly = ts.isImportDeclaration(n) ? n.importClause?.isTypeOnly === true : n.isTypeOnly;
      add(n.moduleSpecifier.text, typeOnly);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword && n.arguments[0] && ts.isStringLiteral(n.arguments[0])) {
      add(n.arguments[0].text, false);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      add(n.argument.literal.text, true);
    }
    ts.forEachChild(n, visit);
  };
  visit(source);
  return out;
}

const rel = (path: string) => relative(repo, path);
const files = sourceFiles(SRC);
const parsed = new Map(files.map((f) => [f, ts.createSourceFile(f, readFileSync(f, "utf8"), ts.ScriptTarget.Latest, true)]));
const imports = files.flatMap((f) => importsOf(f, parsed.get(f)!));

/** Which layers each layer may import (its own always). */
const ALLOWED: Record<string, readonly string[]> = { core: [], node: ["core"], lab: ["core", "node"], cli: ["core", "node", "lab"] };

/**
 * Known upward imports being removed on another branch, each with who removes it. The
 * test fails when one is gone, so the entry is deleted with the import.
 */
const IN_FLIGHT: readonly { from: string; to: string; who: string }[] = [];

/**
 * A test may also read its inputs through node (the kernel cache, files, missingInput):
 * only the product code of core has to run in a browser.
 */
function allowed(from: string, to: string): boolean {
  const layer = (path: string) => path.split("/")[1]!;
  const [a, b] = [layer(from), layer(to)];
  if (a === b || ALLOWED[a]?.includes(b)) return true;
  return from.endsWith(".test.ts") && a === "core" && b === "node" && !to.endsWith(".test.ts");
}

test("dependencies point one way: cli → node → core, lab beside node", () => {
  const layer = (path: string) => path.split("/")[1]!;
  const upward = imports.filter((i) => !allowed(i.from, i.to));
  const unexpected = upward.filter((i) => !IN_FLIGHT.some((k) => k.from === i.from && k.to === i.to));
  assert.deepEqual(unexpected.map((i) => `${i.from} imports ${i.to}${i.typeOnly ? " (types)" : ""}`), []);
  for (const k of IN_FLIGHT) assert.ok(upward.some((i) => i.from === k.from && i.to === k.to), `${k.from} no longer imports ${k.to}: delete its IN_FLIGHT entry`);
  // The scan sees the imports it must: a file that imports nothing would make this test pass vacuously.
  assert.ok(imports.some((i) => i.from === "src/cli/main.ts" && i.to === "src/node/entry.ts"));
  assert.ok(imports.filter((i) => layer(i.from) === "core").length > 100);
});

test("no import cycles among the modules that load at run time", () => {
  const graph = new Map<string, string[]>();
  for (const i of imports) if (!i.typeOnly) graph.set(i.from, [...(graph.get(i.from) ?? []), i.to]);
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, "open");
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (state.get(d) === "open") cycles.push([...stack.slice(stack.indexOf(d)), d].join(" → "));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  assert.deepEqual(cycles, []);
});

test("every KexecError kexec-ts makes has a hint", () => {
  const missing: string[] = [];
  let seen = 0;
  for (const [file, source] of parsed) {
    if (file.endsWith(".test.ts") || file.includes("/testing/")) continue;
    const visit = (n: ts.Node) => {
      if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === "KexecError") {
        seen++;
        const hint = n.arguments?.[3];
        if (hint === undefined || hint.kind === ts.SyntaxKind.UndefinedKeyword || (ts.isIdentifier(hint) && hint.text === "undefined")) {
          const { line } = source.getLineAndCharacterOfPosition(n.getStart());
          missing.push(`${rel(file)}:${line + 1}`);
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(source);
  }
  assert.ok(seen > 100, `only ${seen} KexecErrors found: the scan is broken`);
  assert.deepEqual(missing, [], "give each of these a hint: what the user can do about it");
});

test("every error code has an exit status; only the bad-input codes share one", () => {
  const codes = Object.keys(EXIT_STATUS) as ErrorCode[];
  // The union type is the list of codes; a code without a status would not compile, so check the values.
  for (const c of codes) assert.ok(Number.isInteger(EXIT_STATUS[c]) && EXIT_STATUS[c] > 1 && EXIT_STATUS[c] < 126, c);
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of codes) byStatus.set(EXIT_STATUS[c], [...(byStatus.get(EXIT_STATUS[c]) ?? []), c]);
  for (const [status, shared] of byStatus) if (shared.length > 1) assert.deepEqual(shared.sort(), ["decompress", "not-a-kernel", "parse"], `exit ${status}`);
  assert.equal(EXIT_STATUS.internal, 70);
  assert.notEqual(EXIT_STATUS.plan, EXIT_STATUS.check);
  assert.notEqual(EXIT_STATUS.lab, EXIT_STATUS.check);
});

test("the README's exit status table is the code's", () => {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const section = /## Exit status\n([\s\S]*?)(\n## |$)/.exec(readme);
  assert.ok(section, "README.md has an ## Exit status section");
  const rows = [...section[1]!.matchAll(/^\| (\d+) \|(.*?)\| .* \|$/gm)].map((m) => ({ status: Number(m[1]), codes: [...m[2]!.matchAll(/`([a-z-]+)`/g)].map((c) => c[1]!) }));
  assert.ok(rows.length >= 8, "the section has its table");
  for (const [code, status] of Object.entries(EXIT_STATUS)) {
    const row = rows.find((r) => r.codes.includes(code));
    assert.ok(row, `the README's table names the error code \`${code}\``);
    assert.equal(row.status, status, `README says \`${code}\` exits ${row.status}, the code ${status}`);
  }
  // No row names a code that does not exist, and the statuses without a code are the answers 0 and 1.
  for (const r of rows) for (const c of r.codes) assert.ok(c in EXIT_STATUS, `README names an error code \`${c}\` that kexec-ts does not have`);
  assert.deepEqual(rows.filter((r) => r.codes.length === 0).map((r) => r.status), [0, 1]);
});
