/**
 * Planning on machines the lab cannot boot (issue 15, target 3): the committed
 * QEMU guest snapshots scaled up by synthetic-machine.ts. Correctness only;
 * the time these take is measured in bench/scale.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { buildMachine } from "../core/machine/build.js";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { parseElf, PT_LOAD, PT_NOTE } from "../core/image/elf.js";
import { planViolations } from "../core/plan/invariants.js";
import { placeLoad, planLoad } from "../core/plan/plan.js";
import { handoverInput } from "../core/check/index.js";
import { modelHandover } from "../core/pgtable/handover.js";
import { hex } from "../core/format.js";
import { end } from "../core/plan/ranges.js";
import type { Request } from "../core/plan/request.js";
import { dumpRanges } from "../core/plan/crash.js";
import { SETUP_E820_EXT } from "../core/plan/zero-page.js";
import { sha256 } from "../node/crypto.js";
import { readMachine } from "../node/machine.js";
import { missingInput, missingTool } from "../node/test-inputs.js";
import { UNUSED_BY } from "../core/machine/files.js";
import { GiB, SCALE_MODELS, TiB, readBaseSnapshot, syntheticMachineFiles, writeSnapshotDir, type SyntheticMachineOptions } from "./synthetic-machine.js";

/** Header values of Debian's 6.1 amd64 kernel with a tiny body, so the tests need no kernel cache. */
const image = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 }));
const initrd = new Uint8Array(40 << 20);
const request = (crash: boolean): Request => ({ crash, syscall: "kexec_load", cmdline: "console=ttyS0", initrdSize: initrd.length, userArch: "x86_64" });

async function model(o: SyntheticMachineOptions) {
  return buildMachine(syntheticMachineFiles(await readBaseSnapshot(o.paging), o));
}

test("400 System RAM ranges with reserved holes: boot_params grows with its SETUP_E820_EXT, -l and -p plan", async () => {
  const machine = await model({ paging: 4, ramTop: 8n * TiB, ramRanges: 400, reservedHoles: true, cpus: 8, crashHigh: 512n << 20n, crashLow: 256n << 20n });
  assert.equal(machine.memory.filter((m) => m.type === "System RAM").length, 400);
  for (const crash of [false, true]) {
    // Before boot_params was sized from its contents this failed with "purgatory: region 0 ... has a 17.5 KiB buffer but memsz 0x3000".
    const plan = planLoad(image, machine, request(crash), { initrd, sha256, rngSeed: new Uint8Array(32) });
    assert.deepEqual(planViolations(plan, image.kind === "bzImage" ? image.bzImage : assert.fail(), machine), []);
    const bootParams = plan.segments.find((s) => s.kind === "bootparams")!;
    // -l hands over all ~800 e820 entries; -p only the capture kernel's (its regions and the reserved ranges).
    if (!crash) assert.ok(bootParams.buf.length > 0x3000, `boot_params ${bootParams.buf.length} bytes`);
    assert.ok(bootParams.memsz >= BigInt(bootParams.buf.length));
    assert.ok(plan.notes.some((n) => /e820 entries beyond 128 passed as SETUP_E820_EXT/.test(n)), plan.notes.join("\n"));
    const view = new DataView(bootParams.buf.buffer, bootParams.buf.byteOffset);
    // The first setup_data node is the e820 extension, and it holds every entry past the page's 128.
    const first = Number(view.getBigUint64(0x250, true) - bootParams.mem);
    assert.equal(view.getUint32(first + 8, true), SETUP_E820_EXT);
    assert.equal(first + 16 + view.getUint32(first + 12, true) <= bootParams.buf.length, true);
  }
});

