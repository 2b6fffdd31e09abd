/**
 * The one catch: what an error looks like and the status it exits with, for
 * the command line and for the lab's own scripts, run as users run them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { KexecError } from "../core/errors.js";
import { reportError } from "./entry.js";

const dist = new URL("../", import.meta.url).pathname;

test("reportError: a KexecError prints message and hint and exits by its code; anything else is a bug (70)", () => {
  let out = "";
  const write = (t: string) => (out += t);
  assert.equal(reportError("kexec-ts", new KexecError("usage", "bad flag", {}, "see --help"), write), 64);
  assert.equal(out, "kexec-ts: bad flag\nhint: see --help\n");
  out = "";
  assert.equal(reportError("kexec-ts", new KexecError("internal", "the plan breaks its own invariants", {}, "report the snapshot"), write), 70);
  assert.match(out, /^kexec-ts: internal error \(a bug in kexec-ts\): the plan breaks its own invariants\nhint: report the snapshot\n$/);
  out = "";
  assert.equal(reportError("kexec-ts", new TypeError("x is undefined"), write), 70);
  assert.match(out, /internal error \(a bug in kexec-ts\): TypeError: x is undefined/);
  assert.match(out, /hint: please report it/);
});

function run(script: string, args: string[]) {
  return spawnSync(process.execPath, [`${dist}${script}`, ...args], { encoding: "utf8", env: { ...process.env, KEXEC_TS_DEBUG: "" } });
}

test("entry points end in the one catch: the CLI, the lab suite and the lab's capture scripts", () => {
  const cases: { script: string; args: string[]; status: number; says: RegExp }[] = [
    { script: "cli/main.js", args: ["--frobnicate"], status: 64, says: /^kexec-ts: unknown option --frobnicate\nhint: see kexec-ts --help\n$/ },
    { script: "cli/main.js", args: ["-l", "--reuseinitrd", "/boot/vmlinuz"], status: 64, says: /^kexec-ts: --reuseinitrd is a kexec-tools option kexec-ts does not implement/ },
    { script: "cli/main.js", args: ["inspect", "/nonexistent/vmlinuz"], status: 74, says: /^kexec-ts: \/nonexistent\/vmlinuz: cannot read kernel image: .*\nhint: check the path of the kernel image\n$/ },
    { script: "lab/suite.js", args: ["no-such-scenario"], status: 64, says: /^kexec-ts lab: no scenario named "no-such-scenario".*\nhint: / },
    { script: "lab/capture-vmcore.js", args: ["--mem", "lots"], status: 64, says: /^capture-vmcore: --mem lots: expected e\.g\. 1G or 1536M\nhint: / },
    { script: "lab/capture.js", args: [], status: 64, says: /^kexec-ts lab capture: usage: capture\.js NAME/ },
  ];
  for (const c of cases) {
    const r = run(c.script, c.args);
    assert.equal(r.status, c.status, `${c.script} ${c.args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, c.says, `${c.script} ${c.args.join(" ")}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("--json: an error is also a JSON object on standard output, with its code, data, hint and exit status", () => {
  const cases: { args: string[]; status: number; error: string; data?: Record<string, unknown> }[] = [
    { args: ["inspect", "/nonexistent/vmlinuz", "--json"], status: 74, error: "io", data: { file: "/nonexistent/vmlinuz", errno: "ENOENT" } },
    { args: ["machine", "--json", "--frobnicate"], status: 64, error: "usage" },
    // A reader's error whose message names the file already: the data names it too.
    { args: ["vmcore", "info", `${dist}cli/main.js`, "--json"], status: 65, error: "parse", data: { file: `${dist}cli/main.js` } },
    { args: ["check", "-l", "--json"], status: 64, error: "usage" },
  ];
  for (const c of cases) {
    const r = run("cli/main.js", c.args);
    const what = c.args.join(" ");
    assert.equal(r.status, c.status, `${what}: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out["error"], c.error, what);
    assert.equal(out["exit"], c.status, what);
    // The same words as on standard error, which still has them for a person.
    assert.ok(r.stderr.startsWith(`kexec-ts: ${String(out["message"])}\n`), `${what}: ${r.stderr}`);
    assert.equal(typeof out["hint"], "string", what);
    if (c.data) for (const [k, v] of Object.entries(c.data)) assert.equal((out["data"] as Record<string, unknown>)[k], v, `${what}: data.${k}`);
  }
  // A command that printed its JSON result before failing: that one document, not a second after it.
  const script = `import("${dist}node/entry.js").then(async ({ runEntryPoint }) => { const { KexecError } = await import("${dist}core/errors.js");
    runEntryPoint("t", async () => { process.stdout.write('{"result":1}\\n'); throw new KexecError("io", "boom", {}, "h"); }, { jsonErrors: true }); });`;
  const printed = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
  assert.equal(printed.status, 74, printed.stderr);
  assert.deepEqual(JSON.parse(printed.stdout), { result: 1 });
  assert.equal(printed.stderr, "t: boom\nhint: h\n");
  // Without --json, standard output stays empty.
  assert.equal(run("cli/main.js", ["inspect", "/nonexistent/vmlinuz"]).stdout, "");
});
