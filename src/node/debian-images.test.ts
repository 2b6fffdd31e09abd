/**
 * The image reader against real Debian kernels, cross-checked with the
 * kernel config shipped in the same package (CONFIG_PHYSICAL_ALIGN,
 * CONFIG_X86_5LEVEL, CONFIG_64BIT, CONFIG_KERNEL_<codec>, CONFIG_RELOCATABLE).
 * .ci/setup-debian.sh fetches the kernels; without them these tests skip and say so, and
 * under CI=true they fail (test-inputs.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readKernelImage } from "../core/image/index.js";
import { PT_LOAD } from "../core/image/elf.js";
import { cachedKernels, readKernelConfig } from "./kernel-cache.js";
import { missingInput } from "./test-inputs.js";

const kernels = cachedKernels();

test("Debian kernels are present in the cache: the four that .ci/setup-debian.sh fetches", (t) => {
  if (kernels.length === 0) return missingInput(t, "no kernels cached: run .ci/setup-debian.sh");
  for (const [flavour, series] of [["amd64", "6.1."], ["amd64", "6.12."], ["686-pae", "6.1."], ["686", "6.1."]] as const) {
    assert.ok(kernels.some((k) => k.flavour === flavour && k.release.startsWith(series)), `no ${series}x ${flavour} kernel in the cache (${kernels.map((k) => k.release).join(", ")})`);
  }
});

for (const k of kernels) {
  test(`inspect ${k.release} agrees with its config`, (t) => {
    if (k.config === undefined) return missingInput(t, `no config file next to ${k.vmlinuz}`);
    const config = readKernelConfig(k.config);
    const image = readKernelImage(new Uint8Array(readFileSync(k.vmlinuz)), { decompressPayload: true });
    assert.equal(image.kind, "bzImage");
    if (image.kind !== "bzImage") return;
    const b = image.bzImage;
    assert.ok(b.protocol >= 0x20c, `protocol ${b.protocol.toString(16)}`);
    assert.ok(b.version?.startsWith(`${k.release} `), `version string ${b.version} should start with ${k.release}`);
    assert.equal(b.kernelAlignment, BigInt(config.get("CONFIG_PHYSICAL_ALIGN")!));
    assert.equal(b.relocatable, config.get("CONFIG_RELOCATABLE") === "y");
    const is64 = config.get("CONFIG_64BIT") === "y";
    assert.equal(b.is64, is64);
    assert.equal(b.xloadflagNames.includes("XLF_KERNEL_64"), is64);
    assert.equal(b.canBeLoadedAbove4G, is64 && config.get("CONFIG_RELOCATABLE") === "y");
    // header.S: XLF_5LEVEL on every 64-bit build, XLF_5LEVEL_ENABLED with CONFIG_X86_5LEVEL.
    assert.equal(b.fiveLevel, is64);
    assert.equal(b.fiveLevelEnabled, config.get("CONFIG_X86_5LEVEL") === "y");
    const codec = ["GZIP", "BZIP2", "LZMA", "XZ", "LZO", "LZ4", "ZSTD"].find((c) => config.get(`CONFIG_KERNEL_${c}`) === "y");
    assert.equal(b.payload?.compression, codec?.toLowerCase());
    assert.equal(b.pe.present, config.get("CONFIG_EFI_STUB") === "y");
    assert.equal(b.pe.signed, false, "the -unsigned packages carry no Authenticode signature");
    // The payload is the kernel's own vmlinux: an ELF of the right class whose banner names this release,
    // and init_size covers every loadable segment from the first one's physical address.
    const v = image.vmlinux!;
    assert.equal(v.elf.header.elfClass, is64 ? 64 : 32);
    assert.equal(v.elf.machineName, is64 ? "x86_64" : "i386");
    assert.ok(v.banner?.startsWith(`Linux version ${k.release} `), `banner ${v.banner}`);
    const loads = v.elf.programHeaders.filter((p) => p.p_type === PT_LOAD);
    const first = loads.reduce((m, p) => (p.p_paddr < m ? p.p_paddr : m), loads[0]!.p_paddr);
    const end = loads.reduce((m, p) => (p.p_paddr + p.p_memsz > m ? p.p_paddr + p.p_memsz : m), 0n);
    assert.ok(b.initSize! >= end - first, `init_size ${b.initSize} < vmlinux span ${end - first}`);
    // The vmlinux is linked at CONFIG_PHYSICAL_START.
    assert.equal(first, BigInt(config.get("CONFIG_PHYSICAL_START")!));
  });
}
