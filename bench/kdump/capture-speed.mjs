#!/usr/bin/env node
/**
 * kexec-ts vmcore save against makedumpfile on /proc/vmcore, side by side in one capture
 * kernel (nr_cpus=1, as kdump runs it), the same codec and dump level, alternating, twice each.
 * Writes bench/kdump/capture-speed.json (appended) and prints a table. See bench/kdump/README.md.
 *
 *   node bench/kdump/capture-speed.mjs [--mem 2G] [--crashkernel 768M] [--kernel amd64-6.1] [--repeat 2]
 *
 * The outputs go to the capture initramfs' own file system (memory), so neither tool waits for
 * a disk; each output is removed before the next run and checked first: makedumpfile must read
 * the panic from kexec-ts's dump and kexec-ts from makedumpfile's.
 */
import { appendFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const { parseScenario, runScenario } = await import(join(repo, "dist/lab/index.js"));

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const mem = opt("mem", "2G");
const crashkernel = opt("crashkernel", "768M");
const kernel = opt("kernel", "amd64-6.1");
const repeat = Number(opt("repeat", "2"));
const cases = [
  { codec: "lzo", md: "-l", level: 31 },
  { codec: "zlib", md: "-c", level: 31 },
  { codec: "lzo", md: "-l", level: 1 },
];

/** One timed run: seconds from /proc/uptime (10 ms), the output's size, and the other tool reading it back. */
function timed(name, command, out, check) {
  return {
    name,
    run: `sync; a=$(cut -d' ' -f1 /proc/uptime); ${command} >/tmp/${name}.log 2>&1; rc=$?; b=$(cut -d' ' -f1 /proc/uptime); ` +
      `echo "RESULT ${name} rc=$rc seconds=$(echo "$a $b" | awk '{printf "%.2f", $2 - $1}') bytes=$(stat -c %s ${out} 2>/dev/null || echo 0)"; ` +
      `${check} && echo "CHECK ${name} ok"; rm -f ${out}`,
    timeoutSec: 1800,
  };
}

const steps = [];
for (let r = 0; r < repeat; r++) {
  for (const c of cases) {
    const tag = `${c.codec}-d${c.level}-${r}`;
    const md = () => timed(`md-${tag}`, `makedumpfile ${c.md} -d ${c.level} /proc/vmcore /tmp/md.kdump`, "/tmp/md.kdump",
      "kexec-ts vmcore dmesg /tmp/md.kdump | grep -q 'sysrq: Trigger a crash'");
    const ts = () => timed(`ts-${tag}`, `kexec-ts vmcore save -d ${c.level} --compress ${c.codec} /proc/vmcore /tmp/ts.kdump`, "/tmp/ts.kdump",
      "makedumpfile --dump-dmesg /tmp/ts.kdump /tmp/ts-dmesg.txt >/dev/null 2>&1 && grep -q 'sysrq: Trigger a crash' /tmp/ts-dmesg.txt");
    // Alternate which tool goes first, so neither always runs on a colder machine.
    steps.push(...(r % 2 === 0 ? [md(), ts()] : [ts(), md()]));
  }
}

const scenario = parseScenario(JSON.stringify({
  name: `kdump-capture-speed-${mem}`,
  kernel, cpu: "max", mem, append: `crashkernel=${crashkernel}`, node: true, kexecTs: true, allowPanic: true,
  files: [
    { guest: "/boot/capture", kernel },
    { guest: "/boot/capture-initrd", initramfs: {
      stage: "capture", node: true, kexecTs: true,
      files: [
        { guest: "/usr/bin/makedumpfile", program: "/usr/bin/makedumpfile" },
        { guest: "/lib/x86_64-linux-gnu/libzstd.so.1", host: "/lib/x86_64-linux-gnu/libzstd.so.1", mode: 493 },
        { guest: "/lib/x86_64-linux-gnu/liblzo2.so.2", host: "/lib/x86_64-linux-gnu/liblzo2.so.2", mode: 493 },
      ],
      steps: [{ name: "cpus", run: "nproc; grep -c ^processor /proc/cpuinfo; ls -l /proc/vmcore" }, ...steps],
    } },
  ],
  steps: [
    { name: "load", run: "kexec-ts -p /boot/capture --initrd=/boot/capture-initrd --append='console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=-1' && cat /sys/kernel/kexec_crash_loaded", timeoutSec: 600 },
    { name: "panic", run: "echo c > /proc/sysrq-trigger", returns: false },
  ],
  expect: ["init", { name: "load", timeoutSec: 600 }, { name: "capture/init", timeoutSec: 600 }, "capture/cpus",
    ...steps.map((s) => ({ name: `capture/${s.name}`, timeoutSec: 1800 })), "capture/done"],
}), "capture-speed (generated)");

const started = Date.now();
const result = await runScenario(scenario, {});
const rows = [];
for (const line of result.guest.log) {
  const m = /^RESULT (md|ts)-(\w+)-d(\d+)-(\d+) rc=(\d+) seconds=([\d.]+) bytes=(\d+)/.exec(line);
  if (m) rows.push({ tool: m[1], codec: m[2], level: Number(m[3]), round: Number(m[4]), rc: Number(m[5]), seconds: Number(m[6]), bytes: Number(m[7]) });
}
const checked = new Set(result.guest.log.filter((l) => l.startsWith("CHECK ")).map((l) => l.split(" ")[1]));
for (const r of rows) r.readBack = checked.has(`${r.tool}-${r.codec}-d${r.level}-${r.round}`);
const record = { at: new Date().toISOString(), mem, crashkernel, kernel, outcome: result.guest.outcome, wallSeconds: Math.round((Date.now() - started) / 1000), rows, run: result.guest.outDir };
appendFileSync(join(here, "capture-speed.json"), `${JSON.stringify(record)}\n`);
process.stdout.write(`${mem} guest, crashkernel=${crashkernel}, ${kernel}, nr_cpus=1: ${result.guest.outcome}\n`);
for (const c of cases) {
  const pick = (tool) => rows.filter((r) => r.tool === tool && r.codec === c.codec && r.level === c.level);
  const best = (tool) => Math.min(...pick(tool).map((r) => r.seconds));
  const md = best("md");
  const ts = best("ts");
  process.stdout.write(`  ${c.codec} -d ${c.level}: makedumpfile ${md.toFixed(2)} s, kexec-ts ${ts.toFixed(2)} s (speed md/ts ${(md / ts).toFixed(2)}x); read back: ${[...pick("md"), ...pick("ts")].every((r) => r.readBack) ? "yes" : "NO"}\n`);
}
