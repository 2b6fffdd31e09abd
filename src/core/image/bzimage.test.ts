import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBzImage } from "./bzimage.js";
import { readKernelImage } from "./index.js";
import { inspectJson } from "./describe.js";
import { KexecError } from "../errors.js";
import { buildBzImage } from "./testing/synthetic.js";
import { SETUP_HEADER_FIELDS } from "./setup-header.js";

function expectError(fn: () => unknown, code: string, pattern: RegExp): KexecError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KexecError, `expected KexecError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return e;
  }
  assert.fail("expected an error");
}

test("setup header table: offsets are increasing, non-overlapping and end at 0x26c", () => {
  let end = 0x1f1;
  for (const f of SETUP_HEADER_FIELDS) {
    assert.ok(f.offset >= end, `${f.name} at ${f.offset.toString(16)} overlaps the previous field`);
    end = f.offset + f.size;
  }
  // boot.rst: kernel_info_offset is the last field, 0x268/4.
  assert.equal(end, 0x26c);
});

test("reads the fields of a 2.15 image", () => {
  const img = parseBzImage(buildBzImage({ fields: { init_size: 0x3000000, pref_address: 0x1000000, xloadflags: 0x63 } }));
  assert.equal(img.protocol, 0x20f);
  assert.equal(img.initSize, 0x3000000n);
  assert.equal(img.prefAddress, 0x1000000n);
  assert.deepEqual(img.xloadflagNames, ["XLF_KERNEL_64", "XLF_CAN_BE_LOADED_ABOVE_4G", "XLF_5LEVEL", "XLF_5LEVEL_ENABLED"]);
  assert.equal(img.is64, true);
  assert.equal(img.fiveLevel, true);
  assert.equal(img.setupSize, 5 * 512);
  assert.equal(img.version, "6.1.0-synthetic (builder@test) #1 SMP");
});

test("fields newer than the image's protocol are not read, and defaults apply", () => {
  // A 2.02 image: no initrd_addr_max (default 0x37ffffff), no cmdline_size (255), no xloadflags.
  const img = parseBzImage(buildBzImage({ protocol: 0x202 }));
  assert.equal(img.raw.initrd_addr_max, undefined);
  assert.equal(img.initrdAddrMax, 0x37ffffffn);
  assert.equal(img.cmdlineSize, 255);
  assert.equal(img.raw.xloadflags, undefined);
  assert.equal(img.xloadflags, 0);
  assert.equal(img.is64, false);
  assert.equal(img.initSize, undefined);
  assert.equal(img.relocatable, false);
});

test("a header shorter than its protocol claims is cut at the jump's end", () => {
  // Claims 2.15 but the jump says the header ends at 0x264: handover_offset and kernel_info_offset are absent.
  const img = parseBzImage(buildBzImage({ fields: { jump: 0xeb | (0x62 << 8) } }));
  assert.equal(img.headerEnd, 0x264);
  assert.equal(img.raw.handover_offset, undefined);
  assert.equal(img.raw.kernel_info_offset, undefined);
  assert.notEqual(img.raw.init_size, undefined);
});

test("setup_sects 0 means 4", () => {
  const bytes = buildBzImage({ setupSects: 4, fields: { setup_sects: 0 } });
  assert.equal(parseBzImage(bytes).setupSects, 4);
});

test("bad magic, old protocol, truncation and a payload past the end are clear errors", () => {
  const good = buildBzImage({ payload: new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]) });
  const noFlag = good.slice();
  noFlag[0x1fe] = 0;
  noFlag[0x1ff] = 0;
  expectError(() => parseBzImage(noFlag), "parse", /boot_flag at offset 0x1fe is 0x0000, expected 0xaa55/);
  const old = good.slice();
  old[0x206] = 0x01;
  old[0x207] = 0x01;
  expectError(() => parseBzImage(old), "parse", /version 0x0101 at offset 0x206 is below 2.00/);
  expectError(() => parseBzImage(good.subarray(0, 600)), "parse", /too short/);
  const bigSetup = good.slice();
  bigSetup[0x1f1] = 200;
  expectError(() => parseBzImage(bigSetup), "parse", /setup_sects \(200\).*the file is/);
  const pastEnd = good.slice();
  new DataView(pastEnd.buffer).setUint32(0x24c, 0x100000, true);
  const err = expectError(() => parseBzImage(pastEnd), "parse", /payload .* past the end of the file/);
  assert.equal(err.data.field, "payload_length");
});

test("not a kernel: says what the first bytes look like", () => {
  const cpio = new TextEncoder().encode("070701000000000000000000");
  const padded = new Uint8Array(2048);
  padded.set(cpio);
  expectError(() => readKernelImage(padded), "not-a-kernel", /cpio archive/);
  expectError(() => readKernelImage(new Uint8Array(0)), "not-a-kernel", /empty/);
});

test("PE stub and signature are detected", () => {
  assert.equal(parseBzImage(buildBzImage()).pe.present, false);
  const unsigned = parseBzImage(buildBzImage({ pe: { signed: false } }));
  assert.equal(unsigned.pe.present, true);
  assert.equal(unsigned.pe.signed, false);
  const signed = parseBzImage(buildBzImage({ pe: { signed: true } }));
  assert.equal(signed.pe.signed, true);
});

test("inspect JSON has the contract keys", () => {
  const json = inspectJson(readKernelImage(buildBzImage({ payload: new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]) })));
  for (const key of ["format", "protocol", "xloadflags", "kernelAlignment", "initSize", "prefAddress", "relocatable", "version", "payload", "is64"]) {
    assert.ok(key in json, `missing ${key}`);
  }
  assert.equal(json.format, "bzImage");
  assert.equal(json.protocol, "0x20f");
  assert.equal((json.payload as { compression: string }).compression, "xz");
});

test("fuzz: random corruption of a synthetic image only ever raises KexecError", () => {
  const base = buildBzImage({ payload: new Uint8Array(64).fill(7) });
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < 2000; i++) {
    const b = base.slice(0, Math.max(1, Math.floor(rand() * base.length * 1.1)));
    const flips = 1 + Math.floor(rand() * 8);
    for (let k = 0; k < flips; k++) b[Math.floor(rand() * 0x280) % b.length] = Math.floor(rand() * 256);
    try {
      readKernelImage(b);
    } catch (e) {
      assert.ok(e instanceof KexecError, `iteration ${i}: ${String(e)}`);
    }
  }
});
