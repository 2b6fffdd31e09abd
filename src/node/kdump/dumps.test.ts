import { test } from "node:test";
import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DumpReport } from "../../core/kdump/dumps.js";
import { writeElfDump } from "../../core/vmcore/dump-writer.js";
import { ELF64_EHDR, ELF64_PHDR, PN_XNUM, programHeaderCount } from "../../core/image/elf.js";
import { readStruct } from "../../core/bytes/layout.js";
import { bytesAccess, type PhysRange } from "../../core/vmcore/memory.js";
import { syntheticVmcore } from "../../core/vmcore/testing.js";
import { openVmcore, type Vmcore } from "../../core/vmcore/vmcore.js";
import { SparseSink } from "../vmcore/sparse-sink.js";
import { listDumps, readDump, summarizeDumpOnDisk } from "./dumps.js";

const PS = 4096;

/**
 * The synthetic machine with `runs` one-page ranges a page apart above it, as a large machine's
 * fragmented memory leaves them at -d 31: a PT_LOAD each in an ELF dump, one in 50 with data
 * (the others zero pages, left out at dump level 1, PT_LOADs of no data).
 */
function fragmented(runs: number): Vmcore {
  const low = openVmcore(bytesAccess(syntheticVmcore(300).bytes), "synthetic");
  const first = 0x10000;
  const zero = new Uint8Array(PS);
  const ranges: PhysRange[] = [...low.memory.ranges];
  for (let i = 0; i < runs; i++) ranges.push({ start: BigInt(first + 2 * i) * BigInt(PS), end: BigInt(first + 2 * i + 1) * BigInt(PS) });
  const readPage = (pfn: bigint) => {
    const i = Number(pfn) - first;
    if (i < 0) return low.memory.readPage(pfn);
    if (i % 2 !== 0 || i / 2 >= runs) return undefined;
    return i % 100 === 0 ? new Uint8Array(PS).fill(0x5a) : zero;
  };
  const { elf: _, ...notElf } = low;
  return { ...notElf, memory: { pageSize: PS, ranges, readPage } };
}

/** A sink that never rewrites the header it wrote first: the file a save leaves when it dies before its last write. */
class FirstHeaderSink extends SparseSink {
  private headerWritten = false;
  override write(offset: bigint, data: Uint8Array): void {
    if (offset === 0n && this.headerWritten) return;
    if (offset === 0n) this.headerWritten = true;
    super.write(offset, data);
  }
}

/** A dump directory as `kdump save` leaves it: the vmcore and a report.json that calls it whole, of its size. */
function dumpDir(target: string, name: string, vmcore: Uint8Array): string {
  const dir = join(target, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "vmcore"), vmcore);
  writeFileSync(join(dir, "report.json"), JSON.stringify(savedReport(vmcore.length)));
  return dir;
}

function savedReport(bytes: number): DumpReport {
  return {
    format: 1, state: "saved", host: "big", crashTime: "2026-11-23T15:42:58.000Z", kernel: "6.1.0-synthetic", panic: "Kernel panic - not syncing: sysrq triggered crash", backtrace: [], testId: null,
    dump: { file: "vmcore", complete: true, bytes, dumpLevel: 1, codec: "none", pagesWritten: 1, problem: null },
    dmesg: { file: "dmesg.txt", records: 1 }, seconds: { total: 1, dmesg: 0, vmcore: 1 },
    memory: { memTotal: null, memAvailableAtStart: null, memAvailableLeast: null, nodeRssPeak: null, nodePrivatePeak: null, heapCapMiB: 48 },
    capture: { mode: "default", builtBy: "0.1.0", kernelRelease: "6.1.0-synthetic", node: process.version }, startedAt: "", finishedAt: "", notes: [],
  };
}

for (const { runs, what } of [{ runs: 2_000, what: "2,000 PT_LOADs (112 KiB of program headers)" }, { runs: PN_XNUM + 10, what: "65,545 PT_LOADs (PN_XNUM, the count in section header 0)" }]) {
  test(`kdump list of an ELF dump with ${what}: its headers past 64 KiB are read, its own note decides whole, in progress or cut short`, async () => {
    const root = mkdtempSync(join(tmpdir(), "kexec-ts-kdump-dumps-"));
    try {
      const core = fragmented(runs);
      const opts = { codec: "none" as const, dumpLevel: 1, what: "synthetic" };
      const whole = new SparseSink();
      assert.equal((await writeElfDump(core, opts, whole)).complete, true);
      const bytes = whole.read(0, whole.length);
      const h = readStruct(ELF64_EHDR, bytes, 0);
      const phnum = programHeaderCount({ ...h, elfClass: 64 }, BigInt(bytes.length), (offset, length) => bytes.subarray(Number(offset), Number(offset) + length));
      assert.ok(phnum > runs && (phnum >= PN_XNUM) === (h.e_phnum === PN_XNUM), `${phnum} program headers, e_phnum ${h.e_phnum}`);
      const tableEnd = Number(h.e_phoff) + phnum * ELF64_PHDR.size;
      // The list read the first 64 KiB of a vmcore and no more: these dumps were "completeness unknown".
      assert.ok(tableEnd > 64 * 1024, `the program headers end at ${tableEnd}, past the first 64 KiB`);

      const inProgress = new FirstHeaderSink();
      assert.equal((await writeElfDump(core, opts, inProgress)).complete, true);
      const target = join(root, "crash");
      dumpDir(target, "big-20260101T000000Z", bytes);
      dumpDir(target, "big-20260102T000000Z", inProgress.read(0, inProgress.length));
      // Cut a page short, and report.json of that size: the file system lost the last writes, and the report with them.
      const cutDir = dumpDir(target, "big-20260103T000000Z", bytes);
      truncateSync(join(cutDir, "vmcore"), bytes.length - PS);
      writeFileSync(join(cutDir, "report.json"), JSON.stringify(savedReport(bytes.length - PS)));

      const [ok, progress, cut] = listDumps(target).map((d) => readDump(target, d));
      assert.deepEqual([ok!.complete, ok!.vmcoreHeader], [true, { format: "elf", says: "complete", detail: 'its KEXEC-TS note says "complete; dump level 1"' }]);
      assert.match(summarizeDumpOnDisk(ok!).join("\n"), /dump: vmcore, .*; complete$/m);

      assert.deepEqual([progress!.complete, progress!.vmcoreHeader?.says], [false, "incomplete"]);
      assert.match(progress!.problem ?? "", /vmcore itself says it is incomplete: its KEXEC-TS note says "kexec-ts vmcore save: in progress"$/);
      assert.match(summarizeDumpOnDisk(progress!).join("\n"), /; INCOMPLETE: report\.json says it is complete .*in progress/);

      assert.deepEqual([cut!.complete, cut!.vmcoreHeader?.says], [false, "incomplete"]);
      assert.match(cut!.problem ?? "", /vmcore itself says it is incomplete: the file ends at 0x[0-9a-f]+, but PT_LOAD \d+'s data runs to 0x[0-9a-f]+$/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
