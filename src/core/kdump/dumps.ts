/**
 * The dumps in a target directory: their names (<host>-<UTC time>), what report.json says, what
 * the crashed kernel's log says (the panic line, the first frames of the backtrace, a test id),
 * which old dumps retention removes, and the one-line summary `kdump report` writes to the
 * journal. Pure: the node side lists directories and reads files.
 */

/** report.json, as `kdump save` writes it in the capture kernel (and rewrites as it goes). */
export interface DumpReport {
  format: 1;
  state: "saving" | "saved" | "failed";
  host: string;
  /** ISO time of the crash (VMCOREINFO CRASHTIME), else when the capture started. */
  crashTime: string;
  kernel: string | null;
  panic: string | null;
  backtrace: string[];
  testId: string | null;
  dump: {
    file: string;
    complete: boolean;
    bytes: number;
    dumpLevel: number;
    codec: string;
    pagesWritten: number;
    /** What is missing from an incomplete dump, or why none was written. */
    problem: string | null;
  };
  dmesg: { file: string; records: number } | { error: string };
  seconds: { total: number; dmesg: number; vmcore: number };
  /** Bytes: what the capture kernel had and the least it had left, the figures the reservation is sized by. */
  memory: { memTotal: number | null; memAvailableAtStart: number | null; memAvailableLeast: number | null; nodeRssPeak: number | null; /** Sampled RssAnon peak; absent in reports of earlier versions. */ nodePrivatePeak?: number | null; heapCapMiB: number | null };
  capture: { mode: string; builtBy: string; kernelRelease: string; node: string };
  startedAt: string;
  finishedAt: string | null;
  /** Where the dump came from when not from the capture kernel's own save (a converted raw copy). */
  notes: string[];
}

/** "20261123T154258Z" from a time. */
export function dumpStamp(when: Date): string {
  return when.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
}

export function dumpDirName(host: string, when: Date): string {
  return `${host.replace(/[^A-Za-z0-9._-]/g, "_") || "localhost"}-${dumpStamp(when)}`;
}

const DIR_NAME = /^(.+)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-(\d+))?$/;

/** The time a dump directory's name says, or null when it is not one of ours. */
export function dumpDirTime(name: string): Date | null {
  const m = DIR_NAME.exec(name);
  if (m === null) return null;
  return new Date(Date.UTC(Number(m[2]), Number(m[3]) - 1, Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7])));
}

export interface LogFacts {
  panic: string | null;
  backtrace: string[];
  testId: string | null;
}

const PANIC = /Kernel panic - not syncing|^BUG: |^Oops|general protection fault|^kernel BUG at|sysrq: Trigger a crash/;
export const TEST_MARK = "kexec-ts kdump test ";
const FRAMES = 8;

/** The panic line (the last "Kernel panic - not syncing", else the first oops-like line), the first frames after it, the test id. */
export function analyzeLog(lines: readonly string[]): LogFacts {
  let panicAt = -1;
  for (let i = lines.length - 1; i >= 0; i--) if (/Kernel panic - not syncing/.test(lines[i]!)) { panicAt = i; break; }
  const firstOops = lines.findIndex((l) => PANIC.test(l.trim()));
  const cause = firstOops >= 0 ? firstOops : panicAt;
  const panic = panicAt >= 0 ? lines[panicAt]!.trim() : cause >= 0 ? lines[cause]!.trim() : null;
  const backtrace: string[] = [];
  const traceAt = cause >= 0 ? lines.findIndex((l, i) => i >= cause && /Call Trace:/.test(l)) : -1;
  if (traceAt >= 0) {
    for (const l of lines.slice(traceAt + 1)) {
      const t = l.trim();
      if (t === "<TASK>" || t === "<IRQ>" || t === "</IRQ>") continue;
      if (t === "</TASK>" || t === "" || /^(RIP|Code|RSP|RAX|CR2|---\[)/.test(t)) break;
      // "? foo+0x1/0x2" frames are guesses from the stack, not the unwinder's.
      if (t.startsWith("? ")) continue;
      backtrace.push(t);
      if (backtrace.length >= FRAMES) break;
    }
  }
  let testId: string | null = null;
  for (const l of lines) {
    const at = l.indexOf(TEST_MARK);
    if (at >= 0) testId = l.slice(at + TEST_MARK.length).trim().split(/\s/)[0] ?? null;
  }
  return { panic, backtrace, testId };
}

export interface DumpEntry {
  name: string;
  time: Date;
  bytes: number;
}

/**
 * Which dumps to remove before writing `current`, oldest first: enough to leave `keep - 1`
 * others (0: no count limit), then more while free space stays under `minFree`. Never `current`.
 */
export function chooseRemovals(dumps: readonly DumpEntry[], current: string, keep: number, free: bigint, minFree: bigint): DumpEntry[] {
  const others = dumps.filter((d) => d.name !== current).sort((a, b) => a.time.getTime() - b.time.getTime());
  const out: DumpEntry[] = [];
  let left = others.length;
  let room = free;
  for (const d of others) {
    const overCount = keep > 0 && left > keep - 1;
    if (!overCount && room >= minFree) break;
    out.push(d);
    left--;
    room += BigInt(d.bytes);
  }
  return out;
}

function mib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * One dump, as `kdump report` writes it to the journal (and `list` shows it). `files` are the
 * directory's files with their sizes: a save cut off never wrote its final report, so the
 * vmcore's size comes from the disk.
 */
export function summarizeDump(dir: string, r: DumpReport | null, files: Readonly<Record<string, number>>): string[] {
  const vmcore = "vmcore" in files ? "vmcore" : "vmcore.incomplete" in files ? "vmcore.incomplete" : null;
  if (r === null) {
    const what = vmcore === null ? "no vmcore" : `${vmcore === "vmcore" ? "a" : "an incomplete"} vmcore of ${mib(files[vmcore]!)}`;
    return [`${dir}: the capture left no report.json (${what}${"capture.log" in files ? "; see capture.log" : ""}): it was cut off before it finished`];
  }
  const d = r.dump;
  const status = r.state === "saving"
    ? "INCOMPLETE: the capture was cut off while saving (a second crash, a reset or the power)"
    : d.complete ? "complete" : `INCOMPLETE: ${d.problem ?? "unknown"}`;
  const bytes = vmcore === null ? d.bytes : files[vmcore]!;
  const lines = [
    `${dir}: crash at ${r.crashTime} on ${r.kernel ?? "an unknown kernel"}${r.testId ? ` (kexec-ts kdump test ${r.testId})` : ""}`,
    `  panic: ${r.panic ?? "(no panic line in the log)"}`,
  ];
  if (r.backtrace.length) lines.push(`  backtrace: ${r.backtrace.join(" < ")}`);
  const timing = r.state === "saving" ? "" : `, ${r.seconds.total.toFixed(1)} s`;
  lines.push(`  dump: ${vmcore ?? d.file}, ${mib(bytes)}, dump level ${d.dumpLevel}, ${d.codec}${timing}; ${status}`);
  for (const n of r.notes ?? []) lines.push(`  note: ${n}`);
  return lines;
}
