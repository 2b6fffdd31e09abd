// Benchmark: how long a report page takes to draw for a large machine, in Debian's chromium.
//
//   npm run build && node bench/web/render.mjs [--ranges 4096] [--repeat 3] [--out bench/web/RESULTS.md]
//
// The machine is synthetic, shaped like a big server's /proc/iomem: RANGES top-level entries
// (System RAM, reserved, ACPI, PCI windows of 4 KiB to GiBs, some with children), RAM up to
// 64 TiB, a crash region, and a real Debian kernel planned into it with -p (kexec_load), so the
// page has segments, limits, checks and the hand-over's tables. Measured: building the report in
// Node (the core), and in the browser the time from navigation start to a drawn page
// (performance.now() when main.ts finishes), the fastest of --repeat loads with the slowest beside it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "..", "dist");
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const ranges = Number(opt("--ranges", "4096"));
const repeat = Number(opt("--repeat", "3"));
const outFile = opt("--out", join(here, "RESULTS.md"));

const { buildMachine } = await import(join(dist, "core/machine/build.js"));
const { readKernelImage } = await import(join(dist, "core/image/index.js"));
const { buildReport } = await import(join(dist, "core/report/model.js"));
const { reportHtml } = await import(join(dist, "cli/report.js"));
const { cachedKernels } = await import(join(dist, "node/kernel-cache.js"));
const { launchChromium } = await import(join(dist, "node/browser.js"));
const { readFileSync } = await import("node:fs");

/** An iomem of `n` top-level lines: small and large ranges alternating, RAM reaching 64 TiB. */
function bigIomem(n) {
  const lines = [];
  const hex = (v) => v.toString(16).padStart(8, "0");
  let at = 0n;
  const kinds = ["System RAM", "Reserved", "ACPI Tables", "PCI Bus 0000:00", "System RAM", "ACPI Non-volatile Storage"];
  for (let i = 0; i < n; i++) {
    const kind = kinds[i % kinds.length];
    // Sizes from 4 KiB to 4 GiB, and one 16 TiB stretch of RAM every 1024 ranges.
    const size = i % 1024 === 1023 ? 1n << 44n : 0x1000n << BigInt((i * 13 + Math.floor(i / 6)) % 21);
    lines.push(`${hex(at)}-${hex(at + size - 1n)} : ${kind}`);
    if (kind === "System RAM" && size >= 0x4000000n && !lines.some((l) => l.includes("Kernel code"))) {
      lines.push(`  ${hex(at + 0x1000000n)}-${hex(at + 0x1ffffffn)} : Kernel code`);
    }
    if (kind === "System RAM" && size >= 0x20000000n && at >= 0x4000000n && !lines.some((l) => l.includes("Crash kernel"))) {
      lines.push(`  ${hex(at)}-${hex(at + 0x10000000n - 1n)} : Crash kernel`);
    }
    if (kind.startsWith("PCI")) lines.push(`  ${hex(at)}-${hex(at + (size > 0x2000n ? size / 2n : size) - 1n)} : 0000:00:${(i % 32).toString(16).padStart(2, "0")}.0`);
    at += size;
  }
  return lines.join("\n") + "\n";
}

const enc = (s) => new TextEncoder().encode(s);
const iomem = bigIomem(ranges);
const machine = buildMachine({
  files: {
    "proc/iomem": enc(iomem),
    "proc/cpuinfo": enc("processor\t: 0\nflags\t\t: fpu pae lm la57 pdpe1gb\naddress sizes\t: 52 bits physical, 57 bits virtual\n\n"),
    "proc/version": enc("Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP\n"),
    "proc/sys/kernel/arch": enc("x86_64\n"),
    "proc/cmdline": enc("console=ttyS0 crashkernel=256M\n"),
    "sys/devices/system/cpu/cpu0/crash_notes": enc("1f000000\n"),
    "sys/devices/system/cpu/cpu0/crash_notes_size": enc("368\n"),
    "sys/kernel/vmcoreinfo": enc("1f001000 1000\n"),
  },
  dirs: [],
});
const kernel = cachedKernels().find((k) => k.flavour === "amd64");
if (!kernel) { console.error("no amd64 kernel cached: bash .ci/setup-debian.sh"); process.exit(2); }
const image = readKernelImage(new Uint8Array(readFileSync(kernel.vmlinuz)));
const request = { crash: true, syscall: "kexec_load", cmdline: "console=ttyS0 irqpoll nr_cpus=1", initrdSize: 32 << 20, userArch: "x86_64" };

let t = performance.now();
const data = buildReport({ machine, source: `synthetic: ${ranges} iomem ranges`, image: { image, name: kernel.vmlinuz }, request });
const buildMs = performance.now() - t;
if (data.plan?.error) console.error(`no plan: ${data.plan.error.message}`);
const html = reportHtml(data);
const dir = mkdtempSync(join(tmpdir(), "kexec-ts-bench-web-"));
const file = join(dir, "report.html");
writeFileSync(file, html);

const browser = await launchChromium();
const loads = [];
try {
  for (let i = 0; i < repeat; i++) {
    const page = await browser.context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`file://${file}`);
    await page.waitForSelector("#root[data-ready]", { timeout: 60000 });
    const ms = Number(await page.$eval("#root", (e) => e.getAttribute("data-render-ms")));
    const drawn = await page.$$eval("#memory-map .range", (els) => els.length);
    if (errors.length) throw new Error(errors.join("\n"));
    loads.push({ ms, drawn });
    await page.close();
  }
} finally {
  await browser.close();
  if (process.env.KEEP) console.error(file); else rmSync(dir, { recursive: true, force: true });
}
const fastest = Math.min(...loads.map((l) => l.ms));
const slowest = Math.max(...loads.map((l) => l.ms));
const line = `| ${new Date().toISOString().slice(0, 10)} | ${ranges} top-level ranges (${machine.iomem.flat.length} with children), ${data.plan?.segments.length ?? 0} segments, ${data.checks.length} checks | ${loads[0].drawn} | ${buildMs.toFixed(0)} ms | ${fastest.toFixed(0)} ms (slowest ${slowest.toFixed(0)}) | ${(html.length / 1024).toFixed(0)} KiB |`;
console.log(line);
const head = `# Web page render times

\`node bench/web/render.mjs\` (see the header of render.mjs). "core" is buildReport in Node (checks, plan,
hand-over tables); "page" is chromium's time from navigation start to the drawn page, from file://.
The machine is shared by up to 8 engineers on 2 cores: the fastest of the loads is the one to compare.

| date | machine | elements drawn | core | page | HTML |
|---|---|---|---|---|---|
`;
let old = "";
try { old = readFileSync(outFile, "utf8").split("\n").filter((l) => l.startsWith("| 20")).join("\n"); } catch { /* first run */ }
writeFileSync(outFile, `${head}${old ? `${old}\n` : ""}${line}\n`);
