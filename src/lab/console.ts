/**
 * Reads a lab guest's serial console line by line (the protocol of init-script.ts) and says
 * what happened: a marker, the last expected marker, a failure. No process, no clock: the
 * caller passes the time with each line, so every rule here is tested without QEMU.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { KexecError } from "../core/errors.js";
import { MARK, STEP, FILE_BEGIN, FILE_END } from "./init-script.js";
import { readTar, type TarEntry } from "../core/archive/tar.js";

export interface ExpectedMarker {
  /** Marker name as printed after KEXEC-TS-MARK: ("init", "second/init"). */
  name: string;
  /** Seconds allowed since the previous marker (or since start, for the first). */
  timeoutSec?: number;
  /** A step marker's rc may be nonzero. */
  mayFail?: boolean;
  /**
   * A regular expression for a console line that counts as this marker, for a guest whose
   * last stage is not a lab /init (kdump's own capture initramfs prints its own lines).
   */
  line?: string;
}

export interface StepResult {
  rc: number | undefined;
  /**
   * Every console line between the step's start and end, as it arrived. Kernel messages can
   * be among them (the console is shared); `isPrintkLine` tells them apart, but a step that
   * prints dmesg prints lines of the same shape, so nothing is dropped here.
   */
  output: string[];
}

export interface MarkerTime {
  name: string;
  /** Milliseconds since QEMU started. */
  ms: number;
}

export type ConsoleEvent =
  | { kind: "marker"; name: string; expected: boolean }
  | { kind: "complete" }
  | { kind: "fail"; outcome: "panic" | "step-failed" | "extract-error"; reason: string };

const PANIC = /Kernel panic - not syncing/;
// Marker names use only these characters (validateInitSpec), so a kernel message
// that lands right after a marker on the same line ("...MARK:capture/init[    2.17] tsc: ...",
// seen in the lab) does not become part of the name.
const MARK_RE = new RegExp(`${MARK}([A-Za-z0-9._/-]+)(?: rc=(\\d+))?`);
const BASE64_LINE = /^[A-Za-z0-9+/=]+$/;
const PRINTK_LINE = /^\[\s*\d+\.\d{6}\] /;

/** A line shaped like a timestamped kernel message ("[    1.909689] tsc: ..."). */
export function isPrintkLine(line: string): boolean {
  return PRINTK_LINE.test(line);
}

export function lastLines(lines: string[], n = 15): string {
  return lines.slice(-n).map((l) => `  | ${l}`).join("\n");
}

export class ConsoleWatcher {
  readonly expected: ExpectedMarker[];
  readonly log: string[] = [];
  readonly markersSeen: MarkerTime[] = [];
  readonly steps: Record<string, StepResult> = {};
  readonly extractedFiles: Record<string, TarEntry[]> = {};
  /** Index of the next expected marker. */
  next = 0;
  private readonly allowPanic: boolean;
  private currentStep: string | undefined;
  private file: { name: string; bytes: number; md5: string; base64: string[] } | undefined;

  constructor(expected: (string | ExpectedMarker)[], options: { allowPanic?: boolean } = {}) {
    this.expected = expected.map((e) => (typeof e === "string" ? { name: e } : e));
    this.allowPanic = options.allowPanic === true;
  }

  get waitingFor(): ExpectedMarker | undefined {
    return this.expected[this.next];
  }

  get missing(): string[] {
    return this.expected.slice(this.next).map((e) => e.name);
  }

  get lastMarker(): string | undefined {
    return this.markersSeen[this.markersSeen.length - 1]?.name;
  }

  /** Takes one console line (without its newline) seen `ms` after start. */
  feed(raw: string, ms: number): ConsoleEvent | undefined {
    const line = raw.replace(/\r/g, "");
    this.log.push(line);

    if (this.file !== undefined) {
      const f = this.file;
      if (line.includes(`${FILE_END}${f.name}`)) {
        this.file = undefined;
        try {
          this.extractedFiles[f.name] = decodeExtract(f.name, f.base64, f.bytes, f.md5);
        } catch (e) {
          return { kind: "fail", outcome: "extract-error", reason: (e as Error).message };
        }
      } else if (BASE64_LINE.test(line)) f.base64.push(line);
      return undefined;
    }
    const fileStart = line.indexOf(FILE_BEGIN);
    if (fileStart >= 0) {
      const [name, bytes, md5] = line.slice(fileStart + FILE_BEGIN.length).trim().split(/\s+/);
      this.file = { name: name ?? "", bytes: Number(bytes), md5: md5 ?? "", base64: [] };
      return undefined;
    }
    const stepStart = line.indexOf(STEP);
    if (stepStart >= 0) {
      this.currentStep = /^[A-Za-z0-9._/-]*/.exec(line.slice(stepStart + STEP.length))![0];
      this.steps[this.currentStep] = { rc: undefined, output: [] };
      return undefined;
    }
    const awaited = this.waitingFor;
    if (awaited?.line !== undefined && new RegExp(awaited.line).test(line)) {
      this.markersSeen.push({ name: awaited.name, ms });
      this.next++;
      return this.next === this.expected.length ? { kind: "complete" } : { kind: "marker", name: awaited.name, expected: true };
    }
    const m = MARK_RE.exec(line);
    if (m !== null) {
      const name = m[1]!;
      const rc = m[2] === undefined ? undefined : Number(m[2]);
      if (this.currentStep === name) {
        this.steps[name]!.rc = rc;
        this.currentStep = undefined;
      }
      this.markersSeen.push({ name, ms });
      const want = this.waitingFor;
      if (want === undefined || want.name !== name) return { kind: "marker", name, expected: false };
      this.next++;
      if (rc !== undefined && rc !== 0 && want.mayFail !== true) {
        return { kind: "fail", outcome: "step-failed", reason: `step ${name} exited with status ${rc}. Its output:\n${lastLines(this.steps[name]?.output ?? [], 30)}` };
      }
      return this.next === this.expected.length ? { kind: "complete" } : { kind: "marker", name, expected: true };
    }
    if (this.currentStep !== undefined) this.steps[this.currentStep]!.output.push(line);
    if (PANIC.test(line) && !this.allowPanic) {
      const where = this.lastMarker !== undefined ? ` after marker ${this.lastMarker}` : " before /init";
      return { kind: "fail", outcome: "panic", reason: `the kernel panicked${where}: ${line.trim()}` };
    }
    return undefined;
  }
}

/** Base64 lines → verified gzip → tar entries. */
export function decodeExtract(name: string, base64Lines: string[], bytes: number, md5: string): TarEntry[] {
  const gz = Buffer.from(base64Lines.join(""), "base64");
  if (gz.length !== bytes) {
    throw new KexecError("lab", `file ${name} from the guest: ${gz.length} bytes arrived, the guest sent ${bytes}`, { field: name, expected: String(bytes), actual: String(gz.length) },
      "console lines were lost or mixed with kernel messages; the log is in the run's console.log");
  }
  const digest = createHash("md5").update(gz).digest("hex");
  if (digest !== md5) {
    throw new KexecError("lab", `file ${name} from the guest: md5 ${digest}, the guest said ${md5}`, { field: name, expected: md5, actual: digest }, "the file was damaged on the serial console; run the scenario again");
  }
  return readTar(gunzipSync(gz));
}
