import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sharedBuiltinFiles } from "./initramfs.js";

test("the self-contained image takes the files a Node build loads its externalized builtins from (Debian's Node 18: undici, acorn, cjs-module-lexer)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-node-"));
  const builtin = join(dir, "undici-fetch.js");
  writeFileSync(builtin, "// a builtin\n");
  // Stands in for a Node program: prints its build defines as `node -p` would.
  const fakeNode = join(dir, "node");
  const defines = ["NODE_OPENSSL_CERT_STORE", `NODE_SHARED_BUILTIN_UNDICI_UNDICI_PATH=${builtin}`, `NODE_SHARED_BUILTIN_ACORN_PATH=${join(dir, "missing.js")}`, `NODE_SHARED_BUILTIN_UNDICI_UNDICI_PATH=${builtin}`];
  writeFileSync(fakeNode, `#!/bin/sh\necho '${JSON.stringify(defines)}'\n`);
  chmodSync(fakeNode, 0o755);
  assert.deepEqual(sharedBuiltinFiles(fakeNode), [builtin], "each existing file once; a define naming no file is left out");
  assert.deepEqual(sharedBuiltinFiles(process.execPath).every((f) => f.startsWith("/")), true, "this machine's Node: absolute paths, if any");
});

test("a Node program that does not run is an error naming it, with a hint", () => {
  assert.throws(() => sharedBuiltinFiles("/nonexistent/node"), (e: unknown) => e instanceof Error && e.message.includes("/nonexistent/node") && typeof (e as { hint?: unknown }).hint === "string");
});
