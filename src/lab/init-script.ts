/**
 * The /init a lab guest runs, generated from a scenario's steps. It speaks to the host only
 * through the serial console, with lines the host looks for:
 *
 *   KEXEC-TS-MARK:<stage/>init                 user space started
 *   KEXEC-TS-STEP:<stage/><name>               a step starts; its output follows
 *   KEXEC-TS-MARK:<stage/><name> rc=<n>        the step ended with exit status n
 *   KEXEC-TS-FILE:<stage/><name> <bytes> <md5> a gzipped tar of a guest directory follows in
 *   ...base64...                               base64, up to
 *   KEXEC-TS-FILE-END:<stage/><name>
 *   KEXEC-TS-MARK:<stage/>done                 all steps ran; the guest powers off
 *
 * Each step's shell text is stored as its own file and run by `sh`, so a step can contain any
 * quoting without breaking /init. Pure logic: the builder puts the files into the cpio.
 */
import { KexecError } from "../core/errors.js";

export const MARK = "KEXEC-TS-MARK:";
export const STEP = "KEXEC-TS-STEP:";
export const FILE_BEGIN = "KEXEC-TS-FILE:";
export const FILE_END = "KEXEC-TS-FILE-END:";

export interface GuestStep {
  /** Marker name: letters, digits, "._-". */
  name: string;
  /** Shell text, run by busybox sh with stdout and stderr on the console. */
  run: string;
  /** A nonzero exit is recorded but does not fail the run. */
  mayFail?: boolean;
  /** A guest directory sent to the host (tar, gzip, base64) after `run`. */
  extract?: string;
  /** False for a step that never returns (kexec -e, a triggered crash): no end marker is expected. */
  returns?: boolean;
  /** Host-side bound for this step, seconds (default 60). */
  timeoutSec?: number;
}

export interface InitSpec {
  /** Prefix for marker names, so a second kernel's init is told apart: "second" → "second/init". */
  stage?: string;
  steps: GuestStep[];
  /** Guest paths of kernel modules to insmod, in load order, before the init marker. */
  modules?: string[];
  /** Power off after the last step (default true). */
  poweroff?: boolean;
  /** A comment line naming what generated the script. */
  title?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function markerName(stage: string | undefined, name: string): string {
  return stage === undefined || stage === "" ? name : `${stage}/${name}`;
}

export function validateInitSpec(spec: InitSpec, where = "init"): void {
  const seen = new Set<string>(["init", "done"]);
  if (spec.stage !== undefined && spec.stage !== "" && !NAME.test(spec.stage)) {
    throw new KexecError("usage", `${where}: stage ${JSON.stringify(spec.stage)} must match ${NAME}`, { field: "stage", actual: spec.stage }, "a stage name is letters, digits, - and _");
  }
  for (const [i, step] of spec.steps.entries()) {
    if (typeof step.name !== "string" || !NAME.test(step.name)) {
      throw new KexecError("usage", `${where}: steps[${i}].name ${JSON.stringify(step.name)} must match ${NAME}`, { field: `steps[${i}].name`, actual: String(step.name) }, "a step name is letters, digits, - and _");
    }
    if (seen.has(step.name)) {
      throw new KexecError("usage", `${where}: steps[${i}].name ${JSON.stringify(step.name)} is used twice (or is reserved: init, done)`, { field: `steps[${i}].name`, actual: step.name }, "give each step its own name");
    }
    seen.add(step.name);
    if (typeof step.run !== "string") {
      throw new KexecError("usage", `${where}: steps[${i}].run must be shell text`, { field: `steps[${i}].run` }, "give the step a shell command as text");
    }
  }
}

/** A shell word that busybox sh reads back unchanged. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export interface InitFiles {
  /** "/init" and one "/lab/steps/<name>.sh" per step: guest path → text. */
  files: Map<string, string>;
}

/**
 * Shell functions both kinds of guest use: marker names with the stage prefix, and sending a
 * directory to the host. Kernel messages would tear the base64 lines apart, so the console is
 * quiet while a file is sent.
 */
