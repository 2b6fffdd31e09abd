/**
 * `kexec-ts kdump status|start|stop|restart|rebuild|estimate|test|report|list|import|install|uninstall`
 * and `kdump save` (what the capture initramfs runs). The work is in src/node/kdump; this
 * module reads the flags, prints, and maps outcomes to exit codes: `status` and a refused
 * `start` exit 3 (kdumpctl's "not operational"), 0 when armed and ready.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { renderChecks } from "../../core/check/render.js";
import type { CheckResult } from "../../core/check/types.js";
import { KexecError } from "../../core/errors.js";
import { size } from "../../core/format.js";
import { CAPTURE_JSON, RUN_DIR } from "../../core/kdump/capture-init.js";
import { TEST_MARK } from "../../core/kdump/dumps.js";
import { formatImport, importConfig } from "../../core/kdump/import.js";
import { renderEstimate } from "../../core/kdump/render.js";
import { has, value, type ParsedArgs } from "../options.js";
import { print as printOutput } from "../output.js";

export const EXIT_NOT_READY = 3;

const USAGE = `kexec-ts kdump status | start [--force] | stop | restart | rebuild [--kernel-version V] [--force] | estimate | test --yes | report [--all] | list
kexec-ts kdump import [FILE...] [--force] | install [--now] | uninstall          (each takes --json and --config FILE)`;

/** JSON's form of sizes and addresses: hex strings, as everywhere in kexec-ts' JSON (numbers lose 64-bit values). */
function hexBigints(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v)));
}

function print(args: ParsedArgs, json: unknown, text: () => string): void {
  printOutput(args, () => hexBigints(json), text);
}

async function paths(args: ParsedArgs) {
  const { kdumpPaths } = await import("../../node/kdump/paths.js");
  const p = kdumpPaths("/");
  const config = value(args, "config");
  if (config === "") throw new KexecError("usage", "--config needs a file path, found an empty one", { field: "--config", expected: "a file path", actual: "" }, `leave --config out for ${p.config}`);
  return config === undefined ? p : { ...p, config, configGiven: true };
}

function verdictLines(checks: readonly CheckResult[]): string {
  return checks.some((c) => c.verdict !== "ok") ? `\n${renderChecks(checks)}` : "";
}

export async function run(args: ParsedArgs, rest: string[]): Promise<number> {
  const [sub, ...operands] = rest;
  switch (sub) {
    case "save": {
      // In the capture kernel: keep the import graph small (no image, plan or check code).
      const { captureSaveFromFile } = await import("../../node/kdump/save.js");
      return captureSaveFromFile(operands[0] ?? CAPTURE_JSON, { vmcore: "/proc/vmcore", console: (l) => process.stderr.write(`${l}\n`), runDir: RUN_DIR });
    }
    case "status": return status(args);
    case "start": return start(args);
    case "stop": return stop(args);
    case "restart": {
      await stop(args, true);
      return start(args);
    }
    case "rebuild": return rebuild(args);
    case "estimate": return estimate(args);
    case "test": return crashTest(args);
    case "report": return report(args);
    case "list": return list(args);
    case "import": return importCommand(args, operands);
    case "install": case "uninstall": return installCommand(args, sub);
    default:
      throw new KexecError("usage", sub === undefined ? "kdump needs a command" : `unknown kdump command "${sub}"`, { actual: sub ?? "" }, USAGE);
  }
}

