import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseElf, PT_LOAD, PT_NOTE, ET_CORE, EM_X86_64, EM_386 } from "../image/elf.js";
import { buildElfCoreHeader, elfCoreHeaderSize, type ElfCoreHeaderInput } from "./elfcorehdr.js";
import { missingInput, missingTool } from "../../node/test-inputs.js";

const input64: ElfCoreHeaderInput = {
  elfClass: 64,
  notes: [
    { what: "crash_notes of cpu 0", address: 0x13fc16c00n, size: 0x1bcn },
    { what: "crash_notes of cpu 1", address: 0x13fc56c00n, size: 0x1bcn },
    { what: "vmcoreinfo", address: 0x13bb5a000n, size: 0x1000n },
  ],
  loads: [
    { paddr: 0x1000000n, size: 0x2c00000n, vaddr: 0xffffffff81000000n },
    { paddr: 0x100000n, size: 0x7af00000n, vaddr: 0xff11000000100000n },
    { paddr: 0x100000000n, size: 0x40000000n, vaddr: 0xff11000100000000n },
  ],
};

test("ELF64 core header: ET_CORE, EM_X86_64, one PT_NOTE per note area, PT_LOADs with p_offset = p_paddr", () => {
  const bytes = buildElfCoreHeader(input64);
  assert.equal(bytes.length, elfCoreHeaderSize(64, 6));
  const elf = parseElf(bytes, "core header");
  assert.equal(elf.header.e_type, ET_CORE);
  assert.equal(elf.header.e_machine, EM_X86_64);
  const notes = elf.programHeaders.filter((p) => p.p_type === PT_NOTE);
  const loads = elf.programHeaders.filter((p) => p.p_type === PT_LOAD);
  assert.deepEqual(notes.map((n) => [n.p_offset, n.p_filesz]), input64.notes.map((n) => [n.address, n.size]));
  assert.deepEqual(loads.map((l) => [l.p_offset, l.p_paddr, l.p_vaddr, l.p_memsz]), input64.loads.map((l) => [l.paddr, l.paddr, l.vaddr, l.size]));
});

test("ELF32 core header for i386: highmem loads have no virtual address, values past 4 GiB are refused", () => {
  const bytes = buildElfCoreHeader({
    elfClass: 32,
    notes: [{ what: "vmcoreinfo", address: 0x1f8c000n, size: 0x1000n }],
    loads: [{ paddr: 0x100000n, size: 0x37f00000n, vaddr: 0xc0100000n }, { paddr: 0x38000000n, size: 0x8000000n, vaddr: undefined }],
  });
  const elf = parseElf(bytes, "core header");
  assert.equal(elf.header.elfClass, 32);
  assert.equal(elf.header.e_machine, EM_386);
  assert.equal(elf.programHeaders[2]!.p_vaddr, 0xffffffffn);
  assert.throws(() => buildElfCoreHeader({ elfClass: 32, notes: [], loads: [{ paddr: 0x100000000n, size: 0x1000n, vaddr: undefined }] }), /does not fit an ELF32 core header/);
});

test("readelf -l -n reads the header as a core file", (t) => {
  if (missingTool("readelf") !== undefined) return missingInput(t, "readelf (binutils) is not installed");
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-core-"));
  const file = join(dir, "elfcorehdr");
  writeFileSync(file, buildElfCoreHeader(input64));
  const r = spawnSync("readelf", ["-h", "-l", "-W", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Type:\s+CORE \(Core file\)/);
  assert.match(r.stdout, /Machine:\s+Advanced Micro Devices X86-64/);
  assert.equal((r.stdout.match(/^\s+NOTE\s/gm) ?? []).length, 3);
  assert.equal((r.stdout.match(/^\s+LOAD\s/gm) ?? []).length, 3);
  assert.match(r.stdout, /LOAD\s+0x0*1000000 0xffffffff81000000 0x0*1000000 0x2c00000 0x2c00000 RWE/);
  // The notes live in the crashed kernel's memory, not in this file: readelf -n must say the
  // segment lies outside the file rather than crash or misparse.
  const n = spawnSync("readelf", ["-n", file], { encoding: "utf8" });
  assert.ok(n.status === 0 || /outside|beyond|past end|truncated|corrupt/i.test(n.stderr + n.stdout), n.stderr);
});

test("golden: the core header bytes for a fixed input", () => {
  const golden = new URL("../../../testdata/elfcorehdr/x86_64.bin", import.meta.url).pathname;
  const bytes = buildElfCoreHeader(input64);
  if (process.env["UPDATE_GOLDEN"] === "1") writeFileSync(golden, bytes);
  assert.ok(existsSync(golden), `${golden} missing: UPDATE_GOLDEN=1`);
  assert.deepEqual(new Uint8Array(readFileSync(golden)), bytes);
});
