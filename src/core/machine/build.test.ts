import { test } from "node:test";
import assert from "node:assert/strict";
import { asciiBytes } from "../bytes/reader.js";
import { EXIT_STATUS, KexecError } from "../errors.js";
import { buildMachine } from "./build.js";
import type { MachineFiles } from "./files.js";
import { toMachineJson } from "./model.js";
import { renderMachine } from "./render.js";

function machineFiles(files: Record<string, string | Uint8Array>, dirs: string[] = []): MachineFiles {
  const out: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(files)) out[k] = typeof v === "string" ? asciiBytes(v) : v;
  return { files: out, dirs };
}

const cpuinfo = (flags: string, virtualBits = 48) =>
  `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: ${flags}\naddress sizes\t: 46 bits physical, ${virtualBits} bits virtual\n\n`;

const IOMEM = `00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-bfffffff : System RAM
  01000000-01ffffff : Kernel code
  02000000-027fffff : Kernel rodata
  02800000-02bfffff : Kernel data
  02c00000-02ffffff : Kernel bss
  b0000000-bfffffff : Crash kernel
c0000000-febfffff : PCI Bus 0000:00
100000000-43fffffff : System RAM
  400000000-41fffffff : Crash kernel
`;

const X86_64 = {
  "proc/sys/kernel/arch": "x86_64\n",
  "proc/version": "Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.170-1\n",
  "proc/sys/kernel/osrelease": "6.1.0-50-amd64\n",
  "proc/iomem": IOMEM,
  "proc/cmdline": "BOOT_IMAGE=/vmlinuz root=/dev/vda1 crashkernel=512M,high crashkernel=256M,low\n",
  "proc/meminfo": "MemTotal:       16000000 kB\n",
  "sys/kernel/kexec_loaded": "0\n",
  "sys/kernel/kexec_crash_loaded": "1\n",
  "sys/kernel/kexec_crash_size": "805306368\n",
  "proc/sys/kernel/kexec_load_disabled": "0\n",
  "sys/kernel/security/lockdown": "[none] integrity confidentiality\n",
  "sys/devices/system/cpu/possible": "0-1\n",
  "sys/devices/system/cpu/present": "0-1\n",
  "sys/devices/system/cpu/cpu0/crash_notes": "47fc14a38\n",
  "sys/devices/system/cpu/cpu0/crash_notes_size": "440\n",
  "sys/devices/system/cpu/cpu1/crash_notes": "47fc34a38\n",
  "sys/devices/system/cpu/cpu1/crash_notes_size": "440\n",
  "sys/kernel/vmcoreinfo": "0x000000000c8b2000 1024\n",
  "sys/firmware/efi/fw_platform_size": "64\n",
  "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c": new Uint8Array([6, 0, 0, 0, 1]),
};

