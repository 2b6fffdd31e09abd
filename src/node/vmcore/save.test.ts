import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { KexecError } from "../../core/errors.js";
import { formatDmesg, readLockless } from "../../core/vmcore/dmesg.js";
import { parseFlat } from "../../core/vmcore/flat.js";
import { DUMP_DH_COMPRESSED_INCOMPLETE, PAGE_DESC_SIZE } from "../../core/vmcore/kdump.js";
import type { PageDecodeInto } from "../../core/vmcore/codecs.js";
import { bytesAccess } from "../../core/vmcore/memory.js";
import { syntheticVmcore } from "../../core/vmcore/testing.js";
import { openVmcore, vmcoreKernelMemory, type Vmcore } from "../../core/vmcore/vmcore.js";
import { cachedVmcorePath } from "../kernel-cache.js";
import { missingInput, missingTool } from "../test-inputs.js";
import { openRandomAccess } from "./file.js";
import { nativePageDecoder } from "./native-codecs.js";
import { openVmcoreWithSystemCodecs } from "./open.js";
import { autoThreads, saveVmcoreTo, type SaveOptions } from "./save.js";
import { literally } from "../../core/testing/pattern.js";

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "kexec-ts-vmcore-"));
}

function opts(src: string, dst: string, more: Partial<SaveOptions>): SaveOptions {
  return { src, dst, format: "kdump", flat: false, codec: "zlib", dumpLevel: 1, threads: 0, progress: false, ...more };
}

function open(path: string): Vmcore {
  return openVmcore(bytesAccess(new Uint8Array(readFileSync(path))), path);
}

