/**
 * `kexec-ts kdump import` run as a user runs it, on files and --config paths that are wrong in
 * the ways fuzzing found: what it writes must be a file kexec-ts then reads, and a path it
 * cannot write is an I/O error that names it, never a stack trace or a hang.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { buildBzImage } from "../../core/image/testing/synthetic.js";
import { parseConfig } from "../../core/kdump/config.js";
import { noEstimateError } from "./kdump.js";
import { literally } from "../../core/testing/pattern.js";

const main = new URL("../main.js", import.meta.url).pathname;

/** The CLI with a time limit: a hang (Node's recursive mkdir under /proc spins) fails the test instead of stalling it. */
function kexecTs(args: string[]) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8", timeout: 20_000, env: { ...process.env, KEXEC_TS_DEBUG: "" } });
  assert.equal(r.signal, null, `kexec-ts ${args.join(" ")} did not finish`);
  return r;
}

test("kdump import: values kexec-ts would refuse are skipped, and the file written is one kdump list reads", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-import-"));
  try {
    const tools = join(dir, "kdump-tools");
    writeFileSync(tools, 'KDUMP_COREDIR="/srv/crash dumps #1"\r\nMAKEDUMP_ARGS="-cd99"\r\nKDUMP_NUM_DUMPS=1000000\r\nKDUMP_KERNEL=vmlinuz-6.1\r\nKDUMP_CMDLINE_APPEND="console=ttyS0,115200 #serial"\r\n');
    const out = join(dir, "etc", "kdump.conf");
    const r = kexecTs(["kdump", "import", tools, "--config", out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /MAKEDUMP_ARGS \(line 2\): -d 99: expected 0\.\.31/);
    assert.match(r.stdout, /KDUMP_NUM_DUMPS \(line 3\): "1000000"/);
    assert.match(r.stdout, /KDUMP_KERNEL \(line 4\): "vmlinuz-6\.1"/);
    const config = parseConfig(readFileSync(out, "utf8"), out);
    assert.equal(config.target, "/srv/crash dumps #1");
    assert.equal(config.append, "console=ttyS0,115200 #serial");
    assert.deepEqual([config.codec, config.dumpLevel, config.keep, config.kernel], ["zlib", 31, 3, null]);
    const list = kexecTs(["kdump", "list", "--config", out]);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(readdirSync(join(dir, "etc")), ["kdump.conf"], "no temporary file left beside it");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kdump import: a --config path that cannot be written is an I/O error naming it (74), not a crash or a hang", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-import-"));
  try {
    const tools = join(dir, "kdump-tools");
    writeFileSync(tools, "USE_KDUMP=1\nKDUMP_COREDIR=/var/crash\n");
    const aDir = join(dir, "adir");
    mkdirSync(aDir);
    const aFile = join(dir, "afile");
    writeFileSync(aFile, "");
    symlinkSync(join(dir, "nowhere"), join(dir, "dangling"));
    const fifo = join(dir, "fifo.conf");
    assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
    const cases: [string, RegExp, RegExp][] = [
      [aDir, /: cannot write the kdump configuration: it is a directory$/m, /give --config the path of a file, such as .*adir\/kdump\.conf/],
      // Read to compare with what import would write, it blocked for ever.
      [fifo, /: cannot write the kdump configuration: it is a pipe \(FIFO\)$/m, /give --config the path of a regular file/],
      [join(aFile, "kdump.conf"), /afile\/kdump\.conf: cannot write the kdump configuration: (file already exists \(EEXIST\)|not a directory \(ENOTDIR\))(, \w+ '[^']*')?$/m, /a part of the path is a file/],
      ["/proc/kexec-ts-no-such-dir/kdump.conf", /kdump\.conf: cannot write the kdump configuration: no such file or directory \(ENOENT\)(, \w+ '[^']*')?$/m, /hint: /],
      [join(dir, "dangling", "sub", "kdump.conf"), /kdump\.conf: cannot write the kdump configuration: no such file or directory \(ENOENT\)(, \w+ '[^']*')?$/m, /hint: /],
    ];
    for (const [config, says, hint] of cases) {
      const r = kexecTs(["kdump", "import", tools, "--config", config]);
      assert.equal(r.status, 74, `${config}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^kexec-ts: ${literally(config)}`), config);
      assert.match(r.stderr, says, config);
      assert.match(r.stderr, hint, config);
      assert.doesNotMatch(r.stderr, /internal error|    at /, config);
    }
    assert.deepEqual(readdirSync(aDir), [], "nothing written into the directory");
    const empty = kexecTs(["kdump", "import", tools, "--config="]);
    assert.equal(empty.status, 64, empty.stderr);
    assert.match(empty.stderr, /^kexec-ts: --config needs a file path, found an empty one\n/);
    const device = kexecTs(["kdump", "import", "/dev/zero", "--config", join(dir, "k.conf")]);
    assert.equal(device.status, 74, device.stderr);
    assert.match(device.stderr, /\/dev\/zero: is a character device, expected kdump configuration in a regular file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kdump report --json: bookkeeping that cannot be written is one JSON document (recordError in it) and exit 74", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const target = join(dir, "crash");
    mkdirSync(join(target, "h-20260101T000000Z"), { recursive: true });
    mkdirSync(join(target, ".kexec-ts-reported.json"));
    const config = join(dir, "kdump.conf");
    writeFileSync(config, `target = ${target}\n`);
    const r = kexecTs(["kdump", "report", "--json", "--config", config]);
    assert.equal(r.status, 74, r.stderr);
    // It was the result, then the error as a second document: JSON.parse refused the output.
    const out = JSON.parse(r.stdout) as { recordError: { error: string; message: string; hint: string }; lines: string[] };
    assert.equal(out.recordError.error, "io");
    assert.match(out.recordError.message, /\.kexec-ts-reported\.json: cannot record which dumps were reported: .*\(EISDIR\)$/);
    assert.match(out.lines.join("\n"), /h-20260101T000000Z: the capture left no report\.json/, "the summaries are there");
    assert.match(r.stderr, /^kexec-ts: .*\.kexec-ts-reported\.json: cannot record which dumps were reported: .*\nhint: move the directory /);
    const text = kexecTs(["kdump", "report", "--config", config]);
    assert.equal(text.status, 74, text.stderr);
    assert.match(text.stdout, /^kexec-ts kdump: .*h-20260101T000000Z: the capture left no report\.json/m);
    assert.equal(text.stderr.match(/^kexec-ts: /gm)?.length, 1, "the error is said once");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kdump estimate --json: the error that left no estimate keeps its data and hint (the file it names)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-estimate-"));
  try {
    // A synthetic bzImage: its release has no /lib/modules directory here, so the capture
    // initramfs is not built (nor written) and there is no estimate.
    const kernel = join(dir, "vmlinuz-6.1.0-synthetic");
    writeFileSync(kernel, buildBzImage({ tail: 0x2000 }));
    const config = join(dir, "kdump.conf");
    writeFileSync(config, `kernel = ${kernel}\ntarget = ${join(dir, "crash")}\n`);
    const r = kexecTs(["kdump", "estimate", "--json", "--config", config]);
    assert.equal(r.status, 69, r.stderr);
    const out = JSON.parse(r.stdout) as { error: string; message: string; data: Record<string, unknown>; hint: string | null };
    assert.equal(out.error, "machine");
    assert.match(out.message, /^no estimate: the capture kernel .* has no modules directory (\/lib\/modules\/\S+)$/);
    // It had been "data": {}: the file was only in the message.
    assert.equal(out.data.file, /(\/lib\/modules\/\S+)$/.exec(out.message)![1]);
    assert.match(out.hint ?? "", /set kernel = in .*kdump\.conf to an installed kernel/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("noEstimateError: a capture kernel that is no bzImage names the file and the kernel = setting", () => {
  const e = noEstimateError(null, "/boot/vmlinux-6.1", "elf", "/tmp/kdump.conf").toJSON();
  assert.deepEqual(e.data, { file: "/boot/vmlinux-6.1", field: "kernel", expected: "a bzImage", actual: "an ELF vmlinux" });
  assert.match(String(e.hint), /set kernel = in \/tmp\/kdump\.conf to a bzImage/);
  const cause = new KexecError("machine", "no busybox", { expected: "/bin/busybox" }, "apt-get install busybox-static");
  const wrapped = noEstimateError(cause, "/boot/vmlinuz", "bzImage", "/tmp/kdump.conf");
  assert.deepEqual([wrapped.message, wrapped.data, wrapped.hint, wrapped.cause], ["no estimate: no busybox", { expected: "/bin/busybox" }, "apt-get install busybox-static", cause]);
});
