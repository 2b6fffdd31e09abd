/**
 * The synthetic vmcore (synthetic-vmcore.ts) must be a dump both readers accept as the larger
 * machine it describes: makedumpfile and kexec-ts find the new nodes' struct pages through the
 * extended page tables and mem_section, free their free blocks at -d 31, keep the same pages,
 * and read the crashed kernel's log back. Needs the real amd64-6.1 vmcore the lab captures.
 * The last test grows it differently, in memory: 70,000 one-page ranges, so that kexec-ts's ELF
 * dump of it has more program headers than e_phnum holds (PN_XNUM), for readelf and makedumpfile.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatDmesg, printkPageFrames, readLockless } from "../core/vmcore/dmesg.js";
import { prepareDumpBitmaps, writeElfDump, type DumpExclusion, type DumpSink } from "../core/vmcore/dump-writer.js";
import { isZeroPage } from "../core/vmcore/exclude.js";
import { START_KERNEL_MAP } from "../core/vmcore/kernel-memory.js";
import { openVmcore, vmcoreKernelMemory, type Vmcore } from "../core/vmcore/vmcore.js";
import { cachedVmcorePath } from "../node/kernel-cache.js";
import { missingInput, missingTool } from "../node/test-inputs.js";
import { openRandomAccess } from "../node/vmcore/file.js";
import { saveVmcoreTo } from "../node/vmcore/save.js";
import { writeSyntheticVmcore } from "./synthetic-vmcore.js";

const REAL = cachedVmcorePath("amd64-6.1");
const GiB = 1n << 30n;

test("a 4 GiB synthetic vmcore from the real 1 GiB one: sparse, and makedumpfile and kexec-ts keep the same pages at -d 31 and read its log", async (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (node dist/lab/capture-vmcore.js, or the e2e suite's vmcore-amd64-6.1)`);
  if (missingTool("makedumpfile") !== undefined) return missingInput(t, "makedumpfile is not installed (.ci/setup-debian.sh)");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-synth-"));
  try {
    const out = join(dir, "synthetic.elf");
    const r = writeSyntheticVmcore({ source: REAL, out, ram: 4n * GiB });
    assert.equal(r.nodes.length, 1);
    assert.equal(r.nodes[0]!.start, 4n * GiB);
    const st = statSync(out);
    assert.ok(BigInt(st.size) > r.nodes[0]!.start - 4n * GiB + r.nodes[0]!.size, "the file spans the node");
    assert.ok(st.blocks * 512 < st.size / 2, `sparse: ${st.blocks * 512} of ${st.size} bytes allocated`);

    const file = openRandomAccess(out);
    const core = openVmcore(file, out);
    file.close();
    // The guest's two RAM ranges and the node's, with the guest's holes (low 1 MiB, crash region) in it.
    assert.equal(core.memory.ranges.length, 4);
    assert.equal(core.memory.ranges.at(-1)!.end, r.nodes[0]!.start + r.nodes[0]!.size);

    const dmesg = (f: string): string => {
      const o = join(dir, `dmesg-${Math.random().toString(36).slice(2)}`);
      execFileSync("makedumpfile", ["--dump-dmesg", f, o], { stdio: "ignore" });
      return readFileSync(o, "latin1");
    };
    const md = join(dir, "md.kdump");
    execFileSync("makedumpfile", ["-l", "-d", "31", out, md], { stdio: "ignore" });
    const ts = join(dir, "ts.kdump");
    const saved = await saveVmcoreTo({ src: out, dst: ts, format: "kdump", codec: "lzo", dumpLevel: 31, threads: 0, progress: false });
    // The node's free memory (all but its copy of the guest and its own metadata) is excluded as free.
    assert.ok(saved.counts.free * 4096n > 2n * GiB - (64n << 20n), `free: ${saved.counts.free} pages`);
    assert.equal(statSync(ts).size, statSync(md).size, "the same page set, compressed by the same lzo");
    const reference = dmesg(REAL);
    assert.match(reference, /sysrq: Trigger a crash/);
    assert.equal(dmesg(out), reference);
    assert.equal(dmesg(ts), reference);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a synthetic vmcore with its node at 12 TiB (page frames past 2^31): makedumpfile and kexec-ts keep the same pages at -d 31 (files of one size), each reads both files' log, and makedumpfile restores our flattened stream to our file; ELF dumps (-E) of the same segments", async (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (node dist/lab/capture-vmcore.js, or the e2e suite's vmcore-amd64-6.1)`);
  if (missingTool("makedumpfile") !== undefined) return missingInput(t, "makedumpfile is not installed (.ci/setup-debian.sh)");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-synth-high-"));
  try {
    const out = join(dir, "synthetic.elf");
    const at = 12n << 40n;
    const r = writeSyntheticVmcore({ source: REAL, out, ram: 4n * GiB, firstNodeAt: at });
    assert.deepEqual(r.nodes.map((n) => n.start), [at]);
    const file = openRandomAccess(out);
    const core = openVmcore(file, out);
    file.close();
    assert.equal(core.memory.ranges.at(-1)!.end, at + r.nodes[0]!.size, "memory ends at 12 TiB and a few GiB: page frame 0xc00000000 and up");

    const dmesg = (f: string): string => {
      const o = join(dir, `dmesg-${Math.random().toString(36).slice(2)}`);
      execFileSync("makedumpfile", ["--dump-dmesg", f, o], { stdio: "ignore" });
      return readFileSync(o, "latin1");
    };
    const reference = dmesg(REAL);
    /** What kexec-ts reads back of a kdump file: it streams the bitmaps, 384 MiB each here, holding neither. */
    const readBack = (path: string) => {
      const f = openRandomAccess(path);
      try {
        const dump = openVmcore(f, path);
        assert.deepEqual(dump.memory.ranges, core.memory.ranges, `${path}: the 1st bitmap's runs are the vmcore's memory`);
        assert.equal(dump.incomplete, false, path);
        return { present: dump.kdump!.presentPages, dumped: dump.kdump!.dumpedPages, log: formatDmesg(readLockless(vmcoreKernelMemory(dump), dump.vmcoreinfo!)) };
      } finally {
        f.close();
      }
    };
    // Each file is removed once read.
    const md = join(dir, "md.kdump");
    execFileSync("makedumpfile", ["-l", "-d", "31", out, md], { stdio: "ignore" });
    const mdSize = statSync(md).size;
    const mdRead = readBack(md);
    assert.equal(mdRead.log, reference, "kexec-ts reads makedumpfile's log");
    rmSync(md);
    const ts = join(dir, "ts.kdump");
    const saved = await saveVmcoreTo({ src: out, dst: ts, format: "kdump", codec: "lzo", dumpLevel: 31, threads: 0, progress: false });
    assert.equal(saved.complete, true);
    // The node's free memory, found through its struct pages at 12 TiB, is excluded as free.
    assert.ok(saved.counts.free * 4096n > 2n * GiB - (64n << 20n), `free: ${saved.counts.free} pages`);
    assert.equal(statSync(ts).size, mdSize, "the same page set, compressed by the same lzo");
    assert.equal(dmesg(ts), reference, "makedumpfile reads our log");
    const tsRead = readBack(ts);
    assert.equal(tsRead.log, reference, "kexec-ts reads its own log");
    assert.deepEqual([tsRead.present, tsRead.dumped], [mdRead.present, mdRead.dumped], "the same page counts in both files");
    assert.equal(tsRead.dumped, saved.pagesWritten);
    const flat = join(dir, "ts.flat");
    assert.equal((await saveVmcoreTo({ src: out, dst: flat, format: "kdump", flat: true, codec: "lzo", dumpLevel: 31, threads: 0, progress: false })).complete, true);
    const restored = join(dir, "restored.kdump");
    execFileSync("sh", ["-c", 'makedumpfile -R "$1" < "$2"', "sh", restored, flat], { stdio: "ignore" });
    rmSync(flat);
    execFileSync("cmp", [restored, ts], { stdio: "ignore" }); // throws unless the same bytes
    rmSync(ts);
    rmSync(restored);

    // An ELF dump (-E), its PT_LOADs planned a window at a time: makedumpfile -E's, but where
    // kexec-ts keeps the log's zero pages (the unwritten end of the ring), which makedumpfile
    // leaves in an excluded tail (dump-writer.ts says why). The files differ by those pages and
    // by where the data starts: after kexec-ts's own note, at a page boundary.
    const tsElf = join(dir, "ts.elf");
    const mdElf = join(dir, "md.elf");
    const savedElf = await saveVmcoreTo({ src: out, dst: tsElf, format: "elf", codec: "none", dumpLevel: 31, threads: 0, progress: false });
    assert.equal(savedElf.complete, true);
    execFileSync("makedumpfile", ["-E", "-d", "31", out, mdElf], { stdio: "ignore" });
    /** A dump's PT_LOADs, and the log's zero pages in their file parts. */
    const loadsOf = (f: string) => {
      const h = openRandomAccess(f);
      try {
        const dump = openVmcore(h, f);
        const logFrames = printkPageFrames(vmcoreKernelMemory(dump), dump.vmcoreinfo!, 4096);
        const inFile = (p: bigint) => dump.elf!.loads.some((l) => p * 4096n >= l.p_paddr && (p + 1n) * 4096n <= l.p_paddr + l.p_filesz);
        return { loads: dump.elf!.loads, zero: new Set(logFrames.filter((p) => inFile(p) && isZeroPage(dump.memory.readPage(p)!))) };
      } finally {
        h.close();
      }
    };
    const ours = loadsOf(tsElf);
    const theirs = loadsOf(mdElf);
    assert.deepEqual(ours.loads.map((l) => [l.p_paddr, l.p_vaddr, l.p_memsz]), theirs.loads.map((l) => [l.p_paddr, l.p_vaddr, l.p_memsz]), "the same segments");
    assert.ok(ours.loads.some((l) => l.p_paddr >= at && l.p_filesz > 0n), "data at 12 TiB");
    let extra = 0n;
    for (const [i, l] of ours.loads.entries()) {
      const m = theirs.loads[i]!;
      if (l.p_filesz === m.p_filesz) continue;
      // Only the log's zero pages, at the end of makedumpfile's file part.
      for (let p = (m.p_paddr + m.p_filesz) / 4096n; p * 4096n < l.p_paddr + l.p_filesz; p++) assert.ok(ours.zero.has(p), `PT_LOAD ${i + 1}: page frame ${p.toString(16)} is a zero page of the log`);
      extra += l.p_filesz - m.p_filesz;
    }
    assert.ok(extra > 0n && extra <= 8n * 4096n, `the log's zero pages: ${extra / 4096n}`);
    const dataStart = (loads: readonly { p_offset: bigint; p_filesz: bigint }[]) => loads.find((l) => l.p_filesz > 0n)!.p_offset;
    assert.equal(BigInt(statSync(tsElf).size) - BigInt(statSync(mdElf).size), extra + dataStart(ours.loads) - dataStart(theirs.loads), "the files differ by those pages and where the data starts");
    assert.equal(dmesg(mdElf), reference, "makedumpfile -E's log");
    assert.equal(dmesg(tsElf), reference, "makedumpfile reads our ELF dump's log");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an ELF dump of the real vmcore with 70,000 more PT_LOADs (PN_XNUM): readelf counts its program headers, makedumpfile and kexec-ts read its log", async (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (node dist/lab/capture-vmcore.js, or the e2e suite's vmcore-amd64-6.1)`);
  const missing = missingTool("makedumpfile", "readelf");
  if (missing !== undefined) return missingInput(t, `${missing} is not installed (.ci/setup-debian.sh)`);
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-xnum-"));
  const source = openRandomAccess(REAL);
  try {
    const real = openVmcore(source, REAL);
    // 70,000 one-page ranges at 1 TiB, a page apart: a PT_LOAD each, one in 100 dumped, the rest zero pages,
    // each mapped in the direct map as the kernel's elfcorehdr has RAM (p_vaddr __va(paddr)): the
    // log is read back through 70,000 aliases.
    const direct = real.elf!.loads.find((l) => l.p_vaddr !== 0n && l.p_vaddr < START_KERNEL_MAP)!;
    const P = 4096n;
    const first = 2 ** 28;
    const EXTRA = 70_000;
    const extra = Array.from({ length: EXTRA }, (_, i) => BigInt(first + 2 * i));
    const page = new Uint8Array(4096).fill(0x5a);
    const zero = new Uint8Array(4096);
    const readPage = (pfn: bigint) => (pfn < BigInt(first) ? real.memory.readPage(pfn) : (pfn - BigInt(first)) % 2n === 0n ? ((pfn - BigInt(first)) / 2n % 100n === 0n ? page : zero) : undefined);
    const core: Vmcore = {
      ...real,
      memory: { pageSize: 4096, ranges: [...real.memory.ranges, ...extra.map((p) => ({ start: p * P, end: (p + 1n) * P }))], readPage },
      elf: { ...real.elf!, loads: [...real.elf!.loads, ...extra.map((p, i) => ({ index: real.elf!.loads.length + i, p_offset: 0n, p_vaddr: direct.p_vaddr - direct.p_paddr + p * P, p_paddr: p * P, p_filesz: P, p_memsz: P }))] },
    };
    // -d 31 on the real memory (the first window: page frames below 2^24); at 1 TiB the zero pages go (-d 1).
    const exclusion: DumpExclusion = { prepare: (b) => { if ((b.dumpableFirst ?? 0) < first) prepareDumpBitmaps(real, b, 31, REAL); } };
    const out = join(dir, "xnum.elf");
    const fd = openSync(out, "w");
    const sink: DumpSink = {
      write: (offset, data) => { writeSync(fd, data, 0, data.length, Number(offset)); },
      writeAsync: async (offset, data) => { writeSync(fd, data, 0, data.length, Number(offset)); },
    };
    const started = Date.now();
    let r;
    try {
      r = await writeElfDump(core, { codec: "none", dumpLevel: 31, what: REAL }, sink, {}, exclusion);
    } finally {
      closeSync(fd);
    }
    assert.equal(r.complete, true);
    const written = openRandomAccess(out);
    let phnum: number;
    let log: string;
    try {
      const back = openVmcore(written, out);
      phnum = back.elf!.loads.length + 1;
      assert.equal(back.elf!.header.e_phnum, 0xffff);
      assert.ok(phnum > 70_000, `${phnum} program headers`);
      assert.equal(back.elf!.loads.filter((l) => l.p_paddr >= BigInt(first) * P).length, EXTRA, "a PT_LOAD per range at 1 TiB");
      assert.equal(back.elf!.loads.filter((l) => l.p_filesz > 0n && l.p_paddr >= BigInt(first) * P).length, EXTRA / 100, "the dumped ones with data");
      assert.ok(back.elf!.loads.every((l) => l.p_paddr < BigInt(first) * P || l.p_vaddr === direct.p_vaddr - direct.p_paddr + l.p_paddr), "each at its direct-map address");
      assert.deepEqual(back.memory.readPage(BigInt(first + 200)), page);
      assert.deepEqual(back.memory.readPage(BigInt(first + 2)), zero);
      log = formatDmesg(readLockless(vmcoreKernelMemory(back), back.vmcoreinfo!));
    } finally {
      written.close();
    }
    t.diagnostic(`${phnum} program headers, written in ${Date.now() - started} ms`);
    assert.equal(log, formatDmesg(readLockless(vmcoreKernelMemory(real), real.vmcoreinfo!)), "kexec-ts reads the log back");

    // readelf takes the count from section header 0: "65535 (70019)" in the file header, every entry listed.
    const readelf = spawnSync("readelf", ["-h", "-l", "-W", out], { encoding: "utf8", maxBuffer: 64 << 20 });
    assert.deepEqual([readelf.status, readelf.stderr], [0, ""], "readelf: no warning");
    assert.match(readelf.stdout, new RegExp(`Number of program headers:\\s+65535 \\(${phnum}\\)`));
    const listed = readelf.stdout.split("\n").filter((l) => /^\s+(LOAD|NOTE)\s/.test(l));
    assert.deepEqual([listed.length, listed.filter((l) => /^\s+LOAD/.test(l)).length], [phnum, phnum - 1], "readelf lists every program header");
    // makedumpfile reads PN_XNUM (elf_info.c, get_elf64_phnum, since 1.6.8): the same log as from the real vmcore.
    const dmesg = (f: string): string => {
      const o = join(dir, `dmesg-${Math.random().toString(36).slice(2)}`);
      execFileSync("makedumpfile", ["--dump-dmesg", f, o], { stdio: "ignore" });
      return readFileSync(o, "latin1");
    };
    const reference = dmesg(REAL);
    assert.match(reference, /sysrq: Trigger a crash/);
    assert.equal(dmesg(out), reference, "makedumpfile --dump-dmesg");
    // Not in the test: makedumpfile -E -d 1 of this dump (by hand it wrote e_phnum 0xffff, sh_info
    // 70019, its ELF header and section header 0 byte for byte ours) takes 3 minutes, a linear
    // search of its PT_LOADs for every page.
  } finally {
    source.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
