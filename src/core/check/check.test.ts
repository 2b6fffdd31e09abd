/**
 * The rules as a table: machine (built from the text the kernel prints) +
 * image (the synthetic builder) + request → the verdict each named rule must
 * give. A last test proves the table exercises every rule both ways.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { asciiBytes } from "../bytes/reader.js";
import { readKernelImage, type KernelImage } from "../image/index.js";
import { buildBzImage, type SyntheticOptions } from "../image/testing/synthetic.js";
import { buildMachine } from "../machine/build.js";
import { SECURE_BOOT_VARIABLE } from "../machine/files.js";
import type { Machine } from "../machine/model.js";
import { RULES, checksJson, renderChecks, runChecks, summarize, syscallsTried, type Request, type CheckResult, type Verdict } from "./index.js";

const MiB = 0x100000n;
const GiB = 0x40000000n;
const hex = (v: bigint) => v.toString(16).padStart(8, "0");

interface MachineSpec {
  arch?: "x86_64" | "i386";
  /** The running kernel's release in /proc/version (default 6.1.0-50-amd64 / -686-pae); null: no /proc/version. */
  release?: string | null;
  la57?: boolean;
  /** "address sizes" virtual bits (57 on an LA57 CPU even with no5lvl). */
  virtualBits?: number;
  noLongMode?: boolean;
  /** System RAM ranges; default: 1 MiB-3 GiB and 4-5 GiB (a QEMU -m 4G guest). */
  ram?: { start: bigint; size: bigint }[];
  crash?: { start: bigint; size: bigint }[];
  kernelCode?: { start: bigint; size: bigint };
  cmdline?: string;
  lockdown?: "none" | "integrity" | "confidentiality";
  loadDisabled?: boolean;
  limitReboot?: number;
  loaded?: boolean;
  crashLoaded?: boolean;
  /** false: sysfs without /sys/kernel/kexec_loaded (no CONFIG_KEXEC_CORE). */
  kexec?: boolean;
  secureBoot?: boolean;
  /** Booted through OVMF: the EFI stub's efi_info, the tables, and (unless false) the runtime map. */
  efi?: { runtimeMap: boolean };
}

const QEMU_4G = [
  { start: MiB, size: 3n * GiB - MiB },
  { start: 4n * GiB, size: GiB },
];

/** A machine from text, as the kernel would print it (iomem ends are inclusive). */
function machine(spec: MachineSpec = {}): Machine {
  const arch = spec.arch ?? "x86_64";
  const ram = (spec.ram ?? QEMU_4G).slice().sort((a, b) => (a.start < b.start ? -1 : 1));
  const lines: string[] = [];
  for (const r of ram) {
    lines.push(`${hex(r.start)}-${hex(r.start + r.size - 1n)} : System RAM`);
    const children = [
      ...(spec.kernelCode ? [{ ...spec.kernelCode, name: "Kernel code" }] : []),
      ...(spec.crash ?? []).map((c) => ({ ...c, name: "Crash kernel" })),
    ].filter((c) => c.start >= r.start && c.start + c.size <= r.start + r.size);
    for (const c of children) lines.push(`  ${hex(c.start)}-${hex(c.start + c.size - 1n)} : ${c.name}`);
  }
  const flags = ["fpu", "pae", ...(spec.noLongMode ? [] : ["lm"]), ...(spec.la57 ? ["la57"] : [])].join(" ");
  const files: Record<string, Uint8Array> = {
    "proc/iomem": asciiBytes(`${lines.join("\n")}\n`),
    ...(spec.release === null ? {} : { "proc/version": asciiBytes(`Linux version ${spec.release ?? (arch === "x86_64" ? "6.1.0-50-amd64" : "6.1.0-50-686-pae")} (debian) #1 SMP\n`) }),
    "proc/sys/kernel/arch": asciiBytes(arch === "x86_64" ? "x86_64\n" : "i686\n"),
    "proc/cpuinfo": asciiBytes(`processor\t: 0\nflags\t\t: ${flags}\naddress sizes\t: 46 bits physical, ${spec.virtualBits ?? (spec.la57 ? 57 : 48)} bits virtual\n\n`),
    "proc/cmdline": asciiBytes(`${spec.cmdline ?? "console=ttyS0"}\n`),
    "proc/sys/kernel/kexec_load_disabled": asciiBytes(spec.loadDisabled ? "1\n" : "0\n"),
    "sys/kernel/security/lockdown": asciiBytes(spec.lockdown === "integrity" ? "none [integrity] confidentiality\n" : spec.lockdown === "confidentiality" ? "none integrity [confidentiality]\n" : "[none] integrity confidentiality\n"),
  };
  if (spec.kexec !== false) {
    files["sys/kernel/kexec_loaded"] = asciiBytes(spec.loaded ? "1\n" : "0\n");
    files["sys/kernel/kexec_crash_loaded"] = asciiBytes(spec.crashLoaded ? "1\n" : "0\n");
  }
  if (spec.limitReboot !== undefined) files["proc/sys/kernel/kexec_load_limit_reboot"] = asciiBytes(`${spec.limitReboot}\n`);
  const dirs: string[] = [];
  if (spec.secureBoot !== undefined) {
    files[SECURE_BOOT_VARIABLE] = new Uint8Array([6, 0, 0, 0, spec.secureBoot ? 1 : 0]);
    dirs.push("sys/firmware/efi");
  }
  if (spec.efi !== undefined) {
    const bootParams = new Uint8Array(4096);
    const v = new DataView(bootParams.buffer);
    v.setUint32(0x1c0, 0x34364c45, true); // "EL64"
    v.setUint32(0x1c4, 0x7f9ee018, true);
    v.setUint32(0x1c8, 48, true);
    v.setUint32(0x1cc, 1, true);
    v.setUint32(0x1d4, 48 * 80, true);
    files["sys/kernel/boot_params/data"] = bootParams;
    files["sys/firmware/efi/fw_vendor"] = asciiBytes("0x7f9ed018\n");
    files["sys/firmware/efi/runtime"] = asciiBytes("0x7f9eda98\n");
    files["sys/firmware/efi/config_table"] = asciiBytes("0x7f9ec098\n");
    if (!dirs.includes("sys/firmware/efi")) dirs.push("sys/firmware/efi");
    if (spec.efi.runtimeMap) {
      dirs.push("sys/firmware/efi/runtime-map");
      for (const [f, text] of [["type", "0x5"], ["phys_addr", "0x7f8e0000"], ["virt_addr", "0xfffffffeffc00000"], ["num_pages", "0x20"], ["attribute", "0x800000000000000f"]]) {
        files[`sys/firmware/efi/runtime-map/0/${f}`] = asciiBytes(`${text}\n`);
      }
    }
  }
  return buildMachine({ files, dirs });
}

