/**
 * Every layout table checked against a source that shares none of its code: the kernel's own
 * type information (BTF, printed by pahole) for boot_params, the setup header, the ELF structs
 * and new_utsname; readelf for ELF files read and written; and the kdump headers against the C
 * layout rules of each ABI applied to makedumpfile's declarations (diskdump_mod.h), with real
 * files makedumpfile wrote checked in vmcore.test.ts and i386.test.ts. A reader and a writer that
 * shared a wrong offset would pass their round trips; they cannot pass these.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Field, Layout } from "../core/bytes/layout.js";
import { BOOT_E820_ENTRY, BOOT_PARAMS, SETUP_DATA } from "../core/image/boot-params.js";
import { ELF32_EHDR, ELF32_PHDR, ELF32_SHDR, ELF64_EHDR, ELF64_PHDR, ELF64_SHDR, ELF_NHDR, parseElf, PT_NAMES } from "../core/image/elf.js";
import { SETUP_HEADER } from "../core/image/setup-header.js";
import { DISK_DUMP_HEADER_32, DISK_DUMP_HEADER_64, KDUMP_SUB_HEADER_32, KDUMP_SUB_HEADER_64, NEW_UTSNAME, PAGE_DESC } from "../core/vmcore/kdump.js";
import { MAKEDUMPFILE_DATA_HEADER, MAKEDUMPFILE_HEADER } from "../core/vmcore/flat.js";
import { syntheticVmcore } from "../core/vmcore/testing.js";
import { cacheDir } from "./kernel-cache.js";
import { missingInput } from "./test-inputs.js";

/** A tool the check needs: missing is a skip on a developer's machine and a failure in CI (missingInput). */
function need(t: TestContext, tool: string, args: string[], install: string): boolean {
  if (spawnSync(tool, args).status === 0) return true;
  missingInput(t, `${tool} is not installed (${install})`);
  return false;
}

interface Member { offset: number; size: number }

/**
 * BTF to read: the debug vmlinux of the lab's 6.1 kernel when the cache has it (setup-debian.sh
 * fetches it), else the running kernel's. Both are Debian kernels with the same uapi structs.
 */
function btfSource(): string {
  const dbg = join(cacheDir(), "debian-dbg");
  const found = existsSync(dbg) ? readdirSync(dbg).find((f) => f.startsWith("vmlinux-")) : undefined;
  return found ? join(dbg, found) : "/sys/kernel/btf/vmlinux";
}

/** `pahole -C NAME`: member name -> offset and size, and the struct's size. */
function pahole(source: string, struct: string): { members: Map<string, Member>; size: number } {
  const r = spawnSync("pahole", ["-F", "btf", "-C", struct, source], { encoding: "utf8", maxBuffer: 1 << 24 });
  assert.equal(r.status, 0, `pahole -C ${struct} ${source}: ${r.stderr.slice(0, 500)}`);
  const members = new Map<string, Member>();
  for (const line of r.stdout.split("\n")) {
    const m = /^\t.*?\b(\w+)(?:\[\d*\])*;\s*\/\*\s*(\d+)\s+(\d+)\s*\*\//.exec(line);
    if (m) members.set(m[1]!, { offset: Number(m[2]), size: Number(m[3]) });
  }
  const size = /\/\* size: (\d+)/.exec(r.stdout);
  assert.ok(size && members.size > 0, `pahole printed no struct ${struct}:\n${r.stdout.slice(0, 500)}`);
  return { members, size: Number(size[1]) };
}

function assertMatches(layout: Layout, btf: { members: Map<string, Member>; size: number }, base = 0, nameOf = (f: Field) => f.name, checkSize = true): void {
  for (const f of layout.fields) {
    const m = btf.members.get(nameOf(f));
    assert.ok(m, `${layout.name}.${f.name}: the kernel's struct has no member ${nameOf(f)}`);
    assert.deepEqual({ offset: f.offset - base, size: f.size }, m, `${layout.name}.${f.name}: our offset/size vs the kernel's BTF`);
  }
  if (checkSize) assert.equal(layout.size, btf.size, `${layout.name}: size`);
}

