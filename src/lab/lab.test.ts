import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { readDynamicInfo, readModinfo } from "../core/initramfs/elf-deps.js";
import { resolveLibraries } from "../node/initramfs/libraries.js";
import { expectedMarkers, generateInit, shellQuote, MARK, STEP } from "./init-script.js";
import { buildInitramfs, readInitramfs } from "./initramfs.js";
import { resolveModules } from "../core/initramfs/modules.js";
import { modinfoLookup } from "../node/initramfs/modules.js";
import { findKernel, i386NodeRoot, labCacheDir } from "./kernels.js";
import { missingInput, missingTool } from "../node/test-inputs.js";
import { evaluateChecks, listScenarios, parseScenario, stageInitramfs } from "./scenario.js";
import { readTar } from "../core/archive/tar.js";

import type { GuestResult } from "./qemu.js";

test("/init runs each step from its own file and brackets it with markers", () => {
  const { files } = generateInit({ stage: "second", steps: [{ name: "load", run: "echo 'quoted' \"both\"" }, { name: "snap", run: "true", extract: "/tmp/s" }] });
  const init = files.get("/init")!;
  assert.equal(files.get("/lab/steps/load.sh"), "#!/bin/sh\necho 'quoted' \"both\"\n");
  assert.ok(init.startsWith("#!/bin/sh\n"));
  const order = ["kexec_ts_mark init", `${STEP}$(kexec_ts_name 'load')`, "sh /lab/steps/load.sh", "kexec_ts_mark 'load'", "kexec_ts_extract 'snap' '/tmp/s'", "kexec_ts_mark done", "poweroff -f"];
  let at = 0;
  for (const piece of order) {
    const i = init.indexOf(piece, at);
    assert.ok(i >= at, `${piece} after offset ${at}`);
    at = i;
  }
  assert.match(init, /kexec_ts_stage='second'/);
  assert.ok(init.includes(MARK));
});

test("the generated /init is valid shell, and the marker helpers print what the host expects", () => {
  const { files } = generateInit({ stage: "k2", steps: [{ name: "a", run: "true" }] });
  const init = files.get("/init")!;
  assert.equal(spawnSync("sh", ["-n"], { input: init }).status, 0);
  // Run just the helper definitions from the script in the host's shell.
  const helpers = init.split("\n").filter((l) => l.startsWith("kexec_ts_stage=") || l.startsWith("kexec_ts_name()") || l.startsWith("kexec_ts_mark()")).join("\n");
  const r = spawnSync("sh", ["-c", `${helpers}\nkexec_ts_mark init\nkexec_ts_mark a " rc=3"`]);
  assert.equal(r.stdout.toString(), `${MARK}k2/init\n${MARK}k2/a rc=3\n`);
});

test("step names are checked: reserved, duplicate and unsafe names are refused", () => {
  assert.throws(() => generateInit({ steps: [{ name: "init", run: "" }] }), KexecError);
  assert.throws(() => generateInit({ steps: [{ name: "a", run: "" }, { name: "a", run: "" }] }), /used twice/);
  assert.throws(() => generateInit({ steps: [{ name: "a b", run: "" }] }), /must match/);
  assert.throws(() => generateInit({ steps: [{ name: "../x", run: "" }] }), /must match/);
});

test("expected markers stop at a step that never returns", () => {
  assert.deepEqual(expectedMarkers({ steps: [{ name: "a", run: "" }, { name: "b", run: "" }] }), ["init", "a", "b", "done"]);
  assert.deepEqual(expectedMarkers({ stage: "s", steps: [{ name: "load", run: "" }, { name: "exec", run: "kexec -e", returns: false }, { name: "never", run: "" }] }), ["s/init", "s/load"]);
});

test("shellQuote survives any text", () => {
  for (const text of ["plain", "it's", "a'b'c", "$HOME `x` \"y\"", ""]) {
    assert.equal(spawnSync("sh", ["-c", `printf %s ${shellQuote(text)}`]).stdout.toString(), text);
  }
});