test("a purgatory region whose buffer outgrows its memsz is named by its segment, as kexec-ts' own bug (internal)", async () => {
  const { buildPurgatory } = await import("../core/plan/purgatory.js");
  assert.throws(
    () => buildPurgatory("x86_64", { mode: "entry64", entry: 0x1000200n, bootParams: 0x2000000n, regions: [{ what: "the bootparams segment", start: 0x2000000n, bytes: new Uint8Array(0x4600), memsz: 0x3000n }] }, null),
    (e: unknown) => e instanceof KexecError && e.code === "internal" && /the bootparams segment at 0x2000000 has a 17\.5 KiB buffer but memsz 0x3000/.test(e.message),
  );
});

for (const [name, o] of Object.entries(SCALE_MODELS)) {
  test(`${name}: 4,096 RAM ranges and 1,024 CPUs plan -l and -p within the invariants`, async () => {
    const machine = await model(o);
    assert.equal(machine.crashNotes.length, 1024);
    assert.equal(machine.crashRegions.length, 2, "crashkernel=,high and ,low each reserve a region");
    assert.equal(machine.pagingLevels, o.paging);
    const bz = image.kind === "bzImage" ? image.bzImage : assert.fail();
    for (const crash of [false, true]) {
      const plan = planLoad(image, machine, request(crash), { initrd, sha256: null });
      assert.deepEqual(planViolations(plan, bz, machine), []);
      assert.equal(plan.digested, false);
      if (crash) {
        // Segments go only in the high region (the one crashk_res names), below 64 TiB even on a 5-level machine.
        const high = machine.crashRegions.find((r) => r.start >= 4n * GiB)!;
        for (const s of plan.segments) assert.ok(s.mem >= high.start && s.mem + s.memsz <= high.start + high.size, `${s.kind} at ${s.mem.toString(16)}`);
      }
    }
  });
}