test("machine: a 64-bit EFI machine with ,high and ,low crash regions", () => {
  const m = buildMachine(machineFiles({ ...X86_64, "proc/cpuinfo": cpuinfo("fpu pae lm la57"), "sys/firmware/efi/systab": "SMBIOS3=0x7f1b8000\nACPI20=0x7f77e014\nACPI=0x7f77e000\n" }, ["sys/firmware/efi"]));
  assert.equal(m.kernelArch, "x86_64");
  assert.equal(m.kernelArchEvidence, "/proc/sys/kernel/arch = x86_64");
  assert.equal(m.pagingLevels, 5);
  assert.equal(m.memorySource, "iomem");
  assert.equal(m.memory.length, 5);
  assert.equal(m.systemRam, 0x9ec00n + 0xbff00000n + 0x340000000n);
  assert.deepEqual(m.crashRegions, [
    { start: 0xb0000000n, size: 0x10000000n },
    { start: 0x400000000n, size: 0x20000000n },
  ]);
  assert.deepEqual(m.kernelImage.code, { start: 0x1000000n, size: 0x1000000n });
  assert.equal(m.crashkernel?.resolution?.ok, true);
  assert.equal(m.crashkernel?.resolution?.high, true);
  assert.equal(m.crashkernel?.resolution?.lowSize, 256n << 20n);
  assert.deepEqual(m.kexec, { supported: true, loaded: false, crashLoaded: true, crashSize: 805306368n, loadDisabled: false, loadLimitPanic: null, loadLimitReboot: null });
  assert.equal(m.lockdown, "none");
  assert.deepEqual(m.efi, { booted: true, firmwareBits: 64, acpiRsdp: 0x7f77e014n, fwVendor: null, runtimeServices: null, configTable: null, smbios: null, runtimeMap: null });
  assert.equal(m.secureBoot, true);
  assert.deepEqual(m.crashNotes.map((c) => [c.cpu, c.address, c.size]), [[0, 0x47fc14a38n, 440n], [1, 0x47fc34a38n, 440n]]);
  assert.equal(m.memTotal, 16000000n * 1024n);

  const json = toMachineJson(m);
  // The contract other tools read.
  assert.equal(json.kernelArch, "x86_64");
  assert.equal(json.pagingLevels, 5);
  assert.equal(json.memorySource, "iomem");
  assert.deepEqual(json.memory[1], { start: "0x1000", size: "0x9ec00", type: "System RAM" });
  assert.deepEqual(json.crashRegions, [{ start: "0xb0000000", size: "0x10000000" }, { start: "0x400000000", size: "0x20000000" }]);
  assert.deepEqual([json.kexec.loaded, json.kexec.crashLoaded, json.kexec.loadDisabled], [false, true, false]);
  assert.match(json.cmdline!, /crashkernel=512M,high/);
  assert.equal(json.iomem!.tree[2]!.children[4]!.name, "Crash kernel");
  // Round trip through JSON text keeps everything (no bigint left behind).
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json);

  const text = renderMachine(m);
  assert.match(text, />>> Crash kernel  0x00000000b0000000-0x00000000c0000000  256 MiB/);
  assert.match(text, />>> Crash kernel  0x0000000400000000-0x0000000420000000  512 MiB  \(above 4G\)/);
  assert.match(text, /paging +5-level \(la57 in the cpuinfo flags\)/);
  assert.match(text, /secure boot +yes/);
});

test("machine: no5lvl leaves 57-bit address sizes but no la57, which is 4-level", () => {
  const m = buildMachine(machineFiles({ ...X86_64, "proc/cpuinfo": cpuinfo("fpu pae lm", 57) }));
  assert.equal(m.cpu?.virtualBits, 57);
  assert.equal(m.pagingLevels, 4);
});

test("machine: 32-bit kernels — PAE build, non-PAE build, and not knowable", () => {
  const i386 = (release: string, flags: string) =>
    buildMachine(
      machineFiles({
        "proc/sys/kernel/arch": "i686\n",
        "proc/sys/kernel/osrelease": `${release}\n`,
        "proc/version": `Linux version ${release} (x) #1 SMP\n`,
        "proc/cpuinfo": cpuinfo(flags),
      }),
    );
  const pae = i386("6.1.0-50-686-pae", "fpu pae lm");
  assert.deepEqual([pae.kernelArch, pae.pagingLevels], ["i386", 3]);
  assert.equal(i386("6.1.0-50-686", "fpu pae lm").pagingLevels, 2);
  assert.equal(i386("6.1.0-custom", "fpu lm").pagingLevels, 2, "no PAE on the CPU means no PAE kernel");
  const unknown = i386("6.1.0-custom", "fpu pae lm");
  assert.equal(unknown.pagingLevels, null);
  assert.ok(unknown.facts.some((f) => /paging levels unknown/.test(f.meaning)));
});

test("machine: arch from weaker evidence when /proc/sys/kernel/arch is missing, never from the user space", () => {
  const bits = buildMachine(machineFiles({ "sys/kernel/address_bits": "32\n" }));
  assert.deepEqual([bits.kernelArch, bits.kernelArchEvidence], ["i386", "/sys/kernel/address_bits = 32"]);
  const version = buildMachine(machineFiles({ "proc/version": "Linux version 6.1.0-50-amd64 (x) #1\n" }));
  assert.equal(version.kernelArch, "x86_64");
  const none = buildMachine(machineFiles({ "proc/version": "Linux version 6.18.44-fc (x) #1\n" }));
  assert.equal(none.kernelArch, null);
  assert.equal(none.pagingLevels, null);
});

