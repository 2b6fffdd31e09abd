/**
 * Outputs as a user names them, wrong in the ways fuzzing found: `report -o` (and `snapshot --tar`)
 * into the snapshot it reads, `vmcore save S.incomplete S` (the name an interrupted save leaves), an empty path. Each
 * is refused before anything is read or written, and every input is left as it was.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { syntheticVmcore } from "../../core/vmcore/testing.js";

const main = new URL("../main.js", import.meta.url).pathname;
const snapshot = new URL("../../../testdata/snapshots/qemu-amd64-6.1-5level-crash1968M", import.meta.url).pathname;

function kexecTs(args: string[]) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.signal, null, `kexec-ts ${args.join(" ")} did not finish`);
  return r;
}

test("report -o into its --root snapshot, vmcore save from DST.incomplete, and empty output paths are refused; the inputs stay as they were", () => {
  const dir = mkdtempSync(join(tmpdir(), "kexec-ts-outputs-"));
  try {
    const snap = join(dir, "snap");
    cpSync(snapshot, snap, { recursive: true });
    const iomem = readFileSync(join(snap, "proc", "iomem"));
    // -o SNAP/proc/iomem left every later run unable to parse iomem.
    for (const out of [join(snap, "proc", "iomem"), join(snap, "report.html")]) {
      const r = kexecTs(["report", "--root", snap, "-o", out]);
      assert.equal(r.status, 64, r.stderr);
      assert.match(r.stderr, /is inside --root .*, the snapshot the report is made from/);
    }
    // snapshot --tar wrote its archive over SNAP/proc/iomem too, and into a FIFO it blocked for ever.
    const fifo = join(dir, "fifo");
    spawnSync("mkfifo", [fifo]);
    for (const [out, refused] of [[join(snap, "proc", "iomem"), /is inside --root .*, the snapshot the archive is made from/], [fifo, /fifo is a pipe \(FIFO\): snapshot --tar writes a file and renames it into place/]] as const) {
      const r = kexecTs(["snapshot", "--root", snap, "--tar", out]);
      assert.equal(r.status, 64, r.stderr);
      assert.match(r.stderr, refused);
    }
    rmSync(fifo);
    // A file where the snapshot's directory should be is said as such, not as the ENOTDIR of SNAP-FILE/proc/cmdline.
    const notDir = kexecTs(["snapshot", "--root", snap, join(snap, "proc", "iomem")]);
    assert.equal(notDir.status, 64, notDir.stderr);
    assert.match(notDir.stderr, /proc\/iomem: a file, expected a new or empty directory for the snapshot/);
    assert.deepEqual(readFileSync(join(snap, "proc", "iomem")), iomem);
    const ok = kexecTs(["report", "--root", snap, "-o", join(dir, "report.html")]);
    assert.equal(ok.status, 0, ok.stderr);
    // The source at the dump's temporary name was truncated as it was read, and renamed away.
    const source = join(dir, "vmcore.incomplete");
    const bytes = syntheticVmcore(40).bytes;
    writeFileSync(source, bytes);
    const save = kexecTs(["vmcore", "save", "-d", "1", source, join(dir, "vmcore")]);
    assert.equal(save.status, 64, save.stderr);
    assert.match(save.stderr, /vmcore\.incomplete is the vmcore being saved: the dump, written there first and then renamed to .*vmcore, would replace its own source/);
    assert.deepEqual(new Uint8Array(readFileSync(source)), bytes);
    for (const args of [["report", "--root", snap, "-o", ""], ["inspect", source, "--extract="]]) {
      const r = kexecTs(args);
      assert.equal(r.status, 64, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /needs a file path for .*, found an empty one/);
    }
    assert.deepEqual(readdirSync(dir).sort(), ["report.html", "snap", "vmcore.incomplete"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
