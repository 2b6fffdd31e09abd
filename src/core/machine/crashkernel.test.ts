import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { KexecError } from "../errors.js";
import {
  crashkernelFromCmdline,
  formatCrashkernel,
  parseCrashkernel,
  resolveCrashkernel,
  splitCmdline,
  type CrashkernelArg,
} from "./crashkernel.js";

const M = 1n << 20n;
const G = 1n << 30n;

test("crashkernel: every form parses", () => {
  assert.deepEqual(parseCrashkernel("256M"), { form: "fixed", size: 256n * M, offset: null });
  assert.deepEqual(parseCrashkernel("crashkernel=256M@1968M"), { form: "fixed", size: 256n * M, offset: 1968n * M });
  assert.deepEqual(parseCrashkernel("0x10000000@0x7b000000"), { form: "fixed", size: 0x10000000n, offset: 0x7b000000n });
  assert.deepEqual(parseCrashkernel("512m"), { form: "fixed", size: 512n * M, offset: null });
  assert.deepEqual(parseCrashkernel("010K"), { form: "fixed", size: 8n * 1024n, offset: null }, "memparse reads a leading 0 as octal");
  assert.deepEqual(parseCrashkernel("1T"), { form: "fixed", size: 1n << 40n, offset: null });
  assert.deepEqual(parseCrashkernel("1P"), { form: "fixed", size: 1n << 50n, offset: null });
  assert.deepEqual(parseCrashkernel("1e"), { form: "fixed", size: 1n << 60n, offset: null });
  assert.deepEqual(parseCrashkernel("512M,high"), { form: "high", size: 512n * M });
  assert.deepEqual(parseCrashkernel("0,low"), { form: "low", size: 0n });
  assert.deepEqual(parseCrashkernel("64M,cma"), { form: "cma", size: 64n * M });
  assert.deepEqual(parseCrashkernel("512M-2G:64M,2G-:128M"), {
    form: "ranges",
    ranges: [
      { start: 512n * M, end: 2n * G, size: 64n * M },
      { start: 2n * G, end: null, size: 128n * M },
    ],
    offset: null,
  });
  assert.deepEqual(parseCrashkernel("1G-4G:192M@16M"), { form: "ranges", ranges: [{ start: G, end: 4n * G, size: 192n * M }], offset: 16n * M });
});

/** `character` is 1-based as in the message; at the end of the value the message says "after character N". */
function expectError(value: string, character: number, expected: RegExp): void {
  const atEnd = character > value.length;
  const where = atEnd ? `after character ${value.length}` : `at character ${character}`;
  assert.throws(
    () => parseCrashkernel(value),
    (e: unknown) => e instanceof KexecError && e.code === "parse" && e.data["offset"] === character - 1 && e.message.includes(where) && expected.test(e.message),
    value,
  );
}

test("crashkernel: errors say which character was unexpected", () => {
  expectError("256Q", 4, /unexpected 'Q'.*expected the end/);
  expectError("256M@", 6, /unexpected the end of the value.*offset after '@'/);
  expectError("M", 1, /unexpected 'M'.*expected a size/);
  expectError("", 1, /expected a size/);
  expectError("512M-2G;64M,2G-:1G", 8, /unexpected ';'.*expected ':'/);
  expectError("512M-2G", 5, /unexpected '-'.*needs ':size'/);
  expectError("2G-1G:64M", 4, /range end above the start 2G/);
  expectError("512M-2G:,", 9, /reservation size/);
  expectError("512M-2G:64M,", 13, /start of a RAM range/);
  expectError("1G:64M", 3, /expected '-'/);
  expectError("256M,higher", 5, /expected the end/);
  expectError("x256M,high", 1, /expected a size/);
  expectError("256M;high", 5, /unexpected ';'.*expected the end/);
  expectError("20E", 1, /fits in 64 bits/);
});

test("crashkernel: the command line's last occurrence of each form wins, suffixed ones stay separate", () => {
  const spec = crashkernelFromCmdline("ro crashkernel=128M crashkernel=1G,high quiet crashkernel=256M@16M crashkernel=100M,low crashkernel=64M,cma")!;
  assert.deepEqual(spec.plain, { form: "fixed", size: 256n * M, offset: 16n * M });
  assert.equal(spec.high, G);
  assert.equal(spec.low, 100n * M);
  assert.equal(spec.cma, 64n * M);
  assert.deepEqual(spec.occurrences.map((o) => o.used), [false, true, true, true, true]);
  assert.equal(crashkernelFromCmdline("ro quiet"), null);
  // An earlier broken value is overridden, as in the kernel; a broken winner is an error naming the value.
  assert.equal(crashkernelFromCmdline("crashkernel=junk crashkernel=64M")!.plain?.form, "fixed");
  assert.throws(() => crashkernelFromCmdline("crashkernel=64M crashkernel=junk"), /crashkernel=junk: unexpected 'j'/);
});

test("crashkernel: command lines split like next_arg(), quotes group", () => {
  assert.deepEqual(splitCmdline(' a  b="c d" crashkernel=1M\n'), ["a", "b=c d", "crashkernel=1M"]);
});

