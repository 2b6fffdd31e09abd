/**
 * The image readers fuzzed (src/core/testing/fuzz.ts says the rule): the bzImage reader on the
 * whole image, not just its first 0x280 bytes (setup area, version string, PE header,
 * kernel_info, the payload and the vmlinux inside it), parseElf on vmlinux- and
 * /proc/kcore-shaped input, and the PE reader. Seeds are real where there are some (the cached
 * Debian kernels, kcore headers from lab guests in testdata/kcore) and synthetic images shaped
 * like them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { ByteWriter } from "../bytes/writer.js";
import { applyEdits, damaged, edits, onlyKexecErrors, refusals } from "../testing/fuzz.js";
import { parseBzImage } from "./bzimage.js";
import { KexecError } from "../errors.js";
import { parseElf, parseNotes, PT_LOAD, PT_NOTE, readNotes, type ElfNote } from "./elf.js";
import { readKernelImage, readVmlinux } from "./index.js";
import { readPe } from "./pe.js";
import { buildBzImage } from "./testing/synthetic.js";
import { cachedKernels } from "../../node/kernel-cache.js";
import { missingInput } from "../../node/test-inputs.js";

/**
 * A small vmlinux as the kernel build makes one: ELF64 ET_EXEC for x86_64, PT_LOADs at
 * CONFIG_PHYSICAL_START, a PT_NOTE with the Xen and Linux notes, the banner in the data.
 */
function vmlinuxLike(): Uint8Array {
  const notes = ByteWriter.growable(64);
  let at = 0;
  for (const [name, type, desc] of [["Xen", 18, 8], ["Linux", 0x101, 4], ["GNU", 3, 20]] as const) {
    notes.u32(at, name.length + 1); notes.u32(at + 4, desc); notes.u32(at + 8, type);
    notes.bytesAt(at + 12, new TextEncoder().encode(`${name}\0`));
    const descAt = at + 12 + ((name.length + 1 + 3) & ~3);
    notes.bytesAt(descAt, new Uint8Array(desc).fill(0x11));
    at = descAt + desc;
  }
  const noteBytes = notes.finish();
  const text = new TextEncoder().encode("\0\0Linux version 6.1.0-99-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC\n\0");
  const phoff = 64, phnum = 3, dataAt = 0x1000;
  const w = new ByteWriter(dataAt + 0x2000);
  w.bytesAt(0, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));
  w.u16(16, 2); w.u16(18, 62); w.u32(20, 1); w.u64(24, 0x1000000n); w.u64(32, BigInt(phoff));
  w.u16(52, 64); w.u16(54, 56); w.u16(56, phnum);
  const ph = (i: number, type: number, offset: number, vaddr: bigint, size: number) => {
    const p = phoff + i * 56;
    w.u32(p, type); w.u32(p + 4, 5); w.u64(p + 8, BigInt(offset)); w.u64(p + 16, vaddr); w.u64(p + 24, vaddr & 0x7fffffffn);
    w.u64(p + 32, BigInt(size)); w.u64(p + 40, BigInt(size)); w.u64(p + 48, 0x1000n);
  };
  ph(0, PT_LOAD, dataAt, 0xffffffff81000000n, 0x1000);
  ph(1, PT_LOAD, dataAt + 0x1000, 0xffffffff81001000n, 0x1000);
  ph(2, PT_NOTE, dataAt + 0x800, 0xffffffff81000800n, noteBytes.length);
  w.bytesAt(dataAt + 0x100, text);
  w.bytesAt(dataAt + 0x800, noteBytes);
  return w.finish();
}

const vmlinux = vmlinuxLike();

test("fuzz: the synthetic vmlinux reads back (the seed is what it says)", () => {
  const v = readVmlinux(vmlinux, "vmlinux");
  assert.equal(v.elf.programHeaders.length, 3);
  assert.deepEqual(v.notes.map((n) => n.name), ["Xen", "Linux", "GNU"]);
  assert.match(v.banner ?? "", /^Linux version 6\.1\.0-99-amd64 /);
});


/** Notes as read must be what the bytes hold: each desc after its own header and name, inside the file. */
function notesInPlace(bytes: Uint8Array, notes: readonly ElfNote[]): void {
  for (const n of notes) {
    const descAt = n.desc.byteOffset - bytes.byteOffset;
    assert.ok(descAt >= n.offset + 12 + n.name.length, `note at ${n.offset}: desc at ${descAt} overlaps its header or name (${n.name.length} bytes)`);
    assert.ok(descAt + n.desc.length <= bytes.length);
  }
}

test("fuzz: parseElf and the note reader on vmlinux-shaped input: damaged headers, program headers and notes", (t) => {
  const phEnd = 64 + 3 * 56;
  refusals(t, fc.oneof(damaged(vmlinux, 0, phEnd), damaged(vmlinux, 0x1800, 0x1800 + 0x100)), 600, (bytes) =>
    onlyKexecErrors(() => notesInPlace(bytes, readNotes(bytes, parseElf(bytes))), "vmlinux") || onlyKexecErrors(() => readVmlinux(bytes, "vmlinux"), "vmlinux"));
});

test("found by fuzzing: a note whose n_namesz is near 4 GiB runs past the segment (it was read as a name of the rest and no desc)", () => {
  for (const namesz of [0xfffffffd, 0xffffffff, 0x7ffffffd, 0x80000001]) {
    const area = new Uint8Array(64);
    const dv = new DataView(area.buffer);
    dv.setUint32(0, namesz, true); dv.setUint32(4, 0, true); dv.setUint32(8, 1, true);
    assert.throws(() => parseNotes(area, 0x200), (e: unknown) => e instanceof KexecError && /note at offset 0x200 \(namesz \d+, descsz 0\) runs past the end of the segment \(64 bytes\)/.test(e.message), namesz.toString(16));
  }
});

