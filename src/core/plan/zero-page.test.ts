import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteReader } from "../bytes/reader.js";
import { parseBzImage } from "../image/bzimage.js";
import { buildBzImage } from "../image/testing/synthetic.js";
import { buildZeroPage, LOADER_TYPE_KEXEC, SETUP_E820_EXT, SETUP_RNG_SEED, zeroPageSize, type E820 } from "./zero-page.js";

const imageBytes = buildBzImage({ fields: { xloadflags: 0x7f } });
const image = parseBzImage(imageBytes);

function build(e820: E820[], extra: Partial<Parameters<typeof buildZeroPage>[0]> = {}) {
  return buildZeroPage({
    image, imageBytes, address: 0x1_2345_6000n, cmdline: "console=ttyS0 root=/dev/vda",
    initrd: { address: 0x1_8000_0000n, size: 0x123456n }, e820, acpiRsdp: 0xf5a40n, hardwareSubarch: 0n,
    rngSeed: new Uint8Array(32).fill(0xab), kernelAddress: 0x1000000n, ...extra,
  });
}

test("zero page carries the header, loader fields, command line and initrd split into low and ext halves", () => {
  const zp = build([{ addr: 0n, size: 0x9fc00n, type: 1 }, { addr: 0x100000n, size: 0xbfee0000n, type: 1 }]);
  const r = new ByteReader(zp.bytes, "zero page");
  assert.equal(r.u32(0x202, "header"), 0x53726448);
  assert.equal(r.u16(0x206, "version"), 0x20f);
  assert.equal(r.u8(0x210, "type_of_loader"), LOADER_TYPE_KEXEC);
  // cmd_line_ptr low 32 + ext_cmd_line_ptr high 32 give the address right after the page.
  const cmd = BigInt(r.u32(0x228, "cmd_line_ptr")) | (BigInt(r.u32(0xc8, "ext_cmd_line_ptr")) << 32n);
  assert.equal(cmd, 0x1_2345_7000n);
  assert.equal(r.cstring(4096, 100, "cmdline"), "console=ttyS0 root=/dev/vda");
  const rd = BigInt(r.u32(0x218, "ramdisk_image")) | (BigInt(r.u32(0xc0, "ext_ramdisk_image")) << 32n);
  assert.equal(rd, 0x1_8000_0000n);
  assert.equal(r.u32(0x21c, "ramdisk_size"), 0x123456);
  assert.equal(r.u64(0x70, "acpi_rsdp_addr"), 0xf5a40n);
  assert.equal(r.u8(0x1e8, "e820_entries"), 2);
  assert.equal(r.u64(0x2d0 + 20, "e820[1].addr"), 0x100000n);
  assert.equal(r.u32(0x2d0 + 20 + 16, "e820[1].type"), 1);
  // The boot sector bytes before 0x1f1 are not copied: they are not boot_params fields.
  assert.equal(r.u8(0x1ef, "sentinel"), 0);
});

test("a non-ASCII command line is written as UTF-8, the bytes kexec_file_load is given and the checks count", () => {
  const zp = build([{ addr: 0x100000n, size: 0xbfee0000n, type: 1 }], { cmdline: "console=ttyS0 é日" });
  // It was the low byte of each UTF-16 unit: "é" became 0xe9 and "日" 0xe5.
  assert.deepEqual([...zp.bytes.subarray(4096 + 14, 4096 + 20)], [0xc3, 0xa9, 0xe6, 0x97, 0xa5, 0x00]);
});

test("e820 beyond 128 entries goes to SETUP_E820_EXT, chained with the RNG seed", () => {
  const e820: E820[] = Array.from({ length: 130 }, (_, i) => ({ addr: BigInt(i) * 0x200000n, size: 0x100000n, type: 1 + (i % 2) }));
  const zp = build(e820);
  const r = new ByteReader(zp.bytes, "zero page");
  assert.equal(r.u8(0x1e8, "e820_entries"), 128);
  assert.equal(zp.e820InSetupData, 2);
  assert.deepEqual(zp.setupData.map((s) => s.type), [SETUP_E820_EXT, SETUP_RNG_SEED]);
  // Walk the chain through the header's setup_data pointer as the kernel would.
  let next = r.u64(0x250, "setup_data");
  const seen: number[] = [];
  while (next !== 0n) {
    const at = Number(next - 0x1_2345_6000n);
    seen.push(r.u32(at + 8, "type"));
    if (seen.length === 1) {
      assert.equal(r.u32(at + 12, "len"), 40);
      assert.equal(r.u64(at + 16, "first ext addr"), 128n * 0x200000n);
    }
    next = r.u64(at, "next");
  }
  assert.deepEqual(seen, [SETUP_E820_EXT, SETUP_RNG_SEED]);
});

test("no initrd leaves ramdisk fields zero", () => {
  const zp = build([], { initrd: undefined, rngSeed: undefined });
  const r = new ByteReader(zp.bytes, "zero page");
  assert.equal(r.u32(0x218, "ramdisk_image"), 0);
  assert.equal(r.u32(0xc0, "ext_ramdisk_image"), 0);
  assert.equal(r.u64(0x250, "setup_data"), 0n);
});

test("an EFI boot's RSDP comes from /sys/firmware/efi/systab when boot_params has none", async () => {
  const { parseEfiSystabRsdp } = await import("../machine/build.js");
  assert.equal(parseEfiSystabRsdp("SMBIOS3=0x7f1b8000\nACPI=0x7f77e000\nACPI20=0x7f77e014\n"), 0x7f77e014n);
  assert.equal(parseEfiSystabRsdp("ACPI=0xf5a40\n"), 0xf5a40n);
  assert.equal(parseEfiSystabRsdp("SMBIOS=0xf0000\n"), null);
});

test("zeroPageSize says beforehand how many bytes the zero page will take, however many e820 entries there are", () => {
  for (const count of [1, 127, 128, 129, 300, 4096]) {
    const e820 = Array.from({ length: count }, (_, i) => ({ addr: BigInt(i) * 0x200000n, size: 0x100000n, type: 1 }));
    for (const seed of [true, false]) {
      const zp = build(e820, seed ? {} : { rngSeed: undefined });
      assert.ok(zp.bytes.length <= zeroPageSize("console=ttyS0 root=/dev/vda".length, count, seed), `${count} entries, seed ${seed}: ${zp.bytes.length} bytes`);
    }
  }
  // 4096 entries do not fit the 3 pages a plan once gave boot_params (seen planning a large machine in bench/web).
  assert.ok(zeroPageSize(30, 4096, true) > 3 * 4096);
});