test("crashkernel resolve: the first range with start <= RAM (rounded up to 128M) < end wins", () => {
  const spec = crashkernelFromCmdline("crashkernel=512M-2G:64M,2G-64G:256M,64G-:1G")!;
  // 1.9 GiB of RAM rounds up to 2 GiB, so the second range matches, not the first.
  const r = resolveCrashkernel(spec, 2n * G - 100n * M);
  assert.equal(r.ok, true);
  assert.equal(r.roundedRam, 2n * G);
  assert.equal(r.matchedRange, 1);
  assert.equal(r.size, 256n * M);
  assert.match(r.reason, /range 2 \(2G-64G:256M\)/);
  const small = resolveCrashkernel(crashkernelFromCmdline("crashkernel=512M-2G:64M,2G-:128M")!, 256n * M);
  assert.equal(small.ok, false);
  assert.match(small.reason, /no range matches RAM 256M/);
  // The kernel checks each size against RAM while walking, so a later too-big range fails a small machine.
  const walked = resolveCrashkernel(spec, 256n * M);
  assert.equal(walked.ok, false);
  assert.match(walked.reason, /range 2 .* rejects the whole value/);
  assert.equal(resolveCrashkernel(spec, 100n * G).size, G);
});

test("crashkernel resolve: sizes at or above RAM are rejected, as the kernel does", () => {
  assert.equal(resolveCrashkernel(crashkernelFromCmdline("crashkernel=2G")!, 2n * G).ok, false);
  // Said once: what asks, for how much, against how much RAM (it had been "crashkernel=8G@16M
  // reserves 8G at 16M asks for 8G, ...").
  assert.equal(resolveCrashkernel(crashkernelFromCmdline("crashkernel=8G@16M")!, 4n * G).reason, "crashkernel=8G@16M asks for 8G, not less than the 4G of RAM, so the kernel rejects it");
  assert.equal(resolveCrashkernel(crashkernelFromCmdline("crashkernel=8G,high")!, 4n * G).reason, "crashkernel=8G,high asks for 8G, not less than the 4G of RAM, so the kernel rejects it");
  assert.equal(resolveCrashkernel(crashkernelFromCmdline("crashkernel=0")!, 4n * G).reason, "crashkernel=0 asks for 0 bytes, so nothing is reserved");
  assert.equal(resolveCrashkernel(crashkernelFromCmdline("crashkernel=1G-:0")!, 4n * G).reason, "RAM 4G (rounded up to 128M) falls in range 1 (1G-:0), which asks for 0 bytes, so nothing is reserved");
  const r = resolveCrashkernel(crashkernelFromCmdline("crashkernel=0-:4G")!, 3n * G);
  assert.equal(r.ok, false);
  assert.match(r.reason, /rejects the whole value/);
});

test("crashkernel resolve: ,high with and without ,low; ,low alone reserves nothing; plain beats ,high", () => {
  const high = resolveCrashkernel(crashkernelFromCmdline("crashkernel=512M,high")!, 16n * G);
  assert.deepEqual([high.ok, high.high, high.size, high.lowSize, high.lowIsDefault], [true, true, 512n * M, null, true]);
  const both = resolveCrashkernel(crashkernelFromCmdline("crashkernel=512M,high crashkernel=0,low")!, 16n * G);
  assert.deepEqual([both.lowSize, both.lowIsDefault], [0n, false]);
  assert.match(both.reason, /no low part/);
  assert.equal(resolveCrashkernel(crashkernelFromCmdline("crashkernel=128M,low")!, 16n * G).ok, false);
  const plain = resolveCrashkernel(crashkernelFromCmdline("crashkernel=256M@0 crashkernel=1G,high")!, 16n * G);
  assert.deepEqual([plain.form, plain.high, plain.offset], ["fixed", false, null], "@0 lets the kernel choose");
});

const arbSize = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.tuple(fc.bigInt({ min: 0n, max: 4096n }), fc.constantFrom(10n, 20n, 30n, 40n)).map(([v, s]) => v << s),
);
const arbArg: fc.Arbitrary<CrashkernelArg> = fc.oneof(
  fc.record({ form: fc.constant("fixed" as const), size: arbSize, offset: fc.option(arbSize, { nil: null }) }),
  fc.record({ form: fc.constantFrom("high" as const, "low" as const, "cma" as const), size: arbSize }),
  fc
    .record({
      bounds: fc.array(fc.bigInt({ min: 0n, max: 1n << 50n }), { minLength: 1, maxLength: 6 }),
      sizes: fc.array(arbSize, { minLength: 6, maxLength: 6 }),
      openEnd: fc.boolean(),
      offset: fc.option(arbSize, { nil: null }),
    })
    .map(({ bounds, sizes, openEnd, offset }) => {
      const points = [...new Set(bounds)].sort((a, b) => (a < b ? -1 : 1));
      const ranges = points.map((start, i) => ({ start, end: points[i + 1] ?? (openEnd ? null : start + 1n), size: sizes[i]! }));
      return { form: "ranges" as const, ranges, offset };
    }),
);

test("crashkernel property: parse(format(x)) = x", () => {
  fc.assert(
    fc.property(arbArg, (arg) => {
      assert.deepEqual(parseCrashkernel(formatCrashkernel(arg)), arg);
    }),
    { numRuns: 500 },
  );
});
