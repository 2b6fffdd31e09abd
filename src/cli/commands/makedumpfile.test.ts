import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../../core/errors.js";
import { formatDmesg, readLockless } from "../../core/vmcore/dmesg.js";
import { bytesAccess } from "../../core/vmcore/memory.js";
import { syntheticVmcore } from "../../core/vmcore/testing.js";
import { openVmcore, vmcoreKernelMemory } from "../../core/vmcore/vmcore.js";
import { missingInput, missingTool } from "../../node/test-inputs.js";
import { planMakedumpfile, type MakedumpfileAction } from "./makedumpfile.js";
import { literally } from "../../core/testing/pattern.js";

const split = (line: string) => line.split(/\s+/).filter(Boolean);

/** The command lines the distributions' kdump scripts run, with what each must mean. */
const REAL_COMMAND_LINES: { source: string; line: string; want: Partial<Record<string, unknown>> & { kind: MakedumpfileAction["kind"] } }[] = [
  // Debian kdump-tools 1:1.8.1, /usr/sbin/kdump-config, kdump_save_core: MAKEDUMP_ARGS="-F -c -d 31" (line 56), piped to compress.
  { source: "kdump-tools 1:1.8.1 kdump-config savecore", line: "-F -c -d 31 /proc/vmcore", want: { kind: "dump", src: "/proc/vmcore", dst: "-", format: "kdump", flat: true, codec: "zlib", dumpLevel: 31 } },
  { source: "kdump-tools 1:1.8.1 kdump-config dump_dmesg", line: "--dump-dmesg /proc/vmcore /var/crash/202612020700/dmesg.202612020700", want: { kind: "dmesg", vmcore: "/proc/vmcore", dst: "/var/crash/202612020700/dmesg.202612020700" } },
  // Older kdump-tools (kdump-config.in before KDUMP_COMPRESSION): to a file, -F added for ssh.
  { source: "kdump-tools kdump_save_core (file)", line: "-c -d 31 /proc/vmcore /var/crash/202612020700/dump-incomplete", want: { kind: "dump", dst: "/var/crash/202612020700/dump-incomplete", flat: false, codec: "zlib", dumpLevel: 31 } },
  // kdump-utils dracut/99kdumpbase/kdump.sh: CORE_COLLECTOR="makedumpfile -l --message-level 7 -d 31", --num-threads=$(nproc) unless -F/-E.
  { source: "kdump-utils kdump.sh dump_fs", line: "-l --message-level 7 -d 31 --num-threads=2 /proc/vmcore /sysroot/var/crash/127.0.0.1-2026-12-02-07:00:00/vmcore-incomplete", want: { kind: "dump", codec: "lzo", dumpLevel: 31, threads: 2, flat: false, messageLevel: 7 } },
  { source: "kdump-utils kdump.sh dump_ssh / dump_raw", line: "-l --message-level 7 -d 31 -F /proc/vmcore", want: { kind: "dump", codec: "lzo", flat: true, dst: "-" } },
  // kdump-utils tests/scripts: restore a flattened dump.
  { source: "kdump-utils tests: makedumpfile -R", line: "-R /var/crash/x/vmcore", want: { kind: "rearrange", dst: "/var/crash/x/vmcore" } },
  // SUSE kdump dracut/kdump-save: dmesg at debug level to the fifo, then the dump in the chosen format.
  { source: "SUSE kdump-save dmesg", line: "-F --message-level 8 --dump-dmesg /proc/vmcore", want: { kind: "dmesg", dst: "-", messageLevel: 8 } },
  { source: "SUSE kdump-save KDUMP_DUMPFORMAT=compressed", line: "-F -c --num-threads 4 --message-level 6 -d 31 /proc/vmcore", want: { kind: "dump", codec: "zlib", threads: 4, flat: true, messageLevel: 6 } },
  { source: "SUSE kdump-save KDUMP_DUMPFORMAT=lzo", line: "-F -l --num-threads 4 --message-level 6 -d 31 /proc/vmcore", want: { kind: "dump", codec: "lzo" } },
  { source: "SUSE kdump-save KDUMP_DUMPFORMAT=snappy", line: "-F -p --num-threads 4 --message-level 6 -d 31 /proc/vmcore", want: { kind: "dump", codec: "snappy" } },
  { source: "SUSE kdump-save KDUMP_DUMPFORMAT=zstd", line: "-F -z --num-threads 4 --message-level 6 -d 31 /proc/vmcore", want: { kind: "dump", codec: "zstd" } },
  { source: "SUSE kdump-save KDUMP_DUMPFORMAT=ELF (one CPU: no --num-threads)", line: "-F -E --message-level 6 -d 31 /proc/vmcore", want: { kind: "dump", format: "elf", codec: "none", flat: true } },
  // getopt_long spellings: bundled short options, attached values, options after operands.
  { source: "getopt: bundled and attached", line: "-cd31 /proc/vmcore out", want: { kind: "dump", codec: "zlib", dumpLevel: 31, dst: "out" } },
  { source: "getopt: operands first", line: "/proc/vmcore out -l -d 1", want: { kind: "dump", codec: "lzo", dumpLevel: 1 } },
  { source: "no -d: makedumpfile's default dump level 0, no compression", line: "/proc/vmcore out", want: { kind: "dump", dumpLevel: 0, codec: "none", format: "kdump" } },
];

