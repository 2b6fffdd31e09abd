/**
 * Plans for the QEMU guest snapshots in testdata/snapshots: golden files for a
 * synthetic image shaped like Debian's kernels (so the goldens do not change
 * when apt serves a newer build), and the invariants for the real cached
 * kernels on every snapshot. Regenerate the goldens with UPDATE_GOLDEN=1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readKernelImage, type KernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { planViolations } from "../core/plan/invariants.js";
import { planLoad } from "../core/plan/plan.js";
import { planJson } from "../core/plan/render.js";
import { sha256 } from "./crypto.js";
import { cachedKernels } from "./kernel-cache.js";
import { readMachine } from "./machine.js";
import { missingInput } from "./test-inputs.js";

const repo = new URL("../../", import.meta.url).pathname;
const SNAPSHOTS = join(repo, "testdata/snapshots");
const PLANS = join(repo, "testdata/plans");
const snapshots = readdirSync(SNAPSHOTS, { withFileTypes: true }).filter((d) => d.isDirectory() && d.name.startsWith("qemu-")).map((d) => d.name);

/** Header values of Debian 6.1 amd64 and 686-pae kernels, with a tiny body. */
const synthetic64 = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 }));
const synthetic32 = readKernelImage(buildBzImage({ fields: { xloadflags: 0, init_size: 0x1a5d000n, kernel_alignment: 0x1000000n, pref_address: 0x1000000n, initrd_addr_max: 0x7fffffffn }, tail: 0x4000 }));
const initrd = new Uint8Array(8 * 0x100000);

for (const name of snapshots) {
  for (const crash of [false, true]) {
    test(`golden plan: ${name} ${crash ? "-p" : "-l"}`, async () => {
      const machine = await readMachine(join(SNAPSHOTS, name));
      const image = machine.kernelArch === "i386" ? synthetic32 : synthetic64;
      let json: unknown;
      try {
        const plan = planLoad(image, machine, { syscall: "kexec_load", crash, cmdline: "console=ttyS0", userArch: machine.kernelArch ?? "x86_64", initrdSize: initrd.length }, { initrd, sha256 });
        json = planJson(plan);
      } catch (e) {
        // A refusal is a result too (e.g. -p where nothing was reserved): its message is golden.
        json = { error: (e as Error).message };
      }
      const text = `${JSON.stringify(json, null, 2)}\n`;
      const golden = join(PLANS, `${name}${crash ? "--crash" : ""}.json`);
      if (process.env["UPDATE_GOLDEN"] === "1") writeFileSync(golden, text);
      assert.ok(existsSync(golden), `${golden} is missing: run UPDATE_GOLDEN=1 node --test dist/node/plan-golden.test.js`);
      assert.equal(text, readFileSync(golden, "utf8"));
    });
  }
}

const kernels = cachedKernels();
test("real Debian kernels plan on every guest snapshot within the invariants", async (t) => {
  if (kernels.length === 0) return missingInput(t, "no kernels cached: run .ci/setup-debian.sh");
  let planned = 0;
  for (const name of snapshots) {
    const machine = await readMachine(join(SNAPSHOTS, name));
    for (const k of kernels) {
      const image: KernelImage = readKernelImage(new Uint8Array(readFileSync(k.vmlinuz)));
      if (image.kind !== "bzImage") continue;
      // An i386 kernel cannot run a 64-bit image; everything else is a case to plan.
      if (machine.kernelArch === "i386" && image.bzImage.is64 && k.flavour === "amd64") continue;
      for (const crash of [false, true]) {
        if (crash && machine.crashRegions.length === 0) continue;
        for (const userArch of ["x86_64", "i386"] as const) {
          if (machine.kernelArch === "i386" && userArch === "x86_64") continue;
          try {
            const plan = planLoad(image, machine, { syscall: "kexec_load", crash, cmdline: "console=ttyS0 irqpoll nr_cpus=1 reset_devices", userArch, initrdSize: initrd.length }, { initrd, sha256 });
            assert.deepEqual(planViolations(plan, image.bzImage, machine), [], `${name} ${k.release} ${crash ? "-p" : "-l"} ${userArch}`);
            planned++;
          } catch (e) {
            // Only a reasoned refusal is acceptable (e.g. a 32-bit loader and a region above 4 GiB).
            assert.match((e as Error).message, /no room for/, `${name} ${k.release} ${crash ? "-p" : "-l"} ${userArch}: ${(e as Error).message}`);
          }
        }
      }
    }
  }
  assert.ok(planned > 10, `only ${planned} plans`);
});
