import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { parseArgs } from "./options.js";
import { fillPlan, prepareLoad } from "./prepare.js";

const repo = new URL("../../", import.meta.url).pathname;
/** A 6 GiB amd64 guest's snapshot, Debian's 6.1 running. */
const HIGH_6G = join(repo, "testdata/snapshots/qemu-amd64-6.1-high-6G");

/** `body` with a relocatable 64-bit bzImage (synthetic) in a scratch directory, removed after. */
async function withKernel(body: (dir: string, kernel: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-prepare-"));
  try {
    const kernel = join(dir, "vmlinuz");
    writeFileSync(kernel, buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 }));
    await body(dir, kernel);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A file of `bytes` with no blocks written. */
function sparseFile(path: string, bytes: number): string {
  writeFileSync(path, "");
  truncateSync(path, bytes);
  return path;
}

test("what only a kexec_load plan reads (crash notes, firmware memmap) is read only where kexec-ts plans one: kexec_load, plan, or a check that falls back", async () => {
  await withKernel(async (dir, kernel) => {
    const prepared = (command: "plan" | "check", ...flags: string[]) => {
      const args = parseArgs([command, "-p", ...flags, kernel, "--root", HIGH_6G]);
      return prepareLoad(args, [kernel], command);
    };
    // kexec_file_load is tried and loads: the kernel writes its own core header.
    const file = await prepared("check");
    assert.equal(file.machine.crashNotes.length, 0);
    const full = await file.kexecLoadMachine();
    assert.ok(full.crashNotes.length > 0 && full.crashNotes[0]!.size !== null);
    // The plan a fallback to kexec_load would load has its core header all the same.
    assert.match((await fillPlan(file, "show")).notes.join("\n"), /core header: \d+ notes/);
    for (const p of [await prepared("check", "-c"), await prepared("plan"), await prepared("check", "--userspace", "i386")]) {
      assert.deepEqual(p.machine.crashNotes, full.crashNotes);
    }
    assert.equal((await prepared("plan", "-s")).machine.crashNotes.length, 0);
    // A kexec load: the firmware memmap (the new kernel's e820 in kexec-ts's plan) in the same way.
    const kexec = (command: "plan" | "check", ...flags: string[]) => {
      const args = parseArgs([command, "-l", ...flags, kernel, "--root", HIGH_6G]);
      return prepareLoad(args, [kernel], command);
    };
    const fileLoad = await kexec("check");
    assert.equal(fileLoad.machine.firmwareMemmap, null);
    const memmap = (await fileLoad.kexecLoadMachine()).firmwareMemmap;
    assert.ok(memmap !== null && memmap.length > 0);
    assert.match((await fillPlan(fileLoad, "show")).notes.join("\n"), /from \/sys\/firmware\/memmap/);
    for (const p of [await kexec("check", "-c"), await kexec("plan")]) assert.deepEqual(p.machine.firmwareMemmap, memmap);
  });
});

test("--mem-min/--mem-max: numbers as kexec-tools reads them, 64 bits at most", async () => {
  const { parseAddress } = await import("./request.js");
  assert.equal(parseAddress("0x100000000", "mem-min"), 0x100000000n);
  assert.equal(parseAddress("0xffffffffffffffff", "mem-max"), (1n << 64n) - 1n);
  assert.equal(parseAddress(undefined, "mem-max"), undefined);
  for (const bad of ["1G", "-1", "0x10000000000000000"]) assert.throws(() => parseAddress(bad, "mem-min"), (e: Error & { code?: string }) => e.code === "usage" && e.message.startsWith(`--mem-min=${bad} is`), bad);
});

test("--mem-min above --mem-max is a usage error, not \"no room\" in an empty window", async () => {
  const { memoryBounds } = await import("./request.js");
  const bounds = (...flags: string[]) => memoryBounds(parseArgs(["plan", "-l", ...flags, "/boot/vmlinuz"]));
  assert.deepEqual(bounds("--mem-min=0x1000000", "--mem-max=0x1000000"), { memMin: 0x1000000n, memMax: 0x1000000n });
  assert.deepEqual(bounds("--mem-max=0x10000000"), { memMin: undefined, memMax: 0x10000000n });
  assert.throws(() => bounds("--mem-min=0x80000000", "--mem-max=0x10000000"),
    (e: unknown) => e instanceof KexecError && e.code === "usage" && e.message === "--mem-min=0x80000000 is above --mem-max=0x10000000: nothing can be placed between them");
});

test("an initrd larger than one buffer can hold is no kexec_load plan (exit 3), not a RangeError from the stand-in or the read", async () => {
  await withKernel(async (dir, kernel) => {
    // Sparse: 5 GiB long, no blocks written.
    const initrd = sparseFile(join(dir, "initrd.img"), 5 * 2 ** 30);
    const args = parseArgs(["plan", "-l", "-c", kernel, `--initrd=${initrd}`, "--root", HIGH_6G]);
    const p = await prepareLoad(args, [kernel], "plan");
    for (const use of ["show", "load"] as const) {
      await assert.rejects(fillPlan(p, use), (e: unknown) => e instanceof KexecError && e.code === "plan" && /initrd\.img: the initrd is 5 GiB .*more than the .* kexec-ts can hand kexec_load in one buffer/.test(e.message));
    }
  });
});

test("check/plan -s and -a: an initrd past KEXEC_FILE_SIZE_MAX fails kexec-file-size by its path, size and limit; -a does not fall back; -c is not bound by it", async () => {
  await withKernel(async (dir, kernel) => {
    // Sparse: 5 GiB long, no blocks written. The snapshot's kernel is 6.1: the limit is 4 GiB.
    const initrd = sparseFile(join(dir, "initrd.img"), 5 * 2 ** 30);
    const checked = async (command: "plan" | "check", ...flags: string[]) => {
      const args = parseArgs([command, "-l", ...flags, kernel, `--initrd=${initrd}`, "--root", HIGH_6G]);
      return (await prepareLoad(args, [kernel], command)).checks.find((c) => c.id === "kexec-file-size")!;
    };
    for (const [command, flags] of [["check", ["-s"]], ["plan", ["-s"]], ["check", []]] as const) {
      const r = await checked(command, ...flags);
      assert.equal(r.verdict, "fail", `${command} ${flags.join(" ")}`);
      assert.match(r.reason, /initrd\.img: the initrd is 5 GiB \(0x140000000 bytes\), more than the 4 GiB \(0x100000000 bytes\) kexec_file_load reads \(KEXEC_FILE_SIZE_MAX.*EFBIG/);
      assert.equal(r.evidence["syscall"], "kexec_file_load");
      assert.match(r.remedy, /smaller initrd/);
    }
    assert.match((await checked("check")).reason, /-a does not fall back to kexec_load after EFBIG/);
    assert.equal((await checked("check", "-c")).verdict, "ok");
  });
});

test("--mem-min/--mem-max with -s, or -a loading with kexec_file_load: a mem-bounds warning names the flag and why; -c and no flag are ok", async () => {
  await withKernel(async (dir, kernel) => {
    const memBounds = async (command: "plan" | "check", ...flags: string[]) => {
      const args = parseArgs([command, "-l", ...flags, kernel, "--root", HIGH_6G]);
      return (await prepareLoad(args, [kernel], command)).checks.find((c) => c.id === "mem-bounds")!;
    };
    for (const [command, flags] of [["check", ["-s"]], ["plan", ["-s"]], ["check", []]] as const) {
      const r = await memBounds(command, ...flags, "--mem-max=0x7fffffff");
      assert.equal(r.verdict, "warn", `${command} ${flags.join(" ")}`);
      assert.match(r.reason, /^--mem-max=0x7fffffff has no effect: .*kexec_file_load.* places the segments itself/);
      assert.match(r.remedy, /kexec_load \(-c\)/);
    }
    assert.match((await memBounds("check", "--mem-min=0x1000000")).reason, /^--mem-min=0x1000000 has no effect: -a loads with kexec_file_load here/);
    assert.equal((await memBounds("check", "-c", "--mem-max=0x7fffffff")).verdict, "ok");
    assert.equal((await memBounds("plan", "--mem-max=0x7fffffff", "-c")).verdict, "ok");
    const none = await memBounds("check", "-s");
    assert.equal(none.verdict, "ok");
    assert.equal(none.reason, "no --mem-min or --mem-max");
  });
});