test("layouts: boot_params, setup_header, e820, setup_data, ELF and new_utsname match the kernel's BTF (pahole)", (t) => {
  if (!need(t, "pahole", ["--version"], "apt-get install dwarves")) return;
  const src = btfSource();
  if (!existsSync(src)) return missingInput(t, `no BTF at ${src} (.ci/setup-debian.sh fetches the 6.1 kernel's debug vmlinux)`);
  assertMatches(SETUP_HEADER, pahole(src, "setup_header"), 0x1f1, undefined, false);
  assert.equal(SETUP_HEADER.size - 0x1f1, pahole(src, "setup_header").size, "setup_header ends where the kernel's does");
  // boot_params: its own members, the setup header at hdr (0x1f1), efi_info at 0x1c0, screen_info at 0.
  const bp = pahole(src, "boot_params");
  assert.equal(bp.members.get("hdr")?.offset, 0x1f1);
  assert.equal(bp.members.get("efi_info")?.offset, 0x1c0);
  assert.equal(bp.members.get("screen_info")?.offset, 0);
  assert.equal(BOOT_PARAMS.size, bp.size);
  const parts: [Layout, Map<string, Member>, number][] = [
    [BOOT_PARAMS, bp.members, 0],
    [BOOT_PARAMS, pahole(src, "efi_info").members, 0x1c0],
    [BOOT_PARAMS, new Map([...pahole(src, "screen_info").members].map(([k, v]) => [`screen_info.${k}`, v])), 0],
    [BOOT_PARAMS, pahole(src, "setup_header").members, 0x1f1],
  ];
  for (const f of BOOT_PARAMS.fields) {
    const where = parts.filter(([, members, base]) => members.has(f.name) && f.offset - base >= 0);
    assert.equal(where.length, 1, `boot_params.${f.name} is in exactly one of boot_params, efi_info, screen_info, setup_header`);
    const [, members, base] = where[0]!;
    assert.deepEqual({ offset: f.offset - base, size: f.size }, members.get(f.name), `boot_params.${f.name}`);
  }
  assertMatches(BOOT_E820_ENTRY, pahole(src, "boot_e820_entry"));
  assertMatches(SETUP_DATA, pahole(src, "setup_data"));
  assertMatches(ELF64_EHDR, pahole(src, "elf64_hdr"));
  assertMatches(ELF32_EHDR, pahole(src, "elf32_hdr"));
  assertMatches(ELF64_PHDR, pahole(src, "elf64_phdr"));
  assertMatches(ELF32_PHDR, pahole(src, "elf32_phdr"));
  assertMatches(ELF64_SHDR, pahole(src, "elf64_shdr"));
  assertMatches(ELF32_SHDR, pahole(src, "elf32_shdr"));
  assertMatches(ELF_NHDR, pahole(src, "elf64_note"));
  assertMatches(ELF_NHDR, pahole(src, "elf32_note"));
  assertMatches(NEW_UTSNAME, pahole(src, "new_utsname"));
});

/** C's layout rules for a struct of the given members: each aligned to its alignment, the size rounded to the largest. */
function cLayout(members: readonly [string, number, number][]): { offsets: Map<string, Member>; size: number } {
  const offsets = new Map<string, Member>();
  let at = 0;
  let maxAlign = 1;
  for (const [name, size, align] of members) {
    at = Math.ceil(at / align) * align;
    offsets.set(name, { offset: at, size });
    at += size;
    maxAlign = Math.max(maxAlign, align);
  }
  return { offsets, size: Math.ceil(at / maxAlign) * maxAlign };
}

