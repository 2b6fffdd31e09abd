#!/usr/bin/env node
// Runs the kexec-ts purgatory blobs for real under QEMU (TCG).
//
//   npm run build && node purgatory/test/qemu.mjs [--keep DIR] [scenario...]
//
// purgatory/test/harness.S plays relocate_kernel: it copies the segments of a
// load list (built here with buildPurgatory from dist/) to their addresses,
// leaves the CPU as relocate_kernel does (long mode 4- or 5-level paging with
// a GDTR pointing at unmapped memory, or 32-bit protected mode with paging off
// and a garbage GDT), and returns into the purgatory. Its kernel32/kernel64
// stubs print the state they were entered in; this script checks it.
// Needs gcc, ld, nm and qemu-system-x86_64. Exit status 0 when every scenario passes.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const { buildPurgatory } = await import(join(repo, "dist", "core", "plan", "purgatory.js"));

const args = process.argv.slice(2);
let keep;
if (args[0] === "--keep") { keep = args[1]; args.splice(0, 2); }
const work = keep ?? mkdtempSync(join(tmpdir(), "kexec-ts-purgatory-qemu-"));
mkdirSync(work, { recursive: true });

const sha = (chunks) => { const h = createHash("sha256"); for (const c of chunks) h.update(c); return new Uint8Array(h.digest()); };
function data(seed, n) {
  const b = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; b[i] = s & 0xff; }
  return b;
}

// Build the harness once.
execFileSync("gcc", ["-m32", "-c", "-o", join(work, "harness.o"), join(here, "harness.S")]);
execFileSync("ld", ["-m", "elf_i386", "-N", "--no-warn-rwx-segments", "-Ttext=0x100000", "-e", "_start", "-o", join(work, "harness.elf"), join(work, "harness.o")]);
const syms = Object.fromEntries(execFileSync("nm", [join(work, "harness.elf")]).toString().trim().split("\n")
  .map((l) => l.split(" ")).map(([v, , n]) => [n, BigInt(`0x${v}`)]));

const CPU = { long4: 0, long5: 1, prot32: 2 };

function loadList(cpu, target, records) {
  const parts = [];
  const head = Buffer.alloc(16);
  head.write("KXLL", 0, "latin1");
  head.writeUInt32LE(cpu, 4);
  head.writeBigUInt64LE(target, 8);
  parts.push(head);
  for (const { dest, bytes } of records) {
    const h = Buffer.alloc(16);
    h.writeBigUInt64LE(dest, 0);
    h.writeBigUInt64LE(BigInt(bytes.length), 8);
    parts.push(h, Buffer.from(bytes), Buffer.alloc((8 - (bytes.length % 8)) % 8));
  }
  parts.push(Buffer.alloc(16));
  return Buffer.concat(parts);
}

// The "segments": two data regions with memsz beyond their buffers (the digest
// covers the buffers, not the zero fill), and the boot_params address the stub prints.
function scenario({ name, arch, cpu, mode, purgatoryAt, dataAt, bootParams, corrupt = false, skipChecksum = false, expect }) {
  return { name, arch, cpu, mode, purgatoryAt, dataAt, bootParams, corrupt, skipChecksum, expect };
}
const lowData = [0x2000000n, 0x2400000n];
const highData = [0x1_4000_0000n, 0x1_4800_0000n];
const scenarios = [
  scenario({ name: "x86_64-entry64-4level-above4G", arch: "x86_64", cpu: CPU.long4, mode: "entry64", purgatoryAt: 0x1_8000_0000n, dataAt: highData, bootParams: 0x1_2345_6000n, expect: "kernel64" }),
  scenario({ name: "x86_64-entry64-5level", arch: "x86_64", cpu: CPU.long5, mode: "entry64", purgatoryAt: 0x3000000n, dataAt: lowData, bootParams: 0x9_0000n, expect: "kernel64" }),
  scenario({ name: "x86_64-entry32-4level", arch: "x86_64", cpu: CPU.long4, mode: "entry32", purgatoryAt: 0x3000000n, dataAt: lowData, bootParams: 0x9_1000n, expect: "kernel32" }),
  scenario({ name: "x86_64-entry32-5level", arch: "x86_64", cpu: CPU.long5, mode: "entry32", purgatoryAt: 0x7fff_0000n, dataAt: lowData, bootParams: 0x9_2000n, expect: "kernel32" }),
  scenario({ name: "i386-entry32", arch: "i386", cpu: CPU.prot32, mode: "entry32", purgatoryAt: 0x3000000n, dataAt: lowData, bootParams: 0x9_3000n, expect: "kernel32" }),
  scenario({ name: "x86_64-corrupt-halts", arch: "x86_64", cpu: CPU.long4, mode: "entry64", purgatoryAt: 0x3000000n, dataAt: lowData, bootParams: 0x9_0000n, corrupt: true, expect: "mismatch" }),
  scenario({ name: "i386-corrupt-halts", arch: "i386", cpu: CPU.prot32, mode: "entry32", purgatoryAt: 0x3000000n, dataAt: lowData, bootParams: 0x9_0000n, corrupt: true, expect: "mismatch" }),
  scenario({ name: "x86_64-corrupt-skipped", arch: "x86_64", cpu: CPU.long4, mode: "entry32", purgatoryAt: 0x3000000n, dataAt: lowData, bootParams: 0x9_4000n, corrupt: true, skipChecksum: true, expect: "kernel32" }),
].filter((s) => args.length === 0 || args.includes(s.name));