async function status(args: ParsedArgs): Promise<number> {
  const { kdumpStatus } = await import("../../node/kdump/status.js");
  const s = kdumpStatus(await paths(args));
  print(args, s, () => {
    const st = s.state;
    const lines = [s.ready ? `armed and ready since ${st!.at}` : `NOT ready: ${s.reasons.join("; ")}`];
    if (st?.armed) {
      lines.push(`  crash kernel ${st.kernel} (${st.kernelRelease}) by ${st.syscall}: ${st.syscallWhy}`);
      lines.push(`  capture initramfs ${st.initrd}`);
      lines.push(`  command line: ${st.cmdline}`);
    }
    if (st?.estimate) lines.push(`  memory: the capture needs about ${size(BigInt(st.estimate.total))}, ${s.crashSize === null ? "reservation unknown" : `${size(BigInt(s.crashSize))} reserved`}`);
    for (const w of st?.warnings ?? []) lines.push(`  warning: ${w}`);
    if (s.test) lines.push(`  last test ${s.test.id} (${s.test.at}): ${s.test.result}: ${s.test.detail}`);
    if (s.lastDump) lines.push("  last dump:", ...s.lastDump.lines.map((l) => `    ${l}`));
    return lines.join("\n");
  });
  return s.ready ? 0 : EXIT_NOT_READY;
}

async function start(args: ParsedArgs): Promise<number> {
  const { arm } = await import("../../node/kdump/service.js");
  const { state, prep } = await arm({ paths: await paths(args), load: true, force: has(args, "force") });
  print(args, state, () => {
    const head = state.armed
      ? `armed${state.forced?.length ? " (with --force, past failing checks)" : ""}: ${state.kernel} with ${state.initrd} by ${state.syscall} (${state.syscallWhy})`
      : `NOT armed: ${state.reasons.join("; ")}`;
    // Whether the capture initramfs was built now or reused, and in which mode: said even when every check is ok.
    const initramfs = prep?.checks.find((c) => c.id === "kdump-capture-initramfs");
    const built = state.armed && initramfs?.verdict === "ok" ? `\n  capture initramfs: ${initramfs.reason}` : "";
    return `${head}${built}${prep ? verdictLines(prep.checks) : ""}${state.warnings.length && !prep ? `\n${state.warnings.join("\n")}` : ""}`;
  });
  return state.armed ? 0 : EXIT_NOT_READY;
}

async function stop(args: ParsedArgs, quiet = false): Promise<number> {
  const { disarm } = await import("../../node/kdump/service.js");
  const state = disarm(await paths(args));
  if (!quiet) print(args, state, () => "stopped: the crash kernel is unloaded");
  return 0;
}

async function rebuild(args: ParsedArgs): Promise<number> {
  const { buildCaptureInitramfs } = await import("../../node/kdump/initramfs.js");
  const { buildInput, captureKernelPath, imageRelease, readCaptureKernel, readConfigFile } = await import("../../node/kdump/service.js");
  const { readMachine } = await import("../../node/machine.js");
  const p = await paths(args);
  const { config } = readConfigFile(p);
  let release = value(args, "kernel-version");
  if (release === undefined || config.kernel !== null) {
    const kernel = captureKernelPath(config, (await readMachine("/")).kernelRelease, p.config);
    const fixed = imageRelease(readCaptureKernel(kernel, config, p.config).image, kernel);
    if (release !== undefined && release !== fixed) {
      print(args, { rebuilt: false, reason: `kernel = ${kernel} in ${p.config}` }, () => `nothing to do for ${release}: the capture kernel is ${kernel} (${fixed}), set in ${p.config}`);
      return 0;
    }
    release = fixed;
  }
  const built = buildCaptureInitramfs(buildInput(config, release, p.config), p, { force: has(args, "force") });
  print(args, { rebuilt: built.rebuilt, path: built.path, manifest: built.manifest }, () =>
    `${built.rebuilt ? "built" : "unchanged (same content)"}: ${built.path} for ${release}, ${built.manifest.mode} mode, ${size(built.manifest.compressedBytes)} (${size(built.manifest.unpackedBytes)} unpacked), modules ${built.manifest.modules.join(" ") || "(none)"}`);
  return 0;
}

/**
 * Why `kdump estimate` has no figure: the error that stopped the capture initramfs' build, with
 * its data and hint (the --json reader needs the file or field it names, not only its message),
 * else a capture kernel that is no bzImage.
 */
