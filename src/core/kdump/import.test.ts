import { test } from "node:test";
import { strict as assert } from "node:assert";
import { KexecError } from "../errors.js";
import { defaultConfig, formatConfig, parseConfig } from "./config.js";
import { formatImport, importConfig, importHeader, readMakedumpfileArgs, readShellAssignments } from "./import.js";

// Written for these tests in the shape of Debian's kdump-tools 1:1.8.1 default file and of a
// kdump-utils kdump.conf(5) as a RHEL admin would edit it.
const KDUMP_TOOLS = `# settings
USE_KDUMP=1
KDUMP_KERNEL=/var/lib/kdump/vmlinuz
KDUMP_INITRD=/var/lib/kdump/initrd.img
KDUMP_COREDIR="/srv/crash/"
KDUMP_FAIL_CMD="echo failed; /bin/bash; reboot -f"
KDUMP_NUM_DUMPS=5
MAKEDUMP_ARGS="-l -d 17 --num-threads 2"
KDUMP_CMDLINE_APPEND="reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb"
#KDUMP_COMPRESSION=
SSH="root@backup"
KDUMP_CMDLINE="\`cat /proc/cmdline\`"
`;

const KDUMP_UTILS = `# kdump.conf
ext4 UUID=03138356-5e61-4ab3-b58e-27507ac41937
path /var/crash
core_collector makedumpfile -z --message-level 7 -d 31
raw /dev/vdc
failure_action shell
final_action poweroff
kdump_post /var/crash/scripts/post.sh
`;

test("Debian kdump-tools' settings map to kexec-ts keys, and the rest is listed", () => {
  const r = importConfig([{ path: "/etc/default/kdump-tools", text: KDUMP_TOOLS }]);
  assert.equal(r.sources[0]!.kind, "kdump-tools");
  assert.equal(r.config.target, "/srv/crash");
  assert.equal(r.config.kernel, null, "kdump-tools' link to the running kernel is kexec-ts' default");
  assert.equal(r.config.keep, 5);
  assert.equal(r.config.codec, "lzo");
  assert.equal(r.config.dumpLevel, 17);
  assert.equal(r.config.failureAction, "shell");
  assert.equal(r.config.append, "usbcore.nousb");
  const skipped = r.skipped.join("\n");
  assert.match(skipped, /KDUMP_INITRD .*builds its own/);
  assert.match(skipped, /--num-threads 2/);
  assert.match(skipped, /SSH .*network targets are not supported/);
  assert.match(skipped, /KDUMP_CMDLINE .*starts from \/proc\/cmdline/);
  assert.ok(r.notes["target"]![0]!.includes("KDUMP_COREDIR"));
});

test("kdump-utils' kdump.conf maps to kexec-ts keys, and the rest is listed", () => {
  const r = importConfig([{ path: "/etc/kdump.conf", text: KDUMP_UTILS }]);
  assert.equal(r.sources[0]!.kind, "kdump-utils");
  assert.equal(r.config.target, "/var/crash");
  assert.equal(r.config.codec, "zstd");
  assert.equal(r.config.dumpLevel, 31);
  assert.equal(r.config.rawTarget, "/dev/vdc");
  assert.equal(r.config.failureAction, "shell");
  assert.equal(r.config.finalAction, "poweroff");
  const skipped = r.skipped.join("\n");
  assert.match(skipped, /ext4 \(line 2\)/);
  assert.match(skipped, /kdump_post \(line 8\): no kexec-ts counterpart/);
  assert.doesNotMatch(skipped, /message-level/, "--message-level is makedumpfile's verbosity, not a setting to carry over");
  assert.match(r.notes["target"]![0]!, /ext4 UUID=/);
});

