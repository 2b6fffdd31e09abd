import { test } from "node:test";
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { KexecError } from "../errors.js";
import { CONFIG_KEYS, closestKey, defaultConfig, formatConfig, parseConfig, parseConfigSize } from "./config.js";

const refused = (text: string, pattern: RegExp, line?: number) =>
  assert.throws(() => parseConfig(text, "/etc/kexec-ts/kdump.conf"), (e: unknown) => {
    assert.ok(e instanceof KexecError && e.code === "parse", String(e));
    assert.match(e.message, pattern);
    if (line !== undefined) assert.equal(e.data["line"], line);
    return true;
  });

test("an empty file is the documented defaults", () => {
  const c = parseConfig("");
  assert.deepEqual(c, defaultConfig());
  assert.equal(c.target, "/var/crash");
  assert.equal(c.rawTarget, null);
  assert.equal(c.dumpLevel, 31);
  assert.equal(c.codec, "lzo");
  assert.equal(c.minFree, 64n << 20n);
  assert.equal(c.kernel, null);
  assert.equal(c.failureAction, "reboot");
});

test("the documented default file parses back to the defaults, and a changed config round-trips", () => {
  assert.deepEqual(parseConfig(formatConfig(defaultConfig())), defaultConfig());
  const c = { ...defaultConfig(), target: "/srv/dumps", rawTarget: "/dev/vdb", keep: 0, minFree: 3n << 30n, append: 'console=ttyS0 "a b"', mode: "self-contained" as const, failureAction: "dmesg-only" as const };
  const text = formatConfig(c, ["imported"], { target: ["from KDUMP_COREDIR"] });
  assert.deepEqual(parseConfig(text), c);
  assert.match(text, /^# imported$/m);
  assert.match(text, /^# from KDUMP_COREDIR\ntarget = \/srv\/dumps$/m);
  for (const k of CONFIG_KEYS) assert.match(text, new RegExp(`^#   default: ${k.name} =`, "m"), `${k.name} is documented`);
});

test("comments, blank lines, spaces and quotes", () => {
  const c = parseConfig("# a comment\n\n  target=/data/crash/  # trailing\ncodec = zstd\r\nappend = \"nokaslr  quiet\"\nmin_free = 1G\n");
  assert.equal(c.target, "/data/crash");
  assert.equal(c.codec, "zstd");
  assert.equal(c.append, "nokaslr  quiet");
  assert.equal(c.minFree, 1n << 30n);
});

test("a quoted value keeps # and outer spaces; files written before quoting read the same", () => {
  const c = parseConfig('target = "/srv/crash dumps #1"\nappend = "console=ttyS0,115200 #serial" # a comment\nkernel = "/boot/\\"odd\\" \\\\ name"\n');
  assert.equal(c.target, "/srv/crash dumps #1");
  assert.equal(c.append, "console=ttyS0,115200 #serial");
  assert.equal(c.kernel, '/boot/"odd" \\ name');
  // The rule before quoting: the comment goes first, then one pair of outer quotes.
  assert.equal(parseConfig('append = "quiet" # was "loud"\n').append, "quiet");
  assert.equal(parseConfig('append = "a "b" c"\n').append, 'a "b" c');
  assert.equal(parseConfig('append = "open #x\n').append, '"open');
  assert.equal(parseConfig("append = a\\b\n").append, "a\\b", "outside quotes a backslash is itself");
  assert.match(formatConfig({ ...defaultConfig(), target: "/srv/crash dumps #1" }), /^target = "\/srv\/crash dumps #1"$/m);
  assert.match(formatConfig({ ...defaultConfig(), append: "console=ttyS0 #x" }), /^append = "console=ttyS0 #x"$/m);
  assert.match(formatConfig({ ...defaultConfig(), append: "a#b c" }), /^append = a#b c$/m, "quotes only where they are needed");
});

test("parseConfig(formatConfig(x)) is x for any value a line can hold (property)", () => {
  // Characters that mean something to the format, plus some that do not; no newline (one line per key).
  const text = fc.stringOf(fc.constantFrom(" ", "\t", "#", '"', "\\", "'", "=", "\r", "a", "/", "\u00a0", "é"), { maxLength: 24 });
  // target and kernel are absolute paths without a trailing slash and without NUL, as their parser keeps them.
  const path = text.map((t) => `/x${t}`).filter((p) => !p.endsWith("/"));
  fc.assert(fc.property(path, fc.option(path, { nil: null }), fc.option(path, { nil: null }), text, (target, kernel, rawTarget, append) => {
    const c = { ...defaultConfig(), target, kernel, rawTarget, append };
    assert.deepEqual(parseConfig(formatConfig(c, ["header"], { append: ["a note"] })), c);
  }), { numRuns: 2000 });
});

test("a typo is refused with its line number and the key it probably meant", () => {
  refused("target = /var/crash\ntagret = /x\n", /kdump\.conf:2: unknown key "tagret" \(did you mean target\?\)/, 2);
  refused("dump-level = 31\n", /did you mean dump_level\?/, 1);
  refused("colour = blue\n", /unknown key "colour"$/, 1);
});

test("bad values are refused with the line, what was found and what is expected", () => {
  refused("\n\ndump_level = 32\n", /:3: dump_level = "32": expected 0\.\.31/, 3);
  refused("codec = gzip\n", /expected zlib, lzo, zstd, snappy or none/, 1);
  refused("target = var/crash\n", /expected an absolute directory path/);
  refused("min_free = lots\n", /expected a size/);
  refused("failure_action = explode\n", /expected reboot, halt, poweroff, shell or dmesg-only/);
  refused("keep = -1\n", /keep = "-1"/);
  refused("target /var/crash\n", /expected "key = value"/);
  refused("keep = 1\nkeep = 2\n", /:2: keep is set twice \(first on line 1\)/, 2);
});

test("sizes take binary units", () => {
  assert.equal(parseConfigSize("0"), 0n);
  assert.equal(parseConfigSize("64M"), 64n << 20n);
  assert.equal(parseConfigSize("2GiB"), 2n << 30n);
  assert.equal(parseConfigSize("512k"), 512n << 10n);
  assert.equal(parseConfigSize("1.5G"), undefined);
});

test("closestKey stays quiet for words far from every key", () => {
  assert.equal(closestKey("final-action"), "final_action");
  assert.equal(closestKey("xyzzyplugh"), undefined);
});
