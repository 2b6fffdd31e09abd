import { test } from "node:test";
import { strict as assert } from "node:assert";
import { assumedTextVaddr } from "./crash.js";

const MiB = 1n << 20n;

test("the assumed text address follows the physical one without KASLR, and stays in the kernel image window when KASLR put the text high", () => {
  assert.equal(assumedTextVaddr(0x1000000n, 30n * MiB), 0xffffffff81000000n);
  assert.equal(assumedTextVaddr(0x2fa00000n, 30n * MiB), 0xffffffffafa00000n, "a text at 762 MiB physically: the same offset virtually");
  // Seen on a 4 GiB guest after a reboot: KASLR put the text above 4 GiB physically. Offset the
  // same way it would be past 2^64, where it aliases the identity map and broke the hand-over check.
  for (const paddr of [0x12fa00000n, 0x40000000n, 0xbe000000n]) {
    const v = assumedTextVaddr(paddr, 30n * MiB);
    assert.ok(v >= 0xffffffff80000000n && v + 30n * MiB <= 0xffffffffc0000000n, `${paddr.toString(16)} -> ${v.toString(16)}`);
  }
});