/** Synthetic images: the builder's default is a modern relocatable x86_64 bzImage (xloadflags 0x7f). */
function image(options: SyntheticOptions = {}): KernelImage {
  return readKernelImage(buildBzImage({ tail: 0x2000, ...options }));
}

const modern = image();
const no5level = image({ fields: { xloadflags: 0x03 } });
const no5levelOld = image({ fields: { xloadflags: 0x03 }, version: "4.19.0-old (builder@test) #1 SMP" });
const no5levelEnabled = image({ fields: { xloadflags: 0x23 } });
const i386Image = image({ fields: { xloadflags: 0x00, initrd_addr_max: 0x37ffffff, init_size: 0x1800000 } });
const oldProtocol = image({ protocol: 0x20a, fields: { relocatable_kernel: 1 } });
const zImage = image({ fields: { loadflags: 0 } });
const below4G = image({ fields: { xloadflags: 0x01 } });
const fixedAt16M = image({ fields: { relocatable_kernel: 0, xloadflags: 0x01, pref_address: 0x1000000 } });
const shortCmdline = image({ fields: { cmdline_size: 60 } });
const lowInitrdMax = image({ fields: { xloadflags: 0x01, initrd_addr_max: 0x1fffffff } });
const signed = image({ pe: { signed: true } });
const unsigned = image({ pe: { signed: false } });

const req = (over: Partial<Request> = {}): Request => ({ crash: false, syscall: "auto", cmdline: "console=ttyS0", userArch: "x86_64", ...over });

interface Case {
  name: string;
  machine: Machine;
  image: KernelImage;
  request?: Partial<Request>;
  isRoot?: boolean;
  expect: Record<string, Verdict>;
  /** Text the named rule's reason must contain. */
  says?: Record<string, string>;
}

const crash1968 = [{ start: 1968n * MiB, size: 256n * MiB }];

