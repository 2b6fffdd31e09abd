import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteWriter } from "../bytes/writer.js";
import { KexecError } from "../errors.js";
import { parseBootParams, parseBootParamsVersion } from "./bootparams.js";
import { parseCpuinfo } from "./cpuinfo.js";
import {
  archFromMachine,
  archFromVersionText,
  parseAddress,
  parseAddressBits,
  parseByteCount,
  parseCpuList,
  parseFlag,
  parseInteger,
  parseLockdown,
  parseMeminfo,
  parseProcVersion,
  parseSecureBootVariable,
  parseVmcoreinfo,
} from "./kernelfiles.js";
import { parseFirmwareMemmap } from "./memmap.js";
import { MACHINE_FILES, expandGlob, naturalCompare, naturalSort } from "./files.js";
import fc from "fast-check";

const isParse = (line?: number) => (e: unknown) => e instanceof KexecError && e.code === "parse" && (line === undefined || e.data["line"] === line) && e.hint !== undefined;

test("boot_params: e820, efi_info, secure_boot and setup header fields at their bootparam.h offsets", () => {
  const w = new ByteWriter(4096);
  w.u64(0x070, 0xf5000n); // acpi_rsdp_addr
  w.u32(0x1c0, 0x34364c45); // "EL64"
  w.u32(0x1c4, 0x7e000000);
  w.u32(0x1d8, 0x1); // systab_hi
  w.u32(0x1c8, 48);
  w.u32(0x1cc, 1);
  w.u32(0x1d0, 0x7d000000);
  w.u32(0x1d4, 0x1200);
  w.u8(0x1e8, 2);
  w.u8(0x1ec, 3);
  w.u32(0x202, 0x53726448);
  w.u16(0x206, 0x020f);
  w.u8(0x210, 0xff);
  w.u8(0x211, 0x81);
  w.u32(0x228, 0x20000);
  w.u32(0x0c8, 0x1);
  w.u16(0x236, 0x7f);
  w.u32(0x23c, 0);
  w.u64(0x250, 0x12345000n);
  const E820_TABLE_OFFSET = 0x2d0; // zero-page.rst
  w.u64(E820_TABLE_OFFSET, 0n);
  w.u64(E820_TABLE_OFFSET + 8, 0x9fc00n);
  w.u32(E820_TABLE_OFFSET + 16, 1);
  w.u64(E820_TABLE_OFFSET + 20, 0x100000000n);
  w.u64(E820_TABLE_OFFSET + 28, 0x40000000n);
  w.u32(E820_TABLE_OFFSET + 36, 4);
  const bp = parseBootParams(w.finish());
  assert.equal(bp.version, 0x020f);
  assert.equal(bp.headerMagic, true);
  assert.equal(bp.typeOfLoader, 0xff);
  assert.equal(bp.loadflags, 0x81);
  assert.equal(bp.xloadflags, 0x7f);
  assert.equal(bp.cmdLinePtr, 0x100020000n, "ext_cmd_line_ptr is the high half");
  assert.equal(bp.setupData, 0x12345000n);
  assert.equal(bp.acpiRsdpAddr, 0xf5000n);
  assert.equal(bp.secureBoot, "enabled");
  assert.deepEqual(bp.efi, { loaderSignature: "EL64", systab: 0x17e000000n, memdescSize: 48, memdescVersion: 1, memmap: 0x7d000000n, memmapSize: 0x1200 });
  assert.deepEqual(bp.e820, [
    { start: 0n, size: 0x9fc00n, type: "System RAM", e820Type: 1 },
    { start: 0x100000000n, size: 0x40000000n, type: "ACPI Non-volatile Storage", e820Type: 4 },
  ]);
});

test("boot_params: a zero page without EFI, truncation and a bad entry count are reported", () => {
  const zero = parseBootParams(new Uint8Array(4096));
  assert.equal(zero.efi, null);
  assert.equal(zero.secureBoot, "unset");
  assert.deepEqual(zero.e820, []);
  assert.throws(() => parseBootParams(new Uint8Array(0x100)), (e: unknown) => e instanceof KexecError && /cc_blob_address at offset 0x13c needs 4 bytes, but the input is only 256 bytes long/.test(e.message));
  const many = new Uint8Array(4096);
  many[0x1e8] = 200;
  assert.throws(() => parseBootParams(many), /e820_entries at offset 0x1e8 is 200, expected at most 128/);
  assert.equal(parseBootParamsVersion("0x020c\n"), 0x20c);
  assert.throws(() => parseBootParamsVersion("2.12\n"), isParse(1));
});

