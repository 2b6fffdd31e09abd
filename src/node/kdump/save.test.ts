import { test } from "node:test";
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CaptureSettings } from "../../core/kdump/capture-settings.js";
import { dumpReportFromJson, type DumpReport } from "../../core/kdump/dumps.js";
import { syntheticVmcore } from "../../core/vmcore/testing.js";
import { bytesAccess } from "../../core/vmcore/memory.js";
import { openVmcore } from "../../core/vmcore/vmcore.js";
import { missingInput } from "../test-inputs.js";
import { captureSaveFromFile as captureSave } from "./save.js";
import { listDumps, readDump, summarizeDumpOnDisk } from "./dumps.js";
import { offsetOf } from "../../core/bytes/layout.js";
import { DISK_DUMP_HEADER_64, DUMP_DH_COMPRESSED_INCOMPLETE } from "../../core/vmcore/kdump.js";
import { encodeFlatHeader } from "../../core/vmcore/flat.js";

const CRASH_MESSAGES = [
  "Linux version 6.1.0-synthetic",
  "kexec-ts kdump test t-123",
  "sysrq: Trigger a crash",
  "Kernel panic - not syncing: sysrq triggered crash",
  "Call Trace:",
  " <TASK>",
  " dump_stack_lvl+0x44/0x5c",
  " panic+0x118/0x2ed",
  " sysrq_handle_crash+0x16/0x20",
  " </TASK>",
].map((text, i) => ({ tsNsec: BigInt(i) * 1_000_000n, text }));

function setup(settings: Partial<CaptureSettings> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-save-"));
  const vmcore = join(dir, "vmcore.elf");
  writeFileSync(vmcore, syntheticVmcore(300, 7, CRASH_MESSAGES).bytes);
  const run = join(dir, "run");
  mkdirSync(run);
  writeFileSync(join(run, "init.log"), "0.50 capture environment started\n");
  const s: CaptureSettings = {
    format: 1, builtBy: "test", host: "deb12", mode: "default", target: join(dir, "crash"), targetInSystem: "/var/crash", codec: "zlib", dumpLevel: 1,
    keep: 3, minFree: "0", threads: 0, failureAction: "reboot", finalAction: "reboot", kernelRelease: "6.1.0-synthetic", ...settings,
  };
  const file = join(run, "capture.json");
  writeFileSync(file, JSON.stringify(s));
  const lines: string[] = [];
  return { dir, vmcore, run, file, s, lines, opts: { vmcore, console: (l: string) => lines.push(l), runDir: run } };
}