const CASES: Case[] = [
  // Paging.
  { name: "5-level running kernel, image without XLF_5LEVEL, kexec_file_load", machine: machine({ la57: true }), image: no5level, request: { syscall: "kexec_file_load" },
    expect: { "paging-5level": "fail", "kexec-file-probe": "ok" }, says: { "paging-5level": "bzImage cannot handle 5-level paging mode." } },
  { name: "5-level running kernel, old image without XLF_5LEVEL, kexec_load", machine: machine({ la57: true }), image: no5levelOld, request: { syscall: "kexec_load" },
    expect: { "paging-5level": "fail" }, says: { "paging-5level": "#GP" } },
  { name: "5-level, XLF_5LEVEL missing, -a: refused by the file loader, falls back, still fails", machine: machine({ la57: true }), image: no5levelOld,
    expect: { "paging-5level": "fail" }, says: { "paging-5level": "falls back to kexec_load" } },
  { name: "5-level, modern version string but edited header, kexec_load: warn", machine: machine({ la57: true }), image: no5level, request: { syscall: "kexec_load" },
    expect: { "paging-5level": "warn" } },
  { name: "5-level, XLF_5LEVEL missing, kexec_load through the 32-bit entry", machine: machine({ la57: true }), image: no5levelOld, request: { syscall: "kexec_load", entry32: true },
    expect: { "paging-5level": "ok", "entry-mode": "ok", "placement-hole": "ok" } },
  { name: "no5lvl running kernel (4-level), image without XLF_5LEVEL", machine: machine({ la57: false, virtualBits: 57 }), image: no5level, request: { syscall: "kexec_file_load" },
    expect: { "paging-5level": "ok", "kexec-file-probe": "ok", "placement-hole": "ok" } },
  { name: "5-level running kernel, modern image", machine: machine({ la57: true }), image: modern, request: { syscall: "kexec_file_load" },
    expect: { "paging-5level": "ok", "paging-physmem-limit": "ok" } },
  { name: "4-level-only image placed above 64 TiB by a 5-level kernel", machine: machine({ la57: true, ram: [{ start: MiB, size: GiB }, { start: 1n << 46n, size: 4n * GiB }] }), image: no5levelEnabled, request: { syscall: "kexec_load" },
    expect: { "paging-physmem-limit": "fail", "paging-5level": "ok" }, says: { "paging-physmem-limit": "64 TiB" } },
  { name: "4-level-only image kept below 64 TiB with --mem-max", machine: machine({ la57: true, ram: [{ start: MiB, size: GiB }, { start: 1n << 46n, size: 4n * GiB }] }), image: no5levelEnabled, request: { syscall: "kexec_load", memMax: (1n << 46n) - 1n },
    expect: { "paging-physmem-limit": "ok", "placement-hole": "ok" } },

  // Arch, entry, syscalls.
  { name: "i386 kernel asked for kexec_file_load", machine: machine({ arch: "i386" }), image: i386Image, request: { syscall: "kexec_file_load", userArch: "i386" },
    expect: { "kexec-file-available": "fail", "user-arch": "ok" } },
  { name: "i386 kernel, -a goes to kexec_load", machine: machine({ arch: "i386" }), image: i386Image, request: { userArch: "i386" },
    expect: { "kexec-file-available": "ok", "entry-mode": "ok", "placement-hole": "ok", "image-arch": "ok" } },
  { name: "seed 002: i386 user space on x86_64 kernel, -s", machine: machine(), image: modern, request: { syscall: "kexec_file_load", userArch: "i386" },
    expect: { "kexec-file-available": "fail" } },
  { name: "seed 002: i386 user space on x86_64 kernel, kexec_load keeps segments below 4 GiB", machine: machine(), image: modern, request: { userArch: "i386" },
    expect: { "user-arch": "ok", "kexec-file-available": "ok", "placement-hole": "ok" } },
  { name: "x86_64 user space claimed on an i386 kernel", machine: machine({ arch: "i386" }), image: i386Image, request: { syscall: "kexec_load" },
    expect: { "user-arch": "fail" } },
  { name: "64-bit image from an i386 kernel on a CPU without long mode", machine: machine({ arch: "i386", noLongMode: true }), image: modern, request: { userArch: "i386" },
    expect: { "image-arch": "fail" } },
  { name: "64-bit image from an i386 kernel on a CPU with long mode", machine: machine({ arch: "i386" }), image: modern, request: { userArch: "i386" },
    expect: { "image-arch": "ok", "entry-mode": "ok" } },
  { name: "32-bit image with kexec_file_load: the kernel's probe refuses it", machine: machine(), image: i386Image, request: { syscall: "kexec_file_load" },
    expect: { "kexec-file-probe": "fail", "entry-mode": "fail" }, says: { "kexec-file-probe": "Not a bzImage64. XLF_KERNEL_64 is not set." } },
  { name: "32-bit image with -a: probe warns, kexec_load enters it at 32 bits", machine: machine(), image: i386Image,
    expect: { "kexec-file-probe": "warn", "entry-mode": "ok", "placement-hole": "ok" } },
  { name: "--entry-32bit with kexec_file_load is ignored", machine: machine(), image: modern, request: { syscall: "kexec_file_load", entry32: true },
    expect: { "entry-mode": "warn" } },
  { name: "image without XLF_CAN_BE_LOADED_ABOVE_4G, kexec_file_load", machine: machine(), image: below4G, request: { syscall: "kexec_file_load" },
    expect: { "kexec-file-probe": "fail" }, says: { "kexec-file-probe": "XLF_CAN_BE_LOADED_ABOVE_4G is not set." } },

  // kexec_file_load reads the image and the initrd itself, up to KEXEC_FILE_SIZE_MAX (INT_MAX before 6.0).
  { name: "a 5 GiB initrd with -s on 6.1: more than KEXEC_FILE_SIZE_MAX, EFBIG", machine: machine(), image: modern, request: { syscall: "kexec_file_load", initrdSize: 5 * 2 ** 30 },
    expect: { "kexec-file-size": "fail" }, says: { "kexec-file-size": "the initrd is 5 GiB (0x140000000 bytes), more than the 4 GiB (0x100000000 bytes) kexec_file_load reads" } },
  { name: "a 3 GiB initrd with -a on 5.10: more than INT_MAX, EFBIG unless the 6.0 change was backported, and -a does not fall back", machine: machine({ release: "5.10.0-28-amd64" }), image: modern, request: { initrdSize: 3 * 2 ** 30 },
    expect: { "kexec-file-size": "warn" }, says: { "kexec-file-size": "more than the 2 GiB - 1 byte (INT_MAX) kexec_file_load reads before Linux 6.0 (the running kernel is 5.10.0-28-amd64): the kernel refuses it with EFBIG; -a does not fall back to kexec_load after EFBIG (nor does kexec-tools: it falls back only after ENOSYS, EINVAL, ENOEXEC or ENOTSUP), unless its distribution carries the 6.0 change \"kexec_file: increase maximum file size to 4G\"" } },
  { name: "a 5 GiB initrd with -s on 5.14: past 4 GiB, no kernel reads it", machine: machine({ release: "5.14.0-362.el9.x86_64" }), image: modern, request: { syscall: "kexec_file_load", initrdSize: 5 * 2 ** 30 },
    expect: { "kexec-file-size": "fail" }, says: { "kexec-file-size": "the initrd is 5 GiB (0x140000000 bytes), more than the 2 GiB - 1 byte (INT_MAX) kexec_file_load reads" } },
  { name: "the same 3 GiB initrd with -c: kexec_file_load is not used", machine: machine({ release: "5.10.0-28-amd64" }), image: modern, request: { syscall: "kexec_load", initrdSize: 3 * 2 ** 30 },
    expect: { "kexec-file-size": "ok" } },
  { name: "a 3 GiB initrd with -s, the running kernel's version unknown: warn at INT_MAX", machine: machine({ release: null }), image: modern, request: { syscall: "kexec_file_load", initrdSize: 3 * 2 ** 30 },
    expect: { "kexec-file-size": "warn" }, says: { "kexec-file-size": "the running kernel's version is unknown" } },
  { name: "a 3 GiB initrd with -s on 6.1: read, then the SHA-256 overflow of 6.0 to 6.15", machine: machine(), image: modern, request: { syscall: "kexec_file_load", initrdSize: 3 * 2 ** 30 },
    expect: { "kexec-file-size": "warn" }, says: { "kexec-file-size": "crypto: sha256 - fix crash at kexec" } },
  { name: "an initrd of exactly 4 GiB with -s on 6.16: read", machine: machine({ release: "6.16.3-amd64" }), image: modern, request: { syscall: "kexec_file_load", initrdSize: 4 * 2 ** 30 },
    expect: { "kexec-file-size": "ok" } },
  { name: "a 2 GiB - 1 byte initrd with -s on 5.10: read", machine: machine({ release: "5.10.0-28-amd64" }), image: modern, request: { syscall: "kexec_file_load", initrdSize: 2 ** 31 - 1 },
    expect: { "kexec-file-size": "ok" } },
  { name: "a 3 GiB initrd with -a, and an image the file loader refuses first: -a falls back before the initrd is read", machine: machine({ release: "5.10.0-28-amd64" }), image: i386Image, request: { initrdSize: 3 * 2 ** 30 },
    expect: { "kexec-file-size": "ok", "kexec-file-probe": "warn" } },

  // --mem-min/--mem-max bound kexec-ts' placement; kexec_file_load is handed no addresses.
  { name: "--mem-max with -s: no effect, said", machine: machine(), image: modern, request: { syscall: "kexec_file_load", memMax: 0xffffffffn },
    expect: { "mem-bounds": "warn", "placement-hole": "ok" }, says: { "mem-bounds": "--mem-max=0xffffffff has no effect: kexec_file_load is handed no addresses" } },
  { name: "--mem-min and --mem-max with -a, which loads with kexec_file_load: no effect, said", machine: machine(), image: modern, request: { memMin: 0x10000000n, memMax: 0xffffffffn },
    expect: { "mem-bounds": "warn" }, says: { "mem-bounds": "--mem-min=0x10000000 and --mem-max=0xffffffff have no effect: -a loads with kexec_file_load here" } },
  { name: "--mem-max with -c bounds kexec-ts' placement", machine: machine(), image: modern, request: { syscall: "kexec_load", memMax: 0xffffffffn },
    expect: { "mem-bounds": "ok", "placement-hole": "ok" } },
  { name: "--mem-max with -a falling back to kexec_load bounds its placement", machine: machine(), image: i386Image, request: { memMax: 0x3fffffffn },
    expect: { "mem-bounds": "ok", "kexec-file-probe": "warn" }, says: { "mem-bounds": "which -a falls back to" } },
  { name: "no --mem-min or --mem-max with -s", machine: machine(), image: modern, request: { syscall: "kexec_file_load" },
    expect: { "mem-bounds": "ok" }, says: { "mem-bounds": "no --mem-min or --mem-max" } },

  // Placement.
  { name: "protocol 2.10 with kexec_file_load", machine: machine(), image: oldProtocol, request: { syscall: "kexec_file_load" },
    expect: { "protocol-version": "fail", "kexec-file-probe": "fail" }, says: { "kexec-file-probe": "Must be at least protocol version 2.12" } },
  { name: "protocol 2.10 with kexec_load", machine: machine(), image: oldProtocol, request: { syscall: "kexec_load" },
    expect: { "protocol-version": "ok" } },
  { name: "a zImage", machine: machine(), image: zImage, request: { syscall: "kexec_load" }, expect: { "protocol-version": "fail" } },
  { name: "not relocatable, its fixed address is RAM", machine: machine(), image: fixedAt16M, request: { syscall: "kexec_load" },
    expect: { relocatable: "ok", "placement-hole": "ok" } },
  { name: "not relocatable, crash region elsewhere", machine: machine({ crash: crash1968, cmdline: "crashkernel=256M@1968M" }), image: fixedAt16M, request: { syscall: "kexec_load", crash: true },
    expect: { relocatable: "fail" } },
  { name: "not relocatable, fixed address not RAM", machine: machine({ ram: [{ start: 64n * MiB, size: GiB }] }), image: fixedAt16M, request: { syscall: "kexec_load" },
    expect: { relocatable: "fail", "placement-hole": "fail" } },
  { name: "below-4G image, RAM only above 4 GiB", machine: machine({ ram: [{ start: 4n * GiB, size: 2n * GiB }] }), image: below4G, request: { syscall: "kexec_load" },
    expect: { "above-4g": "fail", "placement-hole": "fail" } },
  { name: "below-4G image, RAM below 4 GiB", machine: machine(), image: below4G, request: { syscall: "kexec_load" }, expect: { "above-4g": "ok", "placement-hole": "ok" } },
  { name: "initrd larger than room below initrd_addr_max", machine: machine(), image: lowInitrdMax, request: { syscall: "kexec_load", initrdSize: 600 * 0x100000 },
    expect: { "initrd-addr-max": "fail", "placement-hole": "fail" } },
  { name: "initrd below initrd_addr_max", machine: machine(), image: lowInitrdMax, request: { syscall: "kexec_load", initrdSize: 32 * 0x100000 },
    expect: { "initrd-addr-max": "ok", "placement-hole": "ok" } },
  { name: "command line fits kexec_load but not kexec_file_load's +30", machine: machine(), image: shortCmdline, request: { syscall: "kexec_file_load", cmdline: "x".repeat(40) },
    expect: { "cmdline-size": "fail" }, says: { "cmdline-size": "Appending elfcorehdr=<addr> to command line exceeds maximum allowed length" } },
  { name: "same command line with -a falls back to kexec_load", machine: machine(), image: shortCmdline, request: { cmdline: "x".repeat(40) },
    expect: { "cmdline-size": "warn", "placement-hole": "ok" } },
  { name: "command line too long for kexec_load", machine: machine(), image: shortCmdline, request: { syscall: "kexec_load", cmdline: "x".repeat(61) },
    expect: { "cmdline-size": "fail" } },
  { name: "command line short enough for kexec_file_load", machine: machine(), image: shortCmdline, request: { syscall: "kexec_file_load", cmdline: "x".repeat(29) },
    expect: { "cmdline-size": "ok" } },
  { name: "no hole: RAM too small for init_size", machine: machine({ ram: [{ start: MiB, size: 24n * MiB }] }), image: modern, request: { syscall: "kexec_file_load" },
    expect: { "placement-hole": "fail" }, says: { "placement-hole": "no room for the kernel" } },

  // Crash.
  { name: "crash load without crashkernel=", machine: machine(), image: modern, request: { crash: true, syscall: "kexec_file_load" },
    expect: { "crash-region": "fail", "placement-hole": "ok" }, says: { "crash-region": "crashkernel= is not on /proc/cmdline" } },
  { name: "crashkernel=256M@3264M with RAM below 4G ending at 3G", machine: machine({ cmdline: "console=ttyS0 crashkernel=256M@3264M nokaslr" }), image: modern, request: { crash: true, syscall: "kexec_file_load" },
    expect: { "crash-region": "fail" }, says: { "crash-region": "not all System RAM" } },
  { name: "crashkernel=256M@1000M is not 16 MiB aligned", machine: machine({ cmdline: "crashkernel=256M@1000M" }), image: modern, request: { crash: true, syscall: "kexec_file_load" },
    expect: { "crash-region": "fail" }, says: { "crash-region": "16 MiB" } },
  { name: "crashkernel=@offset over the running kernel", machine: machine({ cmdline: "crashkernel=64M@16M", kernelCode: { start: 16n * MiB, size: 14n * MiB } }), image: modern, request: { crash: true, syscall: "kexec_file_load" },
    expect: { "crash-region": "fail" }, says: { "crash-region": "running kernel" } },
  { name: "crashkernel= larger than RAM", machine: machine({ cmdline: "crashkernel=8G" }), image: modern, request: { crash: true, syscall: "kexec_file_load" },
    expect: { "crash-region": "fail" } },
  { name: "crash region 256M@1968M, kexec_file_load", machine: machine({ la57: true, crash: crash1968, cmdline: "crashkernel=256M@1968M" }), image: modern, request: { crash: true, syscall: "kexec_file_load", initrdSize: 40 * 0x100000 },
    expect: { "crash-region": "ok", "crash-region-size": "ok", "crash-region-reach": "ok", "placement-hole": "ok" } },
  { name: "capture command line without the usual kdump options", machine: machine({ crash: crash1968, cmdline: "crashkernel=256M@1968M" }), image: modern, request: { crash: true, syscall: "kexec_file_load", cmdline: "console=ttyS0" },
    expect: { "crash-cmdline": "warn" }, says: { "crash-cmdline": "irqpoll, nr_cpus=1, reset_devices" } },
  { name: "capture command line with irqpoll maxcpus=1 reset_devices", machine: machine({ crash: crash1968, cmdline: "crashkernel=256M@1968M" }), image: modern, request: { crash: true, syscall: "kexec_file_load", cmdline: "console=ttyS0 irqpoll maxcpus=1 reset_devices" },
    expect: { "crash-cmdline": "ok" } },
  { name: "crash region too small", machine: machine({ crash: [{ start: 1968n * MiB, size: 48n * MiB }], cmdline: "crashkernel=48M@1968M" }), image: modern, request: { crash: true, syscall: "kexec_file_load", initrdSize: 20 * 0x100000 },
    expect: { "crash-region-size": "fail", "placement-hole": "fail" } },
  { name: "crash region that leaves little room to run", machine: machine({ crash: [{ start: 1968n * MiB, size: 96n * MiB }], cmdline: "crashkernel=96M@1968M" }), image: modern, request: { crash: true, syscall: "kexec_file_load" },
    expect: { "crash-region-size": "warn", "placement-hole": "ok" } },
  { name: "32-bit capture kernel into a region above 896M", machine: machine({ crash: crash1968, cmdline: "crashkernel=256M@1968M" }), image: i386Image, request: { crash: true, syscall: "kexec_load" },
    expect: { "crash-region-reach": "fail" } },
  { name: "i386 user space, crash region above 4G", machine: machine({ crash: [{ start: 4n * GiB, size: 256n * MiB }], cmdline: "crashkernel=256M,high" }), image: modern, request: { crash: true, userArch: "i386" },
    expect: { "crash-region-reach": "fail" } },

  // Policy.
  { name: "kexec_load_disabled", machine: machine({ loadDisabled: true }), image: modern, expect: { "kexec-load-disabled": "fail" } },
  { name: "load limit exhausted", machine: machine({ limitReboot: 0 }), image: modern, expect: { "kexec-load-disabled": "fail" } },
  { name: "lockdown refuses kexec_load", machine: machine({ lockdown: "integrity" }), image: signed, request: { syscall: "kexec_load" }, expect: { lockdown: "fail" } },
  { name: "lockdown with an unsigned image and kexec_file_load", machine: machine({ lockdown: "integrity" }), image: unsigned, request: { syscall: "kexec_file_load" },
    expect: { lockdown: "fail" }, says: { lockdown: "carries none" } },
  { name: "lockdown with a signed image and kexec_file_load, EFI boot", machine: machine({ lockdown: "confidentiality", efi: { runtimeMap: true } }), image: signed, request: { syscall: "kexec_file_load" }, expect: { lockdown: "ok" } },
  { name: "lockdown with a signed image and kexec_file_load, BIOS boot: no platform keyring", machine: machine({ lockdown: "integrity" }), image: signed, request: { syscall: "kexec_file_load" },
    expect: { lockdown: "warn" }, says: { lockdown: "no EFI platform keyring" } },
  { name: "lockdown, an unsigned image and -a: no fallback to kexec_load, said", machine: machine({ lockdown: "integrity" }), image: unsigned, request: { syscall: "auto" },
    expect: { lockdown: "fail" }, says: { lockdown: "-a does not fall back to kexec_load, which lockdown refuses outright" } },
  { name: "Secure Boot without lockdown, unsigned image", machine: machine({ secureBoot: true }), image: unsigned, request: { syscall: "kexec_file_load" }, expect: { "secure-boot": "warn" } },
  { name: "Secure Boot off", machine: machine({ secureBoot: false }), image: unsigned, expect: { "secure-boot": "ok", lockdown: "ok" } },
  { name: "not root", machine: machine(), image: modern, isRoot: false, expect: { "not-root": "fail" } },
  { name: "root", machine: machine(), image: modern, isRoot: true, expect: { "not-root": "ok", "kexec-supported": "ok", "already-loaded": "ok", "kexec-load-disabled": "ok" } },
  { name: "already loaded", machine: machine({ loaded: true }), image: modern, expect: { "already-loaded": "warn" } },
  { name: "crash kernel already loaded", machine: machine({ crashLoaded: true, crash: crash1968, cmdline: "crashkernel=256M@1968M" }), image: modern, request: { crash: true }, expect: { "already-loaded": "warn" } },
  { name: "no kexec in the running kernel", machine: machine({ kexec: false }), image: modern, expect: { "kexec-supported": "fail" } },

  // EFI runtime services after the jump.
  { name: "BIOS boot: no EFI to hand on", machine: machine(), image: modern, request: { syscall: "kexec_load" }, expect: { "efi-runtime": "ok" }, says: { "efi-runtime": "not booted through EFI" } },
  { name: "EFI with a runtime map, kexec_load", machine: machine({ efi: { runtimeMap: true } }), image: modern, request: { syscall: "kexec_load" }, expect: { "efi-runtime": "ok" }, says: { "efi-runtime": "keeps EFI runtime services" } },
  { name: "EFI without a runtime map, kexec_load", machine: machine({ efi: { runtimeMap: false } }), image: modern, request: { syscall: "kexec_load" },
    expect: { "efi-runtime": "warn" }, says: { "efi-runtime": "efibootmgr" } },
  { name: "EFI without a runtime map, kexec_file_load", machine: machine({ efi: { runtimeMap: false } }), image: modern, request: { syscall: "kexec_file_load" },
    expect: { "efi-runtime": "warn" }, says: { "efi-runtime": "runtime-map" } },
  { name: "EFI with a runtime map, kexec_file_load", machine: machine({ efi: { runtimeMap: true } }), image: modern, request: { syscall: "kexec_file_load" }, expect: { "efi-runtime": "ok" } },
];

