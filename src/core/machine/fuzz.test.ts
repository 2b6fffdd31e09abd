/** Parsers get random and mutated input: the only thing allowed to escape is a KexecError. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { asciiBytes } from "../bytes/reader.js";
import { KexecError } from "../errors.js";
import { parseBootParams, parseBootParamsVersion } from "./bootparams.js";
import { buildMachine } from "./build.js";
import { parseCpuinfo } from "./cpuinfo.js";
import { crashkernelFromCmdline, parseCrashkernel, resolveCrashkernel } from "./crashkernel.js";
import { MACHINE_FILES } from "./files.js";
import { parseIomem } from "./iomem.js";
import * as kf from "./kernelfiles.js";
import { parseFirmwareMemmap } from "./memmap.js";
import { toMachineJson } from "./model.js";
import { renderMachine } from "./render.js";

function onlyKexecErrors(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    if (!(e instanceof KexecError)) throw e;
    assert.ok(e.message.length > 0);
  }
}

const SAMPLES: Record<string, string> = {
  iomem: "00000000-00000fff : Reserved\n00100000-bfffffff : System RAM\n  01000000-0220bb07 : Kernel code\n  2f000000-3effffff : Crash kernel\n",
  cpuinfo: "processor\t: 0\nflags\t\t: fpu pae lm la57\naddress sizes\t: 46 bits physical, 57 bits virtual\n\n",
  crashkernel: "512M-2G:64M,2G-:128M@16M",
  cmdline: "ro crashkernel=256M@16M crashkernel=1G,high crashkernel=0x10000000,low",
  meminfo: "MemTotal:       1024 kB\nHugePages_Total: 0\n",
  cpulist: "0-3,5\n",
  vmcoreinfo: "0x0000000100c66000 1024\n",
  lockdown: "none [integrity] confidentiality\n",
  version: "Linux version 6.1.0-50-686-pae (x) #1 SMP\n",
};

/** A sample with random edits: deletions, insertions of interesting characters, duplications. */
function mutated(sample: string): fc.Arbitrary<string> {
  const chars = fc.constantFrom(..."0123456789abcdefxX-:,@ \n\t[]KMGTPEkmg\0\u00ff");
  const edit = fc.tuple(fc.nat(), fc.nat({ max: 4 }), fc.array(chars, { maxLength: 4 }));
  return fc.array(edit, { minLength: 1, maxLength: 6 }).map((edits) => {
    let s = sample;
    for (const [pos, del, ins] of edits) {
      const at = pos % (s.length + 1);
      s = s.slice(0, at) + ins.join("") + s.slice(at + del);
    }
    return s;
  });
}

const anyText = (name: string) => fc.oneof(fc.string({ maxLength: 200 }), fc.fullUnicodeString({ maxLength: 50 }), mutated(SAMPLES[name]!));

test("fuzz: text parsers throw only KexecError", () => {
  const cases: [string, (t: string) => unknown][] = [
    ["iomem", parseIomem],
    ["cpuinfo", parseCpuinfo],
    ["crashkernel", parseCrashkernel],
    ["cmdline", (t) => {
      const spec = crashkernelFromCmdline(t);
      return spec && resolveCrashkernel(spec, 4n << 30n);
    }],
    ["meminfo", kf.parseMeminfo],
    ["cpulist", kf.parseCpuList],
    ["vmcoreinfo", kf.parseVmcoreinfo],
    ["lockdown", kf.parseLockdown],
    ["version", kf.parseProcVersion],
    ["version", parseBootParamsVersion],
    ["cpulist", kf.parseFlag],
    ["cpulist", kf.parseInteger],
    ["cpulist", kf.parseByteCount],
    ["vmcoreinfo", kf.parseAddress],
    ["cpulist", kf.parseAddressBits],
    ["vmcoreinfo", (t) => parseFirmwareMemmap([{ index: "0", start: t, end: t, type: t }])],
  ];
  for (const [name, parse] of cases) {
    fc.assert(fc.property(anyText(name), (t) => onlyKexecErrors(() => parse(t))), { numRuns: 300 });
  }
});

test("fuzz: binary parsers throw only KexecError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4200 }), (bytes) => {
      onlyKexecErrors(() => parseBootParams(bytes));
      onlyKexecErrors(() => kf.parseSecureBootVariable(bytes.subarray(0, 6)));
    }),
    { numRuns: 300 },
  );
});

test("fuzz: buildMachine over random file sets throws only KexecError, and what it builds renders and serialises", () => {
  const paths = MACHINE_FILES.flatMap((s) => (s.kind === "file" ? [s.path] : s.kind === "glob" ? [`${s.dir}/0/${s.files[0]}`, `${s.dir}/cpu0/${s.files[0]}`] : []));
  const samplesFor = (p: string): string =>
    p.endsWith("iomem") ? SAMPLES.iomem! : p.endsWith("cpuinfo") ? SAMPLES.cpuinfo! : p.endsWith("cmdline") ? SAMPLES.cmdline! : p.endsWith("meminfo") ? SAMPLES.meminfo! : "1\n";
  fc.assert(
    fc.property(fc.subarray(paths), fc.array(fc.nat(), { minLength: paths.length, maxLength: paths.length }), fc.boolean(), (chosen, seeds, efi) => {
      const files: Record<string, Uint8Array> = {};
      chosen.forEach((p, i) => {
        const base = samplesFor(p);
        const cut = (seeds[i] ?? 0) % (base.length + 1);
        files[p] = asciiBytes((seeds[i] ?? 0) % 3 === 0 ? base.slice(0, cut) : base);
      });
      onlyKexecErrors(() => {
        const m = buildMachine({ files, dirs: efi ? ["sys/firmware/efi"] : [] });
        JSON.stringify(toMachineJson(m));
        renderMachine(m);
      });
    }),
    { numRuns: 300 },
  );
});