test("a save writes <host>-<time>/ with vmcore, dmesg.txt, report.json and capture.log, and marks Node started", async () => {
  const t = setup();
  try {
    assert.equal(await captureSave(t.file, t.opts), 0);
    const [name] = readdirSync(t.s.target);
    assert.match(name!, /^deb12-\d{8}T\d{6}Z$/);
    const d = join(t.s.target, name!);
    assert.deepEqual(readdirSync(d).sort(), ["capture.log", "dmesg.txt", "report.json", "vmcore"]);
    assert.ok(existsSync(join(t.run, "started")));
    const r = JSON.parse(readFileSync(join(d, "report.json"), "utf8")) as DumpReport;
    assert.equal(r.state, "saved");
    assert.equal(r.dump.complete, true);
    assert.equal(r.dump.bytes, readFileSync(join(d, "vmcore")).length);
    assert.equal(r.panic, "Kernel panic - not syncing: sysrq triggered crash");
    assert.deepEqual(r.backtrace, ["dump_stack_lvl+0x44/0x5c", "panic+0x118/0x2ed", "sysrq_handle_crash+0x16/0x20"]);
    assert.equal(r.testId, "t-123");
    assert.equal(dumpReportFromJson(r).problem, null, "what save writes is what report, list and status read");
    assert.match(readFileSync(join(d, "dmesg.txt"), "utf8"), /sysrq triggered crash/);
    const log = readFileSync(join(d, "capture.log"), "utf8");
    assert.match(log, /^0\.50 capture environment started$/m, "the init's log comes first");
    assert.match(log, /saving to \/var\/crash\/deb12-/);
    const core = openVmcore(bytesAccess(new Uint8Array(readFileSync(join(d, "vmcore")))));
    assert.equal(core.incomplete, false);
    assert.ok(t.lines.some((l) => l.startsWith("kexec-ts kdump: vmcore: ")));
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test("old dumps beyond keep are removed before the save; other directories are left alone", async () => {
  const t = setup({ keep: 2 });
  try {
    for (const n of ["deb12-20200101T000000Z", "deb12-20210101T000000Z", "lost+found"]) {
      mkdirSync(join(t.s.target, n), { recursive: true });
      writeFileSync(join(t.s.target, n, "x"), "old");
    }
    assert.equal(await captureSave(t.file, t.opts), 0);
    const names = readdirSync(t.s.target).sort();
    assert.equal(names.length, 3);
    assert.ok(names.includes("lost+found"));
    assert.ok(names.includes("deb12-20210101T000000Z"), "the newer old dump stays: keep 2 counts the new one");
    assert.ok(!names.includes("deb12-20200101T000000Z"));
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});

test("a full target gives an incomplete, readable dump and a report that says so", async (t) => {
  if (process.getuid?.() !== 0) return missingInput(t, "needs root to mount a small tmpfs");
  const s = setup({ dumpLevel: 0, codec: "none" });
  const mnt = join(s.dir, "crash");
  mkdirSync(mnt);
  // Room for dmesg.txt and the report, but not for 300 uncompressed pages.
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=400k", "tmpfs", mnt]);
  if (m.status !== 0) return missingInput(t, `mount tmpfs: ${m.stderr}`);
  try {
    assert.equal(await captureSave(s.file, s.opts), 74);
    const [name] = readdirSync(mnt);
    const d = join(mnt, name!);
    assert.ok(existsSync(join(d, "vmcore.incomplete")));
    assert.ok(!existsSync(join(d, "vmcore")));
    const r = JSON.parse(readFileSync(join(d, "report.json"), "utf8")) as DumpReport;
    assert.equal(r.state, "failed");
    assert.equal(r.dump.complete, false);
    assert.match(r.dump.problem!, /ENOSPC|full/);
    assert.equal(r.panic, "Kernel panic - not syncing: sysrq triggered crash", "the log was saved first");
    assert.ok(s.lines.some((l) => /vmcore NOT complete/.test(l)));
    assert.match(readFileSync(join(d, "capture.log"), "utf8"), /vmcore NOT complete: .*ENOSPC/, "the log's room was kept before the vmcore filled the target");
    assert.doesNotMatch(readFileSync(join(d, "capture.log"), "utf8"), / {100}/, "the padding is cut");
  } finally {
    spawnSync("umount", [mnt]);
    rmSync(s.dir, { recursive: true, force: true });
  }
});

test("list reads the saved vmcore's header: one marked incomplete is not whole whatever its size; a flattened stream goes by its size, said so", async () => {
  const t = setup();
  try {
    assert.equal(await captureSave(t.file, t.opts), 0);
    const [entry] = listDumps(t.s.target);
    const vmcore = join(t.s.target, entry!.name, "vmcore");
    const whole = readDump(t.s.target, entry!);
    assert.deepEqual([whole.complete, whole.vmcoreHeader?.says], [true, "complete"]);
    assert.match(summarizeDumpOnDisk(whole).join("\n"), /; complete$/m);

    // As a save cut off leaves it, at the size report.json recorded: it had been listed as complete.
    const status = offsetOf(DISK_DUMP_HEADER_64, "status");
    const bytes = readFileSync(vmcore);
    bytes.writeUInt32LE(bytes.readUInt32LE(status) | DUMP_DH_COMPRESSED_INCOMPLETE, status);
    writeFileSync(vmcore, bytes);
    const marked = readDump(t.s.target, entry!);
    assert.equal(marked.complete, false);
    assert.match(marked.problem ?? "", /^report\.json says it is complete \(vmcore, \d+ bytes\), but vmcore itself says it is incomplete: its header's status 0x\w+ at offset 424 has DUMP_DH_COMPRESSED_INCOMPLETE/);
    assert.match(summarizeDumpOnDisk(marked).join("\n"), /INCOMPLETE: .*vmcore itself says it is incomplete/);

    // A flattened stream saved as it came, or a file that is no dump: the list goes on, by the size alone, and says so.
    for (const [head, says] of [[encodeFlatHeader(), /flattened format/], [new TextEncoder().encode("garbage"), /neither an ELF core nor a kdump-compressed file/]] as const) {
      bytes.set(head, 0);
      writeFileSync(vmcore, bytes);
      const d = readDump(t.s.target, entry!);
      assert.deepEqual([d.complete, d.vmcoreHeader?.says], [true, "unknown"]);
      assert.match(summarizeDumpOnDisk(d).join("\n"), /; complete by report\.json and its size \(its header does not tell: /);
      assert.match(d.vmcoreHeader!.detail, says);
    }
  } finally {
    rmSync(t.dir, { recursive: true, force: true });
  }
});
