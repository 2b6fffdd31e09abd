import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { offsetOf, readStruct } from "../bytes/layout.js";
import { KexecError } from "../errors.js";
import { ELF64_EHDR, ELF64_PHDR, ELF64_SHDR, PN_XNUM, PT_LOAD, PT_NOTE, SHT_NULL, parseElf } from "../image/elf.js";
import { MAX_CORE_PROGRAM_HEADERS, spanFinder } from "./elf-core.js";
import { elfHeaderSize, encodeElfCoreHeader, encodeNote, type OutputLoad } from "./elf-writer.js";
import { bytesAccess } from "./memory.js";
import { openVmcore } from "./vmcore.js";
import { syntheticVmcore } from "./testing.js";

const PS = 4096;

/** `n` one-page PT_LOADs of no data, a page apart, from 1 MiB: only the count matters here. */
function emptyLoads(n: number): OutputLoad[] {
  return Array.from({ length: n }, (_, i) => ({ p_vaddr: 0n, p_paddr: BigInt((256 + 2 * i) * PS), p_offset: 0n, p_filesz: 0n, p_memsz: BigInt(PS) }));
}

const NOTES = encodeNote("VMCOREINFO", 0, new TextEncoder().encode("PAGESIZE=4096\n"));

test("ELF core header: 0xfffe program headers fit e_phnum; 0xffff (PN_XNUM itself) already go to section header 0's sh_info", () => {
  // 65,533 PT_LOADs and the PT_NOTE: the header as it always was, no section header.
  const below = encodeElfCoreHeader("x86_64", emptyLoads(PN_XNUM - 2), NOTES);
  const b = readStruct(ELF64_EHDR, below, 0);
  assert.deepEqual([b.e_phnum, b.e_shoff, b.e_shentsize, b.e_shnum, b.e_shstrndx], [0xfffe, 0n, 0, 0, 0]);
  assert.equal(elfHeaderSize(PN_XNUM - 2), ELF64_EHDR.size + 0xfffe * ELF64_PHDR.size);
  assert.equal(readStruct(ELF64_PHDR, below, ELF64_EHDR.size).p_offset, BigInt(ELF64_EHDR.size + 0xfffe * ELF64_PHDR.size), "PT_NOTE right after the table");

  // One more: e_phnum PN_XNUM, the count in sh_info, the section header between the table and the notes.
  for (const loads of [PN_XNUM - 1, PN_XNUM + 1000]) {
    const phnum = loads + 1;
    const out = encodeElfCoreHeader("x86_64", emptyLoads(loads), NOTES);
    const tableEnd = ELF64_EHDR.size + phnum * ELF64_PHDR.size;
    const h = readStruct(ELF64_EHDR, out, 0);
    assert.deepEqual([h.e_phnum, h.e_shoff, h.e_shentsize, h.e_shnum, h.e_shstrndx], [PN_XNUM, BigInt(tableEnd), ELF64_SHDR.size, 1, 0], `${phnum} program headers: the ELF header`);
    const sh = readStruct(ELF64_SHDR, out, tableEnd);
    // As the kernel's fill_extnum_info and makedumpfile -E fill it.
    assert.deepEqual({ ...sh }, { sh_name: 0, sh_type: SHT_NULL, sh_flags: 0n, sh_addr: 0n, sh_offset: 0n, sh_size: 1n, sh_link: 0, sh_info: phnum, sh_addralign: 0n, sh_entsize: 0n });
    const note = readStruct(ELF64_PHDR, out, ELF64_EHDR.size);
    assert.equal(note.p_type, PT_NOTE);
    assert.equal(note.p_offset, BigInt(tableEnd + ELF64_SHDR.size), "the notes after the section header");
    assert.equal(elfHeaderSize(loads), tableEnd + ELF64_SHDR.size, "elfHeaderSize counts it, so the data offsets do");
    assert.deepEqual(out.subarray(tableEnd + ELF64_SHDR.size), NOTES);
    const elf = parseElf(out, "core header");
    assert.equal(elf.programHeaders.length, phnum, "parseElf takes the count from sh_info");
    assert.equal(elf.programHeaders.filter((p) => p.p_type === PT_LOAD).length, loads);
    assert.equal(elf.programHeaders[phnum - 1]!.p_paddr, BigInt((256 + 2 * (loads - 1)) * PS), "the last PT_LOAD");
  }
});