test("cpuinfo: first processor's flags, address sizes, model and count", () => {
  const block = (n: number, flags: string) =>
    `processor\t: ${n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\ncpu MHz\t\t: 2100.000\nflags\t\t: ${flags}\naddress sizes\t: 46 bits physical, 57 bits virtual\npower management:\n\n`;
  const info = parseCpuinfo(block(0, "fpu pae lm la57 hypervisor") + block(1, "fpu pae lm la57 hypervisor"));
  assert.equal(info.count, 2);
  assert.equal(info.modelName, "Intel(R) Xeon(R)");
  assert.deepEqual(info.flags, ["fpu", "pae", "lm", "la57", "hypervisor"]);
  assert.deepEqual([info.physicalBits, info.virtualBits], [46, 57]);
  assert.throws(() => parseCpuinfo("processor\t: 0\nflags none\n"), isParse(2));
  assert.throws(() => parseCpuinfo("processor\t: 0\naddress sizes\t: lots\n"), isParse(2));
  assert.deepEqual(parseCpuinfo("").flags, []);
  // Blocks are split at lines trim() calls blank, whatever whitespace they hold; the first processor's block is the one read.
  const odd = `junk: x\n \t\u00a0\n${block(7, "lm")}\u2028\nprocessor : 8\nflags : pae\n\r\n\uFEFF\nprocessor : 9\n`;
  assert.deepEqual([parseCpuinfo(odd).count, parseCpuinfo(odd).flags], [3, ["lm"]]);
  assert.throws(() => parseCpuinfo("processor : 0\n\u00a0x\n"), isParse(2));
});

test("cpuinfo: a block at a time and line by line give the same answer, or the same error, on any shape", () => {
  const outcome = (text: string, scan: "blocks" | "lines") => {
    try {
      return parseCpuinfo(text, scan);
    } catch (e) {
      return e instanceof KexecError ? { message: e.message, data: e.data } : { thrown: String(e) };
    }
  };
  const line = fc.constantFrom(
    "processor\t: 0", "processor : 1", " processor:2", "processor\r: 3", "vendor_id\t: AuthenticAMD", "model name\t: EPYC", "flags\t\t: fpu pae lm la57",
    "address sizes\t: 46 bits physical, 57 bits virtual", "address sizes : lots", "power management:", "power management:\r", "a:b:c", "processorx : 4",
    "", " ", "\t \u00a0", "\r", "\u2028", "\uFEFF", "no colon here", " x", "::",
  );
  fc.assert(fc.property(fc.array(line, { maxLength: 30 }), fc.boolean(), (lines, trailingNewline) => {
    const text = lines.join("\n") + (trailingNewline ? "\n" : "");
    assert.deepEqual(outcome(text, "blocks"), outcome(text, "lines"), JSON.stringify(text));
  }), { numRuns: 5000 });
  // The kernel's own shape, which the block scan reads, counted as the line loop counts it.
  const kernel = Array.from({ length: 64 }, (_, n) => `processor\t: ${n}\nvendor_id\t: GenuineIntel\nflags\t\t: fpu lm\naddress sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\n`).join("");
  assert.deepEqual(parseCpuinfo(kernel), parseCpuinfo(kernel, "lines"));
  assert.equal(parseCpuinfo(kernel).count, 64);
  assert.deepEqual(parseCpuinfo(`\n\n${kernel}`), parseCpuinfo(`\n\n${kernel}`, "lines"));
});