test("fuzz: a bzImage with a real gzip payload holding a vmlinux: damaged setup, version, kernel_info, PE header and payload", (t) => {
  const payload = gzipSync(vmlinux);
  const withSize = new Uint8Array(payload.length + 4);
  withSize.set(payload);
  new DataView(withSize.buffer).setUint32(payload.length, vmlinux.length, true);
  // kernel_info right after the payload: "LToP", size, size_total, setup_type_max (boot.rst).
  const setupSize = 5 * 512;
  const kernelInfoOffset = 0x100 + withSize.length + 0x10;
  const seed = buildBzImage({ payload: withSize, pe: { signed: true }, tail: 0x200, fields: { kernel_info_offset: kernelInfoOffset } });
  const ki = new DataView(seed.buffer, setupSize + kernelInfoOffset);
  ki.setUint32(0, 0x506f544c, true); ki.setUint32(4, 16, true); ki.setUint32(8, 16, true); ki.setUint32(12, 9, true);
  const clean = readKernelImage(seed, { decompressPayload: true });
  assert.ok(clean.kind === "bzImage" && clean.vmlinux?.banner?.startsWith("Linux version 6.1.0-99"), "the seed reads whole");
  assert.equal(clean.kind === "bzImage" && clean.bzImage.kernelInfo?.setupTypeMax, 9);
  const regions: [number, number][] = [[0, setupSize], [setupSize + 0x100, setupSize + 0x100 + 64], [setupSize + 0x100 + withSize.length - 8, setupSize + kernelInfoOffset + 16], [0, seed.length]];
  refusals(t, fc.constantFrom(...regions).chain(([from, to]) => damaged(seed, from, to)), 500, (bytes) =>
    onlyKexecErrors(() => readKernelImage(bytes, { decompressPayload: true }), "bzImage"));
});

test("fuzz: the PE reader, on a signed stub and on random MZ headers, answers without throwing", () => {
  const seed = buildBzImage({ pe: { signed: true } });
  fc.assert(fc.property(damaged(seed, 0, 0x200, 8), (bytes) => {
    const pe = readPe(bytes);
    if (pe.signed) assert.ok(pe.certificateTable !== undefined && pe.certificateTable.offset + pe.certificateTable.size <= bytes.length);
  }), { numRuns: 500 });
});

/** The real kernels, read once: each fuzz run edits one in place and undoes the edits after. */
const kernels = cachedKernels();

test("fuzz: real Debian kernels, damaged anywhere in the setup, PE header, kernel_info or payload ends, or cut short", (t) => {
  if (kernels.length === 0) return missingInput(t, "no Debian kernels cached: run .ci/setup-debian.sh");
  for (const k of kernels) {
    const bytes = new Uint8Array(readFileSync(k.vmlinuz));
    const image = parseBzImage(bytes);
    const payload = image.payload!;
    const regions: [number, number][] = [
      [0, image.setupSize],
      [payload.offset - 16, payload.offset + 16],
      [payload.offset + payload.length - 8, payload.offset + payload.length],
    ];
    if (image.kernelInfo !== undefined) regions.push([image.kernelInfo.offset, image.kernelInfo.offset + image.kernelInfo.size]);
    refusals(t, fc.tuple(fc.constantFrom(...regions).chain(([from, to]) => edits(from, to)), fc.option(fc.nat(bytes.length), { freq: 5 })), 150, ([list, cut]) => {
      const undo = applyEdits(bytes, list);
      try {
        return onlyKexecErrors(() => readKernelImage(bytes.subarray(0, cut ?? bytes.length)), `${k.release} image`);
      } finally {
        undo();
      }
    });
    // The edits were undone: the image still reads as it did.
    assert.deepEqual(parseBzImage(bytes).raw, image.raw);
  }
});

const kcoreHeaders = ["amd64-6.1", "686-pae-6.1"].map((name) => ({ name, bytes: new Uint8Array(readFileSync(new URL(`../../../testdata/kcore/${name}.head`, import.meta.url))) }));

test("fuzz: parseElf and the note reader on real /proc/kcore headers (testdata/kcore): damaged counts, offsets, sizes and notes", (t) => {
  for (const { name, bytes: seed } of kcoreHeaders) {
    const elf = parseElf(seed, "/proc/kcore");
    const notes = readNotes(seed, elf, "/proc/kcore");
    assert.deepEqual(notes.map((n) => n.name), ["CORE", "CORE", "CORE", "VMCOREINFO"], `${name}: the seed is a whole kcore header`);
    assert.ok(elf.programHeaders.some((p) => p.p_type === PT_LOAD && p.p_filesz > BigInt(seed.length)), `${name}: its PT_LOADs reach far past the header`);
    const tableEnd = Number(elf.header.e_phoff) + elf.header.e_phnum * elf.header.e_phentsize;
    const notesAt = Number(elf.programHeaders.find((p) => p.p_type === PT_NOTE)!.p_offset);
    refusals(t, fc.oneof(damaged(seed, 0, tableEnd), damaged(seed, notesAt, notesAt + 0x200)), 400, (bytes) =>
      onlyKexecErrors(() => notesInPlace(bytes, readNotes(bytes, parseElf(bytes, "/proc/kcore"), "/proc/kcore")), `${name} kcore header`));
  }
});