function byId(results: CheckResult[]): Map<string, CheckResult> {
  return new Map(results.map((r) => [r.id, r]));
}

for (const c of CASES) {
  test(`check: ${c.name}`, () => {
    const results = runChecks({ image: c.image, machine: c.machine, request: req(c.request), isRoot: c.isRoot });
    assert.equal(results.length, RULES.length);
    const got = byId(results);
    for (const [id, verdict] of Object.entries(c.expect)) {
      const r = got.get(id);
      assert.ok(r, `no result for ${id}`);
      assert.equal(r.verdict, verdict, `${id}: ${r.reason}`);
      if (verdict !== "ok") assert.ok(r.remedy.length > 0, `${id} is ${verdict} without a remedy`);
    }
    for (const [id, text] of Object.entries(c.says ?? {})) assert.ok(got.get(id)!.reason.includes(text), `${id}: "${got.get(id)!.reason}" should mention ${JSON.stringify(text)}`);
  });
}

test("every rule is seen failing (or warning, for the advisory ones) and passing in the table", () => {
  const seen = new Map<string, Set<Verdict>>();
  for (const c of CASES) for (const [id, v] of Object.entries(c.expect)) (seen.get(id) ?? seen.set(id, new Set()).get(id)!).add(v);
  const ids = runChecks({ image: modern, machine: machine(), request: req() }).map((r) => r.id);
  // These can only warn: a load that replaces another, a Secure Boot policy that may or may not be built in, a kernel that boots without EFI runtime services,
  // --mem-min/--mem-max that kexec_file_load ignores.
  const advisory = new Set(["already-loaded", "secure-boot", "crash-cmdline", "efi-runtime", "mem-bounds"]);
  // Guards on the planner's own output: no input makes them fail unless the plan is wrong, so their
  // failing cases are plans broken on purpose (src/core/pgtable/handover.test.ts).
  const guards = new Set(["handover-page-tables"]);
  for (const id of ids) {
    if (guards.has(id)) continue;
    const v = seen.get(id) ?? new Set();
    assert.ok(v.has("ok"), `${id} has no passing case`);
    assert.ok(v.has("fail") || (advisory.has(id) && v.has("warn")), `${id} has no failing case`);
  }
});