function protocolFunctions(stage: string): string[] {
  return [
    `kexec_ts_stage=${shellQuote(stage)}`,
    `kexec_ts_name() { if [ -n "$kexec_ts_stage" ]; then echo "$kexec_ts_stage/$1"; else echo "$1"; fi; }`,
    `kexec_ts_mark() { echo "${MARK}$(kexec_ts_name "$1")$2"; }`,
    "kexec_ts_extract() {",
    "  kexec_ts_level=$(cut -f1 /proc/sys/kernel/printk)",
    "  echo 1 > /proc/sys/kernel/printk",
    '  tar -cf - -C "$2" . | gzip -c > /tmp/.kexec-ts-extract.tgz',
    '  echo "' + FILE_BEGIN + '$(kexec_ts_name "$1") $(wc -c < /tmp/.kexec-ts-extract.tgz) $(md5sum < /tmp/.kexec-ts-extract.tgz | cut -d" " -f1)"',
    "  base64 /tmp/.kexec-ts-extract.tgz",
    '  echo "' + FILE_END + '$(kexec_ts_name "$1")"',
    "  rm -f /tmp/.kexec-ts-extract.tgz",
    '  echo "$kexec_ts_level" > /proc/sys/kernel/printk',
    "}",
    // What a step printed may still sit in the console's buffer when the next step panics the
    // kernel; the panic's lines go out past it and end the run, and the rest of that step's output
    // and its end marker are lost. Before a step that does not return, wait until the tty has sent
    // everything: stty setting the tty's own settings again does so with TCSADRAIN, which the
    // kernel holds until the serial driver's buffer is empty, however long QEMU takes to read it.
    // Watching the port's transmit count stand still for 0.2 s was not enough: on a loaded host a
    // QEMU stall looked like a drained port (seen twice). Where stty cannot (no tty on stdout),
    // fall back to that watch (at most ~10 s; one second where the kernel has no 8250 port to ask).
    "kexec_ts_drain() {",
    "  kexec_ts_tx=; kexec_ts_i=0",
    '  if { kexec_ts_g=$(stty -g <&3 2>/dev/null) && stty "$kexec_ts_g" <&3 2>/dev/null; } 3>&1; then return; fi',
    "  while [ $kexec_ts_i -lt 50 ]; do",
    "    kexec_ts_now=$(grep -o 'tx:[0-9]*' /proc/tty/driver/serial 2>/dev/null | head -n 1)",
    '    if [ -z "$kexec_ts_now" ]; then sleep 1; return; fi',
    '    if [ "$kexec_ts_now" = "$kexec_ts_tx" ]; then return; fi',
    "    kexec_ts_tx=$kexec_ts_now; kexec_ts_i=$((kexec_ts_i + 1))",
    "    sleep 0.2 2>/dev/null || sleep 1",
    "  done",
    "}",
    // Kernel messages and a step's output share the serial port: the kernel writes its lines
    // straight to the UART while the tty is still sending the step's, so a line can be torn
    // anywhere ("kexec_crash_loaded[ 9.84] clocksource: ..." then "=0", seen in CI). Checks read a
    // step's own output, so a step that returns runs with the console at KERN_EMERG only; its
    // kernel messages stay in dmesg, and a panic or an oops raises the level itself
    // (console_verbose). The level comes back only once the tty has sent the step's end marker.
    "kexec_ts_quiet() { kexec_ts_step_level=$(cut -f1 /proc/sys/kernel/printk 2>/dev/null); echo 1 > /proc/sys/kernel/printk 2>/dev/null; }",
    'kexec_ts_loud() { kexec_ts_drain; [ -n "$kexec_ts_step_level" ] && echo "$kexec_ts_step_level" > /proc/sys/kernel/printk 2>/dev/null; kexec_ts_step_level=; }',
  ];
}

/**
 * The part of a guest script that runs the steps: the init marker, then each step from its own
 * file under `stepDir` (added to `files`) between its start and end markers, then done.
 */
function stepLines(spec: InitSpec, stepDir: string, files: Map<string, string>): string[] {
  const lines = ["kexec_ts_mark init"];
  for (const step of spec.steps) {
    const script = `${stepDir}/${step.name}.sh`;
    files.set(script, `#!/bin/sh\n${step.run}\n`);
    lines.push(`echo "${STEP}$(kexec_ts_name ${shellQuote(step.name)})"`);
    lines.push(step.returns === false ? "kexec_ts_drain" : "kexec_ts_quiet");
    lines.push(`sh ${script} </dev/null 2>&1`);
    lines.push("kexec_ts_rc=$?");
    if (step.extract !== undefined) lines.push(`kexec_ts_extract ${shellQuote(step.name)} ${shellQuote(step.extract)}`);
    lines.push(`kexec_ts_mark ${shellQuote(step.name)} " rc=$kexec_ts_rc"`);
    if (step.returns !== false) lines.push("kexec_ts_loud");
    // A step that does not return may still end (`systemctl kexec` only queues the jump): wait for it, never run on.
    if (step.returns === false) lines.push("while true; do sleep 3600; done");
  }
  lines.push("kexec_ts_mark done");
  return lines;
}