test("the host's node and its libraries are found from PT_INTERP and DT_NEEDED", (t) => {
  if (!existsSync("/usr/bin/node")) return missingInput(t, "no /usr/bin/node (the lab puts the host's node into x86_64 guests)");
  const info = readDynamicInfo(readFileSync("/usr/bin/node"), "/usr/bin/node");
  assert.equal(info.arch, "x86_64");
  assert.equal(info.interpreter, "/lib64/ld-linux-x86-64.so.2");
  assert.ok(info.needed.includes("libc.so.6"));
  const libs = resolveLibraries("/", ["/usr/bin/node"], "x86_64").map((l) => l.guestPath);
  assert.ok(libs.includes("/lib64/ld-linux-x86-64.so.2"));
  assert.ok(libs.some((l) => l.endsWith("/libc.so.6")));
  // ldd is the independent witness: every library it lists must be in our closure.
  const ldd = spawnSync("ldd", ["/usr/bin/node"]).stdout.toString();
  for (const m of ldd.matchAll(/^\s*(\S+\.so\S*) => /gm)) assert.ok(libs.some((l) => l.endsWith(`/${m[1]}`)), `${m[1]} from ldd`);
  assert.throws(() => resolveLibraries("/", ["/usr/bin/node"], "i386"), /is x86_64 code/);
});

test("a file that is not ELF is a parse error", () => {
  assert.throws(() => readDynamicInfo(new TextEncoder().encode("#!/bin/sh\n"), "script"), (e: unknown) => e instanceof KexecError && e.code === "parse");
});

test("a Debian kernel's modules resolve from their .modinfo, dependencies first", (t) => {
  let kernel;
  try {
    kernel = findKernel("amd64-6.12");
  } catch (e) {
    return missingInput(t, (e as Error).message);
  }
  const order = resolveModules(modinfoLookup(kernel.modules), ["virtio_blk"], kernel.modules);
  assert.equal(order[order.length - 1]!.name, "virtio_blk");
  for (const m of order) assert.ok(existsSync(join(kernel.modules, m.path)), m.path);
  const blk = readModinfo(spawnSync("xz", ["-dc", join(kernel.modules, order[order.length - 1]!.path)], { maxBuffer: 64 << 20 }).stdout);
  assert.deepEqual(blk.get("name"), ["virtio_blk"]);
  assert.match(blk.get("vermagic")![0]!, /^6\.12\./);
});

