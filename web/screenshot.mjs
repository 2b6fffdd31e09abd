// Regenerates web/report.png, the README's picture: seed 002's case (an i386 user space loading
// the amd64 6.1 kdump kernel into crashkernel=256M@1968M on the 5-level lab guest), the map zoomed
// to the crash region with the kernel segment focused, so its window and bounds show.
//
//   npm run build && node web/screenshot.mjs
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const { launchChromium } = await import(join(repo, "dist/node/browser.js"));
const { cachedKernels } = await import(join(repo, "dist/node/kernel-cache.js"));
const kernel = cachedKernels().find((k) => k.flavour === "amd64" && k.release.startsWith("6.1."));
if (!kernel) throw new Error("no amd64 6.1 kernel cached: bash .ci/setup-debian.sh");
const dir = mkdtempSync(join(tmpdir(), "kexec-ts-shot-"));
const html = join(dir, "report.html");
const r = spawnSync(process.execPath, [join(repo, "dist/cli/main.js"), "report", "-p", kernel.vmlinuz, "--root", join(repo, "testdata/snapshots/qemu-amd64-6.1-5level-crash1968M"),
  "--userspace", "i386", "--append", "console=ttyS0 irqpoll nr_cpus=1", "--initrd", "/etc/services", "-o", html], { stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);
const browser = await launchChromium({ width: 1100, height: 760 });
try {
  const page = await browser.context.newPage();
  await page.goto(`file://${html}`);
  await page.waitForSelector("#root[data-ready]");
  await page.focus("[data-kind=crash-region]");
  await page.keyboard.press("Enter");
  await page.focus("#segment-kernel");
  await page.locator("#map").screenshot({ path: join(repo, "web/report.png") });
} finally {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
}
