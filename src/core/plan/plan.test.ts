import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { asciiBytes } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { readKernelImage } from "../image/index.js";
import { buildBzImage } from "../image/testing/synthetic.js";
import { buildMachine } from "../machine/build.js";
import type { Machine } from "../machine/model.js";
import { planViolations } from "./invariants.js";
import { Placer } from "./placement.js";
import { planLoad } from "./plan.js";
import { runChecks } from "../check/index.js";
import { sha256 } from "./purgatory.js";

const hex = (v: bigint) => v.toString(16).padStart(8, "0");

/** A machine from text, as the kernel would print it: iomem ranges with inclusive ends. */
function machineFrom(ram: { start: bigint; size: bigint }[], arch: "x86_64" | "i386", la57: boolean, crash?: { start: bigint; size: bigint }): Machine {
  const lines = ram
    .slice()
    .sort((a, b) => (a.start < b.start ? -1 : 1))
    .map((r) => {
      const line = `${hex(r.start)}-${hex(r.start + r.size - 1n)} : System RAM`;
      if (crash && crash.start >= r.start && crash.start + crash.size <= r.start + r.size) {
        return `${line}\n  ${hex(crash.start)}-${hex(crash.start + crash.size - 1n)} : Crash kernel`;
      }
      return line;
    });
  const files: Record<string, Uint8Array> = {
    "proc/iomem": asciiBytes(`${lines.join("\n")}\n`),
    "proc/version": asciiBytes(arch === "x86_64" ? "Linux version 6.1.0-50-amd64 (debian) #1 SMP\n" : "Linux version 6.1.0-50-686-pae (debian) #1 SMP\n"),
    "proc/sys/kernel/arch": asciiBytes(arch === "x86_64" ? "x86_64\n" : "i686\n"),
    "proc/cpuinfo": asciiBytes(`processor\t: 0\nflags\t\t: fpu pae lm${la57 ? " la57" : ""}\naddress sizes\t: 46 bits physical, 57 bits virtual\n\n`),
    "proc/cmdline": asciiBytes("console=ttyS0\n"),
  };
  return buildMachine({ files, dirs: [] });
}

const MiB = 0x100000n;
const GiB = 0x40000000n;

const arbRam = fc
  .array(fc.record({ startMiB: fc.integer({ min: 1, max: 8 * 1024 }), sizeMiB: fc.integer({ min: 1, max: 4096 }) }), { minLength: 1, maxLength: 6 })
  .map((rs) => rs.map((r) => ({ start: BigInt(r.startMiB) * MiB, size: BigInt(r.sizeMiB) * MiB })))
  // iomem top-level siblings never overlap: drop any range that does.
  .map((rs) => rs.filter((r, i) => rs.every((o, j) => j >= i || r.start >= o.start + o.size || o.start >= r.start + r.size)));

const arbImage = fc.record({
  xloadflags: fc.constantFrom(0x00, 0x01, 0x03, 0x23, 0x63, 0x7f),
  relocatable: fc.boolean(),
  initSizeMiB: fc.integer({ min: 1, max: 96 }),
  alignShift: fc.constantFrom(21, 24),
  initrdAddrMax: fc.constantFrom(0x37ffffffn, 0x7fffffffn, 0xffffffffn),
  protocol: fc.constantFrom(0x20a, 0x20c, 0x20f),
});

test("plans for random machines and images hold every invariant, or fail with a plan error", () => {
  let planned = 0;
  let refused = 0;
  fc.assert(
    fc.property(arbRam, arbImage, fc.constantFrom("x86_64", "i386"), fc.constantFrom("x86_64", "i386"), fc.boolean(), fc.integer({ min: 0, max: 64 }), (ram, img, kernelArch, userArch, la57, initrdMiB) => {
      fc.pre(ram.length > 0);
      const bytes = buildBzImage({
        protocol: img.protocol,
        fields: {
          xloadflags: img.protocol >= 0x20c ? img.xloadflags : 0,
          relocatable_kernel: img.relocatable ? 1 : 0,
          init_size: BigInt(img.initSizeMiB) * MiB,
          kernel_alignment: 1n << BigInt(img.alignShift),
          initrd_addr_max: img.initrdAddrMax,
        },
        tail: 0x2000,
      });
      const image = readKernelImage(bytes);
      const machine = machineFrom(ram, kernelArch as "x86_64" | "i386", la57 && kernelArch === "x86_64");
      const initrd = initrdMiB ? new Uint8Array(initrdMiB * 0x100000) : undefined;
      try {
        const plan = planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "console=ttyS0", userArch: userArch as "x86_64" | "i386", initrdSize: initrd?.length }, { initrd, sha256 });
        if (image.kind !== "bzImage") return;
        assert.deepEqual(planViolations(plan, image.bzImage, machine), []);
        planned++;
      } catch (e) {
        refused++;
        assert.ok(e instanceof KexecError, String(e));
        assert.equal(e.code, "plan", e.message);
        assert.doesNotMatch(e.message, /internal error/);
      }
    }),
    { numRuns: 150 },
  );
  // Both outcomes must actually occur, or the property says nothing.
  assert.ok(planned >= 30, `only ${planned} of 150 random cases produced a plan`);
  assert.ok(refused >= 5, `only ${refused} of 150 random cases were refused`);
});

