import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { KexecError } from "../core/errors.js";
import { MACHINE_FILES } from "../core/machine/files.js";
import { toMachineJson } from "../core/machine/model.js";
import { buildElfCoreHeader } from "../core/plan/elfcorehdr.js";
import { KERNEL_LAYOUT_FILE, readKernelLayout } from "./kernel-layout.js";
import { readMachine } from "./machine.js";
import { SNAPSHOT_MANIFEST, snapshot, type SnapshotManifest } from "./snapshot.js";

async function tree(root: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), content);
  }
}

/** What a busybox initramfs has: /proc and /sys, no /etc, no efivars, no securityfs. */
const INITRAMFS = {
  "proc/iomem": "00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n00100000-7fffffff : System RAM\n  01000000-01ffffff : Kernel code\n  70000000-7fffffff : Crash kernel\n",
  "proc/cmdline": "console=ttyS0 panic=-1 nokaslr crashkernel=256M@1792M\n",
  "proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu pae lm la57\naddress sizes\t: 52 bits physical, 57 bits virtual\n\n",
  "proc/version": "Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\n",
  "proc/sys/kernel/arch": "x86_64\n",
  "proc/kallsyms": "ffffffff81000000 T _text\n",
  "sys/kernel/kexec_loaded": "0\n",
  "sys/kernel/kexec_crash_loaded": "0\n",
  "sys/kernel/boot_params/data": new Uint8Array(4096),
  "sys/devices/system/cpu/cpu0/crash_notes": "7fc14a38\n",
  "sys/devices/system/cpu/cpu0/online": "1\n",
  "sys/devices/system/cpu/cpufreq/boost": "0\n",
  "sys/firmware/memmap/0/start": "0x0\n",
  "sys/firmware/memmap/0/end": "0x9fbff\n",
  "sys/firmware/memmap/0/type": "System RAM\n",
};

test("snapshot of a minimal initramfs-like root copies exactly the listed files and replays to the same model", async () => {
  const root = await mkdtemp(join(tmpdir(), "kexec-ts-root-"));
  const dest = join(await mkdtemp(join(tmpdir(), "kexec-ts-dest-")), "snap");
  try {
    await tree(root, INITRAMFS);
    const manifest = await snapshot(root, dest);
    assert.deepEqual(toMachineJson(await readMachine(dest)), toMachineJson(await readMachine(root)));
    // Only listed paths are copied: kallsyms, cpu0/online and cpufreq stay behind.
    assert.equal(existsSync(join(dest, "proc/kallsyms")), false);
    assert.equal(existsSync(join(dest, "sys/devices/system/cpu/cpu0/online")), false);
    assert.equal(existsSync(join(dest, "sys/devices/system/cpu/cpu0/crash_notes")), true);
    assert.deepEqual(manifest.files, Object.keys(INITRAMFS).filter((p) => !/kallsyms|online|cpufreq/.test(p)).sort());
    const written = JSON.parse(readFileSync(join(dest, SNAPSHOT_MANIFEST), "utf8")) as SnapshotManifest;
    assert.equal(written.tool, "kexec-ts");
    assert.match(written.version, /^\d+\.\d+\.\d+/);
    assert.ok(written.absent.includes("sys/kernel/security/lockdown"));
    assert.ok(written.absent.includes("sys/firmware/efi"));
    // Every absent or copied path is one the reader uses.
    const known = MACHINE_FILES.map((s) => (s.kind === "glob" ? s.dir : s.path));
    for (const p of [...written.files, ...written.absent]) assert.ok(known.some((k) => p === k || p.startsWith(`${k}/`)), p);
    const m = await readMachine(dest);
    assert.equal(m.pagingLevels, 5);
    assert.deepEqual(m.crashRegions, [{ start: 0x70000000n, size: 0x10000000n }]);
    assert.equal(m.crashkernel?.resolution?.offset, 1792n << 20n);
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(dirname(dest), { recursive: true, force: true });
  }
});

test("snapshot keeps an existing but empty /sys/firmware/efi (an EFI boot) through git", async () => {
  const root = await mkdtemp(join(tmpdir(), "kexec-ts-root-"));
  const dest = join(root, "..", `${root.split("/").pop()}-dest`);
  try {
    await tree(root, { "proc/version": "Linux version 6.1.0-50-amd64 (x) #1\n" });
    await mkdir(join(root, "sys/firmware/efi"), { recursive: true });
    await snapshot(root, dest);
    assert.equal(existsSync(join(dest, "sys/firmware/efi/.keep")), true);
    assert.equal((await readMachine(dest)).efi.booted, true);
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(dest, { recursive: true, force: true });
  }
});

