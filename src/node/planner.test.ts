/**
 * kexecLoadPlanner (core/plan/plan.ts) lays a load out once for the checks and the plan: whatever
 * layouts it is asked with, in whatever order, each answer must be exactly what placeLoad and
 * planLoad give on their own, down to the core header's bytes and the notes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { defaultKernelLayout, type KernelLayout } from "../core/plan/crash.js";
import { kexecLoadPlanner, placeLoad, planLoad, type SegmentBytes } from "../core/plan/plan.js";
import type { Request } from "../core/plan/request.js";
import type { Machine } from "../core/machine/model.js";
import { sha256 } from "./crypto.js";
import { readMachine } from "./machine.js";

const SNAPSHOTS = join(new URL("../../", import.meta.url).pathname, "testdata/snapshots");
const snapshots = readdirSync(SNAPSHOTS, { withFileTypes: true }).filter((d) => d.isDirectory() && d.name.startsWith("qemu-")).map((d) => d.name);
const image64 = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 }));
const image32 = readKernelImage(buildBzImage({ fields: { xloadflags: 0, init_size: 0x1a5d000n, kernel_alignment: 0x1000000n, pref_address: 0x1000000n, initrd_addr_max: 0x7fffffffn }, tail: 0x4000 }));
const initrd = new Uint8Array(0x100000).fill(0x5a);
const bytes: SegmentBytes = { initrd, rngSeed: new Uint8Array(32).fill(7), sha256 };

/** The layouts a load can be asked with: the checks' (none), a snapshot's kinds, and ones that change the core header. */
function layouts(machine: Machine): { name: string; layout: KernelLayout | undefined }[] {
  const d = defaultKernelLayout(machine);
  const out: { name: string; layout: KernelLayout | undefined }[] = [
    { name: "none", layout: undefined },
    { name: "the default, from elsewhere", layout: { ...d, source: `${d.source}; somewhere else` } },
    { name: "another page_offset_base", layout: { ...d, pageOffset: d.pageOffset + (1n << 30n), source: "moved" } },
  ];
  // One PT_LOAD more or fewer: a core header of another size, so placed again.
  if (d.text) out.push({ name: "no text mapping", layout: { ...d, text: undefined, source: "no text" } });
  else out.push({ name: "a text mapping", layout: { ...d, text: { vaddr: 0xffffffff81000000n, paddr: 0x1000000n, size: 0x2000000n }, source: "text" } });
  return out;
}

/** What a call gives, or the error it throws, for comparing two ways of getting it. */
function outcome<T>(f: () => T): T | { error: string } {
  try {
    return f();
  } catch (e) {
    return { error: String(e) };
  }
}

for (const name of snapshots) {
  test(`kexecLoadPlanner gives placeLoad's and planLoad's answers: ${name}`, async () => {
    const machine = await readMachine(join(SNAPSHOTS, name));
    const image = machine.kernelArch === "i386" ? image32 : image64;
    for (const crash of [false, true]) {
      const request: Request = { syscall: "kexec_load", crash, cmdline: "console=ttyS0", userArch: machine.kernelArch ?? "x86_64", initrdSize: initrd.length };
      const all = layouts(machine);
      // The plan after the checks, as `plan -p` makes it: laid out once, the checks' hole searches filled.
      const planner = kexecLoadPlanner(image, machine, request);
      const placed = outcome(() => planner.place());
      if (!("error" in placed)) assert.equal(planner.plan(bytes, all[1]!.layout).placements, placed.placements, `${crash ? "-p" : "-l"}: laid out again`);
      // Each layout after each other one: the planner keeps what the last call laid out.
      for (const first of all) {
        for (const then of all) {
          const planner = kexecLoadPlanner(image, machine, request);
          const what = `${crash ? "-p" : "-l"}, ${first.name} then ${then.name}`;
          assert.deepEqual(outcome(() => planner.place(first.layout)), outcome(() => placeLoad(image, machine, request, first.layout)), `${what}: the placement`);
          assert.deepEqual(outcome(() => planner.plan(bytes, then.layout)), outcome(() => planLoad(image, machine, request, bytes, then.layout)), `${what}: the plan`);
          assert.deepEqual(outcome(() => planner.place(first.layout)), outcome(() => placeLoad(image, machine, request, first.layout)), `${what}, then ${first.name} again`);
        }
      }
    }
  });
}
