/**
 * Captures a real vmcore in the QEMU lab and keeps it in the cache
 * (${KEXEC_TS_CACHE:-~/.cache/kexec-ts}/vmcores/NAME.elf), never in git:
 *
 *   npm run build && node dist/lab/capture-vmcore.js [--mem 1G|2G|4G] [--name amd64-6.1]
 *
 * It runs lab/scenarios/vmcore-amd64-6.1.json (Debian 6.1 fills memory, loads itself as the
 * capture kernel with kexec -s -p, panics; the capture kernel dd's /proc/vmcore to a virtio
 * disk), scaled to the memory size, and cuts the disk image to the ELF core's real length.
 */
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { KexecError } from "../core/errors.js";
import { runEntryPoint } from "../node/entry.js";
import { cachedVmcorePath } from "../node/kernel-cache.js";
import { findScenario, runScenario } from "./scenario.js";
import { cutToElfCore } from "./host-steps.js";

export interface CaptureOptions {
  memMiB: number;
  name: string;
  verbose: boolean;
}


export async function captureVmcore(options: CaptureOptions): Promise<string> {
  const scenario = findScenario("vmcore-amd64-6.1");
  const scale = options.memMiB / 1024;
  scenario.mem = `${options.memMiB}M`;
  scenario.disks = [{ sizeMiB: options.memMiB + 64 }];
  // The fill step's sizes grow with the guest, so the mix of zeros, random, text and binaries stays the same.
  scenario.steps = scenario.steps.map((s) => s.name !== "fill" ? s : {
    ...s,
    run: s.run.replace(/count=(\d+)/g, (_, n: string) => `count=${Math.round(Number(n) * scale)}`).replace(/size=(\d+)m/, (_, n: string) => `size=${Math.round(Number(n) * scale)}m`)
      .replace(/for i in 1 2 3 4 5 6;/, `for i in ${Array.from({ length: Math.max(1, Math.round(6 * scale)) }, (_, i) => i + 1).join(" ")};`),
  });
  if (scale > 1) scenario.steps = scenario.steps.map((s) => s.name === "anon" ? { ...s, run: s.run.replace("40000000", String(Math.round(40000000 * scale))) } : s);
  const result = await runScenario(scenario, options.verbose ? { onLine: (l) => process.stderr.write(`  | ${l}\n`) } : {});
  if (!result.ok) {
    throw new KexecError("lab", `the capture scenario failed: ${result.guest.reason} (run directory ${result.guest.outDir})`, { file: `${result.guest.outDir}/console.log` },
      "read the console log; rerun with -v to watch the guest");
  }
  const disk = result.guest.disks[0]!;
  const dest = cachedVmcorePath(options.name);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(disk, dest);
  cutToElfCore(dest);
  rmSync(disk, { force: true });
  return dest;
}

function parseMem(text: string): number {
  const m = /^(\d+)([MG])$/i.exec(text);
  if (!m) throw new KexecError("usage", `--mem ${text}: expected e.g. 1G or 1536M`, { field: "mem", actual: text }, "node dist/lab/capture-vmcore.js --mem 4G");
  return Number(m[1]) * (m[2]!.toUpperCase() === "G" ? 1024 : 1);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runEntryPoint("capture-vmcore", async () => {
    const args = process.argv.slice(2);
    const get = (flag: string) => { const i = args.indexOf(flag); return i >= 0 ? args[i + 1] : undefined; };
    const memMiB = parseMem(get("--mem") ?? "1G");
    const name = get("--name") ?? (memMiB === 1024 ? "amd64-6.1" : `amd64-6.1-${memMiB >= 1024 ? `${memMiB / 1024}G` : `${memMiB}M`}`);
    process.stdout.write(`${await captureVmcore({ memMiB, name, verbose: args.includes("-v") })}\n`);
    return 0;
  });
}