test("makedumpfile drop-in: the distributions' real command lines mean what they mean to makedumpfile", () => {
  for (const { source, line, want } of REAL_COMMAND_LINES) {
    const plan = planMakedumpfile(split(line));
    const a = plan.action;
    const got: Record<string, unknown> = { kind: a.kind, messageLevel: plan.messageLevel, ...(a.kind === "dump" ? a.save : a) };
    for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k], v, `${source}: \`makedumpfile ${line}\`: ${k}`);
  }
});

test("makedumpfile drop-in: what makedumpfile refuses is refused; options kexec-ts lacks are refused by name", () => {
  const refused: [string, RegExp][] = [
    ["-c -E /proc/vmcore out", /-E \(ELF\) stores pages uncompressed/],
    ["-E --num-threads 2 /proc/vmcore out", /--num-threads cannot used with ELF format\./],
    ["-R out -d 31", /-R cannot be combined/],
    ["-F /proc/vmcore out", /-F takes VMCORE/],
    ["-d 32 /proc/vmcore out", /^Dump_level\(32\) is invalid\.$/],
    ["--message-level 99 /proc/vmcore out", /Message_level\(99\) is invalid/],
    ["-q /proc/vmcore out", /invalid option -- 'q'/],
    ["--xen /proc/vmcore out", /option '--xen' is ambiguous; possibilities: '--xen-syms' '--xen-vmcoreinfo' '--xen_phys_start'/],
    ["-x /usr/lib/debug/vmlinux -d 31 /proc/vmcore out", /option -x is not supported by kexec-ts/],
    ["--split -d 31 /proc/vmcore a b", /option --split is not supported/],
    ["-i vmcoreinfo /proc/vmcore out", /option -i is not supported/],
    ["--work-dir=/tmp /proc/vmcore out", /option --work-dir is not supported/],
    ["-L 1G /proc/vmcore out", /option -L is not supported/],
    ["-e /proc/vmcore out", /option -e is not supported/],
  ];
  for (const [line, message] of refused) {
    assert.throws(() => planMakedumpfile(split(line)), (e: unknown) => e instanceof KexecError && e.code === "usage" && message.test(e.message), line);
  }
  assert.equal(planMakedumpfile(["-h"]).action.kind, "help");
  assert.equal(planMakedumpfile(split("--dump /proc/vmcore out")).action.kind, "dmesg", "a unique prefix of a long option is that option, as with getopt_long");
  assert.equal(planMakedumpfile(["-D", "-d", "1", "a", "b"]).messageLevel, 7 | 8, "-D adds the debug messages");
});

