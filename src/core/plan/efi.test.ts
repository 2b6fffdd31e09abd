import { test } from "node:test";
import assert from "node:assert/strict";
import { asciiBytes } from "../bytes/reader.js";
import { runChecks } from "../check/index.js";
import { readKernelImage } from "../image/index.js";
import { buildBzImage } from "../image/testing/synthetic.js";
import { buildMachine } from "../machine/build.js";
import type { Machine } from "../machine/model.js";
import { SETUP_EFI } from "../image/boot-params.js";
import { planLoad } from "./plan.js";
import { sha256 } from "./purgatory.js";

const MiB = 0x100000n;
// OVMF's, as a 6.1 guest under QEMU publishes them.
const SYSTAB = 0x7f9ee018n;
const REGIONS = [
  { type: 5, phys: 0x7f8e0000n, virt: 0xfffffffeffc00000n, pages: 0x20n, attr: 0x800000000000000fn },
  { type: 6, phys: 0x7f900000n, virt: 0xfffffffeffa00000n, pages: 0x80n, attr: 0x800000000000000fn },
  { type: 11, phys: 0xffc00000n, virt: 0xfffffffeff600000n, pages: 0x400n, attr: 0x8000000000000001n },
];

/** A zero page with the EFI stub's efi_info, as /sys/kernel/boot_params/data shows it. */
function bootParams(): Uint8Array {
  const b = new Uint8Array(4096);
  const v = new DataView(b.buffer);
  v.setUint32(0x1c0, 0x34364c45, true); // "EL64"
  v.setUint32(0x1c4, Number(SYSTAB & 0xffffffffn), true);
  v.setUint32(0x1c8, 48, true);
  v.setUint32(0x1cc, 1, true);
  v.setUint32(0x1d0, 0x7e000000, true);
  v.setUint32(0x1d4, 48 * 90, true);
  v.setUint32(0x202, 0x53726448, true);
  v.setUint16(0x206, 0x20f, true);
  return b;
}

function efiMachine(options: { runtimeMap: boolean }): Machine {
  const files: Record<string, Uint8Array> = {
    "proc/iomem": asciiBytes("00100000-7fffffff : System RAM\n"),
    "proc/version": asciiBytes("Linux version 6.1.0-57-amd64 (debian) #1 SMP\n"),
    "proc/sys/kernel/arch": asciiBytes("x86_64\n"),
    "proc/cpuinfo": asciiBytes("processor\t: 0\nflags\t\t: fpu pae lm\n\n"),
    "proc/cmdline": asciiBytes("console=ttyS0\n"),
    "sys/kernel/kexec_loaded": asciiBytes("0\n"),
    "sys/kernel/boot_params/data": bootParams(),
    "sys/firmware/efi/fw_platform_size": asciiBytes("64\n"),
    "sys/firmware/efi/systab": asciiBytes("ACPI20=0x7fb7e014\nACPI=0x7fb7e000\nSMBIOS=0x7f9c9000\nSMBIOS3=0x7f9c7000\n"),
    "sys/firmware/efi/fw_vendor": asciiBytes("0x7f9ed018\n"),
    "sys/firmware/efi/runtime": asciiBytes("0x7f9eda98\n"),
    "sys/firmware/efi/config_table": asciiBytes("0x7f9ec098\n"),
  };
  const dirs = ["sys/firmware/efi"];
  if (options.runtimeMap) {
    dirs.push("sys/firmware/efi/runtime-map");
    REGIONS.forEach((r, i) => {
      const at = `sys/firmware/efi/runtime-map/${i}`;
      files[`${at}/type`] = asciiBytes(`0x${r.type.toString(16)}\n`);
      files[`${at}/phys_addr`] = asciiBytes(`0x${r.phys.toString(16)}\n`);
      files[`${at}/virt_addr`] = asciiBytes(`0x${r.virt.toString(16)}\n`);
      files[`${at}/num_pages`] = asciiBytes(`0x${r.pages.toString(16)}\n`);
      files[`${at}/attribute`] = asciiBytes(`0x${r.attr.toString(16)}\n`);
    });
  }
  return buildMachine({ files, dirs });
}

// XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G | XLF_EFI_HANDOVER_32/64 | XLF_EFI_KEXEC, as Debian's amd64 kernels set.
const efiKexecImage = () => readKernelImage(buildBzImage({ fields: { init_size: 32n * MiB, xloadflags: 0x1f }, tail: 0x2000 }));

test("the machine model reads the EFI runtime map and the tables kexec_load hands on", () => {
  const m = efiMachine({ runtimeMap: true });
  assert.equal(m.efi.runtimeMap?.length, 3);
  assert.deepEqual(m.efi.runtimeMap?.[2], { type: 11, physAddr: 0xffc00000n, virtAddr: 0xfffffffeff600000n, numPages: 0x400n, attribute: 0x8000000000000001n });
  assert.equal(m.efi.fwVendor, 0x7f9ed018n);
  assert.equal(m.efi.configTable, 0x7f9ec098n);
  assert.equal(m.efi.smbios, 0x7f9c9000n);
  assert.equal(efiMachine({ runtimeMap: false }).efi.runtimeMap, null);
  assert.ok(efiMachine({ runtimeMap: false }).facts.some((f) => f.path === "/sys/firmware/efi/runtime-map"));
});

