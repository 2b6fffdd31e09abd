import { test } from "node:test";
import assert from "node:assert/strict";
import { EXIT_STATUS } from "../errors.js";
import { syscallError } from "./syscall-errors.js";

test("a refused kexec_load carries its call, entry, flags, segments and errno as fields, and JSON keeps 64-bit values", () => {
  const e = syscallError({
    call: "kexec_load", errno: "EADDRNOTAVAIL", errnoNumber: 99, entry: 0x8affe150n, flags: 0x3e0001,
    segments: [{ mem: 0x7b000000n, memsz: 0x1000n, bufsz: 0x190n }, { mem: 0x1_0000_0000n, memsz: 0x2000n, bufsz: 0xc40n }],
  }, { isRoot: true });
  assert.equal(e.code, "syscall");
  assert.equal(EXIT_STATUS[e.code], 71);
  assert.match(e.message, /^kexec_load failed with EADDRNOTAVAIL: a segment lies outside the memory the kernel allows/);
  assert.match(e.message, /entry 0x8affe150, flags 0x3e0001, segments 0x7b000000\+0x1000 0x100000000\+0x2000/);
  assert.ok(e.hint);
  assert.deepEqual(
    { call: e.data["call"], errno: e.data["errno"], errnoNumber: e.data["errnoNumber"], entry: e.data["entry"], flags: e.data["flags"], fallbackAllowed: e.data["fallbackAllowed"] },
    { call: "kexec_load", errno: "EADDRNOTAVAIL", errnoNumber: 99, entry: 0x8affe150n, flags: 0x3e0001, fallbackAllowed: false },
  );
  const json = JSON.parse(JSON.stringify(e)) as { data: { segments: unknown; entry: unknown } };
  assert.equal(json.data.entry, "0x8affe150");
  assert.deepEqual(json.data.segments, [{ mem: "0x7b000000", memsz: "0x1000", bufsz: "0x190" }, { mem: "0x100000000", memsz: "0x2000", bufsz: "0xc40" }]);
});

test("kexec_file_load's refusal keeps the files, the command line and the kernel's own log lines; -a may fall back after ENOEXEC", () => {
  const e = syscallError({ call: "kexec_file_load", errno: "ENOEXEC", errnoNumber: 8, flags: 0x2, kernel: "/boot/vmlinuz", initrd: "/boot/initrd.img", cmdline: "console=ttyS0" },
    { kernelLog: ["kexec-bzImage64: bzImage cannot handle 5-level paging mode."] });
  assert.equal(e.data["kernel"], "/boot/vmlinuz");
  assert.equal(e.data["cmdline"], "console=ttyS0");
  assert.deepEqual(e.data["kernelLog"], ["kexec-bzImage64: bzImage cannot handle 5-level paging mode."]);
  assert.equal(e.data["fallbackAllowed"], true);
  assert.match(e.message, /The kernel said: "kexec-bzImage64: bzImage cannot handle 5-level paging mode\."/);
});

test("kexec_file_load's EFBIG (a file past KEXEC_FILE_SIZE_MAX) is explained, and -a does not fall back after it, as kexec-tools' does not", () => {
  const e = syscallError({ call: "kexec_file_load", errno: "EFBIG", errnoNumber: 27, flags: 0, kernel: "/boot/vmlinuz", initrd: "/boot/big.img", cmdline: "" });
  assert.match(e.message, /^kexec_file_load failed with EFBIG: the kernel image or the initrd is larger than kexec_file_load reads \(KEXEC_FILE_SIZE_MAX: 4 GiB since Linux 6\.0/);
  assert.match(e.hint ?? "", /kexec_load \(-c\)/);
  assert.equal(e.data["fallbackAllowed"], false);
});
