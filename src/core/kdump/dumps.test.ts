import { test } from "node:test";
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { analyzeLog, chooseRemovals, dumpCompleteness, dumpDirName, dumpDirTime, dumpReportFromJson, summarizeDump, type DumpEntry, type DumpReport } from "./dumps.js";

/** A 6.1 kernel's log around `echo c > /proc/sysrq-trigger`, as the lab's guests print it. */
export const SYSRQ_CRASH_LOG = [
  "Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)",
  "kexec-ts kdump test 3f2a9c1e-77aa-4c1b-9a55-0d6c2e1f9b10",
  "sysrq: Trigger a crash",
  "Kernel panic - not syncing: sysrq triggered crash",
  "CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3",
  "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014",
  "Call Trace:",
  " <TASK>",
  " dump_stack_lvl+0x44/0x5c",
  " panic+0x118/0x2ed",
  " ? _printk+0x58/0x73",
  " sysrq_handle_crash+0x16/0x20",
  " __handle_sysrq.cold+0x43/0x11b",
  " write_sysrq_trigger+0x24/0x40",
  " proc_reg_write+0x56/0xa0",
  " vfs_write+0xb9/0x3f0",
  " ksys_write+0x5f/0xe0",
  " do_syscall_64+0x55/0xb0",
  " </TASK>",
  "Kernel Offset: disabled",
];

test("the panic line, the unwinder's first frames (not the ? guesses) and the test id come from the log", () => {
  const f = analyzeLog(SYSRQ_CRASH_LOG);
  assert.equal(f.panic, "Kernel panic - not syncing: sysrq triggered crash");
  assert.deepEqual(f.backtrace, ["dump_stack_lvl+0x44/0x5c", "panic+0x118/0x2ed", "sysrq_handle_crash+0x16/0x20", "__handle_sysrq.cold+0x43/0x11b",
    "write_sysrq_trigger+0x24/0x40", "proc_reg_write+0x56/0xa0", "vfs_write+0xb9/0x3f0", "ksys_write+0x5f/0xe0"]);
  assert.equal(f.testId, "3f2a9c1e-77aa-4c1b-9a55-0d6c2e1f9b10");
});

test("an oops before the panic gives the trace of the oops; no panic gives nulls", () => {
  const f = analyzeLog(["BUG: kernel NULL pointer dereference, address: 0000000000000000", "Call Trace:", " <TASK>", " my_driver_probe+0x10/0x20 [mydrv]", " </TASK>", "Kernel panic - not syncing: Fatal exception"]);
  assert.equal(f.panic, "Kernel panic - not syncing: Fatal exception");
  assert.deepEqual(f.backtrace, ["my_driver_probe+0x10/0x20 [mydrv]"]);
  assert.deepEqual(analyzeLog(["all is well"]), { panic: null, backtrace: [], testId: null });
});

test("dump directory names carry the UTC time and read back", () => {
  const when = new Date("2026-11-23T15:42:58.123Z");
  assert.equal(dumpDirName("deb12", when), "deb12-20261123T154258Z");
  assert.equal(dumpDirName("bad/host name", when), "bad_host_name-20261123T154258Z");
  assert.equal(dumpDirTime("deb12-20261123T154258Z")?.toISOString(), "2026-11-23T15:42:58.000Z");
  assert.equal(dumpDirTime("deb12-20261123T154258Z-2")?.toISOString(), "2026-11-23T15:42:58.000Z");
  assert.equal(dumpDirTime("lost+found"), null);
  assert.equal(dumpDirTime("202611231542"), null, "kdump-tools' own directories are not ours");
});

const dump = (name: string, day: number, bytes = 100): DumpEntry => ({ name, time: new Date(Date.UTC(2026, 0, day)), bytes });

test("retention removes the oldest beyond the count, then more under the free-space floor, never the current one", () => {
  const all = [dump("c", 3), dump("a", 1), dump("b", 2), dump("new", 4)];
  assert.deepEqual(chooseRemovals(all, "new", 2, 1000n, 0n).map((d) => d.name), ["a", "b"], "keep 2: one old one and the new one");
  assert.deepEqual(chooseRemovals(all, "new", 0, 1000n, 0n).map((d) => d.name), [], "keep 0: no count limit");
  assert.deepEqual(chooseRemovals(all, "new", 0, 50n, 200n).map((d) => d.name), ["a", "b"], "free 50, floor 200: two of 100 bytes");
  assert.deepEqual(chooseRemovals(all, "new", 0, 0n, 10_000n).map((d) => d.name), ["a", "b", "c"], "never the new one, even when the floor is not reached");
});

test("retention never picks the current dump and leaves at most keep-1 others (property)", () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 28 }), { maxLength: 12 }), fc.integer({ min: 0, max: 6 }), fc.bigInt({ min: 0n, max: 2000n }), fc.bigInt({ min: 0n, max: 2000n }), (days, keep, free, floor) => {
    const all = days.map((d, i) => dump(`d${i}`, d));
    const current = all.length ? all[0]!.name : "none";
    const removed = chooseRemovals(all, current, keep, free, floor);
    assert.ok(!removed.some((d) => d.name === current));
    const left = all.filter((d) => d.name !== current).length - removed.length;
    if (keep > 0) assert.ok(left <= Math.max(0, keep - 1));
    // Oldest first: nothing kept is older than something removed.
    const kept = all.filter((d) => d.name !== current && !removed.includes(d));
    for (const r of removed) for (const k of kept) assert.ok(r.time.getTime() <= k.time.getTime());
  }));
});

