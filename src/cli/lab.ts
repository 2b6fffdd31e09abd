/**
 * `kexec-ts lab --from A --to B [--crash] ...`: "can kernel A kexec (or kdump)
 * into kernel B on a machine like mine?" answered by doing it in QEMU. The
 * flags become a scenario like those in lab/scenarios (data, the same runner):
 * A boots with kexec-ts in its initramfs, `check` records the prediction, the
 * load and the jump (or the panic) follow, and B's init (or the capture
 * kernel with /proc/vmcore) is the outcome. Exit 0 when the expected outcome
 * happened, 1 when it did not, 2 when the lab itself could not run.
 * `kexec-ts lab suite [NAME...]` runs the scenario files.
 */
import { KexecError, isKexecError } from "../core/errors.js";
import { findKernel, runScenario, runSuite, type Scenario, type ScenarioResult } from "../lab/index.js";
import { has, value, type ParsedArgs } from "./options.js";
import { userspaceFlag } from "./check.js";

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function labScenario(args: ParsedArgs): Scenario {
  const from = value(args, "from");
  const to = value(args, "to");
  if (from === undefined || to === undefined) {
    throw new KexecError("usage", "lab needs --from A and --to B (lab kernel names such as amd64-6.1, or paths to bzImages)", { field: from === undefined ? "from" : "to" }, "kexec-ts lab --from amd64-6.1 --to amd64-6.12");
  }
  // Resolve both now: a missing kernel or a file that is not a kernel is the lab's problem (exit 2), said before QEMU starts.
  const a = findKernel(from);
  findKernel(to);
  const crash = has(args, "crash");
  const userspace = userspaceFlag(args);
  if (userspace === "x86_64" && a.kernelArch === "i386") throw new KexecError("usage", `--userspace=x86_64 cannot run on the i386 kernel ${from}`, { field: "userspace" });
  const crashkernel = value(args, "crashkernel") ?? (crash ? "256M" : undefined);
  const firstAppend = [crashkernel ? `crashkernel=${crashkernel}` : "", crashkernel?.includes("@") ? "nokaslr" : "", value(args, "append") ?? ""].filter(Boolean).join(" ");
  const loadFlags = value(args, "load-flags") ?? "";
  const secondAppend = crash ? "console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=-1" : "console=ttyS0 panic=-1";
  const withKexecTools = has(args, "with-kexec-tools");
  const tool = withKexecTools ? "/sbin/kexec" : "kexec";
  const loadArgs = `${crash ? "-p" : "-l"} ${loadFlags} /boot/next --initrd=/boot/next-initrd --append=${quote(secondAppend)}`.replace(/\s+/g, " ");
  const stage = crash ? "capture" : "second";
  const secondSteps = crash
    ? [{ name: "vmcore", run: "test -e /proc/vmcore && echo vmcore=present || echo vmcore=absent; ls -l /proc/vmcore" }]
    : [{ name: "uname", run: "uname -r" }];
  const scenario: Scenario = {
    name: `lab-${crash ? "kdump" : "kexec"}`,
    description: `kexec-ts lab --from ${from} --to ${to}${crash ? " --crash" : ""}`,
    kernel: from,
    mem: value(args, "mem") ?? (crashkernel?.includes("@") ? "4G" : "2G"),
    cpu: value(args, "cpu") ?? "max",
    append: firstAppend,
    // Node is there in both modes: `check` runs first either way, so the prediction is recorded.
    node: true,
    kexecTs: true,
    allowPanic: crash,
    ...(userspace ? { userArch: userspace } : {}),
    files: [
      { guest: "/boot/next", ...(to.includes("/") ? { host: to } : { kernel: to }) },
      { guest: "/boot/next-initrd", initramfs: { stage, steps: secondSteps } },
      ...(withKexecTools ? [{ guest: "/sbin/kexec", program: "/sbin/kexec", ...(userspace === "i386" || a.kernelArch === "i386" ? { from: "i386" as const } : {}) }] : []),
    ],
    steps: [
      // The prediction first; its verdict is recorded next to what then happens.
      { name: "check", run: `kexec-ts check ${loadArgs}; echo check-exit=$?`, timeoutSec: 180 },
      { name: "load", run: `${withKexecTools ? "" : "ln -sf /usr/bin/kexec-ts /bin/kexec && "}${tool} ${withKexecTools ? loadArgs : `${loadArgs} --force`}; echo load-exit=$?`, timeoutSec: 180 },
      // Only jump (or panic) when something was loaded; otherwise the guest powers off and the load step says why.
      crash
        ? { name: "panic", run: "[ \"$(cat /sys/kernel/kexec_crash_loaded)\" = 1 ] && echo c > /proc/sysrq-trigger; echo nothing-loaded", returns: false }
        : { name: "exec", run: `[ "$(cat /sys/kernel/kexec_loaded)" = 1 ] && ${tool} -e; echo nothing-loaded`, returns: false },
    ],
    expect: ["init", "check", "load", { name: `${stage}/init`, timeoutSec: 240 }, `${stage}/${crash ? "vmcore" : "uname"}`, `${stage}/done`],
    checks: crash ? [{ step: `${stage}/vmcore`, contains: "vmcore=present", why: "the capture kernel sees the crashed kernel's memory" }] : [],
  };
  return scenario;
}

