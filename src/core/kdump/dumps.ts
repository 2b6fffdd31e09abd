/**
 * The dumps in a target directory: their names (<host>-<UTC time>), what report.json says, what
 * the crashed kernel's log says (the panic line, the first frames of the backtrace, a test id),
 * which old dumps retention removes, and the one-line summary `kdump report` writes to the
 * journal. Pure: the node side lists directories and reads files.
 */
import { describeJsonValue } from "../format.js";
import type { DumpHeaderMark } from "../vmcore/vmcore.js";

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

/** A field of report.json that is not what `kdump save` writes: the reason a dump is listed as unreadable. */
class BadField {
  constructor(readonly reason: string) {}
}

/** The fields of one JSON object of report.json, each read as the type it must have; `at` is its dotted path. */
class Fields {
  constructor(private readonly o: Readonly<Record<string, unknown>>, private readonly at: string) {}

  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.o, key);
  }

  private get<T>(key: string, expected: string, ok: (v: unknown) => boolean): T {
    const path = `${this.at}${key}`;
    if (!this.has(key)) throw new BadField(`field ${path} is missing`);
    const v = this.o[key];
    if (!ok(v)) throw new BadField(`field ${path}: expected ${expected}, found ${describeJsonValue(v)}`);
    return v as T;
  }

  string(key: string): string {
    return this.get(key, "a string", (v) => typeof v === "string");
  }
  stringOrNull(key: string): string | null {
    return this.get(key, "a string or null", (v) => v === null || typeof v === "string");
  }
  number(key: string): number {
    return this.get(key, "a number", (v) => typeof v === "number" && Number.isFinite(v));
  }
  numberOrNull(key: string): number | null {
    return this.get(key, "a number or null", (v) => v === null || (typeof v === "number" && Number.isFinite(v)));
  }
  boolean(key: string): boolean {
    return this.get(key, "true or false", (v) => typeof v === "boolean");
  }
  strings(key: string): string[] {
    const list = this.get<unknown[]>(key, "a list of strings", Array.isArray);
    const at = list.findIndex((x) => typeof x !== "string");
    if (at >= 0) throw new BadField(`field ${this.at}${key}[${at}]: expected a string, found ${describeJsonValue(list[at])}`);
    return [...list] as string[];
  }
  oneOf<T extends string>(key: string, values: readonly T[]): T {
    return this.get(key, values.map((x) => JSON.stringify(x)).join(" or "), (v) => values.includes(v as T));
  }
  object(key: string): Fields {
    return new Fields(this.get(key, "an object", isObject), `${this.at}${key}.`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

const REPORT_STATES = ["saving", "saved", "failed"] as const;

/**
 * report.json's parsed JSON as the typed record, or the reason it is not one ("field dump.complete
 * is missing"): one damaged report must make that dump unreadable, not every command that lists
 * dumps fail. Fields that reports of earlier versions lack (notes, memory.memAvailableLeast,
 * memory.nodePrivatePeak) read as empty.
 */
export function dumpReportFromJson(value: unknown): { report: DumpReport; problem: null } | { report: null; problem: string } {
  try {
    if (!isObject(value)) throw new BadField(`expected a JSON object, found ${describeJsonValue(value)}`);
    const top = new Fields(value, "");
    if (!top.has("format")) throw new BadField("field format is missing");
    if (value["format"] !== 1) throw new BadField(`field format: expected 1, found ${describeJsonValue(value["format"])} (written by another version of kexec-ts?)`);
    const dump = top.object("dump");
    const dmesgFields = top.object("dmesg");
    const seconds = top.object("seconds");
    const memory = top.object("memory");
    const capture = top.object("capture");
    const report: DumpReport = {
      format: 1,
      state: top.oneOf("state", REPORT_STATES),
      host: top.string("host"),
      crashTime: top.string("crashTime"),
      kernel: top.stringOrNull("kernel"),
      panic: top.stringOrNull("panic"),
      backtrace: top.strings("backtrace"),
      testId: top.stringOrNull("testId"),
      dump: {
        file: dump.string("file"),
        complete: dump.boolean("complete"),
        bytes: dump.number("bytes"),
        dumpLevel: dump.number("dumpLevel"),
        codec: dump.string("codec"),
        pagesWritten: dump.number("pagesWritten"),
        problem: dump.stringOrNull("problem"),
      },
      dmesg: dmesgFields.has("error") ? { error: dmesgFields.string("error") } : { file: dmesgFields.string("file"), records: dmesgFields.number("records") },
      seconds: { total: seconds.number("total"), dmesg: seconds.number("dmesg"), vmcore: seconds.number("vmcore") },
      memory: {
        memTotal: memory.numberOrNull("memTotal"),
        memAvailableAtStart: memory.numberOrNull("memAvailableAtStart"),
        memAvailableLeast: memory.has("memAvailableLeast") ? memory.numberOrNull("memAvailableLeast") : null,
        nodeRssPeak: memory.numberOrNull("nodeRssPeak"),
        nodePrivatePeak: memory.has("nodePrivatePeak") ? memory.numberOrNull("nodePrivatePeak") : null,
        heapCapMiB: memory.numberOrNull("heapCapMiB"),
      },
      capture: { mode: capture.string("mode"), builtBy: capture.string("builtBy"), kernelRelease: capture.string("kernelRelease"), node: capture.string("node") },
      startedAt: top.string("startedAt"),
      finishedAt: top.stringOrNull("finishedAt"),
      notes: top.has("notes") ? top.strings("notes") : [],
    };
    return { report, problem: null };
  } catch (e) {
    if (e instanceof BadField) return { report: null, problem: e.reason };
    throw e;
  }
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

/** What `summarizeDump` and the test's verdict go by: whether the dump is whole, else why not. */
export interface DumpCompleteness {
  /** null: not known (the directory could not be listed, so its vmcore could not be looked at). */
  complete: boolean | null;
  problem: string | null;
}

/** What the node side learned of a dump directory beyond its entries. */
export interface DumpDirFacts {
  /**
   * Why the directory could not be listed ("permission denied (EACCES); run as root"); null
   * when it was. Its files are then unknown, not missing: a user's `kdump list` of a 0700
   * directory had called a whole dump's vmcore "removed since".
   */
  listProblem?: string | null;
  /**
   * What the vmcore's own header says (readDumpHeaderMark of its headers), where it was read:
   * a vmcore of the size report.json recorded whose header says incomplete is not whole.
   */
  header?: DumpHeaderMark | null;
}

/**
 * Whether a dump is whole: report.json's word, held against the directory. A report that says
 * complete is believed only while the file it names is there, a regular file of the size it
 * recorded: a vmcore removed, emptied, cut or replaced since (by hand, by fsck, by a file system
 * that lost the last writes) had been listed as "complete", and a `kdump test` as "passed".
 * `files` are the directory's regular files with their sizes, `irregular` its other entries
 * (name → what they are: "a directory", "a symbolic link to nothing"). The vmcore's own header
 * (`facts.header`) has the last word: one of the right size that says incomplete is not whole.
 */
export function dumpCompleteness(r: DumpReport, files: Readonly<Record<string, number>>, irregular: Readonly<Record<string, string>> = {}, facts: DumpDirFacts = {}): DumpCompleteness {
  if (r.state === "saving") return { complete: false, problem: "the capture was cut off while saving (a second crash, a reset or the power)" };
  const d = r.dump;
  if (!d.complete) return { complete: false, problem: d.problem ?? "unknown" };
  const said = `report.json says it is complete (${d.file}, ${d.bytes} bytes)`;
  if (facts.listProblem) return { complete: null, problem: `${said}, but the directory cannot be listed: ${facts.listProblem}; whether ${d.file} is there and whole is not known` };
  const kind = Object.prototype.hasOwnProperty.call(irregular, d.file) ? irregular[d.file] : undefined;
  if (kind !== undefined) return { complete: false, problem: `${said}, but ${d.file} is ${kind}` };
  if (!Object.prototype.hasOwnProperty.call(files, d.file)) {
    const partial = "vmcore.incomplete" in files && d.file !== "vmcore.incomplete"
      ? "only vmcore.incomplete is there (the rename that ends the save did not reach the disk?)"
      : `there is no ${d.file} in the directory (removed since?)`;
    return { complete: false, problem: `${said}, but ${partial}` };
  }
  const onDisk = files[d.file]!;
  if (onDisk !== d.bytes) return { complete: false, problem: `${said}, but ${d.file} has ${onDisk} bytes: it was cut or changed after the save` };
  if (facts.header?.says === "incomplete") return { complete: false, problem: `${said}, but ${d.file} itself says it is incomplete: ${facts.header.detail}` };
  return { complete: true, problem: null };
}

/**
 * One dump, as `kdump report` writes it to the journal (and `list` shows it). `files` are the
 * directory's regular files with their sizes (a save cut off never wrote its final report, so the
 * vmcore's size comes from the disk), `irregular` its other entries with what they are.
 */
export function summarizeDump(dir: string, r: DumpReport | null, files: Readonly<Record<string, number>>, reportProblem: string | null = null, irregular: Readonly<Record<string, string>> = {}, facts: DumpDirFacts = {}): string[] {
  const vmcore = "vmcore" in files ? "vmcore" : "vmcore.incomplete" in files ? "vmcore.incomplete" : null;
  if (r === null) {
    // Its report.json is then unreadable for the same reason, most likely: said once.
    if (facts.listProblem) return [`${dir}: the directory cannot be listed: ${facts.listProblem}; whether it holds a whole vmcore is not known`];
    const what = `${vmcore === null ? "no vmcore" : `${vmcore === "vmcore" ? "a" : "an incomplete"} vmcore of ${mib(files[vmcore]!)}`}${"capture.log" in files ? "; see capture.log" : ""}`;
    if (reportProblem !== null) return [`${dir}: report.json is unreadable: ${reportProblem} (${what})`];
    return [`${dir}: the capture left no report.json (${what}): it was cut off before it finished`];
  }
  const d = r.dump;
  const verdict = dumpCompleteness(r, files, irregular, facts);
  // Complete by report.json and the size alone where the header could not be asked: said, not hidden.
  const bySize = facts.header?.says === "unknown" ? ` by report.json and its size (its header does not tell: ${facts.header.detail})` : "";
  const status = verdict.complete === true ? `complete${bySize}` : verdict.complete === null ? `completeness unknown: ${verdict.problem}` : `INCOMPLETE: ${verdict.problem}`;
  const bytes = vmcore === null ? d.bytes : files[vmcore]!;
  const lines = [
    `${dir}: crash at ${r.crashTime} on ${r.kernel ?? "an unknown kernel"}${r.testId ? ` (kexec-ts kdump test ${r.testId})` : ""}`,
    `  panic: ${r.panic ?? "(no panic line in the log)"}`,
  ];
  if (r.backtrace.length) lines.push(`  backtrace: ${r.backtrace.join(" < ")}`);
  const timing = r.state === "saving" ? "" : `, ${r.seconds.total.toFixed(1)} s`;
  lines.push(`  dump: ${vmcore ?? d.file}, ${mib(bytes)}, dump level ${d.dumpLevel}, ${d.codec}${timing}; ${status}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines;
}
