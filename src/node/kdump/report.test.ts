import { test } from "node:test";
import { strict as assert } from "node:assert";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { RAW_RECORD_MAGIC, RAW_RECORD_SIZE } from "../../core/kdump/capture-init.js";
import { defaultConfig } from "../../core/kdump/config.js";
import type { DumpReport } from "../../core/kdump/dumps.js";
import { syntheticVmcore } from "../../core/vmcore/testing.js";
import { KexecError } from "../../core/errors.js";
import { kdumpPaths, reportedPath, testStatePath, bootStatePath } from "./paths.js";
import { readRawRecord, reportCrashes } from "./report.js";
import { readBootId } from "./service.js";
import { missingInput } from "../test-inputs.js";
import { listDumps, readDump, summarizeDumpOnDisk } from "./dumps.js";
import { kdumpStatus } from "./status.js";

/** A raw target as the capture init leaves it: the ELF core from byte 0, the record in the last 4 KiB. */
function rawTarget(path: string, core: Uint8Array, record: string): void {
  const device = new Uint8Array(core.length + 64 * 1024);
  device.set(core, 0);
  device.set(new TextEncoder().encode(record), device.length - RAW_RECORD_SIZE);
  writeFileSync(path, device);
}

/** report.json as `kdump save` writes it for a whole dump, with `changes` on top. */
function savedReport(changes: Partial<DumpReport> = {}): DumpReport {
  return {
    format: 1, state: "saved", host: "deb12", crashTime: "2026-11-23T15:42:58.000Z", kernel: "6.1.0-57-amd64", panic: "Kernel panic - not syncing: sysrq triggered crash", backtrace: [], testId: null,
    dump: { file: "vmcore", complete: true, bytes: 1, dumpLevel: 31, codec: "lzo", pagesWritten: 1, problem: null },
    dmesg: { file: "dmesg.txt", records: 1 }, seconds: { total: 1, dmesg: 0, vmcore: 1 },
    memory: { memTotal: null, memAvailableAtStart: null, memAvailableLeast: null, nodeRssPeak: null, nodePrivatePeak: null, heapCapMiB: 48 },
    capture: { mode: "default", builtBy: "0.1.0", kernelRelease: "6.1.0-57-amd64", node: "v18.19.0" }, startedAt: "", finishedAt: "", notes: [],
    ...changes,
  };
}

