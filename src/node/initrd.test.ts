import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadKoffi } from "./ffi.js";
import { ALIAS_SPAN, offsetAwayFromAlias, readInitrdFor } from "./initrd.js";

const span = BigInt(ALIAS_SPAN);
const half = span / 2n;
const mod = (a: bigint) => ((a % span) + span) % span;

test("the initrd's bytes start half a span away from aliasing their destination, whatever the two addresses", () => {
  // The lab's case: glibc's buffer at a 2 MiB boundary minus the size (+16, its header), the initrd just below the kernel.
  const cases: [bigint, bigint][] = [
    [0x7f71d537d010n, 0x7237d000n],
    [0x7f639cb9f010n, 0x7237d000n],
    [0x1000n, 0x1000n],
    [0x0n, 0xfffff000n],
    [0xb7a00010n, 0x2f000000n], // an i386 process
    [0x7ffff7ffe010n, 0x100000000000n],
  ];
  for (const [address, destination] of cases) {
    const offset = offsetAwayFromAlias(address, destination);
    assert.ok(offset >= 0 && offset < ALIAS_SPAN, `offset ${offset} within the slack`);
    assert.equal(mod(address + BigInt(offset) - destination), half, `${address.toString(16)} -> ${destination.toString(16)}`);
    // So no direct-mapped table of 64 or more 4 KiB entries indexes source and destination alike.
    for (let entries = 64n; entries <= 1n << 22n; entries *= 2n) {
      const pages = (address + BigInt(offset)) / 4096n - destination / 4096n;
      for (const d of [-1n, 0n, 1n]) assert.notEqual(((pages + d) % entries + entries) % entries, 0n, `${entries} entries`);
    }
  }
});

test("readInitrdFor gives the file's bytes, laid out by their destination; a missing or empty file is named", () => {
  const koffi = loadKoffi();
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-initrd-"));
  try {
    const path = join(dir, "initrd.img");
    const data = new Uint8Array(3 * 1024 * 1024 + 77);
    for (let i = 0; i < data.length; i += 997) data[i] = (i * 7) & 0xff;
    data[data.length - 1] = 0x5a;
    writeFileSync(path, data);
    for (const destination of [0x7237d000n, 0x7237e000n, 0x100000000n]) {
      const bytes = readInitrdFor(path, "initrd", destination);
      assert.ok(Buffer.from(bytes).equals(Buffer.from(data)), "the same bytes");
      assert.equal(mod(BigInt(koffi.address(bytes)) - destination), half, `placed for ${destination.toString(16)}`);
    }
    assert.throws(() => readInitrdFor(join(dir, "absent.img"), "initrd", 0x7237d000n), /absent\.img: cannot read initrd/);
    writeFileSync(join(dir, "empty.img"), new Uint8Array(0));
    assert.throws(() => readInitrdFor(join(dir, "empty.img"), "initrd", 0x7237d000n), /empty\.img: the initrd is empty/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