test("layouts: the kdump headers follow C's layout rules for x86_64 (LP64) and i386 (ILP32, 8-byte types aligned to 4)", () => {
  for (const abi of [{ long: 8, align8: 8, header: DISK_DUMP_HEADER_64, sub: KDUMP_SUB_HEADER_64 }, { long: 4, align8: 4, header: DISK_DUMP_HEADER_32, sub: KDUMP_SUB_HEADER_32 }] as const) {
    const { long, align8 } = abi;
    const int: [number, number] = [4, 4];
    // struct disk_dump_header (diskdump_mod.h), in declaration order; utsname is 6 x char[65]; the trailing
    // struct task_struct *tasks[0] adds no bytes but aligns the size to a pointer.
    const header = cLayout([
      ["signature", 8, 1], ["header_version", ...int],
      ...["sysname", "nodename", "release", "version", "machine", "domainname"].map((n) => [`utsname.${n}`, 65, 1] as [string, number, number]),
      ["timestamp.tv_sec", long, long], ["timestamp.tv_usec", long, long],
      ...["status", "block_size", "sub_hdr_size", "bitmap_blocks", "max_mapnr", "total_ram_blocks", "device_blocks", "written_blocks", "current_cpu", "nr_cpus"].map((n) => [n, ...int] as [string, number, number]),
      ["tasks", 0, long],
    ]);
    for (const f of abi.header.fields) assert.deepEqual({ offset: f.offset, size: f.size }, header.offsets.get(f.name), `${abi.header.name}.${f.name}`);
    assert.equal(abi.header.size, header.size, `${abi.header.name} size`);
    // struct kdump_sub_header: unsigned long is the word, off_t and unsigned long long are 8 bytes.
    const sub = cLayout([
      ["phys_base", long, long], ["dump_level", ...int], ["split", ...int], ["start_pfn", long, long], ["end_pfn", long, long],
      ["offset_vmcoreinfo", 8, align8], ["size_vmcoreinfo", long, long], ["offset_note", 8, align8], ["size_note", long, long],
      ["offset_eraseinfo", 8, align8], ["size_eraseinfo", long, long], ["start_pfn_64", 8, align8], ["end_pfn_64", 8, align8], ["max_mapnr_64", 8, align8],
    ]);
    for (const f of abi.sub.fields) assert.deepEqual({ offset: f.offset, size: f.size }, sub.offsets.get(f.name), `${abi.sub.name}.${f.name}`);
    assert.equal(abi.sub.size, sub.size, `${abi.sub.name} size`);
    const desc = cLayout([["offset", 8, align8], ["size", ...int], ["flags", ...int], ["page_flags", 8, align8]]);
    for (const f of PAGE_DESC.fields) assert.deepEqual({ offset: f.offset, size: f.size }, desc.offsets.get(f.name), `page_desc_t.${f.name} (${long * 8}-bit)`);
    assert.equal(PAGE_DESC.size, desc.size);
  }
  // The flattened format's headers are int64s after a 16-byte signature, big-endian on every machine.
  const mdf = cLayout([["signature", 16, 1], ["type", 8, 8], ["version", 8, 8]]);
  for (const f of MAKEDUMPFILE_HEADER.fields) assert.deepEqual({ offset: f.offset, size: f.size }, mdf.offsets.get(f.name));
  const data = cLayout([["offset", 8, 8], ["buf_size", 8, 8]]);
  for (const f of MAKEDUMPFILE_DATA_HEADER.fields) assert.deepEqual({ offset: f.offset, size: f.size }, data.offsets.get(f.name));
  assert.equal(MAKEDUMPFILE_HEADER.endian, "big");
  assert.equal(MAKEDUMPFILE_DATA_HEADER.endian, "big");
});

/** readelf -h -l -W, as numbers. */
function readelf(path: string): { header: Record<string, bigint>; loads: { type: string; offset: bigint; vaddr: bigint; paddr: bigint; filesz: bigint; memsz: bigint }[] } {
  const r = spawnSync("readelf", ["-h", "-l", "-W", path], { encoding: "utf8", maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const num = (label: string) => {
    const m = new RegExp(`^\\s+${label}:\\s+(0x[0-9a-f]+|\\d+)`, "m").exec(r.stdout);
    assert.ok(m, `readelf printed no "${label}" for ${path}`);
    return BigInt(m[1]!);
  };
  const header = {
    e_entry: num("Entry point address"), e_phoff: num("Start of program headers"), e_shoff: num("Start of section headers"), e_flags: num("Flags"),
    e_ehsize: num("Size of this header"), e_phentsize: num("Size of program headers"), e_phnum: num("Number of program headers"),
    e_shentsize: num("Size of section headers"), e_shnum: num("Number of section headers"), e_shstrndx: num("Section header string table index"),
  };
  const loads = [];
  for (const m of r.stdout.matchAll(/^\s+([A-Z_]+|LOOS\+0x[0-9a-f]+)\s+(0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) /gm)) {
    loads.push({ type: m[1]!, offset: BigInt(m[2]!), vaddr: BigInt(m[3]!), paddr: BigInt(m[4]!), filesz: BigInt(m[5]!), memsz: BigInt(m[6]!) });
  }
  return { header, loads };
}

test("layouts: parseElf reads what readelf reads, for 64- and 32-bit programs and an ELF core we wrote", (t) => {
  if (!need(t, "readelf", ["--version"], "apt-get install binutils")) return;
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-layouts-"));
  try {
    const core = join(dir, "core.elf");
    writeFileSync(core, syntheticVmcore(32).bytes);
    const files = [process.execPath, core];
    const i386 = join(cacheDir(), "i386-node", "root", "usr", "bin", "node");
    if (existsSync(i386)) files.push(i386);
    for (const path of files) {
      const bytes = new Uint8Array(readFileSync(path));
      const elf = parseElf(bytes, path);
      const want = readelf(path);
      for (const [k, v] of Object.entries(want.header)) assert.equal(BigInt(elf.header[k as keyof typeof elf.header] as number | bigint), v, `${path}: ${k}`);
      assert.equal(elf.programHeaders.length, want.loads.length, `${path}: program headers`);
      elf.programHeaders.forEach((p, i) => {
        const w = want.loads[i]!;
        if (PT_NAMES[p.p_type] !== undefined) assert.equal(w.type, PT_NAMES[p.p_type], `${path}: phdr ${i} type`);
        assert.deepEqual([p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz], [w.offset, w.vaddr, w.paddr, w.filesz, w.memsz], `${path}: phdr ${i}`);
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