test("ids are unique and kebab-case; every result has a one-line reason", () => {
  const results = runChecks({ image: no5level, machine: machine({ la57: true, lockdown: "integrity" }), request: req({ crash: true }) });
  const ids = results.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const r of results) {
    assert.match(r.id, /^[a-z0-9]+(-[a-z0-9]+)*$/);
    assert.ok(r.reason.length > 0 && !r.reason.includes("\n"), r.id);
  }
});

test("summarize: exit 0 all ok, 1 warnings only, 2 any fail", () => {
  const mk = (verdict: Verdict): CheckResult => ({ id: "x", verdict, reason: "r", evidence: {}, remedy: verdict === "ok" ? "" : "do" });
  assert.equal(summarize([mk("ok"), mk("ok")]).exitCode, 0);
  assert.equal(summarize([mk("ok"), mk("warn")]).exitCode, 1);
  assert.equal(summarize([mk("warn"), mk("fail"), mk("ok")]).exitCode, 2);
  assert.deepEqual(summarize([mk("warn"), mk("fail"), mk("ok")]).counts, { ok: 1, warn: 1, fail: 1 });
});

test("JSON: bigints become hex strings and the shape is {checks: [...]}", () => {
  const results = runChecks({ image: modern, machine: machine({ la57: true, crash: crash1968, cmdline: "crashkernel=256M@1968M" }), request: req({ crash: true, syscall: "kexec_file_load" }) });
  const json = JSON.parse(JSON.stringify(checksJson(results))) as { checks: { id: string; evidence: Record<string, unknown> }[] };
  assert.equal(json.checks.length, results.length);
  const size = json.checks.find((c) => c.id === "crash-region-size")!;
  assert.equal(size.evidence["available"], "0x10000000");
});