test("machine: an empty root is a model full of unknowns, not a crash", () => {
  const m = buildMachine(machineFiles({}));
  assert.equal(m.kernelArch, null);
  assert.equal(m.memorySource, null);
  assert.deepEqual(m.memory, []);
  assert.equal(m.cmdline, null);
  assert.equal(m.efi.booted, null, "without sysfs the EFI question is open");
  assert.equal(m.kexec.supported, null);
  assert.ok(m.facts.some((f) => f.path === "/proc/iomem"));
  assert.ok(m.facts.some((f) => f.path === "/sys/firmware/memmap/N/{start,end,type}"));
  assert.match(renderMachine(m), /Not known/);
});

test("machine: hidden iomem falls back to the firmware memmap and says why", () => {
  const m = buildMachine(
    machineFiles({
      "proc/iomem": "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n",
      "sys/firmware/memmap/0/start": "0x0\n",
      "sys/firmware/memmap/0/end": "0x9fbff\n",
      "sys/firmware/memmap/0/type": "System RAM\n",
      "sys/firmware/memmap/10/start": "0x100000000\n",
      "sys/firmware/memmap/10/end": "0x13fffffff\n",
      "sys/firmware/memmap/10/type": "System RAM\n",
      "sys/firmware/memmap/2/start": "0x100000\n",
      "sys/firmware/memmap/2/end": "0xbfffffff\n",
      "sys/firmware/memmap/2/type": "Reserved\n",
    }),
  );
  assert.equal(m.iomem?.addressesHidden, true);
  assert.equal(m.memorySource, "firmware-memmap");
  assert.deepEqual(m.memory.map((r) => r.start), [0n, 0x100000n, 0x100000000n]);
  assert.equal(m.systemRam, 0x9fc00n + 0x40000000n);
  assert.ok(m.facts.some((f) => /addresses hidden/.test(f.meaning)));
  assert.equal(m.efi.booted, false);
  assert.equal(m.kexec.supported, false, "sysfs without kexec_loaded: no kexec in this kernel");
});

test("machine: a firmware memmap entry without one of start, end or type is a damaged snapshot (65) naming the file, missing or unreadable", () => {
  const entry = { "sys/firmware/memmap/0/start": "0x0\n", "sys/firmware/memmap/0/end": "0x9fbff\n", "sys/firmware/memmap/0/type": "System RAM\n" };
  const display = (rel: string) => `/snap/${rel}`;
  for (const file of ["start", "end", "type"]) {
    const rel = `sys/firmware/memmap/0/${file}`;
    const files = machineFiles(entry);
    delete files.files[rel];
    const cases: [MachineFiles, string][] = [[files, "missing"], [{ ...files, unreadable: [rel], errors: { [rel]: "EISDIR" } }, "unreadable \\(a directory, not a file\\)"]];
    for (const [input, why] of cases) {
      assert.throws(() => buildMachine(input, { displayPath: display }), (e: unknown) => {
        assert.ok(e instanceof KexecError);
        assert.equal(e.code, "parse", `${file}, ${why}: a data error, as a start or end that does not parse`);
        assert.equal(EXIT_STATUS[e.code], 65);
        assert.match(e.message, new RegExp(`^/snap/${rel}: ${why}, but /snap/sys/firmware/memmap/0 has other files$`));
        assert.equal(e.data.file, `/snap/${rel}`);
        assert.equal(e.data.field, file);
        assert.match(e.hint ?? "", /every firmware memmap entry has start, end and type .*re-take the snapshot/);
        return true;
      });
    }
  }
});

test("machine: an EFI runtime-map entry without one of its files is a damaged snapshot (65), as a memmap entry is", () => {
  const entry = { type: "0x5\n", phys_addr: "0x7f000000\n", virt_addr: "0xfffffffeff000000\n", num_pages: "0x10\n", attribute: "0x800000000000000f\n" };
  for (const file of Object.keys(entry)) {
    const files = Object.fromEntries(Object.entries(entry).filter(([f]) => f !== file).map(([f, v]) => [`sys/firmware/efi/runtime-map/0/${f}`, v]));
    assert.throws(() => buildMachine(machineFiles(files, ["sys/firmware/efi", "sys/firmware/efi/runtime-map"])), (e: unknown) => {
      assert.ok(e instanceof KexecError);
      assert.equal(e.code, "parse", file);
      assert.equal(EXIT_STATUS[e.code], 65);
      assert.equal(e.message, `/sys/firmware/efi/runtime-map/0/${file}: missing, but /sys/firmware/efi/runtime-map/0 has other files`);
      assert.equal(e.data.field, file);
      assert.match(e.hint ?? "", /re-take the snapshot/);
      return true;
    });
  }
});

