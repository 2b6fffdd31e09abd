/**
 * `kexec-ts report` and the web app in a real browser (Debian's chromium through playwright-core),
 * on the lab's real snapshots (testdata/snapshots) and the cached Debian kernels. What the page
 * shows is read back from the DOM — addresses from data-start/data-end, verdicts from
 * data-verdict — and compared with what `kexec-ts check --json` and `machine --json` say for the
 * same inputs. Screenshots go to test-artifacts/web/ (or $KEXEC_TS_ARTIFACTS/web/).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { artifactDir, chromiumMissing, launchChromium, type BrowserContext } from "../../node/browser.js";
import { cachedKernels, cachedVmcorePath } from "../../node/kernel-cache.js";
import { missingInput } from "../../node/test-inputs.js";

type Page = Awaited<ReturnType<BrowserContext["newPage"]>>;
/** The page's globals, as the callbacks run inside it see them (this file is compiled without the DOM library). */
type InPage = {
  kexecTsWalk(table: string, vaddr: string): { paddr: string };
  kexecTsReport?: { request?: { crash: boolean } };
  document: { activeElement: { getAttribute(name: string): string | null } | null; getElementById(id: string): { getAttribute(name: string): string | null } | null };
};

const repo = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const cli = join(repo, "dist", "cli", "main.js");
const snapshots = join(repo, "testdata", "snapshots");
const appPage = join(repo, "dist", "web", "index.html");
const kernels = cachedKernels();
const amd64 = kernels.find((k) => k.flavour === "amd64" && k.release.startsWith("6.1."));
const amd64New = kernels.find((k) => k.flavour === "amd64" && k.release.startsWith("6.12"));
const pae = kernels.find((k) => k.flavour === "686-pae");
const missing = chromiumMissing() ?? (amd64 && pae ? undefined : "no Debian kernels cached: run .ci/setup-debian.sh");

const work = mkdtempSync(join(tmpdir(), "kexec-ts-report-"));
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

