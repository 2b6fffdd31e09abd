import { test } from "node:test";
import { strict as assert } from "node:assert";
import { asciiBytes } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { buildMachine } from "../machine/build.js";
import { assumedTextVaddr, parseSavedKernelLayout, savedLayoutForMachine } from "./crash.js";

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

const TEXT = { vaddr: "0xffffffff9a000000", paddr: "0x2a000000", size: "0x2800000" };

test("kernel-layout.json: what /proc/kcore gives reads back; i386's PAGE_OFFSET too", () => {
  const layout = parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xffff9c4d80000000", text: TEXT, source: "/proc/kcore" }));
  assert.deepEqual(layout, { pageOffset: 0xffff9c4d80000000n, text: { vaddr: 0xffffffff9a000000n, paddr: 0x2a000000n, size: 0x2800000n }, source: "/proc/kcore when the snapshot was taken (kernel-layout.json)" });
  assert.equal(parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xff11000000000000", text: null })).pageOffset, 0xff11000000000000n);
  assert.equal(parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xc0000000", text: null })).text, undefined);
});

test("kernel-layout.json: a shape or a value no kernel has is a parse error naming the file and field, not a TypeError or a slow report", () => {
  const cases: [string, string | undefined, RegExp][] = [
    ["null", undefined, /^snap\.tar:\/kernel-layout\.json: holds null, expected a JSON object$/],
    ["[1]", undefined, /holds a list, expected a JSON object/],
    ["{", undefined, /: is not JSON$/],
    ["{}", "pageOffset", /pageOffset is absent, expected a hex string/],
    ['{"pageOffset":4096}', "pageOffset", /pageOffset is number 4096, expected a hex string/],
    ['{"pageOffset":"0xffffffffffffffffffff"}', "pageOffset", /pageOffset 0xffffffffffffffffffff is wider than 64 bits/],
    // 0x1 made a report of 4 s and 11 MB: every direct-map page a 4 KiB one.
    ['{"pageOffset":"0x1"}', "pageOffset", /pageOffset 0x1 is no kernel's direct-map base/],
    ['{"pageOffset":"0xffff888000001000"}', "pageOffset", /is no kernel's direct-map base/],
    ['{"pageOffset":"0xfffffe0000000000"}', "pageOffset", /is no kernel's direct-map base/],
    ['{"pageOffset":"0xffff888000000000","text":"x"}', "text", /text is string "x", expected an object or null/],
    [JSON.stringify({ pageOffset: "0xffff888000000000", text: { ...TEXT, vaddr: "0x1000000" } }), "text.vaddr", /text\.vaddr 0x1000000 is not a page in the kernel image's window/],
    [JSON.stringify({ pageOffset: "0xffff888000000000", text: { ...TEXT, size: "0x40000000" } }), "text.size", /does not fit the kernel image's window/],
    [JSON.stringify({ pageOffset: "0xffff888000000000", text: { ...TEXT, size: "0x0" } }), "text.size", /text\.size 0x0 does not fit/],
    [JSON.stringify({ pageOffset: "0xffff888000000000", text: { ...TEXT, paddr: "0x2a000001" } }), "text.paddr", /not a page-aligned physical address/],
    [JSON.stringify({ pageOffset: "0xffff888000000000", text: { ...TEXT, paddr: undefined } }), "text.paddr", /text\.paddr is absent/],
    [JSON.stringify({ pageOffset: "0xffff888000000000", source: 7 }), "source", /source is number 7, expected a string/],
  ];
  for (const [text, field, said] of cases) {
    assert.throws(() => parseSavedKernelLayout(text, "snap.tar:/kernel-layout.json"), (e: unknown) => e instanceof KexecError && e.code === "parse"
      && e.data.file === "snap.tar:/kernel-layout.json" && e.data.field === field && said.test(e.message) && /take the snapshot again/.test(e.hint ?? ""), text);
  }
});

test("kernel-layout.json against the machine it replays with: page_offset_base in the kernel half its paging levels give, the direct map below the CPU entry area", () => {
  const machine = (la57: boolean) => buildMachine({ dirs: [], files: {
    "proc/iomem": asciiBytes("00100000-bfffffff : System RAM\n100000000-43fffffff : System RAM\n"),
    "proc/version": asciiBytes("Linux version 6.1.0-50-amd64 (debian) #1 SMP\n"),
    "proc/cpuinfo": asciiBytes(`processor\t: 0\nflags\t\t: fpu pae lm${la57 ? " la57" : ""}\n\n`),
    "proc/cmdline": asciiBytes("console=ttyS0\n"),
  } });
  const fiveLevel = parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xff11000000000000" }));
  assert.equal(savedLayoutForMachine(fiveLevel, machine(true)), fiveLevel);
  assert.throws(() => savedLayoutForMachine(fiveLevel, machine(false), "s.tar:/kernel-layout.json"), (e: unknown) => e instanceof KexecError
    && /^s\.tar:\/kernel-layout\.json: pageOffset 0xff11000000000000 is not the 4-level x86_64 kernel's page_offset_base$/.test(e.message) && /^0xffff800000000000-/.test(String(e.data.expected)));
  const i386 = parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xc0000000" }));
  assert.throws(() => savedLayoutForMachine(i386, machine(false)), /pageOffset 0xc0000000 is not the 4-level/);
  // The direct map of 17 GiB of RAM would run into the CPU entry area.
  const high = parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xfffffdffc0000000" }));
  assert.throws(() => savedLayoutForMachine(high, machine(false)), /0xfffffdffc0000000 is not the 4-level/);
  assert.equal(savedLayoutForMachine(parseSavedKernelLayout(JSON.stringify({ pageOffset: "0xfffffdfb80000000" })), machine(false)).pageOffset, 0xfffffdfb80000000n);
});