export function noEstimateError(captureError: KexecError | null, kernel: string, imageKind: string, configFile: string): KexecError {
  if (captureError !== null) return new KexecError("machine", `no estimate: ${captureError.message}`, { ...captureError.data }, captureError.hint, { cause: captureError });
  const found = imageKind === "elf" ? "an ELF vmlinux" : imageKind;
  return new KexecError("machine", `no estimate: the capture kernel ${kernel} is not a bzImage (it is ${found})`, { file: kernel, field: "kernel", expected: "a bzImage", actual: found },
    `set kernel = in ${configFile} to a bzImage (/boot/vmlinuz-<release>)`);
}

async function estimate(args: ParsedArgs): Promise<number> {
  const { prepare } = await import("../../node/kdump/service.js");
  const p = await paths(args);
  const prep = await prepare({ paths: p, load: false });
  if (prep.estimate === null) throw noEstimateError(prep.captureError, prep.kernel, prep.image.kind, p.config);
  const crashSize = prep.machine.kexec.crashSize;
  print(args, { ...prep.estimate, crashSize }, () => renderEstimate(prep.estimate!, crashSize));
  return crashSize !== null && crashSize >= prep.estimate.total ? 0 : EXIT_NOT_READY;
}

async function crashTest(args: ParsedArgs): Promise<number> {
  const { kdumpStatus } = await import("../../node/kdump/status.js");
  const { testStatePath } = await import("../../node/kdump/paths.js");
  const { readBootId, writeJsonDurably } = await import("../../node/kdump/service.js");
  const { syncFilesystems } = await import("../../node/syscalls.js");
  const p = await paths(args);
  if (!has(args, "yes")) {
    throw new KexecError("usage", "kdump test crashes this machine on purpose (echo c > /proc/sysrq-trigger) to prove the capture works", {}, "run `kexec-ts kdump test --yes`; after the reboot, `kexec-ts kdump status` shows the result");
  }
  const s = kdumpStatus(p);
  if (!s.ready) throw new KexecError("machine", `not crashing: kdump is not ready (${s.reasons.join("; ")})`, {}, "kexec-ts kdump start, then try again");
  const id = randomUUID();
  writeJsonDurably(testStatePath(p), { id, at: new Date().toISOString(), bootId: readBootId() });
  process.stdout.write(`kexec-ts kdump test ${id}: crashing now; after the reboot, kexec-ts kdump status shows the result\n`);
  // The id goes into the crashed kernel's log, so the dump itself says which test it answers.
  writeFileSync("/dev/kmsg", `${TEST_MARK}${id}\n`);
  syncFilesystems();
  writeFileSync("/proc/sysrq-trigger", "c");
  throw new KexecError("machine", "the crash was triggered but this machine is still running", { file: "/proc/sysrq-trigger" }, "is sysrq disabled for writes? (it should not be: writes to /proc/sysrq-trigger ignore kernel.sysrq)");
}

async function report(args: ParsedArgs): Promise<number> {
  const { reportCrashes } = await import("../../node/kdump/report.js");
  const { readConfigFile } = await import("../../node/kdump/service.js");
  const p = await paths(args);
  const r = await reportCrashes(readConfigFile(p).config, p, { all: has(args, "all") });
  print(args, r, () => r.lines.map((l) => (l.startsWith("  ") ? l : `kexec-ts kdump: ${l}`)).join("\n"));
  // The summaries are out first: they are what the journal needs, bookkeeping or not. With
  // --json the result (which carries the error as recordError) is the one document on standard
  // output: the entry point writes no error JSON after it (runEntryPoint).
  if (r.recordError !== null) throw r.recordError;
  return 0;
}