test("tar entries from GNU tar, with long names, read back", (t) => {
  if (missingTool("tar") !== undefined) return missingInput(t, "tar is not installed");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-tar-"));
  try {
    // GNU and pax carry any length; ustar splits the path into prefix (155) and name (100).
    const cases: [string, string][] = [
      ["gnu", `${"x".repeat(90)}/${"y".repeat(90)}/${"z".repeat(40)}`],
      ["pax", `${"x".repeat(90)}/${"y".repeat(90)}/${"z".repeat(40)}`],
      ["ustar", `${"p".repeat(80)}/${"q".repeat(60)}`],
    ];
    for (const [format, long] of cases) {
      rmSync(join(dir, "d"), { recursive: true, force: true });
      spawnSync("sh", ["-c", `mkdir -p "d/${long}" && printf 'hello' > "d/${long}/f" && ln -s f "d/${long}/l"`], { cwd: dir });
      const r = spawnSync("tar", [`--format=${format}`, "-cf", "-", "-C", join(dir, "d"), "."]);
      assert.equal(r.status, 0, r.stderr.toString());
      const entries = readTar(r.stdout);
      const f = entries.find((e) => e.name === `./${long}/f`);
      assert.ok(f !== undefined, `${format}: long name`);
      assert.equal(new TextDecoder().decode(f.data), "hello");
      assert.equal(entries.find((e) => e.name === `./${long}/l`)?.linkName, "f");
    }
    const bad = spawnSync("tar", ["-cf", "-", "-C", join(dir, "d"), "."]).stdout;
    // Cut after its first two headers (directories, no data): whole blocks, but no end blocks.
    assert.throws(() => readTar(bad.subarray(0, 1024)), /ends at offset 0x400 without its end-of-archive blocks/);
    bad[10] = bad[10]! ^ 0xff;
    assert.throws(() => readTar(bad), /checksum/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every scenario in lab/scenarios parses, and nested stages become nested initramfs specs", () => {
  const scenarios = listScenarios();
  assert.ok(scenarios.length >= 4);
  for (const s of scenarios) assert.ok(s.steps.length > 0, s.name);
  const s = parseScenario(
    JSON.stringify({
      name: "k",
      kernel: "amd64-6.1",
      steps: [{ name: "exec", run: "kexec -e", returns: false }],
      files: [{ guest: "/k2/vmlinuz", kernel: "686-pae-6.1" }, { guest: "/k2/initrd", initramfs: { stage: "second", steps: [{ name: "hello", run: "echo hi" }] } }],
    }),
    "inline.json",
  );
  const arch = (name: string): "x86_64" | "i386" => (name.startsWith("686") ? "i386" : "x86_64");
  const spec = stageInitramfs(s, s.kernel, arch, "t");
  assert.equal(spec.userArch, "x86_64");
  assert.equal(spec.files?.[1]?.initramfs?.init.stage, "second");
  assert.equal(spec.files?.[1]?.initramfs?.userArch, "i386", "the nested stage is booted by the sibling i386 kernel");
  assert.throws(() => parseScenario(JSON.stringify({ name: "k", kernel: "x", steps: [{ run: "x" }] }), "bad.json"), /bad.json: steps\[0\].name/);
  assert.throws(() => parseScenario("{", "broken.json"), (e: unknown) => e instanceof KexecError && e.code === "parse");
});

test("checks look at a step's output or the whole console", () => {
  const result = { log: ["boot", "KEXEC-TS-STEP:a", "la57=present"], steps: { a: { rc: 0, output: ["la57=present"] } } } as unknown as GuestResult;
  const verdicts = evaluateChecks(
    [{ step: "a", contains: "la57=present" }, { step: "a", absent: "la57" }, { matches: "^boot$" }, { step: "missing", contains: "x" }],
    result,
  ).map((c) => c.ok);
  assert.deepEqual(verdicts, [true, false, true, false]);
});

test("a program file brings its loader and libraries into the initramfs", async (t) => {
  if (!existsSync("/usr/sbin/kexec") || !existsSync("/bin/busybox")) return missingInput(t, "kexec-tools or busybox-static not installed (.ci/setup-debian.sh)");
  const cache = mkdtempSync(join(tmpdir(), "kexec-ts-cache-"));
  try {
    const built = await buildInitramfs({ userArch: "x86_64", init: { steps: [{ name: "v", run: "kexec --version" }] }, files: [{ guest: "/sbin/kexec", program: "/usr/sbin/kexec" }] }, { cache });
    // Concatenated gzip members, each a cpio archive, as the kernel unpacks them.
    const entries = readInitramfs(readFileSync(built.path));
    const names = new Set(entries.map((e) => e.name));
    for (const n of ["init", "bin/busybox", "bin/sh", "dev/console", "sbin/kexec", "lib64/ld-linux-x86-64.so.2", "lab/steps/v.sh"]) assert.ok(names.has(n), n);
    const ldd = spawnSync("ldd", ["/usr/sbin/kexec"]).stdout.toString();
    for (const m of ldd.matchAll(/^\s*(\S+\.so\S*) => /gm)) assert.ok([...names].some((n) => n.endsWith(`/${m[1]}`)), `${m[1]} from ldd`);
    assert.equal(entries.find((e) => e.name === "dev/console")?.type, "char");
    assert.equal(built.parts[0]!.cached, false);
    const again = await buildInitramfs({ userArch: "x86_64", init: { steps: [{ name: "w", run: "true" }] } }, { cache });
    assert.equal(again.parts[0]!.cached, true, "the busybox part is reused");
    await assert.rejects(
      buildInitramfs({ userArch: "i386", kernelArch: "i386", init: { steps: [] }, files: [{ guest: "/sbin/kexec", program: "/usr/sbin/kexec" }] }, { cache }),
      /is x86_64 code, and the kernel that boots this initramfs runs only i386 programs/,
    );
    let i386Root: string;
    try {
      i386Root = i386NodeRoot();
    } catch (e) {
      return missingInput(t, `the from=i386 case needs the cached i386 user space: ${(e as Error).message}`);
    }
    if (!existsSync(join(i386Root, "sbin/kexec"))) return missingInput(t, `no i386 kexec-tools in ${i386Root} (.ci/setup-debian.sh)`);
    const i386 = await buildInitramfs(
      { userArch: "i386", kernelArch: "x86_64", init: { steps: [] }, files: [{ guest: "/sbin/kexec", program: "/sbin/kexec", from: "i386" }, { guest: "/usr/bin/kexec64", program: "/usr/sbin/kexec" }] },
      { cache: labCacheDir() },
    );
    const got = new Set(readInitramfs(readFileSync(i386.path)).map((e) => e.name));
    for (const n of ["sbin/kexec", "lib/ld-linux.so.2", "lib/i386-linux-gnu/libc.so.6", "usr/bin/kexec64", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6"]) assert.ok(got.has(n), n);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});

test("a step that returns runs with the kernel's console quiet, and the level comes back only after its end marker is sent", () => {
  const init = generateInit({ steps: [{ name: "say", run: "echo hi", extract: "/tmp/x" }, { name: "panic", run: "echo c > /proc/sysrq-trigger", returns: false }] }).files.get("/init")!;
  const lines = init.split("\n");
  const at = (text: string): number => lines.findIndex((l) => l.includes(text));
  const quiet = lines.indexOf("kexec_ts_quiet");
  assert.ok(at("KEXEC-TS-STEP:") < quiet && quiet < at("say.sh") && at("say.sh") < at("kexec_ts_extract 'say'"), "quiet after the step's start marker and before it runs, the extract inside it");
  const loud = lines.indexOf("kexec_ts_loud");
  assert.ok(loud > at("kexec_ts_mark 'say'"), "loud again only after the end marker");
  assert.equal(lines.filter((l) => l === "kexec_ts_quiet").length, 1, "the step that does not return keeps the console as it is: its panic must be seen");
  // The functions themselves, on a stand-in for /proc/sys/kernel/printk and with nothing to drain.
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-quiet-"));
  try {
    const printk = join(dir, "printk");
    writeFileSync(printk, "7\t4\t1\t7\n");
    const fns = [/kexec_ts_quiet\(\) \{.*\}/.exec(init)![0], /kexec_ts_loud\(\) \{.*\}/.exec(init)![0]].map((f) => f.replaceAll("/proc/sys/kernel/printk", printk));
    const r = spawnSync("sh", ["-c", `kexec_ts_drain() { :; }\n${fns.join("\n")}\nkexec_ts_quiet; echo during=$(cat ${printk}); kexec_ts_loud; echo after=$(cat ${printk})`], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "during=1\nafter=7\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("before a step that does not return, the init waits for the console to send what earlier steps printed", () => {
  const init = generateInit({ steps: [{ name: "say", run: "echo hi" }, { name: "panic", run: "echo c > /proc/sysrq-trigger", returns: false }] }).files.get("/init")!;
  const lines = init.split("\n");
  const drains = lines.flatMap((l, i) => (l === "kexec_ts_drain" ? [i] : []));
  assert.equal(drains.length, 1, "only the step that does not return waits");
  assert.match(lines[drains[0]! + 1]!, /panic\.sh/);
  // The function itself, on a stand-in for /proc/tty/driver/serial whose transmit count stands still: it returns.
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-drain-"));
  try {
    const serial = join(dir, "serial");
    writeFileSync(serial, "serinfo:1.0 driver revision:\n0: uart:16550A port:000003F8 irq:4 tx:1234 rx:0 RTS|DTR\n");
    const fn = /kexec_ts_drain\(\) \{[\s\S]*?\n\}/.exec(init)![0].replace("/proc/tty/driver/serial", serial);
    const r = spawnSync("sh", ["-c", `${fn}\nkexec_ts_drain; echo drained i=$kexec_ts_i`], { encoding: "utf8", timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "drained i=1", "without a tty on stdout: one look to learn the count, the next sees it unchanged");
    // With a tty on stdout (util-linux's script gives it a pty), stty drains it and the count is never read.
    const script = join(dir, "drain.sh");
    writeFileSync(script, `${fn}\nkexec_ts_drain; echo drained i=$kexec_ts_i\n`);
    const t = spawnSync("script", ["-qec", `sh ${script}`, "/dev/null"], { encoding: "utf8", timeout: 20000 });
    assert.equal(t.status, 0, t.stderr);
    assert.equal(t.stdout.trim(), "drained i=0", "stty set the tty's settings again with TCSADRAIN");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
