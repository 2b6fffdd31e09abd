import { test } from "node:test";
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RAW_RECORD_MAGIC, RAW_RECORD_SIZE } from "../../core/kdump/capture-init.js";
import { defaultConfig } from "../../core/kdump/config.js";
import type { DumpReport } from "../../core/kdump/dumps.js";
import { syntheticVmcore } from "../../core/vmcore/testing.js";
import { kdumpPaths, testStatePath, bootStatePath } from "./paths.js";
import { readRawRecord, reportCrashes } from "./report.js";
import { readBootId } from "./service.js";

/** A raw target as the capture init leaves it: the ELF core from byte 0, the record in the last 4 KiB. */
function rawTarget(path: string, core: Uint8Array, record: string): void {
  const device = new Uint8Array(core.length + 64 * 1024);
  device.set(core, 0);
  device.set(new TextEncoder().encode(record), device.length - RAW_RECORD_SIZE);
  writeFileSync(path, device);
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
    writeFileSync(join(dir, "report.json"), JSON.stringify({ format: 1, state: "saved", testId: "t-1", dump: { complete: true, file: "vmcore", bytes: 1, dumpLevel: 31, codec: "lzo", pagesWritten: 1, problem: null }, crashTime: "x", kernel: "k", panic: "p", backtrace: [], seconds: { total: 1, dmesg: 0, vmcore: 1 } }));
    r = await reportCrashes(config, paths, { all: false });
    assert.equal(r.test?.result, "passed");
    assert.equal(r.fresh.length, 1);
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