test("a 32-bit user space on a 64-bit kernel keeps every segment below 4 GiB (seed 002)", () => {
  const machine = machineFrom([{ start: MiB, size: 3n * GiB - MiB }, { start: 4n * GiB, size: 4n * GiB }], "x86_64", true);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB, xloadflags: 0x63 }, tail: 0x2000 }));
  const p64 = planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "", userArch: "x86_64", initrdSize: MiB_n(8) }, { initrd: new Uint8Array(MiB_n(8)), sha256 });
  assert.ok(p64.segments.some((s) => s.mem >= 4n * GiB), "a 64-bit loader uses the RAM above 4 GiB");
  const p32 = planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "", userArch: "i386", initrdSize: MiB_n(8) }, { initrd: new Uint8Array(MiB_n(8)), sha256 });
  for (const s of p32.segments) assert.ok(s.mem + s.memsz <= 4n * GiB, `${s.kind} at ${s.mem.toString(16)}`);
  // And no 896 MiB limit for a 64-bit image: the kernel goes as high as 4 GiB allows.
  assert.ok(p32.segments.find((s) => s.kind === "kernel")!.mem > 0x38000000n);
  assert.equal(p32.flags, 62 << 16, "KEXEC_ARCH_X86_64: the running kernel's arch, not the user space's");
});