function prediction(result: ScenarioResult): { exit: number | null; failing: string[] } {
  const out = (result.guest.steps["check"]?.output ?? []).join("\n");
  const exit = /check-exit=(\d+)/.exec(out);
  const failing = [...out.matchAll(/^(FAIL|WARN) ([a-z0-9-]+):/gm)].map((m) => `${m[1]!.toLowerCase()} ${m[2]}`);
  return { exit: exit ? Number(exit[1]) : null, failing };
}

export async function labCommand(args: ParsedArgs, rest: string[]): Promise<number> {
  try {
    if (rest[0] === "suite") {
      const r = await runSuite(rest.slice(1), { verbose: has(args, "debug") });
      if (r.failed === 0 && r.passed === 0) return 2;
      return r.failed === 0 ? 0 : 1;
    }
    const scenario = labScenario(args);
    const result = await runScenario(scenario, has(args, "debug") ? { onLine: (l) => process.stderr.write(`  | ${l}\n`) } : {});
    const p = prediction(result);
    const predicted = p.exit === null ? "unknown (check did not run)" : p.exit === 0 ? "will work" : p.exit === 1 ? "should work, with warnings" : "will not work";
    const loadOutput = (result.guest.steps["load"]?.output ?? []).filter((l) => !/^\[\s*\d+\.\d+\]/.test(l));
    const loadFailed = loadOutput.some((l) => /^load-exit=[1-9]/.test(l));
    const happened = result.ok
      ? (scenario.allowPanic ? "the capture kernel started and /proc/vmcore is there" : "the second kernel's init ran")
      : loadFailed
        ? `the load failed: ${loadOutput.join(" / ")}`
        : `${result.guest.outcome}: ${result.guest.reason}`;
    const json = {
      from: value(args, "from"), to: value(args, "to"), crash: has(args, "crash"),
      prediction: { checkExit: p.exit, verdict: predicted, notOk: p.failing },
      outcome: result.ok ? "ok" : loadFailed ? "load-failed" : result.guest.outcome, detail: happened,
      // With --with-kexec-tools the prediction is kexec-ts' own; comparing it with kexec-tools' outcome says nothing.
      agreed: p.exit === null || has(args, "with-kexec-tools") ? null : (p.exit < 2) === result.ok,
      loader: has(args, "with-kexec-tools") ? "kexec-tools" : "kexec-ts",
      durationMs: result.guest.durationMs, console: `${result.guest.outDir}/console.log`, qemu: result.guest.commandLine,
    };
    if (has(args, "json")) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    else {
      process.stdout.write([
        `${result.ok ? "OK" : "FAILED"}: ${json.from} -> ${json.to}${json.crash ? " (kdump)" : ""} in ${(result.guest.durationMs / 1000).toFixed(1)} s`,
        `  predicted: ${predicted}${p.failing.length ? ` (${p.failing.join(", ")})` : ""}${json.loader === "kexec-tools" ? " — kexec-ts' prediction for its own load; kexec-tools did the load" : ""}`,
        `  happened:  ${happened}`,
        ...(json.agreed === false ? ["  the prediction was wrong: please report this with the console log"] : []),
        `  console:   ${json.console}`,
        `  reproduce: ${json.qemu}`,
      ].join("\n") + "\n");
    }
    return result.ok ? 0 : 1;
  } catch (e) {
    if (isKexecError(e) && (e.code === "lab" || e.code === "not-a-kernel" || e.code === "parse")) {
      process.stderr.write(`kexec-ts: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
      return 2;
    }
    throw e;
  }
}