/** A report.json as `kdump save` writes it after a whole dump of the sysrq crash. */
const SAVED_REPORT: DumpReport = {
  format: 1, state: "saved", host: "deb12", crashTime: "2026-11-23T15:42:58.000Z", kernel: "6.1.0-57-amd64", ...analyzeLog(SYSRQ_CRASH_LOG),
  dump: { file: "vmcore", complete: true, bytes: 52428800, dumpLevel: 31, codec: "lzo", pagesWritten: 12800, problem: null },
  dmesg: { file: "dmesg.txt", records: 900 }, seconds: { total: 12.5, dmesg: 0.4, vmcore: 11 },
  memory: { memTotal: null, memAvailableAtStart: null, memAvailableLeast: null, nodeRssPeak: null, nodePrivatePeak: null, heapCapMiB: 48 },
  capture: { mode: "default", builtBy: "0.1.0", kernelRelease: "6.1.0-57-amd64", node: "v18.19.0" }, startedAt: "", finishedAt: "", notes: [],
};

test("the journal summary says what crashed, where, and whether the dump is whole", () => {
  const r = SAVED_REPORT;
  const text = summarizeDump("/var/crash/deb12-20261123T154258Z", r, { vmcore: 52428800, "report.json": 1200 }).join("\n");
  assert.match(text, /crash at 2026-11-23T15:42:58.000Z on 6\.1\.0-57-amd64 \(kexec-ts kdump test 3f2a9c1e/);
  assert.match(text, /panic: Kernel panic - not syncing: sysrq triggered crash/);
  assert.match(text, /backtrace: dump_stack_lvl\+0x44\/0x5c < panic/);
  assert.match(text, /dump: vmcore, 50\.0 MiB, dump level 31, lzo, 12\.5 s; complete/);
  const cut = summarizeDump("x", { ...r, state: "saving", dump: { ...r.dump, complete: false, file: "vmcore.incomplete", bytes: 0 } }, { "vmcore.incomplete": 19498303 }).join("\n");
  assert.match(cut, /dump: vmcore.incomplete, 18\.6 MiB, dump level 31, lzo; INCOMPLETE: the capture was cut off while saving/, "the size a cut-off save reached is the file's");
  const full = summarizeDump("x", { ...r, state: "failed", dump: { ...r.dump, complete: false, problem: "the output device is full (ENOSPC)" } }, {}).join("\n");
  assert.match(full, /INCOMPLETE: the output device is full \(ENOSPC\)/);
  assert.match(summarizeDump("y", null, { "vmcore.incomplete": 4096, "capture.log": 10 })[0]!, /no report\.json \(an incomplete vmcore of 0\.0 MiB; see capture\.log\)/);
});

test("a report.json that says complete is believed only while its vmcore is there, a regular file of the size it recorded", () => {
  const r = SAVED_REPORT;
  const dump = (files: Record<string, number>, irregular: Record<string, string> = {}) => summarizeDump("/var/crash/d", r, files, null, irregular).find((l) => l.startsWith("  dump:"))!;
  assert.match(dump({ vmcore: 52428800 }), /; complete$/);
  // Each of these had been listed as "complete" (and a kdump test with it as passed).
  assert.match(dump({ "report.json": 1200 }), /INCOMPLETE: report\.json says it is complete \(vmcore, 52428800 bytes\), but there is no vmcore in the directory/);
  assert.match(dump({ "vmcore.incomplete": 52428800 }), /INCOMPLETE: .*but only vmcore\.incomplete is there/);
  assert.match(dump({ vmcore: 0 }), /dump: vmcore, 0\.0 MiB, .*INCOMPLETE: .*but vmcore has 0 bytes: it was cut or changed after the save/);
  assert.match(dump({}, { vmcore: "a directory" }), /INCOMPLETE: .*but vmcore is a directory$/);
  assert.match(dump({}, { vmcore: "a symbolic link to nothing" }), /but vmcore is a symbolic link to nothing$/);
  assert.deepEqual(dumpCompleteness(r, { vmcore: 52428800, "vmcore.incomplete": 0 }), { complete: true, problem: null }, "a stale empty vmcore.incomplete beside a whole vmcore");
  assert.deepEqual(dumpCompleteness({ ...r, state: "failed", dump: { ...r.dump, complete: false, problem: "ENOSPC" } }, {}), { complete: false, problem: "ENOSPC" });
  assert.equal(dumpCompleteness({ ...r, state: "saving" }, { vmcore: 52428800 }).complete, false, "a report still saying saving is cut off, whatever the disk");
});

/** The saved report as parsed JSON with `edits` (dotted path → value; undefined removes the field): a damaged report.json. */
function damaged(edits: Record<string, unknown>): unknown {
  const o = JSON.parse(JSON.stringify(SAVED_REPORT)) as Record<string, unknown>;
  for (const [path, value] of Object.entries(edits)) {
    const keys = path.split(".");
    const last = keys.pop()!;
    const parent = keys.reduce((x, k) => x[k] as Record<string, unknown>, o);
    if (value === undefined) delete parent[last];
    else parent[last] = value;
  }
  return o;
}

test("report.json as kdump save writes it reads back as the same record; an earlier version's lacks nothing a summary needs", () => {
  assert.deepEqual(dumpReportFromJson(JSON.parse(JSON.stringify(SAVED_REPORT))), { report: SAVED_REPORT, problem: null });
  const old = dumpReportFromJson(damaged({ notes: undefined, "memory.memAvailableLeast": undefined, "memory.nodePrivatePeak": undefined }));
  assert.deepEqual(old.report?.notes, []);
  assert.equal(old.report?.memory.memAvailableLeast, null);
  assert.deepEqual(dumpReportFromJson(damaged({ dmesg: { error: "no VMCOREINFO" } })).report?.dmesg, { error: "no VMCOREINFO" });
});

test("a damaged report.json gives the reason, naming the field and what it holds, never a record with holes", () => {
  const cases: [unknown, RegExp][] = [
    [{ format: 1, state: "saved" }, /^field dump is missing$/],
    [damaged({ "dump.complete": undefined }), /^field dump\.complete is missing$/],
    [damaged({ "dump.complete": "yes" }), /^field dump\.complete: expected true or false, found string "yes"$/],
    [damaged({ backtrace: 5 }), /^field backtrace: expected a list of strings, found number 5$/],
    [damaged({ backtrace: ["a", 7] }), /^field backtrace\[1\]: expected a string, found number 7$/],
    [damaged({ "seconds.total": "12.5" }), /^field seconds\.total: expected a number, found string "12\.5"$/],
    [damaged({ seconds: undefined }), /^field seconds is missing$/],
    [damaged({ notes: "converted" }), /^field notes: expected a list of strings, found string "converted"$/],
    [damaged({ testId: { id: "t-1" } }), /^field testId: expected a string or null, found an object$/],
    [damaged({ state: "done" }), /^field state: expected "saving" or "saved" or "failed", found string "done"$/],
    [damaged({ dmesg: { file: "dmesg.txt" } }), /^field dmesg\.records is missing$/],
    [damaged({ format: 2 }), /^field format: expected 1, found number 2 \(written by another version/],
    [damaged({ format: undefined }), /^field format is missing$/],
    [null, /^expected a JSON object, found null$/],
    [[SAVED_REPORT], /^expected a JSON object, found a list$/],
    ["report", /^expected a JSON object, found string "report"$/],
  ];
  for (const [json, reason] of cases) {
    const read = dumpReportFromJson(json);
    assert.equal(read.report, null, `${JSON.stringify(json)?.slice(0, 80)} is no record`);
    assert.match(read.problem ?? "", reason);
  }
  assert.match(dumpReportFromJson(damaged({ kernel: "k".repeat(100), panic: 7 })).problem ?? "", /^field panic: expected a string or null, found number 7$/);
  assert.equal(dumpReportFromJson(damaged({ crashTime: "x".repeat(100) })).problem, null, "a long string is a string");
  assert.equal(dumpReportFromJson(damaged({ "dump.bytes": "9".repeat(100) })).problem, `field dump.bytes: expected a number, found string "${"9".repeat(39)}...`, "what was found is cut short");
});

test("a dump whose report.json is unreadable is listed as such, with what is on disk", () => {
  const lines = summarizeDump("/var/crash/h-20260101T000000Z", null, { vmcore: 2 ** 21, "capture.log": 10 }, "field dump is missing");
  assert.deepEqual(lines, ["/var/crash/h-20260101T000000Z: report.json is unreadable: field dump is missing (a vmcore of 2.0 MiB; see capture.log)"]);
});

test("any JSON, and any field of a saved report replaced by any JSON, gives a record or a reason, and a record summarizes", () => {
  const keys = (o: Record<string, unknown>, at = ""): string[] =>
    Object.entries(o).flatMap(([k, v]) => (v !== null && typeof v === "object" && !Array.isArray(v) ? [`${at}${k}`, ...keys(v as Record<string, unknown>, `${at}${k}.`)] : [`${at}${k}`]));
  const paths = keys(SAVED_REPORT as unknown as Record<string, unknown>);
  const check = (json: unknown) => {
    const read = dumpReportFromJson(json);
    assert.ok((read.report === null) !== (read.problem === null));
    if (read.report !== null) for (const line of summarizeDump("d", read.report, {})) assert.doesNotMatch(line, /\[object Object\]|undefined|NaN/);
  };
  fc.assert(fc.property(fc.jsonValue(), check));
  fc.assert(fc.property(fc.constantFrom(...paths), fc.option(fc.jsonValue(), { nil: undefined }), (path, value) => {
    check(damaged({ [path]: value }));
  }));
});
