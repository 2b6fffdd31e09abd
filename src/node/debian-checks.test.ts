/**
 * The checks on real Debian kernels against QEMU guest snapshots
 * (testdata/snapshots), in the cases the lab has run: every expectation
 * here is an outcome observed in a guest (see lab/scenarios/check-*.json).
 * Skips, saying why, without the kernel cache (.ci/setup-debian.sh); fails so under CI=true.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readKernelImage, type KernelImage } from "../core/image/index.js";
import { readMachine } from "./machine.js";
import { cachedKernels } from "./kernel-cache.js";
import { missingInput } from "./test-inputs.js";
import { runChecks, summarize, type Request, type Verdict } from "../core/check/index.js";

const kernels = cachedKernels();
const byFlavour = (f: string, major: string) => kernels.find((k) => k.flavour === f && k.release.startsWith(major));
const amd64_61 = byFlavour("amd64", "6.1.");
const amd64_612 = byFlavour("amd64", "6.12.");
const pae_61 = byFlavour("686-pae", "6.1.");
const missing = !amd64_61 || !amd64_612 || !pae_61 ? "Debian kernels not cached: run .ci/setup-debian.sh" : undefined;

const snapshot = (name: string) => fileURLToPath(new URL(`../../testdata/snapshots/${name}`, import.meta.url));
const read = (path: string) => new Uint8Array(readFileSync(path));

/** XLF_5LEVEL (bit 5) and XLF_5LEVEL_ENABLED (bit 6) cleared at 0x236, as a pre-5.3 header would have them. */
function withoutFiveLevel(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  copy[0x236] = copy[0x236]! & ~0x60;
  return copy;
}

const request = (over: Partial<Request>): Request => ({ crash: false, syscall: "auto", cmdline: "console=ttyS0 panic=-1", userArch: "x86_64", ...over });

async function verdicts(snap: string, image: KernelImage, over: Partial<Request>): Promise<{ get: (id: string) => Verdict; reason: (id: string) => string; exit: number }> {
  const machine = await readMachine(snapshot(snap));
  const results = runChecks({ image, machine, request: request(over), isRoot: true });
  const find = (id: string) => {
    const r = results.find((x) => x.id === id);
    assert.ok(r, `no ${id}`);
    return r;
  };
  return { get: (id) => find(id).verdict, reason: (id) => find(id).reason, exit: summarize(results).exitCode };
}

test("issue 6 headline: 6.12 with XLF_5LEVEL cleared, kexec_file_load from a 5-level 6.1 guest, is refused in the kernel's words", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const image = readKernelImage(withoutFiveLevel(read(amd64_612!.vmlinuz)));
  assert.equal(image.kind === "bzImage" && image.bzImage.xloadflags, 0x1f);
  const v = await verdicts("qemu-amd64-6.1-5level-crash1968M", image, { syscall: "kexec_file_load" });
  assert.equal(v.get("paging-5level"), "fail");
  assert.match(v.reason("paging-5level"), /kexec-bzImage64: bzImage cannot handle 5-level paging mode\./);
  assert.equal(v.get("kexec-file-probe"), "ok");
  assert.equal(v.exit, 2);
});

test("the same image from a no5lvl guest: nothing stands in the way", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const image = readKernelImage(withoutFiveLevel(read(amd64_612!.vmlinuz)));
  const v = await verdicts("qemu-amd64-6.1-no5lvl-crash1968M", image, { syscall: "kexec_file_load" });
  assert.equal(v.get("paging-5level"), "ok");
  assert.equal(v.exit, 0);
});

test("the same image with kexec_load from the 5-level guest: a warning, since the edited 6.12 header hides a decompressor that copes", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const image = readKernelImage(withoutFiveLevel(read(amd64_612!.vmlinuz)));
  const v = await verdicts("qemu-amd64-6.1-5level-crash1968M", image, { syscall: "kexec_load" });
  assert.equal(v.get("paging-5level"), "warn");
  assert.equal(v.get("placement-hole"), "ok");
  assert.equal(v.exit, 1);
});

test("unmodified 6.12 from the 5-level guest, either syscall: all ok", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const image = readKernelImage(read(amd64_612!.vmlinuz));
  for (const syscall of ["kexec_file_load", "kexec_load"] as const) {
    const v = await verdicts("qemu-amd64-6.1-5level-crash1968M", image, { syscall });
    assert.equal(v.exit, 0, `${syscall}: ${v.reason("placement-hole")}`);
  }
});

test("crashkernel=256M@3264M on a 4G guest (RAM below 4G ends at 3G): nothing reserved, and check says why", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const image = readKernelImage(read(amd64_61!.vmlinuz));
  const v = await verdicts("qemu-amd64-6.1-crash3264M-4G", image, { crash: true });
  assert.equal(v.get("crash-region"), "fail");
  assert.match(v.reason("crash-region"), /256M@3264M.*not all System RAM.*ends at 0xbffe0000/);
});

test("an i386 kernel asked for kexec_file_load; and a 686-pae image with -s on x86_64", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const pae = readKernelImage(read(pae_61!.vmlinuz));
  const onI386 = await verdicts("qemu-686-pae-6.1-crash128M", pae, { syscall: "kexec_file_load", userArch: "i386" });
  assert.equal(onI386.get("kexec-file-available"), "fail");
  const viaLoad = await verdicts("qemu-686-pae-6.1-crash128M", pae, { syscall: "kexec_load", userArch: "i386" });
  assert.equal(viaLoad.exit, 0, viaLoad.reason("placement-hole"));
  const on64 = await verdicts("qemu-amd64-6.1-5level-crash1968M", pae, { syscall: "kexec_file_load" });
  assert.equal(on64.get("kexec-file-probe"), "fail");
  assert.match(on64.reason("kexec-file-probe"), /Not a bzImage64\. XLF_KERNEL_64 is not set\./);
});

test("seed 002: i386 user space loads an x86_64 kdump kernel into crashkernel=256M@1968M", async (t) => {
  if (missing !== undefined) return missingInput(t, missing);
  const image = readKernelImage(read(amd64_61!.vmlinuz));
  const v = await verdicts("qemu-amd64-6.1-5level-crash1968M", image, { crash: true, userArch: "i386", initrdSize: 30 << 20 });
  assert.equal(v.get("kexec-file-available"), "ok");
  assert.equal(v.get("user-arch"), "ok");
  assert.equal(v.get("crash-region-reach"), "ok");
  assert.equal(v.get("placement-hole"), "ok");
  // ,high puts crashk_res above 4 GiB: out of a 32-bit kexec_load's reach.
  const high = await verdicts("qemu-amd64-6.1-high-6G", image, { crash: true, userArch: "i386" });
  assert.equal(high.get("crash-region-reach"), "fail");
  // A 686-pae capture kernel cannot run from 1968M (above 896M).
  const pae = await verdicts("qemu-amd64-6.1-5level-crash1968M", readKernelImage(read(pae_61!.vmlinuz)), { crash: true, userArch: "i386" });
  assert.equal(pae.get("crash-region-reach"), "fail");
});
