import { test } from "node:test";
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { analyzeLog, chooseRemovals, dumpDirName, dumpDirTime, summarizeDump, type DumpEntry, type DumpReport } from "./dumps.js";

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

test("the journal summary says what crashed, where, and whether the dump is whole", () => {
  const r: DumpReport = {
    format: 1, state: "saved", host: "deb12", crashTime: "2026-11-23T15:42:58.000Z", kernel: "6.1.0-57-amd64", ...analyzeLog(SYSRQ_CRASH_LOG),
    dump: { file: "vmcore", complete: true, bytes: 52428800, dumpLevel: 31, codec: "lzo", pagesWritten: 12800, problem: null },
    dmesg: { file: "dmesg.txt", records: 900 }, seconds: { total: 12.5, dmesg: 0.4, vmcore: 11 },
    memory: { memTotal: null, memAvailableAtStart: null, memAvailableLeast: null, nodeRssPeak: null, heapCapMiB: 48 },
    capture: { mode: "default", builtBy: "0.1.0", kernelRelease: "6.1.0-57-amd64", node: "v18.19.0" }, startedAt: "", finishedAt: "", notes: [],
  };
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