test("the imported file is a valid kexec-ts kdump.conf that says where each value came from", () => {
  const r = importConfig([{ path: "/etc/default/kdump-tools", text: KDUMP_TOOLS }, { path: "/etc/kdump.conf", text: "failure_action halt\n" }]);
  const text = formatConfig(r.config, importHeader(r), r.notes);
  assert.deepEqual(parseConfig(text), r.config);
  assert.equal(r.config.failureAction, "halt", "the later file wins");
  assert.match(text, /^# Not imported:$/m);
  assert.match(text, /^# from KDUMP_NUM_DUMPS \(\/etc\/default\/kdump-tools\)\nkeep = 5$/m);
});

test("makedumpfile arguments: codecs, bundled flags and levels", () => {
  assert.deepEqual(readMakedumpfileArgs(["-c", "-d", "31"]), { codec: "zlib", dumpLevel: 31, rest: [], invalid: [] });
  assert.deepEqual(readMakedumpfileArgs(["-lF", "-d1"]), { codec: "lzo", dumpLevel: 1, rest: ["-F"], invalid: [] });
  assert.deepEqual(readMakedumpfileArgs(["--dump-level=0", "-E"]), { dumpLevel: 0, rest: ["-E"], invalid: [] });
  assert.deepEqual(readMakedumpfileArgs(["-cd", "17", "-E"]), { codec: "zlib", dumpLevel: 17, rest: ["-E"], invalid: [] }, "getopt: -d's value is the next word");
  assert.deepEqual(readMakedumpfileArgs(["-zd017"]), { codec: "zstd", dumpLevel: 17, rest: [], invalid: [] });
});

test("makedumpfile -d values kexec-ts cannot take are each listed with the reason, bundled or not", () => {
  const invalid = (words: string[]) => {
    const m = readMakedumpfileArgs(words);
    assert.equal(m.dumpLevel, undefined, words.join(" "));
    return m.invalid.join("\n");
  };
  assert.match(invalid(["-d", "99"]), /^-d 99: expected 0\.\.31/);
  assert.match(invalid(["-cd99"]), /^-d 99: expected 0\.\.31/);
  assert.match(invalid(["-ld32"]), /^-d 32: expected 0\.\.31/);
  assert.match(invalid(["-d", "0x1f"]), /^-d 0x1f: expected a level in decimal digits/, "makedumpfile's atoi reads 0x1f as 0");
  assert.match(invalid(["-d1e1"]), /^-d 1e1: expected a level in decimal digits/);
  assert.match(invalid(["--dump-level=-1"]), /^-d -1: expected a level in decimal digits/);
  assert.match(invalid(["-d", "31,1"]), /a list of levels/);
  assert.match(invalid(["-c", "-d"]), /^-d: no level given/);
});

test("every imported value passes the kexec-ts key's own check; the others are skipped with the reason", () => {
  const tools = importConfig([{ path: "/etc/default/kdump-tools", text: 'KDUMP_COREDIR=/srv/cr\0ash\nMAKEDUMP_ARGS="-cd99"\nKDUMP_NUM_DUMPS=1000000\nKDUMP_KERNEL=vmlinuz-6.1\n' }]);
  assert.deepEqual([tools.config.target, tools.config.dumpLevel, tools.config.keep, tools.config.kernel], ["/var/crash", 31, 3, null]);
  assert.equal(tools.config.codec, "zlib", "the rest of -cd99 still counts");
  const skipped = tools.skipped.join("\n");
  assert.match(skipped, /KDUMP_COREDIR \(line 1\): "\/srv\/cr\\u0000ash": expected an absolute directory path/);
  assert.match(skipped, /MAKEDUMP_ARGS \(line 2\): -d 99: expected 0\.\.31/);
  assert.match(skipped, /KDUMP_NUM_DUMPS \(line 3\): "1000000": expected a count up to 100000/);
  assert.match(skipped, /KDUMP_KERNEL \(line 4\): "vmlinuz-6\.1": expected an absolute path/);
  for (const count of ["0x10", "1e1", "-1", "5.0"]) {
    const r = importConfig([{ path: "/etc/default/kdump-tools", text: `KDUMP_NUM_DUMPS=${count}\n` }]);
    assert.equal(r.config.keep, 3, count);
    assert.match(r.skipped.join("\n"), /KDUMP_NUM_DUMPS \(line 1\): .*expected a count/, count);
  }
  const utils = importConfig([{ path: "/etc/kdump.conf", text: "path /srv/crash\ncore_collector makedumpfile -ld32\nraw sdb\n" }]);
  assert.deepEqual([utils.config.target, utils.config.codec, utils.config.dumpLevel, utils.config.rawTarget], ["/srv/crash", "lzo", 31, null]);
  assert.match(utils.skipped.join("\n"), /core_collector \(line 2\): -d 32: expected 0\.\.31/);
  assert.match(utils.skipped.join("\n"), /raw \(line 3\): "sdb": expected a block device path/);
  for (const r of [tools, utils]) assert.deepEqual(parseConfig(formatImport(r, "/tmp/k.conf")), r.config);
});

test("formatImport reads its file back: what does not parse to the same config is an internal error", () => {
  const r = importConfig([{ path: "/etc/default/kdump-tools", text: 'KDUMP_COREDIR="/srv/crash dumps #1"\nKDUMP_CMDLINE_APPEND="console=ttyS0,115200 #serial"\n' }]);
  assert.deepEqual(parseConfig(formatImport(r, "/tmp/k.conf")), r.config);
  assert.equal(r.config.target, "/srv/crash dumps #1");
  // A value no import makes (a newline; a level out of range), put there by hand: caught before writing.
  for (const config of [{ ...r.config, append: "a\nb" }, { ...r.config, dumpLevel: 99 }]) {
    assert.throws(() => formatImport({ ...r, config }, "/tmp/k.conf"), (e: unknown) => e instanceof KexecError && e.code === "internal" && e.data.file === "/tmp/k.conf");
  }
});

test("shell assignments: quotes, export, comments, substitutions marked", () => {
  const a = readShellAssignments(`export A="x y"\nB='$(z)'\nC=plain # note\nD="$(uname -r)"\n  # E=no\n`);
  assert.deepEqual(a.map((x) => [x.name, x.value, x.dynamic]), [["A", "x y", false], ["B", "$(z)", false], ["C", "plain", false], ["D", "$(uname -r)", true]]);
});

test("shell words: quoted and unquoted parts join as sh joins them; nothing is expanded", () => {
  const read = (value: string) => {
    const [a] = readShellAssignments(`X=${value}\n`);
    return a === undefined ? undefined : { value: a.value, dynamic: a.dynamic, problem: a.problem };
  };
  assert.deepEqual(read(`"/srv/"crash`), { value: "/srv/crash", dynamic: false, problem: undefined });
  assert.deepEqual(read(`""/var/crash`), { value: "/var/crash", dynamic: false, problem: undefined });
  assert.deepEqual(read(`/a'b c'"d"e # note`), { value: "/ab cde", dynamic: false, problem: undefined });
  assert.deepEqual(read(`'"a b"'`), { value: '"a b"', dynamic: false, problem: undefined });
  assert.deepEqual(read(`"a\\"b\\$c\\x"`), { value: 'a"b$c\\x', dynamic: false, problem: undefined }, "in double quotes \\ escapes only $ ` \" \\");
  assert.deepEqual(read(`a\\ b`), { value: "a b", dynamic: false, problem: undefined });
  assert.deepEqual(read(`"$HOME"/x`), { value: "$HOME/x", dynamic: true, problem: undefined });
  assert.deepEqual(read(`/boot/vmlinuz-$(uname -r)`), { value: "/boot/vmlinuz-$(uname -r)", dynamic: true, problem: undefined });
  assert.deepEqual(read(`'$(literal)'`), { value: "$(literal)", dynamic: false, problem: undefined });
  assert.match(read(`"open`)!.problem!, /" is not closed on this line/);
  assert.match(read(`'open`)!.problem!, /' is not closed/);
  assert.match(read(`a b`)!.problem!, /"b" follows the value/);
  assert.match(read(`a;b=c`)!.problem!, /";b=c" follows the value/);
});

test("a kdump-tools file with CRLF line ends is read as with LF", () => {
  const crlf = 'USE_KDUMP=1\r\nKDUMP_COREDIR="/srv/crash"\r\nKDUMP_NUM_DUMPS=5\r\nMAKEDUMP_ARGS="-c -d 17"\r\nKDUMP_FAIL_CMD="halt"\r\n';
  const r = importConfig([{ path: "/etc/default/kdump-tools", text: crlf }]);
  assert.deepEqual(r, importConfig([{ path: "/etc/default/kdump-tools", text: crlf.replace(/\r/g, "") }]));
  assert.equal(r.config.target, "/srv/crash");
  assert.equal(r.config.keep, 5);
  assert.equal(r.config.codec, "zlib");
  assert.equal(r.config.dumpLevel, 17);
  assert.equal(r.config.failureAction, "halt");
  const utils = importConfig([{ path: "/etc/kdump.conf", text: "path /srv/crash\r\ncore_collector makedumpfile -l -d 1\r\n" }]);
  assert.deepEqual([utils.config.target, utils.config.codec, utils.config.dumpLevel], ["/srv/crash", "lzo", 1]);
});

test("a kdump-tools value sh would not read as one word is skipped with the reason", () => {
  const r = importConfig([{ path: "/etc/default/kdump-tools", text: 'KDUMP_COREDIR="/srv/"crash\nKDUMP_KERNEL="/boot/vmlinuz-"6.1.0-50-amd64\nKDUMP_CMDLINE_APPEND="nousb\nFOO="unrelated\n' }]);
  assert.equal(r.config.target, "/srv/crash");
  assert.equal(r.config.kernel, "/boot/vmlinuz-6.1.0-50-amd64");
  assert.equal(r.config.append, "");
  assert.match(r.skipped.join("\n"), /KDUMP_CMDLINE_APPEND \(line 3\): the " is not closed on this line/);
  assert.doesNotMatch(r.skipped.join("\n"), /FOO/, "not kdump-tools' variable: not listed");
});

test("a file with lines but no setting of its kind is refused, not imported as all defaults", () => {
  const refused = (path: string, text: string, pattern: RegExp, hint: RegExp) =>
    assert.throws(() => importConfig([{ path, text }]), (e: unknown) => {
      assert.ok(e instanceof KexecError && e.code === "parse", String(e));
      assert.match(e.message, pattern);
      assert.match(e.hint ?? "", hint);
      assert.equal(e.data.file, path);
      return true;
    });
  // What readFileSync(path, "utf8") makes of a UTF-16LE file with a BOM.
  const utf16 = new TextDecoder().decode(new Uint8Array([0xff, 0xfe, ...[..."USE_KDUMP=1\n"].flatMap((ch) => [ch.charCodeAt(0), 0])]));
  refused("/etc/default/kdump-tools", utf16, /kdump-tools: no kdump-tools setting in it \(it holds NUL bytes/, /iconv -f UTF-16/);
  refused("/tmp/kdump.conf", utf16, /no kdump-utils setting in it/, /iconv/);
  refused("/tmp/kdump.conf", "\x7fELF\x02\x01\x01 garbage\n", /no kdump-utils setting in it$/, /\/etc\/default\/kdump-tools/);
  refused("/etc/default/kdump-tools", "FOO=1\necho hello\n", /no kdump-tools setting/, /kdump-tools/);
  // Only comments and blank lines: nothing to carry over, and nothing wrong with that.
  assert.deepEqual(importConfig([{ path: "/etc/default/kdump-tools", text: "# all commented out\n#USE_KDUMP=1\n\n" }]).config, defaultConfig());
  assert.deepEqual(importConfig([{ path: "/etc/kdump.conf", text: "" }]).config, defaultConfig());
});
