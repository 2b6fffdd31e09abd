import { test } from "node:test";
import { strict as assert } from "node:assert";
import { CAPTURE_WORDS, captureCommandLine } from "./cmdline.js";

test("the capture kernel's command line: the running one without what must not reach it, plus the capture words and append", () => {
  const c = captureCommandLine('BOOT_IMAGE=/vmlinuz root=UUID=abc ro quiet crashkernel=384M-:128M hugepages=64 panic_on_warn=1 nr_cpus=8 console=ttyS0,115200 "dyndbg=file x +p"', "usbcore.nousb");
  assert.equal(c.cmdline, `root=UUID=abc ro quiet console=ttyS0,115200 dyndbg="file x +p" ${CAPTURE_WORDS.join(" ")} panic=10 usbcore.nousb`);
  assert.deepEqual(c.dropped.map((d) => d.word), ["BOOT_IMAGE=/vmlinuz", "crashkernel=384M-:128M", "hugepages=64", "panic_on_warn=1", "nr_cpus=8"]);
  assert.ok(c.dropped.every((d) => d.why.length > 0));
});

test("a panic= given by the system or the user is kept, and capture words are not doubled", () => {
  const c = captureCommandLine("console=ttyS0 panic=-1 irqpoll", "");
  assert.equal(c.cmdline, `console=ttyS0 panic=-1 irqpoll ${CAPTURE_WORDS.filter((w) => w !== "irqpoll").join(" ")}`);
  assert.match(captureCommandLine("", "panic=30").cmdline, / panic=30$/);
  assert.doesNotMatch(captureCommandLine("", "panic=30").cmdline, /panic=10/);
});

test("the user's append is not filtered (the kdump-settings rule judges it)", () => {
  assert.match(captureCommandLine("", "panic_on_warn=1").cmdline, /panic_on_warn=1$/);
});
