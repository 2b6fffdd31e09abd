import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { loadKoffi } from "./ffi.js";
import { kernelLogFromNow, nativeSegments } from "./syscalls.js";
import { missingInput } from "./test-inputs.js";

// Issue 11: an initramfs-tools initrd above 64 MiB stopped kexec_load with koffi's
// "Array length is too high (max = 67108864)" before any syscall was made.
test("kexec_load's segment array carries a segment larger than 64 MiB, byte for byte, in place", () => {
  const koffi = loadKoffi();
  const big = new Uint8Array(70 * 1024 * 1024 + 123);
  for (let i = 0; i < big.length; i += 4093) big[i] = (i >>> 12) & 0xff;
  big[big.length - 1] = 0xa5;
  const small = Uint8Array.of(1, 2, 3);
  const segments = [
    { buf: small, mem: 0x1000n, memsz: 0x1000n },
    { buf: big, mem: 0x7c000000n, memsz: 0x4700000n },
  ];
  const native = nativeSegments(koffi, segments);
  try {
    const struct = koffi.struct({ buf: "void *", bufsz: "size_t", mem: "uintptr_t", memsz: "size_t" });
    const records = koffi.decode(native.array, koffi.array(struct, segments.length)) as { buf: unknown; bufsz: number | bigint; mem: number | bigint; memsz: number | bigint }[];
    assert.equal(records.length, 2);
    for (const [i, s] of segments.entries()) {
      const r = records[i]!;
      assert.equal(Number(r.bufsz), s.buf.length, `segment ${i} bufsz`);
      assert.equal(BigInt(r.mem), s.mem, `segment ${i} mem`);
      assert.equal(BigInt(r.memsz), s.memsz, `segment ${i} memsz`);
      const copied = new Uint8Array(koffi.view(r.buf, s.buf.length));
      assert.ok(Buffer.from(copied).equals(Buffer.from(s.buf)), `segment ${i} bytes`);
    }
    // The big one is handed over where it lies, not copied (3 bytes may sit in V8's moving heap: copied).
    assert.equal(BigInt(koffi.address(records[1]!.buf)), BigInt(koffi.address(big)), "the 70 MiB segment is passed in place");
    assert.notEqual(BigInt(koffi.address(records[0]!.buf)), BigInt(koffi.address(small)), "the 3-byte segment is a copy");
  } finally {
    native.free();
  }
});

test("the kernel log from now on: only what is logged after it is opened, with lseek and without", (t) => {
  if (process.getuid?.() !== 0) return missingInput(t, "writing marker records to /dev/kmsg needs root");
  const mark = (what: string) => {
    const text = `kexec-ts test ${process.pid} ${what}`;
    writeFileSync("/dev/kmsg", `<7>${text}\n`);
    return text;
  };
  for (const [how, seek] of [["lseek to the end", undefined], ["lseek refused", () => -1]] as const) {
    const before = mark(`${how}: before`);
    const log = kernelLogFromNow(seek);
    try {
      const after = mark(`${how}: after`);
      const lines = log.lines();
      assert.ok(lines.includes(after), `${how}: the record logged after opening is read (${lines.length} lines)`);
      assert.ok(!lines.includes(before), `${how}: the one logged before is not`);
      assert.deepEqual(log.lines().filter((l) => l.includes(`kexec-ts test ${process.pid}`)), [], `${how}: each record is read once`);
    } finally {
      log.close();
    }
  }
});