before(async () => {
  if (!missing) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

function run(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface Loaded {
  page: Page;
  problems: string[];
}

/** Opens a file:// page and collects every console error and uncaught exception. */
async function open(path: string): Promise<Loaded> {
  const page = await browser!.context.newPage();
  page.setDefaultTimeout(15000);
  const problems: string[] = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => { if (!r.url().startsWith("file:") && !r.url().startsWith("data:")) problems.push(`network request: ${r.url()}`); });
  await page.goto(`file://${path}`);
  await page.waitForSelector("#root[data-ready]");
  return { page, problems };
}

interface CheckJson { id: string; verdict: string; evidence: Record<string, unknown> }

const SNAPSHOTS = readdirSync(snapshots).filter((n) => statSync(join(snapshots, n)).isDirectory()).sort();

for (const name of SNAPSHOTS) {
  for (const mode of ["-l", "-p"] as const) {
    test(`report ${mode} on ${name}: addresses, verdicts and positions in the DOM match the CLI`, async (t) => {
    if (missing) return missingInput(t, missing);
      const i386 = name.includes("686");
      const kernel = i386 ? pae! : mode === "-p" && amd64New ? amd64New : amd64!;
      const root = join(snapshots, name);
      const out = join(work, `${name}${mode}.html`);
      const flags = [mode, kernel.vmlinuz, "--root", root, "--append", "console=ttyS0"];
      const r = run(["report", ...flags, "-o", out]);
      assert.equal(r.status, 0, r.stderr);
      const check = JSON.parse(run(["check", ...flags, "--json"]).stdout) as { checks: CheckJson[] };
      const machine = JSON.parse(run(["machine", "--root", root, "--json"]).stdout) as { crashRegions: { start: string; size: string }[] };
      const { page, problems } = await open(out);
      try {
        // Every check, with the CLI's verdict; every failing one present.
        const dom = await page.$$eval("[data-check]", (els) => els.map((e) => ({ id: e.getAttribute("data-check")!, verdict: e.getAttribute("data-verdict")! })));
        assert.deepEqual(dom.map((d) => `${d.id}=${d.verdict}`).sort(), check.checks.map((c) => `${c.id}=${c.verdict}`).sort());
        // Every check links to what it is about, and that thing is on the page.
        const dangling = await page.$$eval("[data-check] a[data-anchor]", (els) => els.map((a) => a.getAttribute("data-anchor")!).filter((id) => (globalThis as unknown as InPage).document.getElementById(id) === null));
        assert.deepEqual(dangling, []);
        // The crash region(s) at the machine's addresses.
        const crash = await page.$$eval("[data-kind=crash-region]", (els) => els.map((e) => [e.getAttribute("data-start"), e.getAttribute("data-end")]));
        assert.deepEqual(crash, machine.crashRegions.map((c) => [c.start, `0x${(BigInt(c.start) + BigInt(c.size)).toString(16)}`]));
        // The segments where the checks' placement put them.
        const placement = check.checks.find((c) => c.id === "placement-hole")!;
        const segments = await page.$$eval("[data-kind=segment]", (els) => els.map((e) => `${e.getAttribute("data-segment")} ${e.getAttribute("data-start")}-${e.getAttribute("data-end")}`));
        if (placement.verdict === "ok" && Array.isArray(placement.evidence.segments)) assert.deepEqual(segments.sort(), [...(placement.evidence.segments as string[])].sort());
        else assert.equal(segments.length, 0);
        // Positions: y grows with the address, and in a crash load every segment lies inside the crash region's box.
        const boxes = await page.$$eval("#memory-map .range[data-depth='0']", (els) => els.map((e) => ({ start: e.getAttribute("data-start")!, top: e.getBoundingClientRect().top })));
        for (let i = 1; i < boxes.length; i++) assert.ok(BigInt(boxes[i]!.start) < BigInt(boxes[i - 1]!.start) || boxes[i]!.top >= boxes[i - 1]!.top, `${boxes[i]!.start} drawn above ${boxes[i - 1]!.start}`);
        if (mode === "-p" && segments.length) {
          // crashk_res: the highest crash region (a ,high reservation has a low part too).
          const regions = await page.$$eval("[data-kind=crash-region]", (els) => els.map((e) => { const r = e.querySelector("rect")!.getBoundingClientRect(); return { start: e.getAttribute("data-start")!, top: r.top, bottom: r.bottom }; }));
          const region = regions.reduce((a, b) => (BigInt(b.start) > BigInt(a.start) ? b : a));
          const segs = await page.$$eval("[data-kind=segment] rect", (els) => els.map((e) => { const r = e.getBoundingClientRect(); return { top: r.top, bottom: r.bottom }; }));
          for (const s of segs) assert.ok(s.top >= region.top - 0.5 && s.bottom <= region.bottom + 0.5, `segment ${JSON.stringify(s)} outside the crash region ${JSON.stringify(region)}`);
        }
        // Limits explain themselves on focus.
        const limit = await page.$("[data-kind=limit]");
        if (limit) {
          await limit.focus();
          const tip = await page.$eval("#tip", (e) => ({ hidden: e.hasAttribute("hidden"), text: e.textContent }));
          assert.equal(tip.hidden, false);
          assert.match(tip.text ?? "", /^limit 0x[0-9a-f]+: ./);
        }
        // The walker agrees with the builder on every mapping the page lists (start, middle, last byte).
        const leaves = await page.$$eval(".leaf", (els) => els.map((e) => ({ table: e.getAttribute("data-table")!, vaddr: e.getAttribute("data-vaddr")!, paddr: e.getAttribute("data-paddr")!, size: e.getAttribute("data-size")! })));
        if (segments.length) assert.ok(leaves.length > 0, "the hand-over lists its tables' mappings");
        for (const l of leaves) {
          for (const off of [0n, BigInt(l.size) / 2n, BigInt(l.size) - 1n]) {
            const va = `0x${(BigInt(l.vaddr) + off).toString(16)}`;
            const got = await page.evaluate(([t, v]) => (globalThis as unknown as InPage).kexecTsWalk(t!, v!), [l.table, va]);
            assert.equal(got.paddr, `0x${(BigInt(l.paddr) + off).toString(16)}`, `${l.table} ${va}`);
          }
        }
        mkdirSync(artifactDir("web"), { recursive: true });
        await page.screenshot({ path: join(artifactDir("web"), `report-${name}${mode}.png`) });
        assert.deepEqual(problems, []);
      } finally {
        await page.close();
      }
    });
  }
}

test("report: the keyboard reaches every element the page lets you focus", async (t) => {
    if (missing) return missingInput(t, missing);
  const out = join(work, "keyboard.html");
  assert.equal(run(["report", "-p", amd64!.vmlinuz, "--root", join(snapshots, "qemu-amd64-6.1-5level-crash1968M"), "-o", out]).status, 0);
  const { page, problems } = await open(out);
  try {
    // Open every <details> so what is inside is on the page's tab order too.
    await page.$$eval("details", (els) => els.forEach((d) => d.setAttribute("open", "")));
    const total = await page.$$eval("[tabindex='0'], a[href], button, input, summary", (els) => {
      els.forEach((e, i) => e.setAttribute("data-focus-id", String(i)));
      return els.length;
    });
    const reached = new Set<string>();
    for (let i = 0; i < total + 5; i++) {
      await page.keyboard.press("Tab");
      const id = await page.evaluate(() => (globalThis as unknown as InPage).document.activeElement?.getAttribute("data-focus-id") ?? null);
      if (id !== null) reached.add(id);
    }
    const unreached = await page.$$eval("[data-focus-id]", (els, seen) => els.filter((e) => !seen.includes(e.getAttribute("data-focus-id")!)).map((e) => e.outerHTML.slice(0, 120)), [...reached]);
    assert.deepEqual(unreached, []);
    assert.ok(total > 50, `only ${total} focusable elements`);
    // Enter on a range zooms the map to it.
    await page.focus("[data-kind=crash-region]");
    await page.keyboard.press("Enter");
    assert.match(await page.$eval("#scale-note", (e) => e.textContent ?? ""), /Showing 0x7[0-9a-f]+–0x8[0-9a-f]+/);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

/** `snapshot --tar` of a test snapshot, as a user would make one on the machine. */
function snapshotTar(name: string): string {
  const tar = join(work, `${name}.tar`);
  const r = run(["snapshot", "--root", join(snapshots, name), "--tar", tar]);
  assert.equal(r.status, 0, r.stderr);
  return tar;
}

async function dropInApp(page: Page, files: string[]): Promise<void> {
  const before = await page.$eval("#root", (e) => e.getAttribute("data-ready"));
  await page.setInputFiles("#files", files);
  await page.waitForFunction((b) => (globalThis as unknown as InPage).document.getElementById("root")!.getAttribute("data-ready") !== b, before);
}

for (const name of SNAPSHOTS) {
  test(`web app: ${name} archive + kernel give the CLI's verdicts (-l and -p)`, async (t) => {
    if (missing) return missingInput(t, missing);
    const i386 = name.includes("686");
    const kernel = i386 ? pae! : amd64!;
    const tar = snapshotTar(name);
    const { page, problems } = await open(appPage);
    try {
      await dropInApp(page, [tar, kernel.vmlinuz]);
      for (const mode of ["-l", "-p"] as const) {
        await page.selectOption("#mode", mode);
        await page.waitForFunction((m) => (globalThis as unknown as InPage).kexecTsReport?.request?.crash === (m === "-p"), mode);
        const dom = await page.$$eval("[data-check]", (els) => els.map((e) => `${e.getAttribute("data-check")}=${e.getAttribute("data-verdict")}`));
        const cli = JSON.parse(run(["check", mode, kernel.vmlinuz, "--root", join(snapshots, name), "--append", "console=ttyS0", "--json"]).stdout) as { checks: CheckJson[] };
        assert.deepEqual(dom.sort(), cli.checks.map((c) => `${c.id}=${c.verdict}`).sort(), `${name} ${mode}`);
      }
      mkdirSync(artifactDir("web"), { recursive: true });
      await page.screenshot({ path: join(artifactDir("web"), `app-${name}.png`) });
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
    }
  });
}

test("web app: bad input is said as the CLI says it, and the page keeps working", async (t) => {
    if (missing) return missingInput(t, missing);
  const notSnapshot = join(work, "not-a-snapshot.tar");
  // A real tar archive, but of something else.
  const other = join(work, "other");
  mkdirSync(other, { recursive: true });
  writeFileSync(join(other, "hello.txt"), "hello\n");
  assert.equal(spawnSync("tar", ["-C", other, "-cf", notSnapshot, "hello.txt"]).status, 0);
  const truncated = join(work, "vmlinuz-truncated");
  writeFileSync(truncated, readFileSync(amd64!.vmlinuz).subarray(0, 0x4000));
  const fakeCore = join(work, "vmcore-truncated");
  // An ELF64 core header (e_type 4) whose program headers lie past the end of the file.
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  const dv = new DataView(elf.buffer);
  dv.setUint16(16, 4, true); dv.setUint16(18, 62, true); dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 0x1000n, true); dv.setUint16(52, 64, true); dv.setUint16(54, 56, true); dv.setUint16(56, 3, true);
  writeFileSync(fakeCore, elf);
  const { page, problems } = await open(appPage);
  try {
    await dropInApp(page, [notSnapshot, truncated, fakeCore]);
    const errors = await page.$$eval("#errors .error", (els) => els.map((e) => ({ what: e.getAttribute("data-what"), text: e.textContent ?? "" })));
    assert.equal(errors.length, 3, JSON.stringify(errors));
    assert.match(errors.find((e) => e.what === "not-a-snapshot.tar")!.text, /not a kexec-ts snapshot.*hint: make one with `kexec-ts snapshot --tar FILE`/);
    assert.match(errors.find((e) => e.what === "vmlinuz-truncated")!.text, /^kexec-ts: vmlinuz-truncated: /);
    assert.match(errors.find((e) => e.what === "vmcore-truncated")!.text, /^kexec-ts: vmcore-truncated/);
    // What the CLI says for the same image.
    const cli = run(["inspect", truncated]);
    assert.notEqual(cli.status, 0);
    const cliMessage = cli.stderr.split("\n")[0]!.replace(/^kexec-ts: /, "").replace(`${truncated}: `, "");
    assert.ok(errors.find((e) => e.what === "vmlinuz-truncated")!.text.includes(cliMessage), `page: ${errors[1]!.text}\ncli: ${cliMessage}`);
    // Still working: good files after bad ones give a report.
    await dropInApp(page, [snapshotTar("qemu-amd64-6.1-no5lvl-crash1968M"), amd64!.vmlinuz]);
    assert.equal(await page.$$eval("#errors", (els) => els.length), 0);
    assert.ok((await page.$$eval("[data-check]", (els) => els.length)) > 20);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

test("report: a vmcore that is not one and a truncated image are said on the page and by the exit status", async (t) => {
    if (missing) return missingInput(t, missing);
  const out = join(work, "bad.html");
  const truncated = join(work, "vmlinuz-short");
  writeFileSync(truncated, readFileSync(amd64!.vmlinuz).subarray(0, 0x3000));
  const notCore = join(work, "not-a-vmcore");
  writeFileSync(notCore, "this is not a vmcore\n".repeat(10));
  const r = run(["report", "-l", truncated, "--root", join(snapshots, "qemu-amd64-6.1-5level-crash1968M"), "--vmcore", notCore, "-o", out]);
  assert.equal(r.status, 65, r.stderr);
  assert.match(r.stderr, /kexec-ts: .*vmlinuz-short/);
  assert.match(r.stderr, /neither an ELF core/);
  const { page, problems } = await open(out);
  try {
    const errors = await page.$$eval("#errors .error", (els) => els.map((e) => e.textContent ?? ""));
    assert.equal(errors.length, 2);
    assert.ok(errors.some((e) => /neither an ELF core .* nor a kdump-compressed file/.test(e) && /hint: give \/proc\/vmcore/.test(e)), errors.join("\n"));
    // The map is still there.
    assert.ok((await page.$$eval("#memory-map .range", (els) => els.length)) > 10);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

test("report --vmcore on a real dump: dumped ranges, pages left out by type as the save counted them, and the panic", async (t) => {
  const real = cachedVmcorePath("amd64-6.1");
  const why = missing ?? (existsSync(real) ? undefined : `${real} is missing: the e2e scenario vmcore-amd64-6.1 keeps it (or node dist/node/vmcore/capture-vmcore.js)`);
  if (why) return missingInput(t, why);
  // A -d 31 kdump of it, as makedumpfile -d 31 would leave it.
  const kdump = join(work, "d31.kdump");
  const saved = run(["vmcore", "save", "-d", "31", "--threads", "1", real, kdump]);
  assert.equal(saved.status, 0, saved.stderr);
  const counted = /excluded: (\d+) zero, (\d+) cache, (\d+) private cache, (\d+) user, (\d+) free/.exec(saved.stderr + saved.stdout);
  assert.ok(counted, saved.stderr);
  const out = join(work, "vmcore.html");
  assert.equal(run(["report", "--root", join(snapshots, "qemu-amd64-6.1-no5lvl-crash1968M"), "--vmcore", kdump, "-o", out]).status, 0);
  const info = JSON.parse(run(["vmcore", "info", kdump, "--json"]).stdout) as { memory: { start: string; end: string }[]; pagesDumped: string; pagesPresent: string };
  const { page, problems } = await open(out);
  try {
    const leftOut: Record<string, number> = Object.fromEntries(await page.$$eval("#vmcore li[data-type]", (els) => els.map((e) => [e.getAttribute("data-type")!, Number(e.getAttribute("data-pages"))])));
    assert.equal(leftOut.cache ?? 0, Number(counted[2]));
    assert.equal(leftOut.user ?? 0, Number(counted[4]));
    assert.equal(leftOut.free ?? 0, Number(counted[5]));
    // What is dumped plus what is left out is every present page.
    const dumped = await page.$$eval(".dumped-range", (els) => els.map((e) => [e.getAttribute("data-start")!, e.getAttribute("data-end")!]));
    const dumpedPages = dumped.reduce((n, [s, e]) => n + Number((BigInt(e!) - BigInt(s!)) / 4096n), 0);
    assert.equal(dumpedPages, Number(info.pagesDumped));
    assert.equal(dumpedPages + Object.values(leftOut).reduce((n, v) => n + v, 0), Number(info.pagesPresent));
    for (const [s, e] of dumped) assert.ok(info.memory.some((m) => BigInt(s!) >= BigInt(m.start) && BigInt(e!) <= BigInt(m.end)), `${s}-${e} outside the dump's memory`);
    const panic = await page.$$eval(".log .panic", (els) => els.map((e) => e.textContent ?? ""));
    assert.ok(panic.some((l) => /Kernel panic - not syncing/.test(l)), panic.join("\n"));
    mkdirSync(artifactDir("web"), { recursive: true });
    await page.locator("#vmcore").screenshot({ path: join(artifactDir("web"), "report-vmcore.png") });
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});