test("save: the dump is readable by its owner only (0600, as makedumpfile makes it), a stale DST.incomplete's wider mode taken away", async () => {
  const dir = tmp();
  const umask = process.umask(0o022);
  try {
    const src = join(dir, "src.elf");
    writeFileSync(src, syntheticVmcore(50).bytes);
    const fresh = join(dir, "fresh.kdump");
    assert.equal((await saveVmcoreTo(opts(src, fresh, {}))).complete, true);
    assert.equal(statSync(fresh).mode & 0o777, 0o600, "a new dump");
    // An interrupted run's DST.incomplete, left world-readable: O_TRUNC alone keeps its mode.
    const stale = join(dir, "stale.kdump");
    writeFileSync(`${stale}.incomplete`, "old", { mode: 0o644 });
    assert.equal((await saveVmcoreTo(opts(src, stale, {}))).complete, true);
    assert.equal(statSync(stale).mode & 0o777, 0o600, "written into a stale 0644 DST.incomplete");
    // A mode asked for is kept to; narrowing never adds a permission.
    const group = join(dir, "group.kdump");
    writeFileSync(`${group}.incomplete`, "old", { mode: 0o600 });
    assert.equal((await saveVmcoreTo(opts(src, group, { mode: 0o640 }))).complete, true);
    assert.equal(statSync(group).mode & 0o777, 0o600, "0640 asked, 0600 there: not widened");
  } finally {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save: every format and codec reads back page for page, with the ring buffer intact", async () => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(200);
    const src = join(dir, "src.elf");
    writeFileSync(src, s.bytes);
    const cases: (Partial<SaveOptions> & { builtIn?: boolean })[] = [
      { format: "kdump", codec: "zlib" }, { format: "kdump", codec: "lzo", threads: 2 }, { format: "kdump", codec: "snappy" },
      { format: "kdump", codec: "none", dumpLevel: 0 }, { format: "elf", codec: "none" }, { format: "elf", codec: "none", dumpLevel: 0 },
      { format: "kdump", flat: true, codec: "lzo" }, { format: "elf", flat: true, codec: "none" }, { format: "kdump", codec: "zstd" }, { format: "kdump", codec: "zstd", threads: 2 },
      // The built-in encoders, as used where the system's zlib or liblzo2 cannot be loaded.
      { format: "kdump", codec: "lzo", builtIn: true }, { format: "kdump", codec: "zlib", builtIn: true, threads: 2 },
    ];
    for (const { builtIn, ...c } of cases) {
      // Through the re-save below too: the kdump file as a source is decoded by the built-in decoders.
      if (builtIn) process.env["KEXEC_TS_NATIVE_CODECS"] = "0";
      try {
        const dst = join(dir, `out-${c.format}${c.flat ? "-flat" : ""}-${c.codec}-${c.dumpLevel ?? 1}-${c.threads ?? 0}-${builtIn ? "js" : "native"}`);
        const result = await saveVmcoreTo(opts(src, dst, c));
        assert.equal(result.complete, true);
        assert.ok(!existsSync(`${dst}.incomplete`), "the temporary name is gone after the rename");
        let out: Vmcore;
        if (c.flat) {
          // What makedumpfile -R does: place every record at its offset.
          const records = parseFlat(new Uint8Array(readFileSync(dst)));
          const size = records.reduce((m, r) => Math.max(m, Number(r.offset) + r.data.length), 0);
          const file = new Uint8Array(size);
          for (const r of records) file.set(r.data, Number(r.offset));
          out = openVmcore(bytesAccess(file));
        } else out = open(dst);
        assert.equal(out.incomplete, false);
        for (const [pfn, page] of s.pages) {
          const got = out.memory.readPage(BigInt(pfn));
          const zero = page.every((b) => b === 0);
          // Excluded zero pages read as zeros (ELF tail) or are shared (kdump): either way the bytes are zeros.
          if (got === undefined) assert.ok(zero && (c.dumpLevel ?? 1) & 1, `${JSON.stringify(c)} pfn ${pfn} missing`);
          else assert.deepEqual(got, page, `${JSON.stringify(c)} pfn ${pfn}`);
        }
        assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!)), formatDmesg(readLockless(vmcoreKernelMemory(open(src)), open(src).vmcoreinfo!)));
        if (c.format === "kdump" && !c.flat) {
          // The kdump file as a save's source: its pages are decoded, run by run, into the batches.
          const again = `${dst}.again`;
          assert.equal((await saveVmcoreTo(opts(dst, again, { format: "kdump", codec: "lzo", dumpLevel: 0 }))).complete, true);
          const resaved = open(again);
          for (const [pfn] of s.pages) {
            const was = out.memory.readPage(BigInt(pfn));
            const got = resaved.memory.readPage(BigInt(pfn));
            if (was === undefined) assert.ok(got === undefined || got.every((b) => b === 0), `${JSON.stringify(c)} re-saved: pfn ${pfn} was not stored`);
            else assert.deepEqual(got, was, `${JSON.stringify(c)} re-saved: pfn ${pfn}`);
          }
        }
      } finally {
        delete process.env["KEXEC_TS_NATIVE_CODECS"];
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kdump reader: the system's decoders give the JavaScript decoders' pages, page by page and run by run, and Node's readers and saves decode through them", async (t) => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(200);
    const src = join(dir, "src.elf");
    writeFileSync(src, s.bytes);
    const libraries = { zlib: "libz.so.1", lzo: "liblzo2.so.2", zstd: "libzstd.so.1" } as const;
    for (const codec of ["zlib", "lzo", "zstd"] as const) {
      if (codec === "lzo" && missingTool("makedumpfile") !== undefined) return missingInput(t, "makedumpfile (and with it liblzo2) is not installed");
      const dst = join(dir, `out-${codec}`);
      assert.equal((await saveVmcoreTo(opts(src, dst, { codec }))).complete, true);
      const bytes = new Uint8Array(readFileSync(dst));
      const native = nativePageDecoder(codec);
      assert.ok(native, `${libraries[codec]} could be loaded through koffi`);
      let calls = 0;
      const counted: PageDecodeInto = (c, stored, from, length, dst, at, pageSize) => {
        assert.equal(c, codec);
        calls++;
        native.decode(stored, from, length, dst, at, pageSize);
      };
      const js = openVmcore(bytesAccess(bytes), dst);
      const ours = openVmcore(bytesAccess(bytes), dst, { decodePage: counted });
      const pfns = [...s.pages.keys()].sort((a, b) => a - b);
      for (const pfn of pfns) assert.deepEqual(ours.memory.readPage(BigInt(pfn)), js.memory.readPage(BigInt(pfn)), `${codec}: pfn ${pfn}`);
      assert.ok(calls > 20, `${codec}: ${calls} pages went through the native decoder`);
      // Runs of consecutive dumped pages into one buffer at an offset, as a save's batches read them.
      for (let i = 0; i < pfns.length;) {
        let n = 1;
        while (i + n < pfns.length && pfns[i + n] === pfns[i]! + n && n < 16 && js.memory.hasPage!(BigInt(pfns[i + n]!))) n++;
        const a = new Uint8Array(PS_TEST * (n + 1)).fill(0x5a);
        const b = a.slice();
        assert.equal(ours.memory.readRunInto!(BigInt(pfns[i]!), n, a, PS_TEST / 2), js.memory.readRunInto!(BigInt(pfns[i]!), n, b, PS_TEST / 2));
        assert.deepEqual(a, b, `${codec}: the run of ${n} from pfn ${pfns[i]}`);
        i += n;
      }
      // A compressed page whose stored size is cut by a byte: the error names the library where
      // Node's reader and a save from the file decode natively, and names none with KEXEC_TS_NATIVE_CODECS=0.
      const damaged = cutFirstCompressedPage(bytes);
      const path = join(dir, `damaged-${codec}`);
      writeFileSync(path, damaged);
      const firstError = (core: Vmcore): string => {
        for (const pfn of pfns) try { core.memory.readPage(BigInt(pfn)); } catch (e) { return (e as Error).message; }
        return "no page failed";
      };
      // Named by the reader: the page frame, its descriptor, and where its stored bytes lie.
      const page = `^${literally(path)}: page frame 0x[0-9a-f]+ \\(page_desc \\d+, \\d+ bytes at 0x[0-9a-f]+\\): `;
      assert.match(firstError(openVmcoreWithSystemCodecs(bytesAccess(damaged), path)), new RegExp(`${page}${codec} page data is corrupt: ${literally(libraries[codec])} `));
      const saving = await saveVmcoreTo(opts(path, join(dir, `again-${codec}`), { codec: "lzo", dumpLevel: 0 })).then((r) => r.missing ?? "saved whole", (e: unknown) => (e as Error).message);
      assert.ok(saving.includes(libraries[codec]), `${codec}: a save from the damaged file says ${saving}`);
      process.env["KEXEC_TS_NATIVE_CODECS"] = "0";
      try {
        const said = firstError(openVmcoreWithSystemCodecs(bytesAccess(damaged), path));
        assert.match(said, new RegExp(`${page}${codec} page data is corrupt`));
        assert.ok(!said.includes(libraries[codec]), `${codec}: with KEXEC_TS_NATIVE_CODECS=0: ${said}`);
      } finally {
        delete process.env["KEXEC_TS_NATIVE_CODECS"];
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const PS_TEST = 4096;

/** A copy of a kdump file whose first compressed page descriptor says a byte less than was stored. */
function cutFirstCompressedPage(file: Uint8Array): Uint8Array {
  const copy = file.slice();
  const { header } = openVmcore(bytesAccess(copy)).kdump!;
  const view = new DataView(copy.buffer);
  const descAt = (1 + header.sub_hdr_size + header.bitmap_blocks) * header.block_size;
  for (let at = descAt; ; at += PAGE_DESC_SIZE) {
    const size = view.getUint32(at + 8, true);
    if (view.getUint32(at + 12, true) !== 0 && size > 1) {
      view.setUint32(at + 8, size - 1, true);
      return copy;
    }
  }
}

test("save: a fault part-way leaves DST.incomplete, marked, readable up to the fault, and no DST", async () => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(3000);
    const src = join(dir, "src.elf");
    writeFileSync(src, s.bytes);
    for (const format of ["kdump", "elf"] as const) {
      const dst = join(dir, `cut.${format}`);
      const result = await saveVmcoreTo(opts(src, dst, { format, codec: format === "elf" ? "none" : "lzo", faultAfterPages: 1500 }));
      assert.equal(result.complete, false);
      assert.match(result.missing!, /simulated fault/);
      assert.ok(!existsSync(dst));
      const out = open(`${dst}.incomplete`);
      assert.equal(out.incomplete, true, `${format} carries the incomplete mark`);
      if (out.kdump) assert.ok(out.kdump.header.status & DUMP_DH_COMPRESSED_INCOMPLETE);
      let present = 0;
      let missing = 0;
      for (const [pfn, page] of s.pages) {
        const got = out.memory.readPage(BigInt(pfn));
        if (got === undefined || (format === "elf" && got.every((b) => b === 0) && !page.every((b) => b === 0))) missing++;
        else { assert.deepEqual(got, page, `${format} pfn ${pfn}`); present++; }
      }
      assert.ok(present >= 1000 && missing > 0, `${format}: ${present} pages kept, ${missing} missing`);
      // The ring buffer sits in the first pages, so the log of a cut dump still reads.
      assert.equal(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!).length, s.messages.length);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save: a source cut short (read error in a compression thread) leaves a marked, readable prefix and says where", async () => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(3000);
    const src = join(dir, "short.elf");
    // The last third of the pages is gone from the file: the PT_LOAD still claims it.
    writeFileSync(src, s.bytes.subarray(0, s.bytes.length - 1000 * 4096));
    for (const threads of [0, 2]) {
      const dst = join(dir, `short-${threads}.kdump`);
      const result = await saveVmcoreTo(opts(src, dst, { codec: "lzo", threads }));
      assert.equal(result.complete, false);
      // The source named once, one page frame: where the dump stops (the file ends inside its 8th batch).
      assert.match(result.missing!, /^read error in [^:]*short\.elf: \d+ bytes at offset 0x[0-9a-f]+ run past the end of the file \(0x[0-9a-f]+\); pages from page frame 0x800 on \(about \d+ dumpable pages\) are missing$/);
      assert.ok(!existsSync(dst));
      const out = open(`${dst}.incomplete`);
      assert.equal(out.incomplete, true);
      // Pages go in batches of 1024: the first batch lies wholly before the cut and is all there;
      // nothing past the cut is.
      const pfns = [...s.pages.keys()].sort((a, b) => a - b);
      for (const [k, pfn] of pfns.entries()) {
        const page = s.pages.get(pfn)!;
        const got = out.memory.readPage(BigInt(pfn));
        if (k < 1024 && !page.every((b) => b === 0)) assert.deepEqual(got, page, `threads ${threads} pfn ${pfn}`);
        if (k >= 2000) assert.ok(got === undefined || got.every((b) => b === 0), `threads ${threads} pfn ${pfn} is past the cut`);
      }
      assert.equal(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!).length, s.messages.length);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save (CLI): a write error part-way (file size limit: EFBIG, as a full disk gives ENOSPC) exits 74 and leaves a marked, readable prefix", () => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(3000);
    const src = join(dir, "src.elf");
    writeFileSync(src, s.bytes);
    const dst = join(dir, "limited.kdump");
    const cli = new URL("../../cli/main.js", import.meta.url).pathname;
    // Ignoring SIGXFSZ turns writes past the limit into EFBIG errors; the limit is about 4 MiB of
    // the 12 MiB the uncompressed dump needs (dash counts 512-byte blocks, bash 1024: either cuts).
    const r = spawnSync("sh", ["-c", `trap '' XFSZ; ulimit -f 8192; exec "${process.execPath}" "${cli}" vmcore save --compress none --dump-level 0 --threads 2 "${src}" "${dst}"`], { encoding: "utf8" });
    assert.equal(r.status, 74, r.stderr);
    assert.match(r.stderr, /INCOMPLETE: write error at 0x[0-9a-f]+: .*EFBIG.*pages from page frame 0x[0-9a-f]+ on/);
    assert.ok(!existsSync(dst));
    const out = open(`${dst}.incomplete`);
    assert.equal(out.incomplete, true);
    let present = 0;
    for (const [pfn, page] of s.pages) {
      const got = out.memory.readPage(BigInt(pfn));
      if (got !== undefined) { assert.deepEqual(got, page, `pfn ${pfn}`); present++; }
    }
    assert.ok(present > 500 && present < s.pages.size, `${present} of ${s.pages.size} pages kept`);
    assert.equal(readLockless(vmcoreKernelMemory(out), out.vmcoreinfo!).length, s.messages.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save: a destination that cannot be created is a KexecError naming it, with a hint (not a crash)", async () => {
  const dir = tmp();
  try {
    const src = join(dir, "src.elf");
    writeFileSync(src, syntheticVmcore(40).bytes);
    const dst = join(dir, "no-such-dir", "dump");
    await assert.rejects(saveVmcoreTo(opts(src, dst, { codec: "lzo", threads: 2 })), (e: unknown) =>
      e instanceof KexecError && e.code === "io" && e.message.includes(`${dst}.incomplete: cannot write the dump`) && /ENOENT/.test(e.message) && e.hint === `${join(dir, "no-such-dir")} does not exist: create it first, or choose another place`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save: DST is never the source, nor a device, FIFO or directory, and an existing file only with overwrite (DST is renamed into place)", async () => {
  const dir = tmp();
  try {
    const bytes = syntheticVmcore(40).bytes;
    const src = join(dir, "src.elf");
    writeFileSync(src, bytes);
    const refused = (dst: string, more: Partial<SaveOptions>, message: RegExp) => assert.rejects(saveVmcoreTo(opts(src, dst, { codec: "lzo", ...more })), (e: unknown) =>
      e instanceof KexecError && e.code === "usage" && e.data.file === dst && message.test(e.message) && e.hint !== undefined, `${dst}: ${message}`);
    // The source itself, by its name and through a link: it once became its own dump.
    symlinkSync(src, join(dir, "link.elf"));
    for (const dst of [src, join(dir, "link.elf")]) for (const overwrite of [false, true]) await refused(dst, { overwrite }, /is the vmcore being saved( \(.*\))?: the dump would replace its own source/);
    assert.deepEqual(new Uint8Array(readFileSync(src)), bytes, "the source is as it was");
    // A device node and a FIFO would be replaced by a file (/dev/full once was), a directory cannot be.
    execFileSync("mkfifo", [join(dir, "fifo")]);
    await refused("/dev/null", { overwrite: true }, /is a character device: vmcore save writes a file and renames it into place/);
    await refused(join(dir, "fifo"), { overwrite: true }, /is a pipe \(FIFO\)/);
    await refused(dir, {}, /is a directory: vmcore save needs the dump's file name/);
    assert.ok(statSync("/dev/null").isCharacterDevice() && statSync(join(dir, "fifo")).isFIFO(), "both are what they were");
    assert.ok(!existsSync(join(dir, "fifo.incomplete")), "nothing was written before the refusal");
    // An existing file: kept unless told otherwise, as makedumpfile keeps it without -f.
    const old = join(dir, "old.kdump");
    writeFileSync(old, "a dump from before");
    await refused(old, {}, /exists: vmcore save does not replace it unless told to/);
    assert.equal(readFileSync(old, "utf8"), "a dump from before");
    const result = await saveVmcoreTo(opts(src, old, { codec: "lzo", overwrite: true }));
    assert.ok(result.complete);
    assert.equal(openVmcore(bytesAccess(new Uint8Array(readFileSync(old))), old).kdump !== undefined, true, "replaced by the dump");
    // A link planted at the temporary name is not followed: what it points at stays as it was.
    const victim = join(dir, "victim");
    writeFileSync(victim, "not a dump");
    symlinkSync(victim, join(dir, "new.kdump.incomplete"));
    await assert.rejects(saveVmcoreTo(opts(src, join(dir, "new.kdump"), { codec: "lzo" })), (e: unknown) => e instanceof KexecError && e.code === "io" && /ELOOP/.test(e.message) && /a symbolic link is at that name/.test(e.hint ?? ""));
    assert.equal(readFileSync(victim, "utf8"), "not a dump");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save: DST a symbolic link (/var/crash/latest): the dump goes where it points, the link stays, and an existing file there needs overwrite", async () => {
  const dir = tmp();
  try {
    const src = join(dir, "src.elf");
    writeFileSync(src, syntheticVmcore(40).bytes);
    const day = join(dir, "2026-12-01");
    mkdirSync(day);
    const latest = join(dir, "latest");
    const isKdump = (path: string) => openVmcore(bytesAccess(new Uint8Array(readFileSync(path))), path).kdump !== undefined;
    // Dangling (the day's dump not made yet): made, beside the link's target, and the link kept.
    symlinkSync("2026-12-01/vmcore", latest);
    const made = await saveVmcoreTo(opts(src, latest, { codec: "lzo" }));
    assert.ok(made.complete && made.file === join(dir, "2026-12-01/vmcore"), made.file);
    assert.ok(lstatSync(latest).isSymbolicLink() && readlinkSync(latest) === "2026-12-01/vmcore", "still a link");
    assert.ok(isKdump(join(day, "vmcore")));
    assert.deepEqual(readdirSync(day), ["vmcore"], "the temporary file was beside it, and is gone");
    // Now the file behind the link exists: kept without overwrite, as any existing DST, and the message says both names.
    writeFileSync(join(day, "vmcore"), "a dump from before");
    await assert.rejects(saveVmcoreTo(opts(src, latest, { codec: "lzo" })), (e: unknown) =>
      e instanceof KexecError && e.code === "usage" && e.data.file === latest && e.message.startsWith(`${latest} (a link to ${join(dir, "2026-12-01/vmcore")}) exists`) && /--force/.test(e.hint ?? ""));
    assert.equal(readFileSync(join(day, "vmcore"), "utf8"), "a dump from before");
    const replaced = await saveVmcoreTo(opts(src, latest, { codec: "lzo", overwrite: true }));
    assert.ok(replaced.complete && lstatSync(latest).isSymbolicLink() && isKdump(join(day, "vmcore")));
    // Cut short: DST.incomplete is beside the target too, and the result says where.
    rmSync(join(day, "vmcore"));
    const cut = await saveVmcoreTo(opts(src, latest, { codec: "lzo", faultAfterPages: 3 }));
    assert.ok(!cut.complete && cut.file === join(dir, "2026-12-01/vmcore.incomplete") && existsSync(join(day, "vmcore.incomplete")) && !existsSync(join(dir, "latest.incomplete")));
    // A link to the source is the source, even with overwrite.
    symlinkSync(src, join(dir, "to-src"));
    await assert.rejects(saveVmcoreTo(opts(src, join(dir, "to-src"), { codec: "lzo", overwrite: true })), (e: unknown) =>
      e instanceof KexecError && e.code === "usage" && e.message.startsWith(`${join(dir, "to-src")} (a link to ${src}) is the vmcore being saved`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `kexec-ts ARGS | (sleep SECS; cat > out)`: a real pipe to a reader that is not there yet. Returns the CLI's exit status and what the reader got. */
function pipeToSlowReader(dir: string, args: string[], secs: number): { rc: number; out: Uint8Array; stderr: string } {
  const cli = new URL("../../cli/main.js", import.meta.url).pathname;
  const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const script = `{ ${q(process.execPath)} ${q(cli)} ${args.map(q).join(" ")} 2>${q(join(dir, "stderr"))}; echo $? > ${q(join(dir, "rc"))}; } | (sleep ${secs}; cat > ${q(join(dir, "out"))})`;
  const r = spawnSync("sh", ["-c", script], { timeout: 120_000 });
  assert.equal(r.status, 0, `the pipeline ran (${r.signal ?? ""})`);
  return { rc: Number(readFileSync(join(dir, "rc"), "utf8")), out: new Uint8Array(readFileSync(join(dir, "out"))), stderr: readFileSync(join(dir, "stderr"), "utf8") };
}

test("save --format flat to a pipe whose reader is slow: the whole stream, with back-pressure, not EAGAIN (issue 11)", () => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(2000);
    const src = join(dir, "src.elf");
    writeFileSync(src, s.bytes);
    // Several MiB: far more than a pipe holds (64 KiB) while the reader sleeps.
    const r = pipeToSlowReader(dir, ["vmcore", "save", "--format", "flat", "--compress", "none", "-d", "0", src, "-"], 2);
    assert.equal(r.rc, 0, r.stderr);
    assert.ok(r.out.length > 4 << 20, `${r.out.length} bytes came through`);
    const records = parseFlat(r.out);
    const size = records.reduce((m, x) => Math.max(m, Number(x.offset) + x.data.length), 0);
    const file = new Uint8Array(size);
    for (const x of records) file.set(x.data, Number(x.offset));
    const out = openVmcore(bytesAccess(file));
    assert.equal(out.incomplete, false);
    for (const [pfn, page] of s.pages) assert.deepEqual(out.memory.readPage(BigInt(pfn)), page, `pfn ${pfn}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("save --format flat to a reader that stops (cat > a full disk): exit 74 saying the stream is cut short, not a quiet 0; as makedumpfile, exit 1 (issue 11)", () => {
  const dir = tmp();
  try {
    const src = join(dir, "src.elf");
    writeFileSync(src, syntheticVmcore(2000).bytes);
    const cli = new URL("../../cli/main.js", import.meta.url).pathname;
    const q = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    // head -c stands for `cat > dump` on a file system that fills up: it reads some, then goes away.
    for (const [args, status, name] of [[["vmcore", "save", "--format", "flat", "--compress", "none", "-d", "0", src, "-"], 74, "kexec-ts"], [["makedumpfile", "-F", "-d", "0", src], 1, "makedumpfile (kexec-ts)"]] as const) {
      const script = `{ ${q(process.execPath)} ${q(cli)} ${args.map(q).join(" ")} 2>${q(join(dir, "stderr"))}; echo $? > ${q(join(dir, "rc"))}; } | head -c 100000 > /dev/null`;
      assert.equal(spawnSync("sh", ["-c", script], { timeout: 120_000 }).status, 0);
      const stderr = readFileSync(join(dir, "stderr"), "utf8");
      assert.equal(Number(readFileSync(join(dir, "rc"), "utf8")), status, stderr);
      assert.match(stderr, new RegExp(`^${literally(name)}: standard output: the reader of the stream went away after \\d+ bytes: the flattened dump is cut short`, "m"));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("kdump reader fuzzed: damaged kdump files give KexecErrors only", async () => {
  const dir = tmp();
  try {
    const s = syntheticVmcore(40);
    const src = join(dir, "src.elf");
    writeFileSync(src, s.bytes);
    await saveVmcoreTo(opts(src, join(dir, "d.kdump"), { codec: "lzo" }));
    const good = new Uint8Array(readFileSync(join(dir, "d.kdump")));
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.nat(255)), { minLength: 1, maxLength: 8 }), fc.nat(good.length), (edits, cut) => {
      const b = good.slice(0, Math.max(cut, 8));
      for (const [at, v] of edits) if (at < b.length) b[at] = v;
      try {
        const core = openVmcore(bytesAccess(b));
        for (const pfn of s.pages.keys()) core.memory.readPage(BigInt(pfn));
      } catch (e) {
        assert.ok(e instanceof KexecError, `${(e as Error).stack}`);
      }
    }), { numRuns: 200 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- a real vmcore from the lab (lab/scenarios/vmcore-amd64-6.1.json), when one has been captured ----
// CI keeps the one its e2e run of that scenario captures (host.keepVmcore) and runs this afterwards.

const REAL = cachedVmcorePath("amd64-6.1");

function makedumpfileDmesg(file: string, dir: string): string {
  const out = join(dir, `dmesg-${Math.random().toString(36).slice(2)}.txt`);
  execFileSync("makedumpfile", ["--dump-dmesg", file, out], { stdio: "ignore" });
  return readFileSync(out, "latin1");
}

test("real 6.1 vmcore: dmesg equals makedumpfile --dump-dmesg; our -d 31 kdump and ELF are read by makedumpfile and keep its page set", async (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (run: node dist/lab/capture-vmcore.js, about 2 minutes; or the e2e suite's vmcore-amd64-6.1)`);
  if (missingTool("makedumpfile") !== undefined) return missingInput(t, "makedumpfile is not installed (.ci/setup-debian.sh)");
  const dir = tmp();
  try {
    const reference = makedumpfileDmesg(REAL, dir);
    const file = openRandomAccess(REAL);
    const core = openVmcore(file, REAL);
    assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!)), reference);
    file.close();
    for (const [format, codec] of [["kdump", "zlib"], ["kdump", "lzo"], ["elf", "none"]] as const) {
      const dst = join(dir, `ours-${format}-${codec}`);
      const r = await saveVmcoreTo(opts(REAL, dst, { format, codec, dumpLevel: 31, threads: 2 }));
      assert.equal(r.complete, true);
      assert.equal(makedumpfileDmesg(dst, dir), reference, `makedumpfile reads our ${format}/${codec}`);
    }
    // Cut short after 2000 pages (the log lives far above): the log pages were stored first.
    const cut = join(dir, "cut.kdump");
    const r = await saveVmcoreTo(opts(REAL, cut, { dumpLevel: 31, codec: "lzo", faultAfterPages: 2000 }));
    assert.equal(r.complete, false);
    assert.equal(makedumpfileDmesg(`${cut}.incomplete`, dir), reference, "makedumpfile reads the log of a cut dump");
    // makedumpfile's own -d 31 dump of the same vmcore keeps exactly the pages ours keeps.
    const theirs = join(dir, "theirs.kdump");
    execFileSync("makedumpfile", ["-l", "-d", "31", REAL, theirs], { stdio: "ignore" });
    const a = openVmcore(openRandomAccess(theirs));
    const b = openVmcore(openRandomAccess(join(dir, "ours-kdump-lzo")));
    assert.equal(b.kdump!.dumpedPages, a.kdump!.dumpedPages);
    assert.equal(formatDmesg(readLockless(vmcoreKernelMemory(a), a.vmcoreinfo!)), reference, "we read makedumpfile's lzo kdump");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("real 6.1 vmcore: the 2nd bitmap made a window at a time (read back from the file, made again for a stream) gives the same file as held whole, cut short too, and the same ELF dump", async (t) => {
  if (!existsSync(REAL)) return missingInput(t, `no captured vmcore at ${REAL} (run: node dist/lab/capture-vmcore.js, about 2 minutes; or the e2e suite's vmcore-amd64-6.1)`);
  if (missingTool("makedumpfile") !== undefined) return missingInput(t, "makedumpfile is not installed (.ci/setup-debian.sh)");
  const dir = tmp();
  try {
    const reference = makedumpfileDmesg(REAL, dir);
    // 2^15 page frames (128 MiB) per window: the guest's 1 GiB in eight windows. The writer's own
    // windows are 2^24; below a GiB there would be one.
    const WINDOW = 1 << 15;
    const cases: [string, Partial<SaveOptions>][] = [
      ["lzo, this thread", { codec: "lzo", dumpLevel: 31 }],
      ["zlib, the scan shared with a worker", { codec: "zlib", dumpLevel: 31, threads: 1 }],
      ["lzo -d 1", { codec: "lzo", dumpLevel: 1 }],
      ["cut short after 3000 pages", { codec: "lzo", dumpLevel: 31, faultAfterPages: 3000 }],
      // The ELF writer plans its PT_LOADs from the same windows.
      ["ELF -d 31", { format: "elf", codec: "none", dumpLevel: 31 }],
      ["ELF -d 1", { format: "elf", codec: "none", dumpLevel: 1 }],
    ];
    for (const [what, more] of cases) {
      const whole = join(dir, "whole.kdump");
      const windowed = join(dir, "windowed.kdump");
      const a = await saveVmcoreTo(opts(REAL, whole, more));
      const b = await saveVmcoreTo(opts(REAL, windowed, { ...more, windowPages: WINDOW }));
      const done = (f: string, r: { complete: boolean }) => (r.complete ? f : `${f}.incomplete`);
      assert.equal(b.complete, a.complete, what);
      assert.deepEqual(b.counts, a.counts, `${what}: the same exclusion counts`);
      const bytes = [readFileSync(done(whole, a)), readFileSync(done(windowed, b))];
      assert.ok(bytes[0]!.equals(bytes[1]!), `${what}: byte for byte the same file (${bytes[0]!.length} and ${bytes[1]!.length} bytes)`);
      assert.equal(makedumpfileDmesg(done(windowed, b), dir), reference, `${what}: makedumpfile reads its log`);
      for (const f of [whole, windowed]) for (const name of [f, `${f}.incomplete`]) rmSync(name, { force: true });
    }
    // A flattened stream cannot be read back: each window is made again for pass 2 (with a worker
    // too, sharing the scan). makedumpfile -R makes of it the file written directly.
    for (const [what, more] of cases.slice(0, 2)) {
      const file = join(dir, "file.kdump");
      const flat = join(dir, "flat.kdump");
      const restored = join(dir, "restored.kdump");
      const a = await saveVmcoreTo(opts(REAL, file, { ...more, windowPages: WINDOW }));
      const b = await saveVmcoreTo(opts(REAL, flat, { ...more, flat: true, windowPages: WINDOW }));
      assert.equal(b.complete, true, what);
      assert.deepEqual(b.counts, a.counts, `${what}, flattened: the same exclusion counts`);
      execFileSync("makedumpfile", ["-R", restored], { input: readFileSync(flat), stdio: ["pipe", "ignore", "ignore"] });
      assert.ok(readFileSync(restored).equals(readFileSync(file)), `${what}: the flattened dump, restored by makedumpfile -R, is the file byte for byte`);
      assert.equal(makedumpfileDmesg(restored, dir), reference, `${what}: the flattened dump, restored by makedumpfile -R`);
      for (const f of [file, flat, restored]) rmSync(f, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--threads auto: a worker per other core where the codec pays for one; lzo only from 512 MiB to compress", () => {
  const GiB = 1n << 30n;
  // 4 GiB at -d 31 (a quarter of it guessed to be compressed) is enough for every codec's threshold.
  assert.equal(autoThreads("zlib", 4n * GiB, 31, 2), 1);
  assert.equal(autoThreads("zstd", 4n * GiB, 31, 2), 1);
  assert.equal(autoThreads("snappy", 4n * GiB, 31, 2), 1);
  assert.equal(autoThreads("lzo", 4n * GiB, 31, 2), 1);
  assert.equal(autoThreads("lzo", 4n * GiB, 31, 4), 3);
  // lzo: a 1 GiB machine at -d 31 keeps too little for a worker's start to pay back; at -d 1 it keeps enough.
  assert.equal(autoThreads("zlib", 1n * GiB, 31, 2), 1);
  assert.equal(autoThreads("lzo", 1n * GiB, 31, 2), 0);
  assert.equal(autoThreads("lzo", 1n * GiB, 1, 2), 1);
  // One core (a capture kernel with nr_cpus=1), or too little to compress: none.
  assert.equal(autoThreads("zlib", 4n * GiB, 31, 1), 0);
  assert.equal(autoThreads("zlib", 32n << 20n, 31, 2), 0);
  assert.equal(autoThreads("zlib", 32n << 20n, 1, 2), 1);
});