test("snapshot refuses a non-empty destination", async () => {
  const root = await mkdtemp(join(tmpdir(), "kexec-ts-root-"));
  try {
    await tree(root, { "old/file": "x" });
    await assert.rejects(snapshot(root, join(root, "old")), (e: unknown) => e instanceof KexecError && e.code === "usage" && /not empty/.test(e.message));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a snapshot into a directory that cannot be made (under /proc, through a dangling link) is refused at once, naming it", async () => {
  const root = await mkdtemp(join(tmpdir(), "kexec-ts-root-"));
  try {
    await tree(root, INITRAMFS);
    // mkdir's { recursive: true } retried these forever in Node 18 and 20: the command hung.
    await symlink(join(root, "no-such-dir", "x"), join(root, "dangling"));
    for (const [dest, where] of [["/proc/kexec-ts-no-such-dir/snap", "/proc/kexec-ts-no-such-dir"], [join(root, "dangling", "snap"), join(root, "dangling")]] as const) {
      await assert.rejects(snapshot(root, dest), (e: unknown) => e instanceof KexecError && e.code === "io" && e.data.file === join(dest, "proc/cmdline")
        && e.data.errno === "ENOENT" && e.message.includes(`'${where}'`) && e.hint !== undefined, dest);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("snapshot --tar: the archive replays to the same machine model as the directory, in the core alone", async () => {
  const { snapshotTar } = await import("./snapshot.js");
  const { machineFilesFromArchive } = await import("../core/machine/snapshot-archive.js");
  const { buildMachine } = await import("../core/machine/build.js");
  const here = new URL("../../testdata/snapshots/", import.meta.url).pathname;
  const dir = await mkdtemp(join(tmpdir(), "kexec-ts-tar-"));
  try {
    for (const name of ["qemu-amd64-6.1-5level-crash1968M", "qemu-686-pae-6.1-crash128M", "qemu-amd64-6.1-high-6G"]) {
      const tar = join(dir, `${name}.tar`);
      const manifest = await snapshotTar(join(here, name), tar);
      assert.ok(manifest.files.includes("proc/iomem"));
      const archive = machineFilesFromArchive(new Uint8Array(readFileSync(tar)), tar);
      assert.equal(archive.manifest?.root, join(here, name));
      const fromTar = toMachineJson(buildMachine(archive.files));
      const fromDir = toMachineJson(await readMachine(join(here, name)));
      // Facts name files the same way; everything else must be identical.
      assert.deepEqual(fromTar, fromDir, name);
      // Gzipped (tar czf, or gzip on the archive) it is the same snapshot.
      const gz = machineFilesFromArchive(new Uint8Array(gzipSync(readFileSync(tar))), `${tar}.gz`);
      assert.deepEqual(toMachineJson(buildMachine(gz.files)), fromDir, `${name}.tar.gz`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a snapshot archive that is not one is refused with what it is and a hint", async () => {
  const { machineFilesFromArchive } = await import("../core/machine/snapshot-archive.js");
  const { writeTar } = await import("../core/archive/tar.js");
  const notTar = new TextEncoder().encode("just some text, no tar here\n".repeat(40));
  assert.throws(() => machineFilesFromArchive(notTar, "x.tar"), (e: unknown) => e instanceof KexecError && /x\.tar: not a tar archive \(no "ustar" magic at offset 257\)/.test(e.message) && /snapshot --tar/.test(e.hint ?? ""));
  const other = writeTar([{ name: "etc/hostname", type: "file", data: new TextEncoder().encode("box\n") }]);
  assert.throws(() => machineFilesFromArchive(other, "y.tar"), (e: unknown) => e instanceof KexecError && /a tar archive, but not a kexec-ts snapshot/.test(e.message));
  const good = writeTar([{ name: "proc/iomem", type: "file", data: new TextEncoder().encode("00000000-00000fff : Reserved\n") }]);
  assert.throws(() => machineFilesFromArchive(good.subarray(0, 530), "cut.tar"), (e: unknown) => e instanceof KexecError && /cut\.tar: tar: entry at offset 0x0 needs 29 bytes of data, the archive ends first/.test(e.message));
});

test("a snapshot keeps what -p needs from /proc/kcore (kernel-layout.json), and --root replays it", async () => {
  const root = await mkdtemp(join(tmpdir(), "kexec-ts-root-"));
  const dest = join(await mkdtemp(join(tmpdir(), "kexec-ts-snap-")), "snap");
  try {
    // /proc/kcore's header as a KASLR'd kernel shows it: the text mapping and the direct map at a random page_offset_base.
    const pageOffset = 0xffff9c4d80000000n;
    const kcore = buildElfCoreHeader({ elfClass: 64, notes: [], loads: [
      { paddr: 0x2a000000n, size: 0x2800000n, vaddr: 0xffffffffa6000000n },
      { paddr: 0x100000n, size: 0x7ff00000n, vaddr: pageOffset + 0x100000n },
    ] });
    await tree(root, { ...INITRAMFS, "proc/kcore": kcore });
    const machine = await readMachine(root);
    const live = readKernelLayout(root, machine);
    assert.equal(live.source, "/proc/kcore");
    assert.equal(live.pageOffset, pageOffset);
    const manifest = await snapshot(root, dest);
    assert.deepEqual(manifest.kernelLayout, { file: KERNEL_LAYOUT_FILE });
    assert.ok(!existsSync(join(dest, "proc/kcore")), "kcore itself is not copied");
    const replayed = readKernelLayout(dest, await readMachine(dest));
    assert.deepEqual({ ...replayed, source: "" }, { ...live, source: "" });
    assert.match(replayed.source, /when the snapshot was taken \(kernel-layout\.json\)/);
    // A file that is there but says nothing a kernel could have is refused by its path, not replaced by the defaults.
    await writeFile(join(dest, KERNEL_LAYOUT_FILE), "null\n");
    assert.throws(() => readKernelLayout(dest, machine), (e: unknown) => e instanceof KexecError && e.code === "parse" && e.message === `${join(dest, KERNEL_LAYOUT_FILE)}: holds null, expected a JSON object`);
    // A device there is refused by kind: a link to /dev/zero was read until the process aborted (std::bad_alloc).
    await rm(join(dest, KERNEL_LAYOUT_FILE));
    await symlink("/dev/null", join(dest, KERNEL_LAYOUT_FILE));
    assert.throws(() => readKernelLayout(dest, machine), (e: unknown) => e instanceof KexecError && e.code === "io" && e.message === `${join(dest, KERNEL_LAYOUT_FILE)}: cannot read: a character device, not a file`);
    // A FIFO there, or at proc/kcore, blocked the open for ever: in a child with a timeout, so a regression fails instead of hanging.
    await rm(join(dest, KERNEL_LAYOUT_FILE));
    spawnSync("mkfifo", [join(dest, KERNEL_LAYOUT_FILE), join(dest, "proc/kcore")]);
    const child = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { layoutFromKcore, readKernelLayout } from ${JSON.stringify(new URL("./kernel-layout.js", import.meta.url).href)};
       console.log(JSON.stringify(layoutFromKcore(${JSON.stringify(dest)})));
       import { readMachine } from ${JSON.stringify(new URL("./machine.js", import.meta.url).href)};
       try { readKernelLayout(${JSON.stringify(dest)}, await readMachine(${JSON.stringify(dest)})); } catch (e) { console.log(e.message); }`], { encoding: "utf8", timeout: 20_000 });
    assert.deepEqual(child.stdout.trim().split("\n"), [JSON.stringify({ why: `${join(dest, "proc/kcore")}: a pipe (FIFO)` }), `${join(dest, KERNEL_LAYOUT_FILE)}: cannot read: a pipe (FIFO), not a file`], `${child.error?.message ?? ""} ${child.stderr}`);
    await rm(join(dest, "proc/kcore"));
    // Without it (a snapshot taken without root), the replay says what it assumed.
    await rm(join(dest, KERNEL_LAYOUT_FILE));
    const assumed = readKernelLayout(dest, await readMachine(dest));
    assert.notEqual(assumed.pageOffset, pageOffset);
    assert.match(assumed.source, /assume no KASLR.*the snapshot has no kernel-layout\.json/);
  } finally {
    await rm(root, { recursive: true, force: true });
    await rm(dirname(dest), { recursive: true, force: true });
  }
});

test("machine --root: a snapshot whose memmap entry lacks its type file exits 65 (damaged data), naming the file, with a hint", async () => {
  const root = await mkdtemp(join(tmpdir(), "kexec-ts-root-"));
  try {
    const { "sys/firmware/memmap/0/type": _type, ...damaged } = INITRAMFS;
    await tree(root, damaged);
    const main = new URL("../cli/main.js", import.meta.url).pathname;
    const r = spawnSync(process.execPath, [main, "machine", "--root", root], { encoding: "utf8", timeout: 20_000, env: { ...process.env, KEXEC_TS_DEBUG: "" } });
    assert.equal(r.status, 65, r.stderr);
    assert.equal(r.stderr, `kexec-ts: ${join(root, "sys/firmware/memmap/0/type")}: missing, but ${join(root, "sys/firmware/memmap/0")} has other files\n` +
      "hint: every firmware memmap entry has start, end and type (drivers/firmware/memmap.c): re-take the snapshot, or copy the file from the machine's /sys/firmware/memmap\n");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
