import { test } from "node:test";
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { ConsoleWatcher, isPrintkLine } from "./console.js";

function feedAll(w: ConsoleWatcher, lines: string[]): ReturnType<ConsoleWatcher["feed"]>[] {
  return lines.map((l, i) => w.feed(l, i * 10));
}

test("markers in order complete the run; a step's output keeps kernel lines, which isPrintkLine recognises", () => {
  const w = new ConsoleWatcher(["init", "la57", "done"]);
  const events = feedAll(w, [
    "[    0.000000] Linux version 6.1.0-50-amd64",
    "KEXEC-TS-MARK:init\r",
    "KEXEC-TS-STEP:la57",
    "[    1.909689] tsc: Refined TSC clocksource calibration: 2596.106 MHz",
    "la57=present",
    "KEXEC-TS-MARK:la57 rc=0",
    "KEXEC-TS-MARK:done",
  ]);
  assert.deepEqual(events.map((e) => e?.kind), [undefined, "marker", undefined, undefined, undefined, "marker", "complete"]);
  assert.deepEqual(w.steps["la57"], { rc: 0, output: ["[    1.909689] tsc: Refined TSC clocksource calibration: 2596.106 MHz", "la57=present"] });
  assert.deepEqual(w.steps["la57"]!.output.filter((l) => !isPrintkLine(l)), ["la57=present"]);
  assert.equal(isPrintkLine("[12345.000001] x"), true);
  assert.equal(isPrintkLine("la57=[present]"), false);
  assert.equal(w.log.length, 7);
  assert.equal(w.log[1], "KEXEC-TS-MARK:init", "carriage returns are dropped");
  assert.deepEqual(w.markersSeen.map((m) => [m.name, m.ms]), [["init", 10], ["la57", 50], ["done", 60]]);
  assert.deepEqual(w.missing, []);
});

test("a step's nonzero exit fails the run unless the marker allows it", () => {
  const strict = new ConsoleWatcher(["init", "load", "done"]);
  const events = feedAll(strict, ["KEXEC-TS-MARK:init", "KEXEC-TS-STEP:load", "kexec: Invalid argument", "KEXEC-TS-MARK:load rc=1"]);
  const last = events[events.length - 1];
  assert.equal(last?.kind, "fail");
  assert.ok(last?.kind === "fail" && last.outcome === "step-failed" && /status 1/.test(last.reason) && /Invalid argument/.test(last.reason));

  const lenient = new ConsoleWatcher(["init", { name: "load", mayFail: true }, "done"]);
  assert.equal(feedAll(lenient, ["KEXEC-TS-MARK:init", "KEXEC-TS-MARK:load rc=1"])[1]?.kind, "marker");
  assert.equal(lenient.waitingFor?.name, "done");
});

test("markers of another stage or out of order do not advance the expectation", () => {
  const w = new ConsoleWatcher(["init", "second/init"]);
  const events = feedAll(w, ["KEXEC-TS-MARK:init", "KEXEC-TS-MARK:second/uname rc=0", "KEXEC-TS-MARK:second/init"]);
  assert.deepEqual(events.map((e) => (e?.kind === "marker" ? e.expected : e?.kind)), [true, false, "complete"]);
});

test("a panic fails the run with its line, unless the scenario panics on purpose", () => {
  const w = new ConsoleWatcher(["init", "done"]);
  const e = feedAll(w, ["KEXEC-TS-MARK:init", "[    3.1] Kernel panic - not syncing: sysrq triggered crash"])[1];
  assert.ok(e?.kind === "fail" && e.outcome === "panic" && /after marker init: .*sysrq triggered crash/.test(e.reason));
  const kdump = new ConsoleWatcher(["init", "capture/init"], { allowPanic: true });
  assert.equal(feedAll(kdump, ["KEXEC-TS-MARK:init", "Kernel panic - not syncing: sysrq triggered crash", "KEXEC-TS-MARK:capture/init"])[2]?.kind, "complete");
});

test("a file between FILE markers is decoded even with kernel lines in between", () => {
  // A tar with one file "./x" holding "hi", made by hand: header + data + two zero blocks.
  const header = new Uint8Array(512);
  const put = (offset: number, text: string): void => header.set(new TextEncoder().encode(text), offset);
  put(0, "./x");
  put(100, "0000644\0");
  put(124, "00000000002\0");
  put(136, "00000000000\0");
  put(156, "0");
  put(257, "ustar\0");
  put(263, "00");
  put(148, "        ");
  const sum = header.reduce((a, b) => a + b, 0);
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  const data = new Uint8Array(512);
  data.set([0x68, 0x69]);
  const tar = Buffer.concat([header, data, new Uint8Array(1024)]);
  const gz = gzipSync(tar);
  const b64 = gz.toString("base64").match(/.{1,76}/g)!;
  const md5 = createHash("md5").update(gz).digest("hex");
  const w = new ConsoleWatcher(["init", "snap", "done"]);
  const lines = ["KEXEC-TS-MARK:init", "KEXEC-TS-STEP:snap", `KEXEC-TS-FILE:snap ${gz.length} ${md5}`, b64[0]!, "[    2.000001] random: crng init done", ...b64.slice(1), "KEXEC-TS-FILE-END:snap", "KEXEC-TS-MARK:snap rc=0"];
  const events = feedAll(w, lines);
  assert.ok(events.every((e) => e?.kind !== "fail"));
  assert.equal(new TextDecoder().decode(w.extractedFiles["snap"]![0]!.data), "hi");

  const broken = new ConsoleWatcher(["init", "snap"]);
  const bad = feedAll(broken, ["KEXEC-TS-MARK:init", `KEXEC-TS-FILE:snap ${gz.length} ${md5}`, ...b64.slice(1), "KEXEC-TS-FILE-END:snap"]);
  assert.ok(bad.some((e) => e?.kind === "fail" && e.outcome === "extract-error"));
});

test("a kernel message that lands on a marker's or step's line does not change its name (seen in a kdump run)", () => {
  const w = new ConsoleWatcher(["capture/init", "capture/vmcore", "capture/done"]);
  const events = feedAll(w, [
    "KEXEC-TS-MARK:capture/init[    2.175290] tsc: Refined TSC clocksource calibration: 2596.105 MHz",
    "KEXEC-TS-STEP:capture/vmcore[    2.2] random: crng init done",
    "vmcore=present",
    "KEXEC-TS-MARK:capture/vmcore rc=0",
    "KEXEC-TS-MARK:capture/done",
  ]);
  assert.deepEqual(events.map((e) => e?.kind), ["marker", undefined, undefined, "marker", "complete"]);
  assert.deepEqual(w.steps["capture/vmcore"]?.output, ["vmcore=present"]);
});

test("a marker with a line pattern is seen on a console line of the guest's own (kdump's capture init)", () => {
  const w = new ConsoleWatcher(["init", { name: "saved", line: "^kexec-ts kdump: the dump is saved" }]);
  w.feed("KEXEC-TS-MARK:init", 1);
  assert.equal(w.feed("kexec-ts kdump: saving to /var/crash/x", 2)?.kind, undefined);
  assert.equal(w.feed("kexec-ts kdump: the dump is saved; poweroff", 3)?.kind, "complete");
  assert.deepEqual(w.markersSeen.map((m) => m.name), ["init", "saved"]);
});