/** Runs the built CLI, as `makedumpfile` through a link when `link` is given. */
function run(dir: string, argv: string[], options: { link?: boolean; stdin?: string } = {}): { status: number | null; stdout: Buffer; stderr: string } {
  const cli = new URL("../main.js", import.meta.url).pathname;
  let program = [cli];
  if (options.link) {
    const link = join(dir, "makedumpfile");
    if (!existsSync(link)) symlinkSync(cli, link);
    program = [link];
  }
  const r = spawnSync(process.execPath, [...program, ...argv], { cwd: dir, input: options.stdin === undefined ? undefined : readFileSync(options.stdin), maxBuffer: 1 << 28 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

test("makedumpfile drop-in end to end: -F ... | cat > f, then -R f2 < f, and --dump-dmesg; as a link named makedumpfile and as `kexec-ts makedumpfile`", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-"));
  try {
    const s = syntheticVmcore(300);
    writeFileSync(join(dir, "vmcore"), s.bytes);
    const flat = run(dir, ["-F", "-l", "-d", "1", "vmcore"], { link: true });
    assert.equal(flat.status, 0, flat.stderr);
    assert.match(flat.stderr, /makedumpfile Completed\./, "with -F the messages go to stderr");
    writeFileSync(join(dir, "f"), flat.stdout);
    const restored = run(dir, ["makedumpfile", "-R", "f2"], { stdin: join(dir, "f") });
    assert.equal(restored.status, 0, restored.stderr);
    const out = openVmcore(bytesAccess(new Uint8Array(readFileSync(join(dir, "f2")))));
    assert.equal(out.format, "kdump");
    for (const [pfn, page] of s.pages) {
      const got = out.memory.readPage(BigInt(pfn));
      if (got !== undefined) assert.deepEqual(got, page, `pfn ${pfn}`);
      else assert.ok(page.every((b) => b === 0), `pfn ${pfn} excluded as zero`);
    }
    // The same dump written as a file directly, as kdump-utils asks for it.
    assert.equal(run(dir, ["-l", "-d", "1", "vmcore", "direct"], { link: true }).status, 0);
    assert.deepEqual(readFileSync(join(dir, "direct")), readFileSync(join(dir, "f2")), "-R of the stream gives the file the direct write gives");
    // makedumpfile never overwrites a dump file without -f.
    const again = run(dir, ["-l", "-d", "1", "vmcore", "direct"], { link: true });
    assert.equal(again.status, 1);
    assert.match(again.stderr, /Can't open the dump file \(direct\)\. File exists/);
    assert.equal(run(dir, ["-f", "-l", "-d", "1", "vmcore", "direct"], { link: true }).status, 0);
    const dmesg = run(dir, ["--dump-dmesg", "vmcore", "dmesg.txt"], { link: true });
    assert.equal(dmesg.status, 0, dmesg.stderr);
    const src = openVmcore(bytesAccess(s.bytes));
    assert.equal(readFileSync(join(dir, "dmesg.txt"), "latin1"), formatDmesg(readLockless(vmcoreKernelMemory(src), src.vmcoreinfo!)));
    // SUSE: the log on standard output, VMCOREINFO's OSRELEASE and CRASHTIME on stderr at message level 8.
    const suse = run(dir, ["-F", "--message-level", "8", "--dump-dmesg", "vmcore"], { link: true });
    assert.equal(suse.status, 0, suse.stderr);
    assert.equal(suse.stdout.toString("latin1"), readFileSync(join(dir, "dmesg.txt"), "latin1"));
    assert.match(suse.stderr, /^OSRELEASE=6\.1\.0-synthetic$/m);
    assert.match(suse.stderr, /^CRASHTIME=\d+$/m);
    // A stream cut short: a clear error and exit 1, not a wait for more.
    writeFileSync(join(dir, "cut"), flat.stdout.subarray(0, flat.stdout.length - 5000));
    const cut = run(dir, ["-R", "f3"], { link: true, stdin: join(dir, "cut") });
    assert.equal(cut.status, 1);
    assert.match(cut.stderr, /the stream ends inside the record/);
    // An option kexec-ts lacks: exit 1, named.
    const x = run(dir, ["-x", "vmlinux", "vmcore", "out"], { link: true });
    assert.equal(x.status, 1);
    assert.match(x.stderr, /option -x is not supported by kexec-ts/);
    assert.ok(!existsSync(join(dir, "out")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makedumpfile drop-in -R and --dump-dmesg: DUMPFILE appears whole or not at all; a directory, a FIFO or the vmcore itself is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-out-"));
  try {
    const s = syntheticVmcore(300);
    writeFileSync(join(dir, "vmcore"), s.bytes);
    const flat = run(dir, ["-F", "-l", "-d", "1", "vmcore"], { link: true });
    assert.equal(flat.status, 0, flat.stderr);
    // A stream cut short: what came stays under the temporary name, never under DUMPFILE.
    writeFileSync(join(dir, "cut"), flat.stdout.subarray(0, flat.stdout.length - 5000));
    const cut = run(dir, ["-R", "restored"], { link: true, stdin: join(dir, "cut") });
    assert.equal(cut.status, 1);
    assert.match(cut.stderr, /the stream ends inside the record.*what was reassembled is in restored\.incomplete, not restored/);
    assert.ok(!existsSync(join(dir, "restored")), "no half dump under DUMPFILE");
    assert.ok(existsSync(join(dir, "restored.incomplete")));
    // Not a flattened stream at all: nothing is left anywhere.
    writeFileSync(join(dir, "garbage"), new Uint8Array(8192).fill(0x41));
    const garbage = run(dir, ["-R", "g"], { link: true, stdin: join(dir, "garbage") });
    assert.equal(garbage.status, 1);
    assert.match(garbage.stderr, /no "makedumpfile" signature/);
    assert.ok(!existsSync(join(dir, "g")) && !existsSync(join(dir, "g.incomplete")));
    // The whole stream: DUMPFILE, and no temporary name.
    writeFileSync(join(dir, "f"), flat.stdout);
    assert.equal(run(dir, ["-R", "whole"], { link: true, stdin: join(dir, "f") }).status, 0);
    assert.ok(existsSync(join(dir, "whole")) && !existsSync(join(dir, "whole.incomplete")));
    // Standard input that cannot be read (here a directory) is said in words, with its errno.
    const dirIn = openSync(dir, "r");
    try {
      const r = spawnSync(process.execPath, [new URL("../main.js", import.meta.url).pathname, "makedumpfile", "-R", "from-dir"], { cwd: dir, stdio: [dirIn, "pipe", "pipe"] });
      assert.equal(r.status, 1);
      assert.match(r.stderr.toString(), /cannot read the flattened dump from standard input: illegal operation on a directory \(EISDIR\)\n/);
    } finally {
      closeSync(dirIn);
    }
    // A directory is named as one, not "File exists".
    mkdirSync(join(dir, "crash"));
    const toDir = run(dir, ["--dump-dmesg", "vmcore", "crash"], { link: true });
    assert.equal(toDir.status, 1);
    assert.match(toDir.stderr, /crash is a directory: makedumpfile --dump-dmesg needs the log's file name/);
    // -f never makes the vmcore its own output: the log had replaced it.
    const self = run(dir, ["-f", "--dump-dmesg", "vmcore", "vmcore"], { link: true });
    assert.equal(self.status, 1);
    assert.match(self.stderr, /vmcore is the vmcore: the log would replace its own source/);
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, "vmcore"))), s.bytes);
    // An error from the readers of kernel structures names the vmcore, here and in `vmcore dmesg`.
    const noNote = s.bytes.slice();
    const at = Buffer.from(noNote).indexOf("VMCOREINFO\0");
    assert.ok(at > 0);
    noNote[at + 9] = "X".charCodeAt(0);
    writeFileSync(join(dir, "no-vmcoreinfo"), noNote);
    const mdfDmesg = run(dir, ["--dump-dmesg", "no-vmcoreinfo", "log"], { link: true });
    assert.equal(mdfDmesg.status, 1);
    assert.match(mdfDmesg.stderr, /^makedumpfile \(kexec-ts\): no-vmcoreinfo: the vmcore has no VMCOREINFO note/m);
    const ownDmesg = run(dir, ["vmcore", "dmesg", "no-vmcoreinfo"]);
    assert.equal(ownDmesg.status, 65);
    assert.match(ownDmesg.stderr, /^kexec-ts: no-vmcoreinfo: the vmcore has no VMCOREINFO note/m);
    // One that names it already (openVmcore's) is not named twice.
    writeFileSync(join(dir, "empty"), "");
    const empty = run(dir, ["vmcore", "dmesg", "empty"]);
    assert.equal(empty.status, 65);
    assert.match(empty.stderr, /^kexec-ts: empty: the file is empty \(0 bytes\)$/m);
    // A FIFO (held open here for reading, so that a write into it would not wait) is refused, not written through.
    assert.equal(spawnSync("mkfifo", [join(dir, "fifo")]).status, 0);
    const reader = openSync(join(dir, "fifo"), constants.O_RDWR);
    try {
      const toFifo = run(dir, ["-f", "-R", "fifo"], { link: true, stdin: join(dir, "garbage") });
      assert.equal(toFifo.status, 1);
      assert.match(toFifo.stderr, /fifo is a pipe \(FIFO\): makedumpfile -R writes a file/);
    } finally {
      closeSync(reader);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs the built CLI as `makedumpfile ARGS` into a pipe whose reader has gone before the first write (ssh that could not connect, a fifo's reader that died). */
function runIntoClosedPipe(dir: string, argv: string[]): { status: number; stderr: string } {
  const cli = new URL("../main.js", import.meta.url).pathname;
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  // The writer starts once the reader has closed its end (the file "closed" says so): on a loaded
  // machine a reader scheduled late had let a short log into the pipe's buffer, and exit 0.
  const closed = q(join(dir, "closed"));
  const script = `rm -f ${closed}; { while [ ! -e ${closed} ]; do sleep 0.01; done; ${q(process.execPath)} ${q(cli)} makedumpfile ${argv.map(q).join(" ")} 2>${q(join(dir, "stderr"))}; echo $? > ${q(join(dir, "rc"))}; } | (exec 0<&-; : > ${closed}; sleep 1)`;
  assert.equal(spawnSync("sh", ["-c", script], { timeout: 120_000 }).status, 0);
  return { status: Number(readFileSync(join(dir, "rc"), "utf8")), stderr: readFileSync(join(dir, "stderr"), "utf8") };
}

test("makedumpfile drop-in -F into a pipe whose reader is already gone: exit 1 and makedumpfile Failed., not an internal error", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-pipe-"));
  try {
    writeFileSync(join(dir, "vmcore"), syntheticVmcore(2000).bytes);
    for (const args of [["-F", "-c", "-d", "1"], ["-F", "-d", "0"]]) {
      const r = runIntoClosedPipe(dir, [...args, join(dir, "vmcore")]);
      assert.doesNotMatch(r.stderr, /internal error/, args.join(" "));
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^makedumpfile \(kexec-ts\): standard output: the reader of the stream went away after \d+ bytes: the flattened dump is cut short$/m);
      assert.match(r.stderr, /\nmakedumpfile Failed\.\n$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makedumpfile drop-in -F --dump-dmesg into a pipe whose reader is gone: exit 1, not 'The dmesg log is saved to STDOUT' and 0", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-pipe-"));
  try {
    writeFileSync(join(dir, "vmcore"), syntheticVmcore(300).bytes);
    const r = runIntoClosedPipe(dir, ["-F", "--dump-dmesg", join(dir, "vmcore")]);
    assert.equal(r.status, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /saved to STDOUT|Completed/);
    assert.match(r.stderr, /^makedumpfile \(kexec-ts\): standard output: the reader of the log went away: the log is not saved$/m);
    assert.match(r.stderr, /\nmakedumpfile Failed\.\n$/);
    // SUSE's level 8 (debug only): the status says it, the messages stay quiet as makedumpfile's do.
    const suse = runIntoClosedPipe(dir, ["-F", "--message-level", "8", "--dump-dmesg", join(dir, "vmcore")]);
    assert.equal(suse.status, 1, suse.stderr);
    assert.match(suse.stderr, /^OSRELEASE=/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makedumpfile drop-in: the dump is created readable by root only (0600), as makedumpfile creates it, whatever the umask", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-mode-"));
  try {
    writeFileSync(join(dir, "vmcore"), syntheticVmcore(300).bytes);
    for (const [args, out] of [[["-l", "-d", "1"], "kdump"], [["-E", "-d", "1"], "elf"], [["--dump-dmesg"], "log"]] as const) {
      // umask 022, the usual one, would leave a 0644 file readable by every user.
      const r = spawnSync("sh", ["-c", `umask 022; exec "$0" "$@"`, process.execPath, new URL("../main.js", import.meta.url).pathname, "makedumpfile", ...args, join(dir, "vmcore"), join(dir, out)]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.equal(statSync(join(dir, out)).mode & 0o777, 0o600, `${args.join(" ")}: mode`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makedumpfile drop-in: messages that cannot be written (stdout or stderr on /dev/full) neither stop the save nor fail it, as makedumpfile's printf()s", (t) => {
  if (!existsSync("/dev/full")) return missingInput(t, "no /dev/full (the Linux device whose writes fail with ENOSPC)");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-full-"));
  try {
    writeFileSync(join(dir, "vmcore"), syntheticVmcore(2000).bytes);
    const cli = new URL("../main.js", import.meta.url).pathname;
    const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    const mdf = `${q(process.execPath)} ${q(cli)} makedumpfile`;
    // kdump-utils: `$CORE_COLLECTOR /proc/vmcore DIR/vmcore-incomplete > /dev/console 2>&1`, then only the status counts.
    const toFile = spawnSync("sh", ["-c", `${mdf} -l -d 1 ${q(join(dir, "vmcore"))} ${q(join(dir, "dump"))} > /dev/full`]);
    assert.equal(toFile.status, 0, toFile.stderr.toString());
    assert.ok(existsSync(join(dir, "dump")));
    const dmesg = spawnSync("sh", ["-c", `${mdf} --dump-dmesg ${q(join(dir, "vmcore"))} ${q(join(dir, "log"))} > /dev/full`]);
    assert.equal(dmesg.status, 0, dmesg.stderr.toString());
    // -F: the messages (the debug ones first, at level 31) on a stderr that fails; the stream on stdout is whole.
    const flat = spawnSync("sh", ["-c", `${mdf} -F --message-level 31 -l -d 1 ${q(join(dir, "vmcore"))} 2>/dev/full > ${q(join(dir, "flat"))}`]);
    assert.equal(flat.status, 0, flat.stdout.toString());
    const restored = run(dir, ["-R", "restored"], { link: true, stdin: join(dir, "flat") });
    assert.equal(restored.status, 0, restored.stderr);
    assert.deepEqual(readFileSync(join(dir, "restored")), readFileSync(join(dir, "dump")), "the stream was not cut short");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makedumpfile drop-in: debug (-D, level 8) and report (--show-stats) messages go where makedumpfile's go: stdout, stderr with -F", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-msg-"));
  try {
    writeFileSync(join(dir, "vmcore"), syntheticVmcore(300).bytes);
    const toFile = run(dir, ["-D", "--show-stats", "-l", "-d", "1", "vmcore", "dump"], { link: true });
    assert.equal(toFile.status, 0, toFile.stderr);
    assert.match(toFile.stdout.toString(), /^OSRELEASE=6\.1\.0-synthetic$/m, "VMCOREINFO on stdout, as DEBUG_MSG without -F");
    assert.match(toFile.stdout.toString(), /saved .*dump \(kdump, lzo, -d 1\)/, "the report on stdout, as REPORT_MSG without -F");
    assert.equal(toFile.stderr, "", "nothing on stderr when all went well");
    const dmesg = run(dir, ["--message-level", "15", "--dump-dmesg", "vmcore", "log"], { link: true });
    assert.equal(dmesg.status, 0, dmesg.stderr);
    assert.match(dmesg.stdout.toString(), /^CRASHTIME=\d+$/m);
    // With -F stdout is the dump: every message is on stderr (SUSE reads OSRELEASE= and CRASHTIME= there).
    const flat = run(dir, ["-F", "-D", "--show-stats", "-l", "-d", "1", "vmcore"], { link: true });
    assert.equal(flat.status, 0, flat.stderr);
    assert.match(flat.stderr, /^OSRELEASE=6\.1\.0-synthetic$/m);
    assert.match(flat.stderr, /saved the dump to standard output \(flattened kdump, lzo, -d 1\)/);
    assert.equal(flat.stdout.subarray(0, 12).toString("latin1"), "makedumpfile", "stdout is only the flattened stream");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const COMMANDLINE_INVALID = "Commandline parameter is invalid.\nTry `makedumpfile --help' for more information.\n";
const FAILED = "\nmakedumpfile Failed.\n";

/**
 * Command lines makedumpfile 1.7.2 refuses (or that kexec-ts refuses), with what the drop-in must print
 * on each stream; exit 1 each. `alike` is what the real makedumpfile, run with the same argv in an empty
 * directory, must share with it: "both" its stdout byte for byte and nothing/something on stderr alike;
 * "stdout" its stdout only, where kexec-ts says why on stderr and makedumpfile says nothing there;
 * "none" where kexec-ts refuses what makedumpfile reads otherwise.
 */
const USAGE_ERRORS: { argv: string; stdout: string; stderr: string | RegExp; alike: "both" | "stdout" | "none" }[] = [
  // getopt's complaint on stderr; makedumpfile's two lines and Failed on stdout, or on stderr once -F was read.
  { argv: "--bogus a b", stdout: COMMANDLINE_INVALID + FAILED, stderr: "makedumpfile: unrecognized option '--bogus'\n", alike: "both" },
  { argv: "-F --bogus a", stdout: "", stderr: `makedumpfile: unrecognized option '--bogus'\n${COMMANDLINE_INVALID}${FAILED}`, alike: "both" },
  { argv: "a b -F --bogus", stdout: "", stderr: `makedumpfile: unrecognized option '--bogus'\n${COMMANDLINE_INVALID}${FAILED}`, alike: "both" },
  { argv: "--message-level 0 --bogus a b", stdout: "", stderr: "makedumpfile: unrecognized option '--bogus'\n", alike: "both" },
  { argv: "-x", stdout: COMMANDLINE_INVALID + FAILED, stderr: "makedumpfile: option requires an argument -- 'x'\n", alike: "both" },
  { argv: "-cq a b", stdout: COMMANDLINE_INVALID + FAILED, stderr: "makedumpfile: invalid option -- 'q'\n", alike: "both" },
  { argv: "--xen a b", stdout: COMMANDLINE_INVALID + FAILED, stderr: "makedumpfile: option '--xen' is ambiguous; possibilities: '--xen-syms' '--xen-vmcoreinfo' '--xen_phys_start'\n", alike: "both" },
  { argv: "-h --bogus", stdout: COMMANDLINE_INVALID + FAILED, stderr: "makedumpfile: unrecognized option '--bogus'\n", alike: "both" },
  // makedumpfile's own line says it all: nothing on stderr. Only the options before it count.
  { argv: "-d 99 a b", stdout: `Dump_level(99) is invalid.\n${FAILED}`, stderr: "", alike: "both" },
  { argv: "-F -d 99 a", stdout: "", stderr: `Dump_level(99) is invalid.\n${FAILED}`, alike: "both" },
  { argv: "-d 99 -F a", stdout: `Dump_level(99) is invalid.\n${FAILED}`, stderr: "", alike: "both" },
  { argv: "-d 99 --message-level 0 a b", stdout: `Dump_level(99) is invalid.\n${FAILED}`, stderr: "", alike: "both" },
  { argv: "--message-level 0 --message-level 99 a b", stdout: `Message_level(99) is invalid.\n${FAILED}`, stderr: "", alike: "both" },
  { argv: "-E --num-threads 2 a b", stdout: `--num-threads cannot used with ELF format.\n${COMMANDLINE_INVALID}${FAILED}`, stderr: "", alike: "both" },
  { argv: "--check-params -d 99 a b", stdout: "Dump_level(99) is invalid.\n", stderr: "", alike: "both" },
  // check_param_for_*: makedumpfile's lines on stdout, kexec-ts's reason on stderr (an error message: not at level 2).
  { argv: "-l a", stdout: COMMANDLINE_INVALID + FAILED, stderr: /^makedumpfile \(kexec-ts\): VMCORE and DUMPFILE are needed\n$/, alike: "stdout" },
  { argv: "--dump-dmesg a", stdout: COMMANDLINE_INVALID + FAILED, stderr: /^makedumpfile \(kexec-ts\): --dump-dmesg takes VMCORE and DUMPFILE\n$/, alike: "stdout" },
  { argv: "-c -E a b", stdout: COMMANDLINE_INVALID + FAILED, stderr: /^makedumpfile \(kexec-ts\): -E \(ELF\) stores pages uncompressed and cannot be combined with -c\/-l\/-p\/-z\n$/, alike: "stdout" },
  { argv: "-R a b", stdout: COMMANDLINE_INVALID + FAILED, stderr: /^makedumpfile \(kexec-ts\): -R takes one DUMPFILE/, alike: "stdout" },
  { argv: "-E -F a b", stdout: "", stderr: new RegExp(`^makedumpfile \\(kexec-ts\\): -F takes VMCORE and writes to standard output\\n${literally(COMMANDLINE_INVALID)}\\nmakedumpfile Failed\\.\\n$`), alike: "both" },
  { argv: "--check-params a", stdout: COMMANDLINE_INVALID, stderr: /^makedumpfile \(kexec-ts\): VMCORE and DUMPFILE are needed\n$/, alike: "stdout" },
  { argv: "--message-level 2 -l a", stdout: COMMANDLINE_INVALID + FAILED, stderr: "", alike: "both" },
  // Options kexec-ts lacks: its refusal and hint on stderr, Failed where makedumpfile's failure to run
  // them puts it (after the whole command line, -F given later included).
  { argv: "-x vmlinux a b", stdout: FAILED, stderr: /^makedumpfile \(kexec-ts\): option -x is not supported by kexec-ts: .*\nhint: drop it, or run Debian's makedumpfile/, alike: "both" },
  { argv: "-x vmlinux -F a", stdout: "", stderr: /^makedumpfile \(kexec-ts\): option -x is not supported by kexec-ts: .*\nhint: .*\n\nmakedumpfile Failed\.\n$/, alike: "both" },
  { argv: "--message-level 0 -x vmlinux a b", stdout: "", stderr: "", alike: "both" },
  // A dump level kexec-ts will not guess at (makedumpfile's atoi() reads "abc" as 0).
  { argv: "-d abc a b", stdout: FAILED, stderr: /^makedumpfile \(kexec-ts\): -d abc: the dump level is one number, 0\.\.31/, alike: "both" },
  // -x takes "a" as its VMLINUX: makedumpfile then refuses one operand; kexec-ts says first what it lacks.
  { argv: "-cx a b", stdout: FAILED, stderr: /^makedumpfile \(kexec-ts\): option -x is not supported by kexec-ts/, alike: "none" },
];

test("makedumpfile drop-in usage errors: makedumpfile 1.7.2's lines on its streams, decided by the options before the error; kexec-ts's reasons on stderr", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-usage-"));
  try {
    for (const { argv, stdout, stderr } of USAGE_ERRORS) {
      const r = run(dir, split(argv), { link: true });
      assert.equal(r.status, 1, `makedumpfile ${argv}: exit status`);
      assert.equal(r.stdout.toString(), stdout, `makedumpfile ${argv}: stdout`);
      if (typeof stderr === "string") assert.equal(r.stderr, stderr, `makedumpfile ${argv}: stderr`);
      else assert.match(r.stderr, stderr, `makedumpfile ${argv}: stderr`);
    }
    // The same through `kexec-ts makedumpfile`.
    const r = run(dir, ["makedumpfile", "-d", "99", "a", "b"]);
    assert.deepEqual([r.status, r.stdout.toString(), r.stderr], [1, `Dump_level(99) is invalid.\n${FAILED}`, ""]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("makedumpfile drop-in usage errors: the real makedumpfile prints the same stdout and exit status, and stderr alike", (t) => {
  if (missingTool("makedumpfile") !== undefined) return missingInput(t, "makedumpfile is not installed (.ci/setup-debian.sh)");
  const version = spawnSync("makedumpfile", ["-v"]).stdout.toString();
  // A makedumpfile diverted to kexec-ts would compare kexec-ts with itself.
  if (!/^makedumpfile: version 1\./.test(version)) return missingInput(t, `the makedumpfile in PATH is not makedumpfile 1.x (it says ${JSON.stringify(version.split("\n")[0])})`);
  // An empty directory: a, b and vmlinux do not exist, so what makedumpfile accepts fails opening them.
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mdf-usage-"));
  try {
    for (const { argv, alike } of USAGE_ERRORS) {
      const ours = run(dir, split(argv), { link: true });
      const theirs = spawnSync("makedumpfile", split(argv), { cwd: dir, timeout: 60_000 });
      assert.equal(ours.status, theirs.status, `makedumpfile ${argv}: exit status (makedumpfile's stderr: ${theirs.stderr})`);
      if (alike === "none") continue;
      assert.equal(ours.stdout.toString(), theirs.stdout.toString(), `makedumpfile ${argv}: stdout`);
      if (alike === "both") assert.equal(ours.stderr === "", theirs.stderr.length === 0, `makedumpfile ${argv}: stderr empty or not alike (kexec-ts: ${JSON.stringify(ours.stderr)}, makedumpfile: ${JSON.stringify(theirs.stderr.toString())})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