test("64T-4level: the ELF core header has a PT_LOAD per dumped RAM range (4,096+) and a PT_NOTE per CPU, and readelf reads it", async (t) => {
  const machine = await model(SCALE_MODELS["64T-4level"]!);
  const plan = planLoad(image, machine, request(true), { initrd, sha256: null });
  const header = plan.segments.find((s) => s.kind === "elfcorehdr")!.buf;
  const ranges = dumpRanges(machine);
  assert.ok(ranges.length >= 4096, `${ranges.length} ranges to dump`);
  const elf = parseElf(header, "core header");
  const loads = elf.programHeaders.filter((p) => p.p_type === PT_LOAD);
  assert.equal(loads.length, ranges.length + 1, "one per RAM range plus the kernel text");
  assert.equal(elf.programHeaders.filter((p) => p.p_type === PT_NOTE).length, 1025);

  if (missingTool("readelf")) return missingInput(t, "readelf (binutils) is not installed");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-scale-"));
  try {
    const file = join(dir, "elfcorehdr");
    writeFileSync(file, header);
    const r = spawnSync("readelf", ["-h", "-l", "-W", file], { encoding: "utf8", maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "", "readelf has no complaint");
    assert.match(r.stdout, new RegExp(`Number of program headers:\\s+${loads.length + 1025}\\b`));
    const rows = [...r.stdout.matchAll(/^\s+LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) RWE/gm)];
    assert.equal(rows.length, loads.length);
    // Past the kernel text, readelf's offsets and sizes are the RAM ranges, in order.
    assert.deepEqual(rows.slice(1).map((m) => [BigInt(`0x${m[3]}`), BigInt(`0x${m[5]}`)]), ranges.map((x) => [x.start, x.size]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a synthetic snapshot on disk reads back as the model built from its files (8,000 small files, a 1.4 MiB cpuinfo); -l and -p read only what they use", async () => {
  const o = SCALE_MODELS["4P-5level"]!;
  const files = syntheticMachineFiles(await readBaseSnapshot(o.paging), o);
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-scale-"));
  try {
    writeSnapshotDir(dir, files);
    const fromDisk = await readMachine(dir);
    const inMemory = buildMachine(files, { displayPath: (rel) => join(dir, rel) });
    assert.equal(fromDisk.cpu?.count, 1024);
    assert.equal(fromDisk.firmwareMemmap?.length, 2048);
    assert.deepEqual(fromDisk, inMemory);
    // -l and -p leave unread what only the other uses, and plan exactly as from everything.
    for (const crash of [false, true]) {
      const partial = await readMachine(dir, { skip: UNUSED_BY[crash ? "crash" : "kexec"] });
      assert.equal(crash ? partial.firmwareMemmap : partial.crashNotes.length, crash ? null : 0);
      assert.deepEqual(partial.facts, fromDisk.facts, "leaving files unread is no fact about the machine");
      assert.deepEqual(planLoad(image, partial, request(crash), { initrd, sha256: null }), planLoad(image, fromDisk, request(crash), { initrd, sha256: null }));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the hand-over check models only the RAM its invariants walk, and finds what the full tables find", async () => {
  // Big enough that the full model is slow, small enough to build it here: 512 ranges over 32 TiB.
  const machines = [
    await model({ paging: 4, ramTop: 32n * TiB, ramRanges: 512, reservedHoles: false, cpus: 8, crashHigh: 512n << 20n, crashLow: 256n << 20n }),
    await model({ paging: 5, ramTop: 64n * TiB, ramRanges: 512, reservedHoles: true, cpus: 8, crashHigh: 512n << 20n, crashLow: 256n << 20n }),
  ];
  for (const machine of machines) {
    for (const crash of [false, true]) {
      const placed = placeLoad(image, machine, request(crash));
      const input = handoverInput(machine, crash, "kexec_load", placed.segments, { entry: placed.entry, entryMode: placed.entryMode, kernelEntry: placed.kernelEntry, bootParams: placed.bootParams });
      const full = modelHandover(input, "full");
      const scoped = modelHandover(input, "invariants");
      assert.deepEqual(scoped.invariants, full.invariants);
      assert.equal(scoped.controlPage, full.controlPage);
      assert.ok(scoped.tables[1]!.pages.size < full.tables[1]!.pages.size / 4, `kexec table pages: ${scoped.tables[1]!.pages.size} of ${full.tables[1]!.pages.size}`);
    }
  }
  // A range the format cannot map is still caught when it is left out of the scoped tables.
  const machine = machines[0]!;
  const placed = placeLoad(image, machine, request(false));
  const input = handoverInput(machine, false, "kexec_load", placed.segments, { entry: placed.entry, entryMode: placed.entryMode, kernelEntry: placed.kernelEntry, bootParams: placed.bootParams });
  const beyond = { ...input, ram: [...input.ram, { start: 1n << 47n, size: 1n << 30n }] };
  assert.deepEqual(modelHandover(beyond, "invariants").invariants, modelHandover(beyond, "full").invariants);
  assert.ok(modelHandover(beyond, "invariants").invariants.some((i) => !i.holds));
  // Such a range first, holding a segment, and an ACPI range past it too: each whole range still
  // fails once, in the full model's order, though only a piece of it is in the scoped tables.
  const unmappable = { start: 1n << 47n, size: 4n << 30n };
  const holding = {
    ...input,
    ram: [unmappable, ...input.ram],
    acpi: [...input.acpi, { start: end(unmappable) + (1n << 30n), size: 0x1000n }],
    segments: input.segments.map((s) => (s.kind === "initrd" ? { ...s, mem: unmappable.start + (2n << 30n) + 0x1000n } : s)),
  };
  const scopedHolding = modelHandover(holding, "invariants").invariants;
  assert.deepEqual(scopedHolding, modelHandover(holding, "full").invariants);
  assert.equal(scopedHolding.filter((i) => !i.holds && i.reason.startsWith(`System RAM ${hex(unmappable.start)}`)).length, 1, scopedHolding.map((i) => i.reason).join("\n"));
  assert.ok(scopedHolding.some((i) => !i.holds && i.reason.startsWith("ACPI ")));
});
