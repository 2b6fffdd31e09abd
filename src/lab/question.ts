/**
 * `kexec-ts lab --from A --to B [--crash] ...`: "can kernel A kexec (or kdump)
 * into kernel B on a machine like mine?" answered by doing it in QEMU. The
 * question becomes a scenario like those in lab/scenarios (data, the same
 * runner): A boots with kexec-ts in its initramfs, `check` records the
 * prediction, the load and the jump (or the panic) follow, and B's init (or
 * the capture kernel with /proc/vmcore) is the outcome.
 */
import { KexecError } from "../core/errors.js";
import type { UserArch } from "../core/initramfs/elf-deps.js";
import { findKernel } from "./kernels.js";
import type { Scenario, ScenarioResult } from "./scenario.js";

export interface LabQuestion {
  /** Lab kernel names (amd64-6.1) or paths to bzImages. */
  from: string;
  to: string;
  crash: boolean;
  crashkernel?: string | undefined;
  /** Appended to the first kernel's command line. */
  append?: string | undefined;
  mem?: string | undefined;
  cpu?: string | undefined;
  userspace?: UserArch | undefined;
  /** Extra flags for the load step. */
  loadFlags?: string | undefined;
  withKexecTools: boolean;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function labScenario(q: LabQuestion): Scenario {
  const { from, to, crash } = q;
  // Resolve both now: a missing kernel or a file that is not a kernel is said before QEMU starts.
  const a = findKernel(from);
  findKernel(to);
  if (q.userspace === "x86_64" && a.kernelArch === "i386") {
    throw new KexecError("usage", `--userspace=x86_64 cannot run on the i386 kernel ${from}`, { field: "userspace", expected: "i386", actual: "x86_64" }, "leave --userspace out, or use --userspace=i386");
  }
  const crashkernel = q.crashkernel ?? (crash ? "256M" : undefined);
  const firstAppend = [crashkernel ? `crashkernel=${crashkernel}` : "", crashkernel?.includes("@") ? "nokaslr" : "", q.append ?? ""].filter(Boolean).join(" ");
  const secondAppend = crash ? "console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=-1" : "console=ttyS0 panic=-1";
  const tool = q.withKexecTools ? "/sbin/kexec" : "kexec";
  const loadArgs = `${crash ? "-p" : "-l"} ${q.loadFlags ?? ""} /boot/next --initrd=/boot/next-initrd --append=${quote(secondAppend)}`.replace(/\s+/g, " ");
  const stage = crash ? "capture" : "second";
  const secondSteps = crash
    ? [{ name: "vmcore", run: "test -e /proc/vmcore && echo vmcore=present || echo vmcore=absent; ls -l /proc/vmcore" }]
    : [{ name: "uname", run: "uname -r" }];
  return {
    name: `lab-${crash ? "kdump" : "kexec"}`,
    description: `kexec-ts lab --from ${from} --to ${to}${crash ? " --crash" : ""}`,
    kernel: from,
    mem: q.mem ?? (crashkernel?.includes("@") ? "4G" : "2G"),
    cpu: q.cpu ?? "max",
    append: firstAppend,
    // Node is there in both modes: `check` runs first either way, so the prediction is recorded.
    node: true,
    kexecTs: true,
    allowPanic: crash,
    ...(q.userspace ? { userArch: q.userspace } : {}),
    files: [
      { guest: "/boot/next", ...(to.includes("/") ? { host: to } : { kernel: to }) },
      { guest: "/boot/next-initrd", initramfs: { stage, steps: secondSteps } },
      ...(q.withKexecTools ? [{ guest: "/sbin/kexec", program: "/sbin/kexec", ...(q.userspace === "i386" || a.kernelArch === "i386" ? { from: "i386" as const } : {}) }] : []),
    ],
    steps: [
      // The prediction first; its verdict is recorded next to what then happens.
      { name: "check", run: `kexec-ts check ${loadArgs}; echo check-exit=$?`, timeoutSec: 180 },
      { name: "load", run: `${q.withKexecTools ? "" : "ln -sf /usr/bin/kexec-ts /bin/kexec && "}${tool} ${q.withKexecTools ? loadArgs : `${loadArgs} --force`}; echo load-exit=$?`, timeoutSec: 180 },
      // Only jump (or panic) when something was loaded; otherwise the guest powers off and the load step says why.
      crash
        ? { name: "panic", run: "[ \"$(cat /sys/kernel/kexec_crash_loaded)\" = 1 ] && echo c > /proc/sysrq-trigger; echo nothing-loaded", returns: false }
        : { name: "exec", run: `[ "$(cat /sys/kernel/kexec_loaded)" = 1 ] && ${tool} -e; echo nothing-loaded`, returns: false },
    ],
    expect: ["init", "check", "load", { name: `${stage}/init`, timeoutSec: 240 }, `${stage}/${crash ? "vmcore" : "uname"}`, `${stage}/done`],
    checks: crash ? [{ step: `${stage}/vmcore`, contains: "vmcore=present", why: "the capture kernel sees the crashed kernel's memory" }] : [],
  };
}

/** The prediction next to the outcome: what `kexec-ts lab` reports (its JSON). */
export interface LabAnswer {
  from: string;
  to: string;
  crash: boolean;
  prediction: { checkExit: number | null; verdict: string; notOk: string[] };
  outcome: string;
  detail: string;
  /** Whether `check` predicted the outcome; null when it did not run, or when kexec-tools did the load. */
  agreed: boolean | null;
  loader: "kexec-tools" | "kexec-ts";
  durationMs: number;
  console: string;
  qemu: string;
  ok: boolean;
}

export function labAnswer(q: LabQuestion, result: ScenarioResult): LabAnswer {
  const out = (result.guest.steps["check"]?.output ?? []).join("\n");
  const exit = /check-exit=(\d+)/.exec(out);
  const checkExit = exit ? Number(exit[1]) : null;
  const notOk = [...out.matchAll(/^(FAIL|WARN) ([a-z0-9-]+):/gm)].map((m) => `${m[1]!.toLowerCase()} ${m[2]}`);
  const verdict = checkExit === null ? "unknown (check did not run)" : checkExit === 0 ? "will work" : checkExit === 1 ? "should work, with warnings" : "will not work";
  const loadOutput = (result.guest.steps["load"]?.output ?? []).filter((l) => !/^\[\s*\d+\.\d+\]/.test(l));
  const loadFailed = loadOutput.some((l) => /^load-exit=[1-9]/.test(l));
  const detail = result.ok
    ? (q.crash ? "the capture kernel started and /proc/vmcore is there" : "the second kernel's init ran")
    : loadFailed
      ? `the load failed: ${loadOutput.join(" / ")}`
      : `${result.guest.outcome}: ${result.guest.reason}`;
  return {
    from: q.from, to: q.to, crash: q.crash,
    prediction: { checkExit, verdict, notOk },
    outcome: result.ok ? "ok" : loadFailed ? "load-failed" : result.guest.outcome, detail,
    // With --with-kexec-tools the prediction is kexec-ts' own; comparing it with kexec-tools' outcome says nothing.
    agreed: checkExit === null || q.withKexecTools ? null : (checkExit < 2) === result.ok,
    loader: q.withKexecTools ? "kexec-tools" : "kexec-ts",
    durationMs: result.guest.durationMs, console: `${result.guest.outDir}/console.log`, qemu: result.guest.commandLine,
    ok: result.ok,
  };
}

export function renderLabAnswer(a: LabAnswer): string {
  return [
    `${a.ok ? "OK" : "FAILED"}: ${a.from} -> ${a.to}${a.crash ? " (kdump)" : ""} in ${(a.durationMs / 1000).toFixed(1)} s`,
    `  predicted: ${a.prediction.verdict}${a.prediction.notOk.length ? ` (${a.prediction.notOk.join(", ")})` : ""}${a.loader === "kexec-tools" ? " — kexec-ts' prediction for its own load; kexec-tools did the load" : ""}`,
    `  happened:  ${a.detail}`,
    ...(a.agreed === false ? ["  the prediction was wrong: please report this with the console log"] : []),
    `  console:   ${a.console}`,
    `  reproduce: ${a.qemu}`,
  ].join("\n");
}