test("firmware memmap: inclusive ends become sizes, entries sorted by start, bad files named", () => {
  const ranges = parseFirmwareMemmap([
    { index: "1", start: "0x100000\n", end: "0xbfffffff\n", type: "System RAM\n" },
    { index: "0", start: "0x0\n", end: "0x9fbff\n", type: "System RAM\n" },
  ]);
  assert.deepEqual(ranges, [
    { start: 0n, size: 0x9fc00n, type: "System RAM" },
    { start: 0x100000n, size: 0xbff00000n, type: "System RAM" },
  ]);
  assert.throws(
    () => parseFirmwareMemmap([{ index: "3", start: "zz\n", end: "0x0\n", type: "x\n" }]),
    (e: unknown) => e instanceof KexecError && e.data.file === "/sys/firmware/memmap/3/start" && /line 1: expected a 64-bit hex address/.test(e.message),
  );
  // 64 bits at most, as the kernel prints them: 2^80 once reached boot_params' e820 writer.
  assert.equal(parseFirmwareMemmap([{ index: "0", start: "0x1000\n", end: "0xffffffffffffffff\n", type: "Reserved\n" }])[0]!.size, (1n << 64n) - 0x1000n);
  assert.throws(
    () => parseFirmwareMemmap([{ index: "5", start: "0x0\n", end: "0xffffffffffffffff\n", type: "Reserved\n" }]),
    (e: unknown) => e instanceof KexecError && e.data.file === "/sys/firmware/memmap/5/end" && /its size must fit 64 bits/.test(e.message),
  );
  assert.throws(
    () => parseFirmwareMemmap([{ index: "4", start: "0x0\n", end: "0xffffffffffffffffffff\n", type: "System RAM\n" }]),
    (e: unknown) => e instanceof KexecError && e.data.file === "/sys/firmware/memmap/4/end" && /expected a 64-bit hex address/.test(e.message),
  );
  assert.throws(
    () => parseFirmwareMemmap([{ index: "2", start: "0x1000\n", end: "0xfff\n", type: "x\n" }]),
    (e: unknown) => e instanceof KexecError && e.data.file === "/sys/firmware/memmap/2/end",
  );
  // An empty type was a range of type "": counted as no kind of memory, not said to be damaged.
  for (const type of ["", "\n", "\0\n"]) {
    assert.throws(
      () => parseFirmwareMemmap([{ index: "6", start: "0x0\n", end: "0x9fbff\n", type }]),
      (e: unknown) => e instanceof KexecError && e.code === "parse" && e.data.file === "/sys/firmware/memmap/6/type" && e.data.field === "type" &&
        e.message === '/sys/firmware/memmap/6/type: line 1: expected the name of a memory type such as "System RAM" or "Reserved", found ""' && /re-read them from \/sys\/firmware\/memmap/.test(e.hint ?? ""),
      JSON.stringify(type),
    );
  }
});