test("human output lists only what is not ok, evidence indented, remedy last, then a summary", () => {
  const results = runChecks({ image: no5level, machine: machine({ la57: true, loaded: true }), request: req({ syscall: "kexec_file_load" }) });
  const text = renderChecks(results).split("\n");
  assert.match(text[0]!, /^FAIL paging-5level: /);
  const warnAt = text.findIndex((l) => l.startsWith("WARN already-loaded"));
  assert.ok(warnAt > 0);
  assert.match(text[warnAt - 1]!, /^ {2}remedy: /);
  assert.ok(text.slice(1, warnAt - 1).every((l) => l.startsWith("    ")));
  assert.match(text[text.length - 1]!, /^FAIL: 27 checks, 25 ok, 1 warn, 1 fail/);
});

test("kexec-file-size names the file, and under -a the EFBIG refusal leaves kexec_file_load the only syscall tried", () => {
  const input = { image: modern, machine: machine({ release: "5.10.0-28-amd64" }), request: req({ initrdSize: 3 * 2 ** 30 }), files: { image: "/boot/vmlinuz", initrd: "/boot/initrd.img-big" } };
  assert.deepEqual(syscallsTried(input), ["kexec_file_load"]);
  const r = runChecks(input).find((x) => x.id === "kexec-file-size")!;
  assert.equal(r.verdict, "warn", "a kernel before 6.0 may carry the 4 GiB limit");
  assert.match(r.reason, /^\/boot\/initrd\.img-big: the initrd is 3 GiB \(0xc0000000 bytes\)/);
  assert.match(r.remedy, /kexec_load \(-c\).*or use a smaller initrd \(at most 0x7fffffff bytes/);
  assert.equal(r.evidence["limit"], 0x7fffffffn);
  // Past 4 GiB, -c is no way around it: kexec-ts hands kexec_load the initrd from one buffer.
  const huge = runChecks({ ...input, machine: machine(), request: req({ syscall: "kexec_file_load", initrdSize: 5 * 2 ** 30 }) }).find((x) => x.id === "kexec-file-size")!;
  assert.match(huge.remedy, /^use a smaller initrd .*kexec_load \(-c\) is no way around it/);
});