test("machine: an unreadable file says why: run as root only when permission was refused", () => {
  const input = { ...machineFiles(X86_64), unreadable: ["proc/iomem", "sys/kernel/boot_params/data", "proc/cpuinfo"],
    errors: { "proc/iomem": "EISDIR", "sys/kernel/boot_params/data": "a pipe (FIFO)", "proc/cpuinfo": "EACCES" } };
  for (const rel of input.unreadable) delete input.files[rel];
  const facts = new Map(buildMachine(input).facts.filter((f) => f.meaning.startsWith("unreadable")).map((f) => [f.path, f.meaning]));
  assert.match(facts.get("/proc/iomem") ?? "", /^unreadable \(a directory, not a file\): /);
  assert.match(facts.get("/sys/kernel/boot_params/data") ?? "", /^unreadable \(a pipe \(FIFO\)\): /);
  assert.match(facts.get("/proc/cpuinfo") ?? "", /^unreadable \(run as root\): /);
});

test("machine: /proc/cmdline is read as UTF-8, so --reuse-cmdline hands the same bytes back", () => {
  const m = buildMachine(machineFiles({ ...X86_64, "proc/cmdline": new TextEncoder().encode("root=/dev/vda1 console=ttyS0 é日\n") }));
  assert.equal(m.cmdline, "root=/dev/vda1 console=ttyS0 é日");
});

test("machine: a file that exists but does not parse is an error naming it", () => {
  assert.throws(
    () => buildMachine(machineFiles({ "proc/iomem": "00000000-00000fff : ok\ngarbage\n" }), { displayPath: (rel) => `/snap/${rel}` }),
    (e: unknown) => e instanceof KexecError && e.code === "parse" && e.data.file === "/snap/proc/iomem" && e.data["line"] === 2 && /^\/snap\/proc\/iomem: line 2/.test(e.message),
  );
  assert.throws(() => buildMachine(machineFiles({ "sys/kernel/kexec_loaded": "maybe\n" })), (e: unknown) => e instanceof KexecError && e.data.file === "/sys/kernel/kexec_loaded");
});

test("machine: crash_notes_size is read once (the kernel prints sizeof(note_buf_t) for every CPU), CPUs in numeric order", () => {
  const cpus: Record<string, string> = {};
  for (const cpu of [10, 2, 1, 0]) cpus[`sys/devices/system/cpu/cpu${cpu}/crash_notes`] = `${(0x1000 * (cpu + 1)).toString(16)}\n`;
  const m = buildMachine(machineFiles({ ...cpus, "sys/devices/system/cpu/cpu0/crash_notes_size": "368\n" }));
  assert.deepEqual(m.crashNotes.map((c) => [c.cpu, c.address, c.size]), [[0, 0x1000n, 368n], [1, 0x2000n, 368n], [2, 0x3000n, 368n], [10, 0xb000n, 368n]]);
  // A kernel before crash_notes_size (4.x): no size, as before.
  assert.deepEqual(buildMachine(machineFiles(cpus)).crashNotes.map((c) => c.size), [null, null, null, null]);
  // A bad one is named when it fails, with the root the caller shows.
  assert.throws(() => buildMachine(machineFiles({ ...cpus, "sys/devices/system/cpu/cpu0/crash_notes_size": "big\n" }), { displayPath: (rel) => `/snap/${rel}` }),
    (e: unknown) => e instanceof KexecError && e.data.file === "/snap/sys/devices/system/cpu/cpu0/crash_notes_size");
});

test("machine: a bad crashkernel= is recorded as the kernel treats it (ignored), not thrown", () => {
  const m = buildMachine(machineFiles({ "proc/cmdline": "root=/dev/sda crashkernel=256Q\n" }));
  assert.match(m.crashkernel?.error?.message ?? "", /crashkernel=256Q: unexpected 'Q' at character 4/);
  assert.match(renderMachine(m), /invalid, the kernel ignored it/);
});
