// Start-up and load (issue 15, target 2): kexec-tools' `kexec -l/-p` and `kexec-ts -l/-p`
// (kexec_load with -c, kexec_file_load with -s), `kexec-ts check` and `kexec-ts plan`, on the
// same image and initrd, side by side in one lab guest (the initramfs tier: Debian 6.1 amd64
// under QEMU TCG, Node and kexec-ts in the initramfs, Debian's kexec-tools copied in).
//
//   npm run build && node bench/load/bench.mjs [--rounds 5] [--json FILE]
//
// The guest runs bench/load/guest.sh: each round times every case once per tool, alternating
// which goes first. The initrd is a real one of a real size (the lab's Node initramfs, ~50 MB).
// A ratio is kexec-ts's median over kexec's median; none is given when a run failed.
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..");
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };

const { runScenario } = await import(join(repo, "dist", "lab", "scenario.js"));

export const loadScenario = (rounds) => ({
  name: "bench-load-amd64",
  description: "issue 15 target 2: kexec vs kexec-ts load times in one guest",
  kernel: "amd64-6.1",
  cpu: "max",
  mem: "2G",
  smp: 1,
  append: "crashkernel=256M",
  node: true,
  kexecTs: true,
  files: [
    { guest: "/sbin/kexec", program: "/usr/sbin/kexec" },
    { guest: "/boot/vmlinuz", kernel: "amd64-6.1" },
    // A real initrd of a real size: what the lab boots a Node user space from.
    { guest: "/boot/initrd.img", initramfs: { stage: "next", node: true, kexecTs: true, steps: [] } },
    { guest: "/bench/guest.sh", host: join(here, "guest.sh") },
  ],
  steps: [
    { name: "sizes", run: "ls -l /boot/vmlinuz /boot/initrd.img; node --version; kexec --version; kexec-ts --version" },
    { name: "bench", run: `sh /bench/guest.sh ${rounds}`, timeoutSec: 600 + rounds * 600 },
  ],
});

/** Parse the guest's TIMING lines into { case: { tool: [seconds...] } } and the failures. */
export function parseTimings(lines) {
  const runs = {};
  const failures = [];
  for (const line of lines) {
    const m = /^TIMING (\S+) (\S+) ([\d.]+) rc=(\d+)/.exec(line.trim());
    if (!m) continue;
    const [, c, tool, secs, rc] = m;
    // check and plan exit 1 for warnings: a result, not a failure.
    const ok = rc === "0" || (rc === "1" && /^(check|plan)-/.test(c));
    if (!ok) failures.push(`${tool} ${c} exited ${rc}`);
    ((runs[c] ??= {})[tool] ??= []).push(Number(secs));
  }
  const inputs = (tag) => lines.map((l) => new RegExp(`^${tag} (.*)$`).exec(l.trim())?.[1]?.trim()).find((x) => x !== undefined);
  const before = inputs("INPUTS-BEFORE");
  const after = inputs("INPUTS-AFTER");
  if (!before || before !== after) failures.push(`the image and initrd changed during the runs (md5 ${before ?? "?"} -> ${after ?? "?"}): not the same input for both tools`);
  return { runs, failures, inputs: before };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The rows of the table: each kexec-ts case against the kexec-tools case it stands in for. */
export function loadRows({ runs, failures }) {
  const rows = [];
  const pairs = [
    ["kexec-ts -c -l (kexec_load)", "c-l", "kexec-ts", "c-l", "kexec -c -l"],
    ["kexec-ts -s -l (kexec_file_load)", "s-l", "kexec-ts", "s-l", "kexec -s -l"],
    ["kexec-ts -c -p (kexec_load)", "c-p", "kexec-ts", "c-p", "kexec -c -p"],
    ["kexec-ts -s -p (kexec_file_load)", "s-p", "kexec-ts", "s-p", "kexec -s -p"],
    ["kexec-ts check -l", "check-l", "kexec-ts", "c-l", "kexec -c -l"],
    ["kexec-ts plan -l", "plan-l", "kexec-ts", "c-l", "kexec -c -l"],
    ["kexec-ts check -p", "check-p", "kexec-ts", "c-p", "kexec -c -p"],
    ["kexec-ts plan -p", "plan-p", "kexec-ts", "c-p", "kexec -c -p"],
    // Outside the verdict: -c -p with OpenSSL's AVX2 masked (guest.sh noavx2), against the same
    // kexec -c -p runs: what hashing with emulated AVX2 costs, if anything.
    ["kexec-ts -c -p, OpenSSL's AVX2 masked (a check)", "c-p-noavx2", "kexec-ts", "c-p", "kexec -c -p", true],
  ];
  for (const [what, c, tool, peerCase, peerWhat, outsideVerdict] of pairs) {
    const ours = runs[c]?.[tool] ?? [];
    const theirs = runs[peerCase]?.kexec ?? [];
    const failed = failures.filter((f) => f.includes(` ${c} `) || f.startsWith(`kexec ${peerCase} `) || f.startsWith("the image and initrd"));
    const refused = failed.length ? `no ratio: ${failed.join("; ")}` : ours.length === 0 || theirs.length === 0 ? "no ratio: no runs" : undefined;
    rows.push({ what, peer: peerWhat, outsideVerdict: outsideVerdict === true, n: ours.length, ts: median(ours), tsMax: Math.max(...ours), md: median(theirs), mdMax: Math.max(...theirs), ratio: refused ? undefined : median(ours) / median(theirs), refused });
  }
  // Floors, no ratio: what starting Node costs here, and kexec-ts doing nothing but start.
  for (const tool of ["node", "kexec-ts"]) {
    const xs = runs.start?.[tool] ?? [];
    rows.push({ what: tool === "node" ? "node -e 0 (Node's start)" : "kexec-ts --version (start, load, exit)", peer: "", n: xs.length, ts: median(xs), tsMax: Math.max(...xs), md: NaN, mdMax: NaN, ratio: undefined, refused: "no ratio: a floor" });
  }
  return rows;
}

export async function runLoadBench({ rounds = 5 } = {}) {
  const result = await runScenario(loadScenario(rounds), {});
  const bench = result.guest.steps["bench"];
  const sizes = result.guest.steps["sizes"]?.output.join("\n") ?? "";
  if (!result.ok || !bench) {
    return { ok: false, reason: `${result.guest.outcome}: ${result.guest.reason} (run directory ${result.guest.outDir})`, rows: [], sizes };
  }
  const parsed = parseTimings(bench.output);
  return { ok: true, rows: loadRows(parsed), failures: parsed.failures, sizes, outDir: result.guest.outDir };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const jsonOut = opt("--json", undefined);
  const r = await runLoadBench({ rounds: Number(opt("--rounds", "5")) });
  if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(r, null, 2)}\n`);
  if (!r.ok) {
    console.error(`load bench: the guest failed: ${r.reason}`);
    process.exitCode = 1;
  }
  console.log(r.sizes);
  for (const row of r.rows) console.log(`${row.what.padEnd(36)} ${row.ts.toFixed(2)} s vs ${row.peer} ${row.md.toFixed(2)} s: ${row.refused ?? `${row.ratio.toFixed(2)}x`}`);
}
