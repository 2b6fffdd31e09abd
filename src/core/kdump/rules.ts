/**
 * What `kdump start` checks beyond `check`'s crash rules before it arms: the capture
 * environment fits the reservation (the estimate against /sys/kernel/kexec_crash_size), the
 * target is there, writable and reachable with only the capture initramfs' drivers, and no
 * setting sabotages the capture. Same verdict shape as `check`, so one renderer and one JSON
 * form serve both. Pure: facts in, verdicts out.
 */
import { fail, ok, warn } from "../check/result.js";
import type { CheckResult } from "../check/types.js";
import { hex, size } from "../format.js";
import { formatMemory } from "../machine/crashkernel.js";
import type { CaptureCmdline } from "./cmdline.js";
import { DEFAULT_CONFIG_PATH } from "./config.js";
import type { Estimate } from "./estimate.js";
import { MAX_KDUMP_PFN } from "../vmcore/page-frame-limits.js";

export interface KdumpFacts {
  /** /sys/kernel/kexec_crash_size; null when unreadable. */
  crashSize: bigint | null;
  /** One past the highest System RAM address (the crashed machine's /proc/vmcore reaches it); null when unknown. */
  ramEnd: bigint | null;
  estimate: Estimate | null;
  /** The capture initramfs: built (with what it holds), or why not. */
  capture: { ok: true; path: string; modules: string[]; builtin: string[]; rebuilt: boolean; mode: string } | { ok: false; message: string; hint: string };
  target: {
    path: string;
    /** Where it lives: "ext4 on /dev/vda1 at /" (null when it could not be found). */
    where: string | null;
    /** null: writable; else the error of the write test. */
    writeError: string | null;
    free: bigint | null;
    minFree: bigint;
  };
  rawTarget: { path: string; error: string | null; bytes: bigint | null; systemRam: bigint | null } | null;
  /** /sys/module/kernel/parameters/crash_kexec_post_notifiers. */
  postNotifiers: boolean | null;
  capturedCmdline: CaptureCmdline;
  /** The user's `append`, to tell what they added from what was inherited. */
  append: string;
  /** The config file the settings came from, for the hints (default /etc/kexec-ts/kdump.conf). */
  configFile?: string;
}

export function kdumpRules(f: KdumpFacts): CheckResult[] {
  return [capture(f), memory(f), target(f), rawTarget(f), settings(f)];
}

function capture(f: KdumpFacts): CheckResult {
  const id = "kdump-capture-initramfs";
  if (!f.capture.ok) return fail(id, `the capture initramfs cannot be built: ${f.capture.message}`, {}, f.capture.hint);
  return ok(id, `${f.capture.rebuilt ? "built" : "up to date"} (${f.capture.mode} mode): ${f.capture.path}, modules ${f.capture.modules.join(" ") || "(none)"}${f.capture.builtin.length ? `; built into the kernel: ${f.capture.builtin.join(" ")}` : ""}`,
    { path: f.capture.path, modules: f.capture.modules, builtin: f.capture.builtin });
}

function memory(f: KdumpFacts): CheckResult {
  const id = "kdump-memory";
  // The save's own limit (page-frame-limits.ts): arming a capture that then refuses to save helps
  // no one. The capture always saves in the kdump-compressed format (kdump.conf has no format),
  // whose writer holds its bitmap a window at a time: its limit, not the 8 TiB of a bitmap held whole.
  const saveLimit = BigInt(MAX_KDUMP_PFN) * 4096n;
  if (f.ramEnd !== null && f.ramEnd > saveLimit) {
    return fail(id, `this machine's RAM reaches ${hex(f.ramEnd)}, and kexec-ts saves dumps of memory below ${hex(saveLimit)} (${size(saveLimit)}): the capture would refuse to save`, { ramEnd: f.ramEnd },
      "save this machine's dumps with makedumpfile (kdump-tools or kdump-utils), not kexec-ts kdump");
  }
  if (f.estimate === null) return ok(id, "not estimated (see kdump-capture-initramfs)");
  const need = f.estimate.total;
  const evidence = { estimate: need, suggested: f.estimate.suggested, crashSize: f.crashSize, ...Object.fromEntries(f.estimate.items.map((i) => [i.what, i.bytes])) };
  const remedy = `reserve at least crashkernel=${formatMemory(f.estimate.suggested)} on the kernel command line and reboot (kexec-ts kdump estimate itemizes it)`;
  if (f.crashSize === null) return warn(id, `the capture needs about ${size(need)}, and /sys/kernel/kexec_crash_size could not be read to compare`, evidence, "run as root");
  if (f.crashSize === 0n) return fail(id, "nothing is reserved (/sys/kernel/kexec_crash_size is 0)", evidence, remedy);
  if (need > f.crashSize) {
    return fail(id, `the capture needs about ${size(need)} and the reservation is ${size(f.crashSize)}: it would run out of memory before the dump is saved`, evidence, remedy);
  }
  return ok(id, `the capture needs about ${size(need)} of the ${size(f.crashSize)} reserved (${size(f.crashSize - need)} to spare)`, evidence);
}