test("a raw copy on raw_target becomes a dump directory, is reported once, and its record is consumed", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const core = syntheticVmcore(200).bytes;
    const raw = join(root, "raw.img");
    rawTarget(raw, core, `${RAW_RECORD_MAGIC}\ntime=2026-11-23T15:42:58Z\nbytes=${core.length}\nvmcore=${core.length}\ncomplete=1\nreason=cannot mount the root (/dev/vda1, ext4, ro)\n`);
    assert.deepEqual(readRawRecord(raw), { time: "2026-11-23T15:42:58Z", bytes: core.length, vmcore: core.length, complete: true, reason: "cannot mount the root (/dev/vda1, ext4, ro)" });
    const config = { ...defaultConfig(), target: join(root, "crash"), rawTarget: raw, codec: "zlib" as const, dumpLevel: 1 };
    const r = await reportCrashes(config, paths, { all: false });
    assert.ok(r.rawCopy !== null);
    assert.match(r.lines.join("\n"), /could not start Node \(cannot mount the root .*converted from the raw copy/);
  assert.match(r.lines.join("\n"), /panic: Kernel panic - not syncing/, "the converted dump is read like any other: its log, its panic");
    const [name] = readdirSync(config.target).filter((n) => !n.startsWith("."));
    assert.match(name!, /-\d{8}T\d{6}Z$/);
    assert.deepEqual(readdirSync(join(config.target, name!)).sort(), ["capture.log", "dmesg.txt", "report.json", "vmcore"]);
    const rep = JSON.parse(readFileSync(join(config.target, name!, "report.json"), "utf8")) as DumpReport;
    assert.equal(rep.dump.complete, true);
    assert.equal(readRawRecord(raw), null, "consumed: the next report does not convert it again");
    const again = await reportCrashes(config, paths, { all: false });
    assert.equal(again.fresh.length, 0);
    assert.match(again.lines[0]!, /no new dump; the latest is/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a test crash is settled by the dump that carries its id, or failed when the machine rebooted without one", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const config = { ...defaultConfig(), target: join(root, "crash") };
    mkdirSync(paths.stateDir, { recursive: true });
    writeFileSync(testStatePath(paths), JSON.stringify({ id: "t-1", at: "2026-11-23T15:40:00Z", bootId: "an-earlier-boot" }));
    let r = await reportCrashes(config, paths, { all: false });
    assert.equal(r.test?.result, "failed");
    assert.match(r.test!.detail, /no dump carries its id/);
    const dir = join(config.target, "deb12-20261123T154258Z");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "report.json"), JSON.stringify(savedReport({ testId: "t-1" })));
    writeFileSync(join(dir, "vmcore"), "v");
    r = await reportCrashes(config, paths, { all: false });
    assert.equal(r.test?.result, "passed");
    assert.equal(r.fresh.length, 1);
    assert.deepEqual([r.fresh[0]!.complete, r.fresh[0]!.problem], [true, null]);
    // A vmcore gone since the save proves nothing: it had passed on report.json's word.
    rmSync(join(dir, "vmcore"));
    r = await reportCrashes(config, paths, { all: true });
    assert.equal(r.test?.result, "failed");
    assert.match(r.test!.detail, /incomplete dump: report\.json says it is complete \(vmcore, 1 bytes\), but there is no vmcore in the directory/);
    assert.equal(r.fresh[0]!.complete, false);
    mkdirSync(dirname(paths.config), { recursive: true });
    writeFileSync(paths.config, `target = ${config.target}\n`);
    const s = kdumpStatus(paths);
    assert.deepEqual([s.test?.result, s.test?.dump], ["failed", dir], "status says the same of the same dump");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a boot that ended armed, without a clean stop and without a dump, is reported as a capture that left nothing", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    mkdirSync(paths.stateDir, { recursive: true });
    const config = { ...defaultConfig(), target: join(root, "crash") };
    writeFileSync(bootStatePath(paths), JSON.stringify({ bootId: "an-earlier-boot", armed: true, armedAt: "2026-11-23T15:00:00Z", cleanStop: false }));
    const r = await reportCrashes(config, paths, { all: false });
    assert.match(r.previousBoot ?? "", /ended without a clean shutdown while kdump was armed/);
    writeFileSync(bootStatePath(paths), JSON.stringify({ bootId: readBootId(), armed: true, armedAt: "2026-11-23T15:00:00Z", cleanStop: false }));
    assert.equal((await reportCrashes(config, paths, { all: false })).previousBoot, null, "this boot is not the previous one");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("damaged test.json and last-boot.json are said to be damaged, not taken at their word", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const config = { ...defaultConfig(), target: join(root, "crash") };
    mkdirSync(paths.stateDir, { recursive: true });
    // A dump without a test id: test.json of {} had matched it, "passed".
    const dir = join(config.target, "deb12-20261123T154258Z");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "report.json"), JSON.stringify(savedReport({})));
    for (const [text, why] of [["{}", /field id is absent, expected a string/], ["[1]", /a list, expected an object/], ['{"id":"t-1","at":"x","bootId":7}', /field bootId is number 7, expected a string or null/], ["{", /not JSON/]] as const) {
      writeFileSync(testStatePath(paths), text);
      const r = await reportCrashes(config, paths, { all: true });
      assert.equal(r.test?.result, "failed", text);
      assert.match(r.test!.detail, why, text);
      assert.match(r.test!.detail, /test\.json is damaged: .*run kdump test again/, text);
    }
    rmSync(testStatePath(paths));
    // A FIFO in its place is said, not read (the read would block for ever).
    execFileSync("mkfifo", [testStatePath(paths)]);
    const fifo = await reportCrashes(config, paths, { all: true });
    assert.match(fifo.test!.detail, /test\.json is damaged: it is a pipe \(FIFO\), not a file/);
    rmSync(testStatePath(paths));
    for (const [text, why] of [['{"bootId":"an-earlier-boot","armed":"yes","armedAt":null,"cleanStop":false}', /field armed is string "yes", expected true or false/], ["null", /null, expected an object/]] as const) {
      writeFileSync(bootStatePath(paths), text);
      const r = await reportCrashes(config, paths, { all: false });
      assert.equal(r.previousBoot, null, text);
      assert.equal(r.warnings.length, 1, text);
      assert.match(r.warnings[0]!, why, text);
      assert.ok(r.lines.some((l) => l.startsWith("warning: ") && l.includes("last-boot.json is damaged")), text);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("one damaged report.json makes that dump unreadable; report, list and status carry on with the others", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const config = { ...defaultConfig(), target: join(root, "crash") };
    mkdirSync(dirname(paths.config), { recursive: true });
    writeFileSync(paths.config, `target = ${config.target}\n`);
    const dump = (name: string, report: string) => {
      mkdirSync(join(config.target, name), { recursive: true });
      writeFileSync(join(config.target, name, "report.json"), report);
    };
    dump("deb12-20260101T000000Z", JSON.stringify({ format: 1, state: "saved" }));
    dump("deb12-20260102T000000Z", JSON.stringify(savedReport({ kernel: "6.1.0-58-amd64" })));
    dump("deb12-20260103T000000Z", JSON.stringify(savedReport({ seconds: { total: "1" as unknown as number, dmesg: 0, vmcore: 1 } })));
    dump("deb12-20260104T000000Z", '{"format": 1, "sta');
    mkdirSync(join(config.target, "deb12-20260105T000000Z"));
    execFileSync("mkfifo", [join(config.target, "deb12-20260105T000000Z", "report.json")]);

    const dumps = listDumps(config.target).map((d) => readDump(config.target, d));
    const problems = dumps.map((d) => d.reportProblem);
    assert.match(problems[3] ?? "", /^not JSON \(/, "a report.json cut off mid-write");
    assert.deepEqual(problems, ["field dump is missing", null, 'field seconds.total: expected a number, found string "1"', problems[3], "it is a pipe (FIFO), not a file"]);
    assert.equal(dumps[1]!.report?.kernel, "6.1.0-58-amd64");

    const r = await reportCrashes(config, paths, { all: false });
    assert.equal(r.fresh.length, 5);
    const text = r.lines.join("\n");
    assert.match(text, /deb12-20260101T000000Z: report\.json is unreadable: field dump is missing/);
    assert.match(text, /deb12-20260102T000000Z: crash at .* on 6\.1\.0-58-amd64/, "the readable dump beside it is summarized");
    assert.match(r.latest!.lines[0]!, /deb12-20260105T000000Z: report\.json is unreadable: it is a pipe/);

    const s = kdumpStatus(paths);
    assert.match(s.lastDump!.lines[0]!, /report\.json is unreadable: it is a pipe/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a damaged bookkeeping file counts as nothing reported yet, says so, and is written anew", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const config = { ...defaultConfig(), target: join(root, "crash") };
    const name = "deb12-20260102T000000Z";
    mkdirSync(join(config.target, name), { recursive: true });
    writeFileSync(join(config.target, name, "report.json"), JSON.stringify(savedReport()));
    const bookkeeping = reportedPath(config.target);
    for (const [text, why] of [['{"names": 5}', /field names: expected a list of dump names, found number 5/], ['{"names": ["a", {}]}', /a list with a non-string/], ["{", /not JSON/], ["[]", /\(expected an object \{ "names": \[\.\.\.\] \}, found a list\)/], ["null", /\(expected an object .*, found null\)/], ["{}", /field names: expected a list of dump names, found absent/]] as const) {
      writeFileSync(bookkeeping, text);
      const r = await reportCrashes(config, paths, { all: false });
      assert.equal(r.warnings.length, 1, text);
      assert.match(r.warnings[0]!, why);
      assert.ok(r.warnings[0]!.startsWith(`${bookkeeping} is damaged`), "names the file");
      assert.match(r.lines[0]!, /^warning: .*every dump counts as not reported yet/);
      assert.equal(r.fresh.length, 1, "the dump is reported again");
      assert.equal(r.recordError, null);
      assert.deepEqual(JSON.parse(readFileSync(bookkeeping, "utf8")), { names: [name] });
      const again = await reportCrashes(config, paths, { all: false });
      assert.deepEqual([again.warnings, again.fresh.length], [[], 0], "rewritten: the next report reads it");
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the bookkeeping forgets dumps removed since, keeps a dump behind a link to a disk not mounted, and reports the same dumps", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const config = { ...defaultConfig(), target: join(root, "crash") };
    const kept = "deb12-20260102T000000Z";
    const fresh = "deb12-20260103T000000Z";
    for (const name of [kept, fresh]) {
      mkdirSync(join(config.target, name), { recursive: true });
      writeFileSync(join(config.target, name, "report.json"), JSON.stringify(savedReport()));
    }
    const unmounted = "deb12-20251201T000000Z";
    symlinkSync(join(root, "mnt", "old"), join(config.target, unmounted));
    const removed = "deb12-20260101T000000Z";
    const bookkeeping = reportedPath(config.target);
    writeFileSync(bookkeeping, JSON.stringify({ names: [removed, kept, unmounted, "..", ""] }));
    const r = await reportCrashes(config, paths, { all: false });
    assert.deepEqual(r.fresh.map((f) => f.dir), [join(config.target, fresh)], "what is reported is unchanged");
    // It had kept every name it was ever given: the removed dump's, "..", "".
    assert.deepEqual(JSON.parse(readFileSync(bookkeeping, "utf8")), { names: [kept, fresh, unmounted] });
    const again = await reportCrashes(config, paths, { all: false });
    assert.equal(again.fresh.length, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a target that is not a directory is an io error naming it; bookkeeping that cannot be written fails the report after its summaries", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const file = join(root, "notadir");
    writeFileSync(file, "");
    const notDir = (e: unknown) => e instanceof KexecError && e.code === "io" && e.message === `${file}: the dump target is not a directory (it is a regular file)` && e.hint === `point target = in ${paths.config} at a directory`;
    await assert.rejects(reportCrashes({ ...defaultConfig(), target: file }, paths, { all: false }), notDir);
    assert.throws(() => listDumps(file, paths.config), notDir, "list says so too, not \"no dumps\"");
    assert.throws(() => listDumps(join(file, "crash"), paths.config), (e: unknown) => e instanceof KexecError && e.code === "io" && /not a directory \(ENOTDIR\)/.test(e.message));
    assert.throws(() => listDumps(join(root, "x".repeat(300))), (e: unknown) => e instanceof KexecError && /name too long \(ENAMETOOLONG\)/.test(e.message) && /shorter path/.test(e.hint ?? ""));

    const config = { ...defaultConfig(), target: join(root, "crash") };
    const name = "deb12-20260102T000000Z";
    mkdirSync(join(config.target, name), { recursive: true });
    writeFileSync(join(config.target, name, "report.json"), JSON.stringify(savedReport()));
    mkdirSync(reportedPath(config.target));
    const r = await reportCrashes(config, paths, { all: false });
    assert.match(r.lines.join("\n"), /deb12-20260102T000000Z: crash at/, "the summary is there");
    assert.equal(r.recordError?.code, "io");
    assert.match(r.recordError!.message, /\.kexec-ts-reported\.json: cannot record which dumps were reported: .*\(EISDIR\)$/);
    assert.match(r.recordError!.hint ?? "", /move the directory .* out of the way/);
    if (existsSync("/proc/self")) {
      // Not made (Node's recursive mkdir under /proc spins): a target that does not exist has nothing to record.
      const proc = await reportCrashes({ ...defaultConfig(), target: "/proc/kexec-ts-no-such/crash" }, paths, { all: false });
      assert.equal(proc.recordError, null);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a target that does not exist is not made by report: start's refusal of a missing target (a typo, a disk not mounted) stands", async () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const paths = kdumpPaths(root);
    const config = { ...defaultConfig(), target: join(root, "mnt", "dumps", "crash") };
    const r = await reportCrashes(config, paths, { all: false });
    assert.deepEqual([r.lines, r.recordError], [[`no dumps in ${config.target}`], null]);
    // The report service runs at boot before the arming one: it had made the directory, and start then armed onto it.
    assert.equal(existsSync(join(root, "mnt")), false, "nothing made on the way to it");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a report.json that cannot be read says why in the errno's words, once, and a user who may not read it is told to run as root", (t) => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const target = join(root, "crash");
    const loop = join(target, "h-20260101T000000Z");
    mkdirSync(loop, { recursive: true });
    symlinkSync("report.json", join(loop, "report.json"));
    const [looped] = listDumps(target).map((d) => readDump(target, d));
    // It was "cannot read it: ELOOP: too many symbolic links encountered, stat '<the path again>'".
    assert.equal(looped!.reportProblem, "cannot read it: too many symbolic links encountered (ELOOP)");

    // As save writes it: 0600, root's. Read by another user (the tests run as root: a child as nobody).
    const saved = join(target, "h-20260102T000000Z");
    mkdirSync(saved);
    writeFileSync(join(saved, "report.json"), JSON.stringify(savedReport()), { mode: 0o600 });
    // A dump directory the user may not list: it was a stack trace (exit 70) from the dumps' sizes.
    const closed = join(target, "h-20260103T000000Z");
    mkdirSync(closed, { mode: 0o700 });
    writeFileSync(join(closed, "report.json"), JSON.stringify(savedReport()));
    chmodSync(closed, 0o700);
    chmodSync(root, 0o755);
    const dumpsModule = new URL("./dumps.js", import.meta.url).pathname;
    const script = `import(${JSON.stringify(dumpsModule)}).then((m) => { const t = ${JSON.stringify(target)}; process.stdout.write(JSON.stringify(m.listDumps(t).map((d) => m.readDump(t, d).reportProblem))); });`;
    const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (process.getuid?.() !== 0) chmodSync(join(saved, "report.json"), 0o000);
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 20_000, ...asOther });
    if (r.status !== 0 && /ERR_MODULE_NOT_FOUND|EACCES/.test(r.stderr) && r.stderr.includes(dirname(dumpsModule))) return missingInput(t, `kexec-ts's dist is not readable by uid 65534: ${dirname(dumpsModule)}`);
    assert.equal(r.status, 0, r.stderr);
    const problems = JSON.parse(r.stdout) as (string | null)[];
    assert.deepEqual(problems.slice(1), ["cannot read it: permission denied (EACCES); run as root (kdump save writes it readable by root only)", "cannot read it: permission denied (EACCES); run as root (kdump save writes it readable by root only)"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a dump directory that cannot be listed is of unknown completeness, not one whose vmcore is missing", () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const target = join(root, "crash");
    const withReport = join(target, "h-20260101T000000Z");
    mkdirSync(withReport, { recursive: true });
    writeFileSync(join(withReport, "report.json"), JSON.stringify(savedReport()));
    writeFileSync(join(withReport, "vmcore"), new Uint8Array(1));
    mkdirSync(join(target, "h-20260102T000000Z"));
    // As a user's readdir of a root-owned 0700 directory fails; root itself reads every directory.
    const denied = {
      readdir: (dir: string): string[] => {
        throw Object.assign(new Error(`EACCES: permission denied, scandir '${dir}'`), { code: "EACCES", errno: -13, syscall: "scandir", path: dir });
      },
    };
    const [first, second] = listDumps(target).map((d) => readDump(target, d, denied));
    // It had been "INCOMPLETE: ... there is no vmcore in the directory (removed since?)".
    assert.equal(first!.listProblem, "permission denied (EACCES); run as root, or fix the directory's permissions");
    assert.equal(first!.complete, null);
    assert.equal(first!.problem, "report.json says it is complete (vmcore, 1 bytes), but the directory cannot be listed: permission denied (EACCES); run as root, or fix the directory's permissions; whether vmcore is there and whole is not known");
    assert.match(summarizeDumpOnDisk(first!).join("\n"), /dump: vmcore, .*; completeness unknown: .*cannot be listed: permission denied \(EACCES\)/);
    assert.doesNotMatch(summarizeDumpOnDisk(first!).join("\n"), /no vmcore|INCOMPLETE/);
    // Without a report.json to go by: it had been "the capture left no report.json (no vmcore)".
    assert.deepEqual([second!.complete, second!.problem], [null, "the directory cannot be listed: permission denied (EACCES); run as root, or fix the directory's permissions; whether it holds a whole vmcore is not known"]);
    assert.deepEqual(summarizeDumpOnDisk(second!), [`${second!.dir}: the directory cannot be listed: permission denied (EACCES); run as root, or fix the directory's permissions; whether it holds a whole vmcore is not known`]);
    // A directory removed since it was listed is still just gone.
    const gone = readDump(target, { name: "h-20260103T000000Z", time: new Date(0), bytes: 0 });
    assert.deepEqual([gone.listProblem, gone.complete], [null, false]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a raw_target that is a FIFO or a directory is not read: report does not wait for a writer", () => {
  const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-report-"));
  try {
    const fifo = join(root, "initctl");
    execFileSync("mkfifo", [fifo]);
    const reportModule = new URL("./report.js", import.meta.url).pathname;
    // In a child with a time limit: the open() that waited for a writer would hang this test file.
    const script = `import(${JSON.stringify(reportModule)}).then((m) => process.stdout.write(JSON.stringify([m.readRawRecord(${JSON.stringify(fifo)}), m.readRawRecord(${JSON.stringify(root)})])));`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 10_000 });
    assert.equal(r.signal, null, "readRawRecord on a FIFO did not return");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [null, null]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
