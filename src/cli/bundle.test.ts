/**
 * The installed entry point (bin/kexec-ts.cjs running the bundle scripts/bundle.mjs makes, with
 * V8's code cache) must be the same program as dist/cli/main.js: the same output and status for
 * the same command lines, module-relative paths that still resolve (the vmcore worker threads,
 * the sample snapshot, package.json), and a code cache this Node accepts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { syntheticVmcore } from "../core/vmcore/testing.js";
import { cachedKernels } from "../node/kernel-cache.js";
import { missingInput } from "../node/test-inputs.js";
import { LAUNCH_NODE_FLAGS, launcherShebang } from "../core/launch.js";
import { readFileSync } from "node:fs";

const repo = new URL("../../", import.meta.url).pathname;
const bin = join(repo, "bin", "kexec-ts.cjs");
const main = join(repo, "dist", "cli", "main.js");
const bundle = join(repo, "dist", "cli", "kexec-ts.bundle.cjs");

function run(entry: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [entry, ...args], { encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the bundle is built, and this Node accepts its code cache", () => {
  assert.ok(existsSync(bundle), `${bundle} is missing: npm run build bundles the command line (scripts/bundle.mjs)`);
  const r = run(bin, ["--version"], { KEXEC_TS_DEBUG: "1" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /code cache accepted/);
  assert.equal(r.stdout, run(main, ["--version"]).stdout);
});

test("executed, the bin starts Node with the launch options (src/core/launch.ts), and its code cache still fits", () => {
  assert.equal(readFileSync(bin, "utf8").split("\n")[0], launcherShebang());
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-launch-"));
  try {
    // Preloaded by the Node the #! line starts: what that Node was given.
    const probe = join(dir, "probe.cjs");
    writeFileSync(probe, `process.stderr.write("launch " + JSON.stringify(process.execArgv) + "\\n");`);
    const r = spawnSync(bin, ["--version"], { encoding: "utf8", env: { ...process.env, KEXEC_TS_DEBUG: "1", NODE_OPTIONS: `--require ${probe}` } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(/^launch (.*)$/m.exec(r.stderr)![1]!), [...LAUNCH_NODE_FLAGS]);
    assert.match(r.stderr, /code cache accepted/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("short commands run without TurboFan and long ones with it, each from a code cache this Node accepts", () => {
  const mode = (args: string[], env: Record<string, string> = {}) => {
    const r = run(bin, args, { KEXEC_TS_DEBUG: "1", ...env });
    return /code cache (\S+).*\((\w+) JIT\)/.exec(r.stderr)?.slice(1).join(" ");
  };
  const v8Major = Number(process.versions.v8.split(".")[0]);
  // Where bin/kexec-ts.cjs knows the flag (V8 10 and 11), the short commands get the baseline compilers only.
  const short = v8Major === 10 || v8Major === 11 ? "baseline" : "full";
  assert.equal(mode(["--version"]), `accepted ${short}`);
  assert.equal(mode(["machine", "--root", join(repo, "testdata", "snapshots", "qemu-amd64-6.1-high-6G")]), `accepted ${short}`);
  assert.equal(mode(["vmcore", "info", "/nonexistent"]), "accepted full");
  assert.equal(mode(["kdump", "list"]), "accepted full");
  assert.equal(mode(["--version"], { KEXEC_TS_JIT: "full" }), "accepted full");
});

test("bundled and unbundled give the same answers: check, plan and machine on a snapshot, errors included", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-bundle-"));
  try {
    const kernel = join(dir, "vmlinuz");
    writeFileSync(kernel, readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 })).bytes);
    const initrd = join(dir, "initrd");
    writeFileSync(initrd, new Uint8Array(3 << 20));
    const root = join(repo, "testdata", "snapshots", "qemu-amd64-6.1-high-6G");
    const cases = [
      ["check", "-p", kernel, `--initrd=${initrd}`, "--root", root, "--json"],
      ["plan", "-c", "-l", kernel, `--initrd=${initrd}`, "--root", root, "--json"],
      ["machine", "--root", root, "--json"],
      ["inspect", kernel],
      ["plan", "-p", join(dir, "missing"), "--root", root],
      ["--help"],
    ];
    for (const args of cases) {
      const a = run(main, args);
      const b = run(bin, args);
      assert.deepEqual(b, a, `kexec-ts ${args.join(" ")}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bundled vmcore save starts its compression threads (a worker found through its own module URL)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-bundle-"));
  try {
    const src = join(dir, "src.elf");
    writeFileSync(src, syntheticVmcore(2048).bytes);
    for (const entry of [main, bin]) {
      const dst = join(dir, `out-${entry === bin ? "bin" : "main"}.kdump`);
      const r = run(entry, ["vmcore", "save", "--dump-level", "1", "--compress", "zlib", "--threads", "2", src, dst]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(existsSync(dst));
    }
    const info = (f: string) => run(bin, ["vmcore", "info", "--json", f]).stdout;
    assert.equal(info(join(dir, "out-bin.kdump")), info(join(dir, "out-main.kdump")).replace(/out-main/g, "out-bin"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bundled, a kdump file's zlib and zstd pages decode through the JavaScript decoders too, whose libraries the bundle loads when first used", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-bundle-"));
  try {
    const src = join(dir, "src.elf");
    writeFileSync(src, syntheticVmcore(1024).bytes);
    const log = run(main, ["vmcore", "dmesg", src]);
    assert.equal(log.status, 0, log.stderr);
    assert.match(log.stdout, /Linux version/);
    for (const codec of ["zlib", "zstd"]) {
      const dst = join(dir, `${codec}.kdump`);
      const saved = run(bin, ["vmcore", "save", "--dump-level", "1", "--compress", codec, src, dst]);
      assert.equal(saved.status, 0, saved.stderr);
      // Without the system's libraries: fflate (zlib) and fzstd (zstd) decode the log's pages.
      for (const entry of [bin, main]) {
        const r = run(entry, ["vmcore", "dmesg", dst], { KEXEC_TS_NATIVE_CODECS: "0" });
        assert.deepEqual({ status: r.status, stdout: r.stdout }, { status: 0, stdout: log.stdout }, `${codec}, ${entry === bin ? "bundled" : "unbundled"}: ${r.stderr}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("nothing on the load path decompresses the kernel's payload: check and plan take a Debian kernel whose payload is damaged, inspect --vmlinux does not", (t) => {
  const kernel = cachedKernels().find((k) => k.flavour === "amd64");
  if (!kernel) return missingInput(t, "no Debian amd64 kernel in the cache (bash .ci/setup-debian.sh)");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-bundle-"));
  try {
    const bytes = new Uint8Array(readFileSync(kernel.vmlinuz));
    const image = readKernelImage(bytes);
    const payload = image.kind === "bzImage" ? image.bzImage.payload : undefined;
    assert.ok(payload, "a bzImage with a payload");
    // The middle of the compressed kernel overwritten: the header and the PE signature area are intact.
    bytes.fill(0xa5, payload.offset + (payload.length >> 1), payload.offset + (payload.length >> 1) + 65536);
    const damaged = join(dir, "vmlinuz");
    writeFileSync(damaged, bytes);
    const root = join(repo, "testdata", "snapshots", "qemu-amd64-6.1-high-6G");
    for (const args of [["check", "-p", damaged, "--root", root], ["plan", "-c", "-p", damaged, "--root", root], ["plan", "-c", "-l", damaged, "--root", root]]) {
      const r = run(bin, args);
      assert.ok(r.status === 0 || r.status === 1, `kexec-ts ${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
    }
    const r = run(bin, ["inspect", "--vmlinux", damaged]);
    assert.equal(r.status, 65, "decompressing the damaged payload fails: the commands above never did it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