test("kexec_load on EFI hands efi_info, the runtime map and SETUP_EFI to the new kernel", () => {
  const machine = efiMachine({ runtimeMap: true });
  const plan = planLoad(efiKexecImage(), machine, { syscall: "kexec_load", crash: false, cmdline: "console=ttyS0", userArch: "x86_64", initrdSize: undefined }, { initrd: undefined, sha256 });
  const seg = plan.segments.find((s) => s.kind === "bootparams")!;
  const v = new DataView(seg.buf.buffer, seg.buf.byteOffset, seg.buf.byteLength);
  assert.equal(v.getUint32(0x1c0, true), 0x34364c45, "efi_loader_signature EL64");
  assert.equal(BigInt(v.getUint32(0x1c4, true)) | (BigInt(v.getUint32(0x1d8, true)) << 32n), SYSTAB, "efi_systab");
  assert.equal(v.getUint32(0x1c8, true), 40, "efi_memdesc_size: the records written are efi_memory_desc_t");
  assert.equal(v.getUint32(0x1cc, true), 1, "efi_memdesc_version");
  const memmap = BigInt(v.getUint32(0x1d0, true)) | (BigInt(v.getUint32(0x1dc, true)) << 32n);
  const memmapSize = v.getUint32(0x1d4, true);
  assert.equal(memmapSize, 3 * 40);
  // The map lies inside the boot-parameters segment, where efi_info says.
  const at = Number(memmap - seg.mem);
  assert.ok(at >= 4096 && at + memmapSize <= seg.buf.length, `memmap at +${at}`);
  REGIONS.forEach((r, i) => {
    assert.equal(v.getUint32(at + i * 40, true), r.type);
    assert.equal(v.getBigUint64(at + i * 40 + 8, true), r.phys);
    assert.equal(v.getBigUint64(at + i * 40 + 16, true), r.virt);
    assert.equal(v.getBigUint64(at + i * 40 + 24, true), r.pages);
    assert.equal(v.getBigUint64(at + i * 40 + 32, true), r.attr);
  });
  // Walk the setup_data chain from the header and find SETUP_EFI.
  let next = v.getBigUint64(0x250, true);
  const types: number[] = [];
  let efi: DataView | undefined;
  while (next !== 0n) {
    const off = Number(next - seg.mem);
    const type = v.getUint32(off + 8, true);
    types.push(type);
    if (type === SETUP_EFI) {
      // struct efi_setup_data: fw_vendor, runtime, tables, smbios, reserved[8] — 12 u64.
      assert.equal(v.getUint32(off + 12, true), 96);
      efi = new DataView(seg.buf.buffer, seg.buf.byteOffset + off + 16, 96);
    }
    next = v.getBigUint64(off, true);
  }
  assert.ok(efi !== undefined, `setup_data types ${types.join(",")}`);
  assert.equal(efi.getBigUint64(0, true), 0x7f9ed018n, "fw_vendor");
  assert.equal(efi.getBigUint64(16, true), 0x7f9ec098n, "tables");
  assert.equal(efi.getBigUint64(24, true), 0x7f9c9000n, "smbios");
});

test("without a runtime map, kexec_load passes no efi_info and check warns what the new kernel lacks", () => {
  const machine = efiMachine({ runtimeMap: false });
  const image = efiKexecImage();
  const plan = planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "console=ttyS0", userArch: "x86_64", initrdSize: undefined }, { initrd: undefined, sha256 });
  const seg = plan.segments.find((s) => s.kind === "bootparams")!;
  assert.equal(new DataView(seg.buf.buffer, seg.buf.byteOffset).getUint32(0x1c0, true), 0, "no efi_loader_signature");
  const rule = runChecks({ image, machine, request: { crash: false, syscall: "kexec_load", cmdline: "", userArch: "x86_64" } }).find((r) => r.id === "efi-runtime")!;
  assert.equal(rule.verdict, "warn");
  assert.match(rule.reason, /runtime-map/);
  assert.match(rule.reason, /efivars/);
  assert.match(rule.reason, /efibootmgr/);
  const withMap = runChecks({ image, machine: efiMachine({ runtimeMap: true }), request: { crash: false, syscall: "kexec_load", cmdline: "", userArch: "x86_64" } }).find((r) => r.id === "efi-runtime")!;
  assert.equal(withMap.verdict, "ok", withMap.reason);
});

test("an image without XLF_EFI_KEXEC cannot take EFI over: no efi_info, and a warning", () => {
  const image = readKernelImage(buildBzImage({ fields: { init_size: 32n * MiB, xloadflags: 0x03 }, tail: 0x2000 }));
  const machine = efiMachine({ runtimeMap: true });
  const plan = planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "", userArch: "x86_64", initrdSize: undefined }, { initrd: undefined, sha256 });
  const seg = plan.segments.find((s) => s.kind === "bootparams")!;
  assert.equal(new DataView(seg.buf.buffer, seg.buf.byteOffset).getUint32(0x1c0, true), 0);
  const rule = runChecks({ image, machine, request: { crash: false, syscall: "kexec_load", cmdline: "", userArch: "x86_64" } }).find((r) => r.id === "efi-runtime")!;
  assert.equal(rule.verdict, "warn");
  assert.match(rule.reason, /XLF_EFI_KEXEC/);
});