function target(f: KdumpFacts): CheckResult {
  const id = "kdump-target";
  const t = f.target;
  const evidence = { target: t.path, where: t.where, free: t.free, minFree: t.minFree };
  if (!f.capture.ok || t.where === null) return fail(id, `the target ${t.path} cannot be used by the capture kernel`, evidence, f.capture.ok ? `check the target in ${f.configFile ?? DEFAULT_CONFIG_PATH}` : f.capture.hint);
  if (t.writeError !== null) return fail(id, `the target ${t.path} is not writable: ${t.writeError}`, evidence, "make it writable (a read-only mount? permissions?), or set another target");
  if (t.free !== null && t.free < t.minFree) {
    return warn(id, `the target ${t.path} has ${size(t.free)} free, under min_free ${size(t.minFree)}: a save removes old dumps first, and may still run out of room`, evidence, "free space on the target, or lower min_free");
  }
  return ok(id, `${t.path} (${t.where}) is writable${t.free === null ? "" : `, ${size(t.free)} free`}; the capture initramfs mounts it with its own modules`, evidence);
}

function rawTarget(f: KdumpFacts): CheckResult {
  const id = "kdump-raw-target";
  const r = f.rawTarget;
  if (r === null) return ok(id, "no raw_target configured: if Node cannot start in the capture kernel, nothing is saved (the console says why)");
  if (r.error !== null) return fail(id, `raw_target ${r.path}: ${r.error}`, { rawTarget: r.path }, "give an unused block device, or leave raw_target empty");
  if (r.bytes !== null && r.systemRam !== null && r.bytes < r.systemRam + 4096n) {
    return warn(id, `raw_target ${r.path} holds ${size(r.bytes)}, less than the ${size(r.systemRam)} of RAM a raw copy of /proc/vmcore may need`, { rawTarget: r.path, bytes: r.bytes, systemRam: r.systemRam }, "use a device at least as large as RAM");
  }
  return ok(id, `raw_target ${r.path}${r.bytes === null ? "" : ` (${size(r.bytes)})`} takes a raw copy if Node cannot start`, { rawTarget: r.path });
}

function settings(f: KdumpFacts): CheckResult {
  const id = "kdump-settings";
  if (f.postNotifiers === true) {
    return fail(id, "crash_kexec_post_notifiers is set: on a panic the kernel runs the panic notifiers (and dumps the log to every console) before it enters the capture kernel, which can hang or wedge devices first",
      { crash_kexec_post_notifiers: true }, "remove crash_kexec_post_notifiers from the kernel command line (on Hyper-V the kernel sets it itself: run `echo N > /sys/module/kernel/parameters/crash_kexec_post_notifiers` before arming)");
  }
  const appended = f.append.split(/\s+/).filter(Boolean);
  const bad = appended.filter((w) => /^(panic_on_warn|crash_kexec_post_notifiers)(=|$)/.test(w) && !/=0$/.test(w));
  if (bad.length) {
    return fail(id, `append carries ${bad.join(" ")} into the capture kernel: a warning there would end the capture`, { append: f.append }, `remove it from append in ${f.configFile ?? DEFAULT_CONFIG_PATH}`);
  }
  const dropped = f.capturedCmdline.dropped;
  return ok(id, dropped.length ? `left out of the capture kernel's command line: ${dropped.map((d) => `${d.word} (${d.why})`).join("; ")}` : "nothing on the command line sabotages the capture",
    { cmdline: f.capturedCmdline.cmdline, dropped: dropped.map((d) => d.word) });
}