export function generateInit(spec: InitSpec): InitFiles {
  validateInitSpec(spec);
  const files = new Map<string, string>();
  const lines: string[] = [
    "#!/bin/sh",
    `# ${spec.title ?? "Generated by the kexec-ts lab (src/lab/init-script.ts)."}`,
    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb",
    "/bin/busybox mkdir -p /proc /sys /dev /tmp /run /root",
    "/bin/busybox mount -t proc proc /proc",
    "/bin/busybox mount -t sysfs sysfs /sys",
    // /dev/console comes from the archive (the kernel opens it before /init runs); devtmpfs adds the rest.
    "/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null",
    "/bin/busybox mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null",
    "/bin/busybox mount -t securityfs securityfs /sys/kernel/security 2>/dev/null",
    "/bin/busybox --install -s 2>/dev/null",
    ...protocolFunctions(spec.stage ?? ""),
  ];
  for (const module of spec.modules ?? []) {
    lines.push(`insmod ${shellQuote(module)} || echo "KEXEC-TS-ERROR: insmod ${module} failed"`);
  }
  lines.push(...stepLines(spec, "/lab/steps", files));
  if (spec.poweroff ?? true) {
    lines.push("sync", "poweroff -f", "sleep 5", "echo o > /proc/sysrq-trigger");
  }
  // /init must never exit: the kernel panics when PID 1 dies.
  lines.push("while true; do sleep 3600; done", "");
  files.set("/init", lines.join("\n"));
  return { files };
}

/**
 * The system tier's guest side (system.ts): an installed Debian runs the lab's systemd unit on
 * every boot, and the unit runs `<dir>/run`. The run script counts boots in
 * /var/lib/kexec-ts-lab (on the root disk, so the count survives a kexec and a reboot) and runs
 * the stage of that boot: `boots[0]` on the first, `boots[1]` after the first kexec or reboot,
 * and so on. On the first boot it first copies `<dir>/files/` over `/`. The last stage powers
 * off when its steps are done; the others end with a step that does not return.
 */
export function generateSystemRun(boots: InitSpec[], dir: string, title: string): InitFiles {
  const files = new Map<string, string>();
  if (boots.length === 0) throw new KexecError("usage", "a system scenario needs at least one boot's steps", { field: "steps" }, "give the scenario a steps array (its first boot)");
  const stages = new Set<string>();
  for (const [i, boot] of boots.entries()) {
    validateInitSpec(boot, `boots[${i}]`);
    const stage = boot.stage ?? "";
    if (stages.has(stage)) throw new KexecError("usage", `boots[${i}]: stage ${JSON.stringify(stage)} is used twice; each boot needs its own marker prefix`, { field: `boots[${i}].stage`, actual: stage }, "name each later boot's stage differently: second, third...");
    stages.add(stage);
    const last = i === boots.length - 1;
    const lines = ["#!/bin/sh", `# ${title}: boot ${i}`, ...protocolFunctions(stage), ...stepLines(boot, `${dir}/steps-${i}`, files)];
    if (last && (boot.poweroff ?? true)) lines.push("sync", "systemctl poweroff --force --force");
    files.set(`${dir}/boot-${i}.sh`, `${lines.join("\n")}\n`);
  }
  const run = [
    "#!/bin/sh",
    `# ${title}`,
    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb",
    "state=/var/lib/kexec-ts-lab",
    "mkdir -p $state",
    "boot=$(cat $state/boot 2>/dev/null || echo 0)",
    "echo $((boot + 1)) > $state/boot",
    "sync",
    `if [ "$boot" = 0 ] && [ -d ${dir}/files ]; then cp -a ${dir}/files/. /; fi`,
    `if [ -f ${dir}/boot-$boot.sh ]; then exec sh ${dir}/boot-$boot.sh; fi`,
    `echo "KEXEC-TS-ERROR: boot $boot of a scenario with ${boots.length} boot(s): no steps for it"`,
    "systemctl poweroff --force --force",
    "",
  ];
  files.set(`${dir}/run`, run.join("\n"));
  return { files };
}

/**
 * The markers a run of `spec` prints, in order: init, each step, done. A step that never
 * returns ends the list; what comes after it (a second kernel's init) is the scenario's to say.
 */
export function expectedMarkers(spec: InitSpec): string[] {
  const out = [markerName(spec.stage, "init")];
  for (const step of spec.steps) {
    if (step.returns === false) return out;
    out.push(markerName(spec.stage, step.name));
  }
  out.push(markerName(spec.stage, "done"));
  return out;
}
