/**
 * The argument parser fuzzed (src/core/testing/fuzz.ts says the rule): command lines built from
 * the flag table's own spellings (long, short, aliases, bundled, with and without values, "--")
 * and the real ones distro scripts run, shuffled, cut and mixed with junk. Whatever comes in,
 * the parser either returns flags from the table and the words it was given, or a usage error;
 * and load flags with any values become the one Request, its checks and its placement on a real
 * guest snapshot, or a KexecError that blames the input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { runChecks } from "../core/check/index.js";
import { KexecError } from "../core/errors.js";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import { placeLoad } from "../core/plan/plan.js";
import { onlyKexecErrors, refusals } from "../core/testing/fuzz.js";
import { readMachine } from "../node/machine.js";
import { routeFor } from "./commands.js";
import { FLAGS, has, parseArgs, value } from "./options.js";
import { loadRequest } from "./request.js";

/** Command lines as the peers' callers write them (kdump-tools, kdump-utils, systemd, makedumpfile users). */
const REAL: readonly (readonly string[])[] = [
  ["-p", "--command-line=root=/dev/vda1 ro irqpoll nr_cpus=1 reset_devices", "--initrd=/var/lib/kdump/initrd.img-6.1.0-57-amd64", "/var/lib/kdump/vmlinuz-6.1.0-57-amd64"],
  ["-s", "-p", "--command-line=BOOT_IMAGE=/vmlinuz console=ttyS0", "--initrd=/boot/initrd.img", "/boot/vmlinuz"],
  ["-p", "-u"], ["-s", "-p", "-u"], ["-l", "/boot/vmlinuz", "--initrd=/boot/initrd.img", "--reuse-cmdline"], ["-e"], ["-S"], ["-l", "-t", "bzImage64", "/boot/vmlinuz"],
  ["--load-panic", "--append", "console=ttyS0", "--ramdisk", "/boot/initrd", "/boot/vmlinuz"], ["-lfd", "/boot/vmlinuz"],
  ["vmcore", "save", "-d", "31", "--compress", "lzo", "--format", "flat", "/proc/vmcore", "/var/crash/dump"],
  ["vmcore", "dmesg", "/var/crash/vmcore"], ["plan", "-p", "--json", "--root", "/tmp/snap", "/boot/vmlinuz"], ["check", "-l", "--mem-min=0x1000000", "--mem-max", "0x7fffffff", "/boot/vmlinuz"],
  ["lab", "--from", "amd64-6.1", "--to", "amd64-6.12", "--crash", "--crashkernel", "256M@1968M"],
];

const spellings = FLAGS.flatMap((f) => [`--${f.long}`, ...(f.aliases ?? []).map((a) => `--${a}`), ...(f.short !== undefined ? [`-${f.short}`] : [])]);
const word = fc.oneof(
  { arbitrary: fc.constantFrom(...spellings), weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom(...spellings), fc.string({ maxLength: 12 })).map(([s, v]) => (s.startsWith("--") ? `${s}=${v}` : `${s}${v}`)), weight: 2 },
  { arbitrary: fc.constantFrom("--", "-", "---", "--=", "-=x", "=", "", "vmcore", "save", "plan", "check", "/boot/vmlinuz", "0x1000", "-1", "--mem-min=-1"), weight: 2 },
  { arbitrary: fc.string({ maxLength: 10 }), weight: 1 },
  { arbitrary: fc.fullUnicodeString({ maxLength: 6 }).map((s) => `-${s}`), weight: 1 },
);
const argv = fc.oneof(
  fc.array(word, { maxLength: 10 }),
  fc.tuple(fc.constantFrom(...REAL), fc.array(fc.tuple(fc.nat(12), word), { maxLength: 3 }), fc.nat(12)).map(([line, inserts, cut]) => {
    const out = [...line];
    for (const [at, w] of inserts) out.splice(at % (out.length + 1), 0, w);
    return out.slice(0, Math.max(1, out.length - (cut % 3)));
  }),
);

test("the real command lines the seeds start from parse, or are refused as usage errors", () => {
  for (const line of REAL) onlyKexecErrors(() => parseArgs(line), line.join(" "));
  assert.equal(value(parseArgs(REAL[0]!), "append"), "root=/dev/vda1 ro irqpoll nr_cpus=1 reset_devices");
  assert.ok(has(parseArgs(REAL[2]!), "unload"));
});

test("fuzz: the argument parser on flag-table spellings, real command lines and junk", (t) => {
  const known = new Set(FLAGS.map((f) => f.long));
  refusals(t, argv, 3000, (args) => onlyKexecErrors(() => {
    try {
      const parsed = parseArgs(args);
      for (const name of parsed.flags.keys()) assert.ok(known.has(name), `${name} is a flag of the table`);
      for (const p of parsed.positionals) assert.ok(args.includes(p), `positional ${JSON.stringify(p)} was one of the words`);
      for (const f of FLAGS) if (f.value === undefined && has(parsed, f.long)) assert.equal(value(parsed, f.long), "", `--${f.long} takes no value`);
    } catch (e) {
      if (e instanceof KexecError) assert.equal(e.code, "usage", e.message);
      throw e;
    }
  }, "command line"), 0.2);
});

const LOAD_FLAGS = ["--append", "--command-line", "--mem-min", "--mem-max", "-t", "--type", "--userspace", "--elf32-core-headers", "--elf64-core-headers", "--entry-32bit", "--reuse-cmdline", "-s", "-c", "-a", "-f", "-d", "--json"];
const loadValue = fc.oneof(
  fc.constantFrom("0", "0x0", "-1", "0x100000000", "0xffffffffffffffff", "0x10000000000000000", "1e9", "0b101", "4096K", "1G", "bzImage64", "bzImage", "elf-x86_64", "elf-x86", "multiboot-x86", "x86_64", "i386", "arm64", "", " "),
  fc.bigUintN(72).map((v) => `0x${v.toString(16)}`),
  fc.string({ maxLength: 12 }),
);
const loadArgv = fc.tuple(fc.constantFrom("-l", "-p"), fc.array(fc.tuple(fc.constantFrom(...LOAD_FLAGS), loadValue, fc.boolean()), { maxLength: 5 }))
  .map(([action, flags]) => [action, ...flags.flatMap(([f, v, joined]) => (joined && f.startsWith("--") ? [`${f}=${v}`] : [f, v])), "/boot/vmlinuz"]);

test("fuzz: load flags with any values become a Request, checks and a placement on a real guest snapshot, or a KexecError", async (t) => {
  const snapshots = new URL("../../testdata/snapshots/", import.meta.url).pathname;
  const machines = await Promise.all(["qemu-amd64-6.1-5level-crash1968M", "qemu-686-pae-6.1-crash128M"].map((n) => readMachine(`${snapshots}${n}`)));
  const images = [
    readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 })),
    readKernelImage(buildBzImage({ fields: { xloadflags: 0, init_size: 0x1a5d000n, kernel_alignment: 0x1000000n, pref_address: 0x1000000n }, tail: 0x4000 })),
  ];
  refusals(t, fc.tuple(loadArgv, fc.nat(1), fc.nat(1)), 400, ([args, m, i]) => onlyKexecErrors(() => {
    const parsed = parseArgs(args);
    const { operands } = routeFor(parsed);
    const request = loadRequest(parsed, machines[m]!, images[i]!, undefined);
    runChecks({ image: images[i]!, machine: machines[m]!, request, isRoot: true });
    placeLoad(images[i]!, machines[m]!, request);
    assert.deepEqual(operands.slice(-1), ["/boot/vmlinuz"]);
  }, "load command line"), 0.1);
});