function runQemu(dir, timeoutMs, stopOn) {
  return new Promise((resolve) => {
    const cmd = ["-machine", "pc", "-accel", "tcg", "-cpu", "max", "-m", "8G", "-display", "none", "-no-reboot",
      "-serial", "stdio", "-monitor", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
      "-kernel", join(work, "harness.elf"), "-initrd", join(dir, "loadlist.bin")];
    const q = spawn("qemu-system-x86_64", cmd, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const timer = setTimeout(() => q.kill("SIGKILL"), timeoutMs);
    q.stdout.on("data", (d) => {
      out += d.toString("latin1");
      if (stopOn.test(out)) setTimeout(() => q.kill("SIGKILL"), 300); // the halted purgatory never exits by itself
    });
    q.stderr.on("data", (d) => { out += d.toString("latin1"); });
    q.on("exit", (code, signal) => { clearTimeout(timer); resolve({ out, code, signal, cmd: `qemu-system-x86_64 ${cmd.join(" ")}` }); });
  });
}

let failed = 0;
for (const s of scenarios) {
  const dir = join(work, s.name);
  mkdirSync(dir, { recursive: true });
  const bufs = [data(1, 70_000), data(2, 4093)];
  const regions = [
    { start: s.dataAt[0], bytes: bufs[0], memsz: 0x20000n },
    { start: s.dataAt[1], bytes: bufs[1], memsz: 0x2000n },
  ];
  const entry = s.mode === "entry64" ? syms.kernel64 : syms.kernel32;
  const p = buildPurgatory(s.arch, { mode: s.mode, entry, bootParams: s.bootParams, regions, serialDebug: true, skipChecksum: s.skipChecksum }, sha);
  const loaded = bufs.map((b) => b.slice());
  if (s.corrupt) loaded[1][4000] ^= 0x40; // what a stray DMA write or a bad copy would do
  const list = loadList(s.cpu, s.purgatoryAt + p.entryOffset, [
    { dest: s.purgatoryAt, bytes: p.bytes },
    { dest: s.dataAt[0], bytes: loaded[0] },
    { dest: s.dataAt[1], bytes: loaded[1] },
  ]);
  writeFileSync(join(dir, "loadlist.bin"), list);
  const started = Date.now();
  const r = await runQemu(dir, 60_000, /halting/);
  writeFileSync(join(dir, "serial.log"), r.out);
  const lines = r.out.split(/\r?\n/);
  const problems = [];
  const want = (re, why) => { if (!re.test(r.out)) problems.push(`missing ${why} (${re})`); };
  want(/kexec-ts purgatory: started/, "the purgatory's first line");
  if (s.expect === "mismatch") {
    want(/sha256 MISMATCH/, "the mismatch report");
    want(/halting/, "the halt");
    if (/KXTS-HARNESS: kernel/.test(r.out)) problems.push("entered the kernel despite the bad digest");
  } else {
    want(s.skipChecksum ? /sha256 check skipped/ : /sha256 ok \(0x2 regions, 0x1216d bytes\)/, "the checksum line");
    const hx = (v, w) => v.toString(16).padStart(w, "0");
    if (s.expect === "kernel64") {
      const line = lines.find((l) => l.includes("kernel64")) ?? "";
      const wantLine = `kernel64 rsi=${hx(s.bootParams, 16)} cs=${hx(0x10n, 16)} ds=${hx(0x18n, 16)} ss=${hx(0x18n, 16)}`;
      if (!line.includes(wantLine)) problems.push(`kernel64 line "${line}" lacks "${wantLine}"`);
      if (!line.includes(` rbx=${hx(0n, 16)}`)) problems.push(`rbx not zero: ${line}`);
      const la57 = s.cpu === CPU.long5 ? 0x1000n : 0n;
      if (!line.includes(`cr4=${hx(0x20n | la57, 16)}`)) problems.push(`cr4 should be PAE${la57 ? "|LA57" : ""}: ${line}`);
      if (r.code !== 33) problems.push(`QEMU exit ${r.code}, expected 33 (isa-debug-exit 0x10)`);
    } else {
      const line = lines.find((l) => l.includes("kernel32")) ?? "";
      const wantLine = `kernel32 esi=${hx(s.bootParams, 8)}`;
      if (!line.includes(wantLine)) problems.push(`kernel32 line "${line}" lacks "${wantLine}"`);
      const cr0 = BigInt(`0x${/cr0=([0-9a-f]+)/.exec(line)?.[1] ?? "ffffffff"}`);
      const efer = BigInt(`0x${/efer=([0-9a-f]+)/.exec(line)?.[1] ?? "ffffffff"}`);
      if ((cr0 & 0x8000_0000n) !== 0n || (cr0 & 1n) !== 1n) problems.push(`cr0 ${hx(cr0, 8)}: want PE on, PG off`);
      if ((efer & 0x500n) !== 0n) problems.push(`efer ${hx(efer, 8)}: LME/LMA still set`);
      for (const want of ["cr4=00000000", "cs=00000010", "ds=00000018", "ss=00000018", "ebx|ebp|edi=00000000"]) {
        if (!line.includes(want)) problems.push(`kernel32 line lacks ${want}: ${line}`);
      }
      if (r.code !== 33) problems.push(`QEMU exit ${r.code}, expected 33 (isa-debug-exit 0x10)`);
    }
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (problems.length) {
    failed++;
    console.log(`FAIL ${s.name} (${secs}s)\n  ${problems.join("\n  ")}\n  serial:\n    ${lines.join("\n    ")}\n  reproduce: ${r.cmd}`);
  } else {
    console.log(`ok   ${s.name} (${secs}s)`);
    for (const l of lines.filter((l) => /purgatory:|kernel(32|64)/.test(l))) console.log(`       ${l}`);
  }
}
if (!keep) rmSync(work, { recursive: true, force: true });
console.log(failed ? `${failed} of ${scenarios.length} scenarios failed` : `all ${scenarios.length} scenarios passed`);
process.exit(failed ? 1 : 0);