test("kernel files: version, arch words, meminfo, cpu lists and small values", () => {
  assert.equal(parseProcVersion("Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP\n").release, "6.1.0-18-amd64");
  assert.throws(() => parseProcVersion("Windows\n"), isParse(1));
  assert.equal(archFromMachine("x86_64\n"), "x86_64");
  assert.equal(archFromMachine("i686\n"), "i386");
  assert.equal(archFromMachine("aarch64\n"), null);
  assert.equal(archFromVersionText("6.1.0-50-686-pae"), "i386");
  assert.equal(archFromVersionText("6.1.0-50-686"), "i386");
  assert.equal(archFromVersionText("6.1.0-50-amd64"), "x86_64");
  assert.equal(archFromVersionText("6.18.44-fc-v669"), null);
  assert.equal(parseAddressBits("64\n"), 64);
  assert.throws(() => parseAddressBits("48\n"), isParse(1));
  assert.deepEqual(parseMeminfo("MemTotal:       1024 kB\nHugePages_Total:       0\n"), { MemTotal: 1048576n, HugePages_Total: 0n });
  assert.throws(() => parseMeminfo("MemTotal: 1024 kB\nbroken line\n"), isParse(2));
  assert.deepEqual(parseCpuList("0-3,5,7-8\n"), [0, 1, 2, 3, 5, 7, 8]);
  assert.deepEqual(parseCpuList("\n"), []);
  assert.throws(() => parseCpuList("3-1\n"), isParse(1));
  // Bounded by x86's largest NR_CPUS: a number past 2^53 never ended the loop (i++ stops
  // counting there), and "0-65536" repeated grew the list without end (fuzzing the web page).
  assert.deepEqual(parseCpuList("0-8191\n").length, 8192);
  assert.throws(() => parseCpuList("9007199254740992\n"), isParse(1));
  assert.throws(() => parseCpuList("0-8192\n"), /below 8192/);
  assert.throws(() => parseCpuList(`${Array(300).fill("0-65536").join(",")}\n`), isParse(1));
  assert.deepEqual(parseCpuList("0-3,2-5\n"), [0, 1, 2, 3, 4, 5]);
  assert.equal(parseFlag("1\n"), true);
  assert.throws(() => parseFlag("yes\n"), isParse(1));
  assert.equal(parseInteger("-1\n"), -1);
  assert.equal(parseByteCount("268435456\n"), 268435456n);
  // The kernel prints a u64 (%zu): 40 nines or 2^64 was shown back as 200 KB of digits or "16 EiB".
  assert.equal(parseByteCount("18446744073709551615\n"), (1n << 64n) - 1n);
  for (const huge of ["18446744073709551616", "9".repeat(40)]) {
    assert.throws(() => parseByteCount(`${huge}\n`), (e: unknown) => isParse(1)(e) && /expected a decimal number of bytes of 64 bits at most/.test((e as Error).message), huge);
  }
  assert.equal(parseMeminfo("MemTotal: 18014398509481983 kB\n").MemTotal, ((1n << 54n) - 1n) * 1024n);
  assert.throws(() => parseMeminfo("MemFree: 1 kB\nMemTotal: 18014398509481984 kB\n"), (e: unknown) => isParse(2)(e) && /expected a count of 64 bits at most in bytes/.test((e as Error).message));
  assert.throws(() => parseMeminfo(`MemTotal: ${"9".repeat(200000)} kB\n`), (e: unknown) => isParse(1)(e) && /found 9{40}\.\.\. kB/.test((e as Error).message) && (e as Error).message.length < 400);
  assert.throws(() => parseMeminfo("HugePages_Total: 18446744073709551616\n"), isParse(1));
  assert.equal(parseAddress("47fc14a38\n"), 0x47fc14a38n);
  assert.equal(parseLockdown("none [integrity] confidentiality\n"), "integrity");
  assert.equal(parseLockdown("[none] integrity confidentiality\n"), "none");
  assert.throws(() => parseLockdown("none integrity\n"), isParse(1));
  assert.deepEqual(parseVmcoreinfo("0x0000000100c66000 1024\n"), { address: 0x100c66000n, size: 0x1024n });
  assert.throws(() => parseVmcoreinfo("0x1000\n"), isParse(1));
  assert.equal(parseSecureBootVariable(new Uint8Array([6, 0, 0, 0, 1])), true);
  assert.equal(parseSecureBootVariable(new Uint8Array([6, 0, 0, 0, 0])), false);
  assert.throws(() => parseSecureBootVariable(new Uint8Array([6, 0, 0, 0])), /expected 5 bytes/);
});

test("glob expansion: entries in numeric order, each entry's files, the sameInEvery files from the first entry only", () => {
  const names = ["cpu10", "cpu2", "cpufreq", "cpu0", "cpu1", "online", "cpu01"];
  fc.assert(fc.property(fc.array(fc.oneof(fc.constantFrom(...names), fc.stringMatching(/^[a-c]{0,2}\d{0,3}$/))), (xs) => {
    assert.deepEqual(naturalSort(xs), [...xs].sort(naturalCompare));
  }));
  const cpus = MACHINE_FILES.find((s) => s.kind === "glob" && s.dir === "sys/devices/system/cpu");
  assert.ok(cpus?.kind === "glob");
  assert.deepEqual(expandGlob(cpus, ["cpu10", "cpu2", "cpufreq", "cpu0", "online"]), [
    "sys/devices/system/cpu/cpu0/crash_notes_size",
    "sys/devices/system/cpu/cpu0/crash_notes",
    "sys/devices/system/cpu/cpu2/crash_notes",
    "sys/devices/system/cpu/cpu10/crash_notes",
  ]);
  assert.deepEqual(expandGlob(cpus, ["cpufreq"]), []);
});