async function list(args: ParsedArgs): Promise<number> {
  const { listDumps, readDump, summarizeDumpOnDisk } = await import("../../node/kdump/dumps.js");
  const { readConfigFile } = await import("../../node/kdump/service.js");
  const p = await paths(args);
  const target = readConfigFile(p).config.target;
  const dumps = listDumps(target, p.config).map((d) => readDump(target, d));
  print(args, dumps.map((d) => ({ name: d.name, dir: d.dir, bytes: d.bytes, files: d.files, irregular: d.irregular, listProblem: d.listProblem, vmcoreHeader: d.vmcoreHeader, complete: d.complete, problem: d.problem, report: d.report, reportProblem: d.reportProblem })), () =>
    dumps.length === 0 ? `no dumps in ${target}` : dumps.map((d) => summarizeDumpOnDisk(d).join("\n")).join("\n"));
  return 0;
}

async function importCommand(args: ParsedArgs, files: string[]): Promise<number> {
  const p = await paths(args);
  const candidates = files.length ? files : ["/etc/default/kdump-tools", "/etc/kdump.conf"].filter((f) => existsSync(f));
  if (candidates.length === 0) throw new KexecError("usage", "nothing to import: neither /etc/default/kdump-tools nor /etc/kdump.conf exists", {}, "kexec-ts kdump import FILE...");
  const { ioError, readInputFile, replaceFileDurably, fileKind, writeError } = await import("../../node/files.js");
  // A regular file only: a FIFO or /dev/zero given by mistake would block or never end.
  const sources = candidates.map((path) => ({ path, text: new TextDecoder().decode(readInputFile(path, "kdump configuration", { allowEmpty: true })) }));
  const r = importConfig(sources);
  const text = formatImport(r, p.config);
  let existing: string | null = null;
  try {
    // Not read if it is a FIFO or a device: it would block, or never end (a FIFO blocked forever).
    const st = statSync(p.config);
    if (!st.isFile() && !st.isDirectory()) {
      const kind = fileKind(st);
      throw new KexecError("io", `${p.config}: cannot write the kdump configuration: it is ${kind}`, { file: p.config, expected: "a file path", actual: kind }, "give --config the path of a regular file");
    }
    existing = readFileSync(p.config, "utf8");
  } catch (e) {
    if (e instanceof KexecError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    // Nothing there yet (ENOENT), or a path through a file (ENOTDIR), which the write below reports.
    if (code === "EISDIR") {
      throw new KexecError("io", `${p.config}: cannot write the kdump configuration: it is a directory`, { file: p.config, errno: code, expected: "a file path", actual: "a directory" },
        `give --config the path of a file, such as ${p.config.replace(/\/+$/, "")}/kdump.conf`, { cause: e });
    }
    if (code !== "ENOENT" && code !== "ENOTDIR") throw ioError(e, p.config, "the existing kdump configuration");
  }
  if (existing !== null && existing !== text && !has(args, "force")) {
    throw new KexecError("usage", `${p.config} exists; not overwriting it`, { file: p.config }, "add --force to replace it (the imported settings are printed with --json)");
  }
  try {
    replaceFileDurably(p.config, text);
  } catch (e) {
    throw writeError(e, p.config, "the kdump configuration");
  }
  print(args, { written: p.config, sources: r.sources, notes: r.notes, skipped: r.skipped }, () =>
    [`wrote ${p.config} from ${r.sources.map((s) => s.path).join(", ")}`, ...(r.skipped.length ? ["not imported:", ...r.skipped.map((s) => `  ${s}`)] : [])].join("\n"));
  return 0;
}

async function installCommand(args: ParsedArgs, sub: "install" | "uninstall"): Promise<number> {
  const { install, uninstall } = await import("../../node/kdump/install.js");
  const p = await paths(args);
  const r = sub === "install" ? install(p, { systemctl: true, now: has(args, "now") }) : uninstall(p, { systemctl: true });
  print(args, r, () => [
    ...r.written.map((f) => `${sub === "install" ? "wrote" : "removed"} ${f}`),
    ...r.kept.map((f) => `kept ${f}`),
    ...r.systemctl,
    ...(sub === "install" ? ["the crash kernel is armed at every boot by kexec-ts-kdump.service; kexec-ts kdump status says whether it is ready"] : []),
  ].join("\n"));
  return 0;
}