test("ELF core header: past MAX_CORE_PROGRAM_HEADERS the writer refuses by name, before it allocates the table", () => {
  assert.throws(() => elfHeaderSize(MAX_CORE_PROGRAM_HEADERS), (e: unknown) => e instanceof KexecError && e.code === "usage" && e.data.field === "e_phnum" && /kdump/.test(e.hint ?? ""));
  assert.equal(elfHeaderSize(MAX_CORE_PROGRAM_HEADERS - 1), ELF64_EHDR.size + MAX_CORE_PROGRAM_HEADERS * ELF64_PHDR.size + ELF64_SHDR.size);
});

/** The synthetic vmcore with its header's e_phnum set to PN_XNUM and `edit` applied to the ELF header. */
function xnumCore(edit: (dv: DataView, bytes: Uint8Array) => void): Uint8Array {
  const bytes = syntheticVmcore(24).bytes.slice();
  const dv = new DataView(bytes.buffer);
  dv.setUint16(offsetOf(ELF64_EHDR, "e_phnum"), PN_XNUM, true);
  edit(dv, bytes);
  return bytes;
}

test("a PN_XNUM core whose section header 0 is missing, outside the file, too short or says a small count is refused by field", () => {
  const E = (name: "e_shoff" | "e_shentsize") => offsetOf(ELF64_EHDR, name);
  const cases: [string, (dv: DataView, bytes: Uint8Array) => void, string, RegExp][] = [
    ["e_shoff 0", () => {}, "e_shoff", /e_shoff is 0/],
    ["e_shoff past the end", (dv, bytes) => { dv.setBigUint64(E("e_shoff"), BigInt(bytes.length - 10), true); dv.setUint16(E("e_shentsize"), 64, true); }, "e_shoff", /ends at .*past the end of the file/],
    ["e_shoff far out", (dv) => { dv.setBigUint64(E("e_shoff"), 0xffffffffffffffc0n, true); dv.setUint16(E("e_shentsize"), 64, true); }, "e_shoff", /past the end of the file/],
    ["e_shentsize 0", (dv) => { dv.setBigUint64(E("e_shoff"), 64n, true); }, "e_shentsize", /smaller than an ELF64 section header/],
    // The first program header read as a section header: sh_info is its p_filesz's low half, well below 0xffff.
    ["sh_info small", (dv) => { dv.setBigUint64(E("e_shoff"), 64n, true); dv.setUint16(E("e_shentsize"), 64, true); }, "sh_info", /a count e_phnum would have held/],
    ["sh_info huge", (dv) => {
      dv.setBigUint64(E("e_shoff"), 64n, true);
      dv.setUint16(E("e_shentsize"), 64, true);
      dv.setUint32(64 + offsetOf(ELF64_SHDR, "sh_info"), 0xffffffff, true);
    }, "sh_info", /more than kexec-ts reads/],
  ];
  for (const [what, edit, field, message] of cases) {
    const bytes = xnumCore(edit);
    assert.throws(() => openVmcore(bytesAccess(bytes), "dump"), (e: unknown) => {
      assert.ok(e instanceof KexecError, `${what}: ${String(e)}`);
      assert.equal(e.code, "parse", what);
      assert.equal(e.data.field, field, `${what}: ${e.message}`);
      assert.match(e.message, message, what);
      assert.ok(e.data.offset !== undefined && e.data.expected !== undefined && e.data.actual !== undefined && (e.hint ?? "").length > 0, `${what}: offset, expected, actual and a hint`);
      return true;
    });
    assert.throws(() => parseElf(bytes, "dump"), (e: unknown) => e instanceof KexecError && e.code === "parse", `${what}: parseElf too`);
  }
});

test("spanFinder: the first span holding [from, to), as a search of every span finds it, overlaps and nesting included", () => {
  const spans = fc.array(fc.tuple(fc.nat(300), fc.nat(60)), { maxLength: 40 }).map((list) => list.map(([s, n]) => [s, s + n] as const).sort((a, b) => a[0] - b[0]));
  fc.assert(fc.property(spans, fc.nat(380), fc.nat(8), (list, from, length) => {
    const find = spanFinder(list.map((s) => s[0]), list.map((s) => s[1]));
    const to = from + Math.max(1, length);
    assert.equal(find(from, to), list.findIndex(([s, e]) => s <= from && e >= to));
  }), { numRuns: 500 });
});
