import { test } from "node:test";
import { strict as assert } from "node:assert";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { hex } from "../../core/format.js";
import { missingInput } from "../test-inputs.js";
import { WINDOW, isMapFailed, openMappedFile, openViewedFile } from "./mapped-file.js";
import { tryKoffi } from "../ffi.js";

test("reads through mmap windows give the file's bytes, across window edges and after evictions", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-mapped-"));
  try {
    // 21 MiB + a bit: six 4 MiB windows, more than are kept, and a short last one.
    const size = 21 * (1 << 20) + 12345;
    const data = new Uint8Array(size);
    for (let i = 0; i + 4 <= size; i += 4) new DataView(data.buffer).setUint32(i, i * 2654435761 >>> 0, true);
    const path = join(dir, "f");
    writeFileSync(path, data);
    const f = openMappedFile(path)!;
    assert.ok(f !== undefined, "koffi loads here");
    try {
      assert.equal(f.size, BigInt(size));
      fc.assert(fc.property(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: 9 << 20 }), (offset, want) => {
        const length = Math.min(want, size - offset);
        assert.deepEqual(f.read(BigInt(offset), length), data.subarray(offset, offset + length));
      }), { numRuns: 60 });
      // In order, the way a save reads its pages.
      const out = new Uint8Array(1 << 20);
      for (let at = 0; at + out.length <= size; at += out.length) {
        f.readInto(BigInt(at), out, 0, out.length);
        assert.deepEqual(out, data.subarray(at, at + out.length));
      }
      assert.throws(() => f.read(BigInt(size - 10), 11), /run past the end/);
    } finally {
      f.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("views show a file's bytes in place, whole up to half a window, all through one buffer; one window of the file is mapped at a time, and reads are read()", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-viewed-"));
  try {
    // Three windows and a short fourth.
    const size = 3 * WINDOW + 3 * 4096 + 100;
    const data = new Uint8Array(size);
    for (let i = 0; i + 4 <= size; i += 4) new DataView(data.buffer).setUint32(i, (i * 2246822519) >>> 0, true);
    const path = join(dir, "f");
    writeFileSync(path, data);
    for (const open of [openViewedFile, openMappedFile]) {
      const f = open(path)!;
      assert.ok(f?.view !== undefined, `${open.name}: koffi loads here, and the file can be seen in place`);
      try {
        const buffers = new Set<ArrayBufferLike>();
        fc.assert(fc.property(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 1, max: 2 * WINDOW }), (offset, want) => {
          const length = Math.min(want, size - offset);
          const seen = f.view!(offset, length)!;
          assert.ok(seen !== undefined, `${open.name}: mapped`);
          // Whole up to half a window (a view's window starts at the half-window boundary below it); more may come short.
          assert.ok(seen.length <= length && seen.length >= Math.min(length, WINDOW / 2), `${seen.length} of ${length} bytes at ${hex(offset)}`);
          assert.deepEqual(seen.bytes.subarray(seen.from, seen.from + seen.length), data.subarray(offset, offset + seen.length), `${seen.length} bytes at ${hex(offset)}`);
          buffers.add(seen.bytes.buffer);
        }), { numRuns: 50 });
        // The windows are mapped over each other: no memory for V8 to count per window.
        assert.equal(buffers.size, 1, `${open.name}: one buffer under every view`);
        assert.throws(() => f.view!(size - 10, 11), /run past the end/);
        if (open === openViewedFile) {
          f.view!(0, 4096);
          f.read(BigInt(2 * WINDOW), 4096);
          assert.deepEqual(mappedOffsets(path), [0], "the window last seen, and nothing for the read");
        }
      } finally {
        f.close();
      }
      assert.deepEqual(mappedOffsets(path), [], `${open.name}: close unmaps`);
    }
    // Not a regular file: read() only, no views.
    const device = openViewedFile("/dev/zero")!;
    try {
      assert.equal(device.view, undefined);
    } finally {
      device.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The file offsets at which this process has `path` mapped now, from /proc/self/maps. */
function mappedOffsets(path: string): number[] {
  return readFileSync("/proc/self/maps", "utf8").split("\n").map((line) => line.split(/\s+/))
    .filter((f) => f[5] === path).map((f) => parseInt(f[2]!, 16));
}

test("where the kernel refuses mmap, reads go on through read() for good and give the file's bytes", (t) => {
  // /sys/kernel/btf/vmlinux is read by pread at any offset, but mapped only from offset 0 on
  // Linux 6.16 and later (btf_sysfs_vmlinux_mmap refuses a nonzero vm_pgoff with EINVAL) and
  // not at all before (sysfs gives ENODEV): past the first window the kernel refuses, as a
  // /proc/vmcore without mmap would. /proc/self/maps shows what was really mapped.
  const path = "/sys/kernel/btf/vmlinux";
  if (!existsSync(path)) return missingInput(t, `${path} is missing (a kernel built without CONFIG_DEBUG_INFO_BTF)`);
  const data = new Uint8Array(readFileSync(path));
  if (data.length <= WINDOW) return missingInput(t, `${path} is ${data.length} bytes, within one ${WINDOW}-byte window: no read can go past it`);
  const f = openMappedFile(path)!;
  assert.ok(f !== undefined, "koffi loads here");
  let firstWindowMapped: boolean;
  try {
    assert.equal(f.size, BigInt(data.length));
    const same = (offset: number, length: number): void =>
      assert.deepEqual(f.read(BigInt(offset), length), data.subarray(offset, offset + length), `${length} bytes at ${hex(offset)}`);
    same(0, 4096);
    firstWindowMapped = mappedOffsets(path).length > 0;
    // The first read past the first window: it starts in that window (mapped on 6.16 and
    // later), mmap of the next is refused, and the rest of this very read comes from read().
    same(WINDOW - 3000, 8000);
    const mapped = mappedOffsets(path);
    if (mapped.includes(WINDOW)) return missingInput(t, `this kernel maps ${path} at ${hex(WINDOW)}: nothing fell back to read()`);
    assert.deepEqual(mapped, firstWindowMapped ? [0] : [], "the first window stays mapped, nothing else is");
    // After the switch: across the window edge (the kept window, then read()), wholly past it,
    // into a buffer at an offset, the whole file, and anywhere.
    same(WINDOW - 1, 2);
    same(WINDOW, data.length - WINDOW);
    same(0, data.length);
    const out = new Uint8Array(3 << 20).fill(0xee);
    f.readInto(BigInt(WINDOW - (1 << 20)), out, 4096, (2 << 20) + 17);
    assert.deepEqual(out.subarray(4096, 4096 + (2 << 20) + 17), data.subarray(WINDOW - (1 << 20), WINDOW + (1 << 20) + 17));
    assert.ok(out.subarray(0, 4096).every((b) => b === 0xee) && out.subarray(4096 + (2 << 20) + 17).every((b) => b === 0xee), "nothing written outside the asked range");
    fc.assert(fc.property(fc.integer({ min: 0, max: data.length - 1 }), fc.integer({ min: 0, max: 2 << 20 }), (offset, want) => {
      same(offset, Math.min(want, data.length - offset));
    }), { numRuns: 40 });
    assert.deepEqual(mappedOffsets(path), firstWindowMapped ? [0] : [], "read() for good: no later window was mapped");
    assert.throws(() => f.read(BigInt(data.length - 10), 11), /run past the end/);
  } finally {
    f.close();
  }
  assert.deepEqual(mappedOffsets(path), [], "close unmaps");
  // Before Linux 6.16 the very first read was refused a mapping: every read above went through
  // read() from the start, which is the fallback still, only without a switch in mid-read.
  if (!firstWindowMapped) t.diagnostic(`this kernel does not mmap ${path} at all: every read went through read(), none switched midway`);
});

test("a refused mmap is told from a mapping in each architecture's pointer width", () => {
  // What koffi gives for (void *)-1: 64 ones here; on i386 Node, 32 (4294967295n, seen on
  // Debian's i386 Node 18 and koffi 2.16).
  assert.equal(isMapFailed((1n << 64n) - 1n, "x64"), true);
  assert.equal(isMapFailed(0xffffffffn, "ia32"), true);
  assert.equal(isMapFailed(0xffffffffn, "x64"), false);
  assert.equal(isMapFailed(0xb7000000n, "ia32"), false);
  // And as this machine's koffi gives it: mmap of no file at all.
  const koffi = tryKoffi();
  assert.ok(koffi !== undefined, "koffi loads here");
  const mmap = koffi.load("libc.so.6").func("void *mmap64(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)") as (...a: unknown[]) => unknown;
  assert.equal(isMapFailed(koffi.address(mmap(null, 4096, 1, 2, -1, 0))), true);
});