test("an initrd read once placed: the reader gets the initrd's address, and a size that changed since is refused by name", () => {
  const machine = machineFrom([{ start: MiB, size: 3n * GiB - MiB }], "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB }, tail: 0x2000 }));
  const request = { syscall: "kexec_load" as const, crash: false, cmdline: "", userArch: "x86_64" as const, initrdSize: MiB_n(8) };
  const asked: bigint[] = [];
  const plan = planLoad(image, machine, request, { initrd: (at) => { asked.push(at); return new Uint8Array(MiB_n(8)).fill(0x5a); }, sha256 });
  const initrd = plan.segments.find((s) => s.kind === "initrd")!;
  assert.deepEqual(asked, [initrd.mem], "read once, for where it was placed");
  assert.equal(initrd.buf[0], 0x5a, "the reader's bytes are the segment's");
  assert.throws(() => planLoad(image, machine, request, { initrd: () => new Uint8Array(MiB_n(8) + 1), sha256 }),
    (e) => e instanceof KexecError && /the initrd is 8388609 bytes now, 8388608 when it was placed: it changed while kexec-ts read it/.test(e.message));
});

test("an initrd size that is no whole number of bytes is a usage error at plan and check, not a RangeError or \"no room\"", () => {
  const machine = machineFrom([{ start: MiB, size: 3n * GiB - MiB }], "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB }, tail: 0x2000 }));
  const request = { syscall: "kexec_load" as const, crash: false, cmdline: "", userArch: "x86_64" as const };
  // What the web page's number field can hold: a fraction, 1e400 (Infinity), a negative, nothing typed but NaN.
  for (const initrdSize of [0.5, Number.POSITIVE_INFINITY, -1, 0, Number.NaN, 2 ** 53]) {
    const refused = (e: unknown) => e instanceof KexecError && e.code === "usage" && e.data.field === "initrdSize"
      && e.message === `initrd size must be a whole number of bytes from 1 to 9007199254740991, not ${String(initrdSize)}`;
    assert.throws(() => planLoad(image, machine, { ...request, initrdSize }, { initrd: new Uint8Array(0), sha256 }), refused, `plan ${initrdSize}`);
    assert.throws(() => runChecks({ image, machine, request: { ...request, initrdSize } }), refused, `check ${initrdSize}`);
  }
  assert.ok(runChecks({ image, machine, request: { ...request, initrdSize: 4096 } }).length > 0);
});

test("no hole: the error names the segment, its size, the window and who set each bound", () => {
  const machine = machineFrom([{ start: MiB, size: 40n * MiB }], "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB }, tail: 0x2000 }));
  try {
    planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "", userArch: "x86_64", initrdSize: undefined }, { initrd: undefined, sha256 });
    assert.fail("expected no room");
  } catch (e) {
    assert.ok(e instanceof KexecError);
    assert.match(e.message, /no room for the kernel: 0x4000000 bytes \(64 MiB\) aligned to 0x200000/);
    assert.match(e.message, /pref_address of the image/);
    assert.match(e.message, /free in System RAM there: /);
  }
});

test("no hole in the crash region: the pool is named in a sentence that reads (\"not free in the crash region\")", () => {
  const placer = new Placer([{ start: 0x70000000n, size: 0x10000000n }], "the crash region");
  assert.throws(() => placer.reserveFixed("kernel", 0x1000000n, 0x3a00000n), (e: unknown) => e instanceof KexecError && /at the fixed address 0x1000000, but that is not free in the crash region$/.test(e.message));
  assert.throws(() => placer.place({ what: "initrd", size: 0x20000000n, align: 0x1000n, mins: [], limits: [], topDown: true }),
    (e: unknown) => e instanceof KexecError && /; free in the crash region there: 0x70000000-0x80000000 \(256 MiB\)$/.test(e.message));
});

test("an init_size below the kernel's own bytes is a damaged header, refused by name: not planned around, nor \"no room for 0 bytes\"", async () => {
  const { predictFilePlacement } = await import("../check/index.js");
  const machine = machineFrom([{ start: MiB, size: 3n * GiB - MiB }], "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 0n, xloadflags: 0x7f }, tail: 0x8000 }));
  const message = /init_size 0x0 \(setup header offset 0x260\) is less than the 0x[0-9a-f]+ bytes of protected-mode kernel in the file/;
  for (const syscall of ["kexec_load", "kexec_file_load"] as const) {
    const request = { syscall, crash: false, cmdline: "", userArch: "x86_64" as const, initrdSize: undefined };
    const protocol = runChecks({ image, machine, request }).find((r) => r.id === "protocol-version")!;
    assert.equal(protocol.verdict, "fail", syscall);
    assert.match(protocol.reason, message);
  }
  const request = { syscall: "kexec_load" as const, crash: false, cmdline: "", userArch: "x86_64" as const, initrdSize: undefined };
  // The kexec_load plan had taken the file's size instead, and said nothing.
  assert.throws(() => planLoad(image, machine, request, { initrd: undefined, sha256 }), (e) => e instanceof KexecError && e.code === "plan" && message.test(e.message) && e.data["field"] === "init_size");
  // kexec_file_load's prediction had said "no room for the kernel: 0x0 bytes".
  const file = predictFilePlacement({ image, machine, request: { ...request, syscall: "kexec_file_load" } });
  assert.ok(!file.ok && message.test(file.message) && /EINVAL/.test(file.message), file.ok ? "placed" : file.message);
});

test("the plan counts the command line in UTF-8 bytes, as cmdline-size does: 690 x \"日\" is 2070, over 2047", () => {
  const machine = machineFrom([{ start: MiB, size: 3n * GiB - MiB }], "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB, xloadflags: 0x7f, cmdline_size: 2047 }, tail: 0x2000 }));
  const request = { syscall: "kexec_load" as const, crash: false, cmdline: "日".repeat(690), userArch: "x86_64" as const, initrdSize: undefined };
  assert.equal(runChecks({ image, machine, request }).find((r) => r.id === "cmdline-size")!.verdict, "fail");
  assert.throws(() => planLoad(image, machine, request, { initrd: undefined, sha256 }), (e) => e instanceof KexecError && e.code === "plan" && /the command line is 2070 bytes, longer than the image's cmdline_size \(2047\)/.test(e.message));
});

test("a damaged kernel_alignment is refused by name, by the plan and by check, never planned around", () => {
  const machine = machineFrom([{ start: MiB, size: 3n * GiB - MiB }], "x86_64", false);
  const request = { syscall: "kexec_load" as const, crash: false, cmdline: "", userArch: "x86_64" as const, initrdSize: undefined };
  const cases: [bigint, RegExp][] = [
    [0n, /kernel_alignment 0x0 \(setup header offset 0x230\) is not a power of two/],
    [0x300000n, /kernel_alignment 0x300000 \(setup header offset 0x230\) is not a power of two/],
    [0x10n, /kernel_alignment 0x10 is below its own min_alignment \(2\^21/],
  ];
  for (const [alignment, message] of cases) {
    const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB, kernel_alignment: alignment }, tail: 0x2000 }));
    assert.throws(() => planLoad(image, machine, request, { initrd: undefined, sha256 }),
      (e) => e instanceof KexecError && e.code === "plan" && message.test(e.message) && e.data["field"] === "kernel_alignment" && /damaged/.test(e.hint ?? ""), `kernel_alignment ${alignment}`);
    const relocatable = runChecks({ image, machine, request }).find((r) => r.id === "relocatable")!;
    assert.equal(relocatable.verdict, "fail", `check, kernel_alignment ${alignment}`);
    assert.match(relocatable.reason, message);
  }
  // A kernel that is not relocatable runs at its fixed address: its kernel_alignment is not used.
  const fixed = readKernelImage(buildBzImage({ fields: { init_size: 8n * MiB, kernel_alignment: 0n, relocatable_kernel: 0 }, tail: 0x2000 }));
  assert.equal(runChecks({ image: fixed, machine, request }).find((r) => r.id === "relocatable")!.verdict, "ok");
  // Debian's own values: 2 MiB (amd64, min 2 MiB) and 16 MiB (686, min 8 KiB).
  for (const [alignment, min] of [[1n << 21n, 21], [1n << 24n, 13]] as const) {
    const image = readKernelImage(buildBzImage({ fields: { init_size: 64n * MiB, kernel_alignment: alignment, min_alignment: min }, tail: 0x2000 }));
    assert.equal(runChecks({ image, machine, request }).find((r) => r.id === "relocatable")!.verdict, "ok");
    assert.ok(planLoad(image, machine, request, { initrd: undefined, sha256 }).segments.find((s) => s.kind === "kernel")!.mem % alignment === 0n);
  }
});

function MiB_n(n: number): number {
  return n * 0x100000;
}

test("the new kernel's boot_params carry the EFI systab's RSDP when the running boot_params have none", () => {
  const machine = machineFrom([{ start: MiB, size: 2n * GiB }], "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 32n * MiB }, tail: 0x2000 }));
  const withEfi = { ...machine, efi: { ...machine.efi, booted: true, firmwareBits: 64 as const, acpiRsdp: 0x7f77e014n } };
  const plan = planLoad(image, withEfi, { syscall: "kexec_load", crash: false, cmdline: "", userArch: "x86_64", initrdSize: undefined }, { initrd: undefined, sha256 });
  const zeroPage = plan.segments.find((s) => s.kind === "bootparams")!.buf;
  assert.equal(new DataView(zeroPage.buffer, zeroPage.byteOffset).getBigUint64(0x70, true), 0x7f77e014n);
});

test("a kernel entered by kexec lists its setup_data pages as System RAM of their own: a segment across the seam is still in RAM", () => {
  // The iomem of 6.12 after a kexec_load from 6.1 (seen in the lab): the boot parameters page the
  // last loader left holds the RNG seed's setup_data, E820_TYPE_RESERVED_KERN, shown as System RAM.
  const split = [{ start: MiB, size: 0x7ffdc000n - MiB }, { start: 0x7ffdc000n, size: 0x1000n }, { start: 0x7ffdd000n, size: 0x3000n }];
  const machine = machineFrom(split, "x86_64", false);
  const image = readKernelImage(buildBzImage({ fields: { init_size: 32n * MiB }, tail: 0x2000 }));
  const initrd = new Uint8Array(MiB_n(70));
  const plan = planLoad(image, machine, { syscall: "kexec_load", crash: false, cmdline: "console=ttyS0", userArch: "x86_64", initrdSize: initrd.length }, { initrd, sha256 });
  assert.ok(plan.segments.some((s) => s.mem < 0x7ffdc000n && s.mem + s.memsz > 0x7ffdc000n), "a segment crosses a seam (the boot parameters, top-down under the purgatory)");
});
