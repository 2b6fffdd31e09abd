/**
 * The capture kernel's command line: the running kernel's (/proc/cmdline), without what must
 * not reach a capture kernel, plus what every distro's kdump adds, plus the user's `append`.
 * Words are split as the kernel splits them (double quotes group).
 */
import { splitCmdline } from "../machine/crashkernel.js";

/** Words of the running kernel's command line left out, with why (reported by status). */
const DROPPED: readonly { word: RegExp; why: string }[] = [
  { word: /^crashkernel=/, why: "the capture kernel reserves nothing" },
  { word: /^(hugepages|hugepagesz|default_hugepagesz|hugetlb_cma)=/, why: "huge pages would take the small reservation" },
  { word: /^panic_on_warn(=|$)/, why: "a warning in the capture kernel would end the capture" },
  { word: /^crash_kexec_post_notifiers(=|$)/, why: "panic notifiers in the capture kernel only delay a second panic's reboot" },
  { word: /^(nr_cpus|maxcpus|possible_cpus)=/, why: "replaced by nr_cpus=1" },
  { word: /^(rdinit|init)=/, why: "the capture initramfs' /init must run" },
  { word: /^BOOT_IMAGE=/, why: "the boot loader's note" },
  { word: /^(kexec_ts\.kdump|systemd\.unit)=/, why: "not for the capture kernel" },
  { word: /^(cma|memmap|mem)=/, why: "memory layout options of the running kernel do not fit the reservation" },
];

/**
 * Added, as kdump-utils and kdump-tools do on x86: one CPU (memory, no AP bring-up), interrupts
 * polled from devices nobody reset, drivers that reset first; memory-hungry subsystems off.
 */
export const CAPTURE_WORDS = ["nr_cpus=1", "irqpoll", "reset_devices", "cgroup_disable=memory", "numa=off", "transparent_hugepage=never"];

export interface CaptureCmdline {
  cmdline: string;
  /** Words of /proc/cmdline left out, each with the reason. */
  dropped: { word: string; why: string }[];
}

function quote(word: string): string {
  return /\s/.test(word) ? word.replace(/^([^=]*=)?(.*)$/, (_, key: string | undefined, v: string) => `${key ?? ""}"${v}"`) : word;
}

export function captureCommandLine(running: string, append: string): CaptureCmdline {
  const dropped: { word: string; why: string }[] = [];
  const kept: string[] = [];
  for (const w of splitCmdline(running)) {
    const rule = DROPPED.find((d) => d.word.test(w));
    if (rule) dropped.push({ word: w, why: rule.why });
    else kept.push(quote(w));
  }
  const extra = splitCmdline(append).map(quote);
  // A second panic in the capture kernel should reboot, not hang, unless the user said otherwise.
  const panic = [...kept, ...extra].some((w) => w.startsWith("panic=")) ? [] : ["panic=10"];
  const words = [...kept, ...CAPTURE_WORDS.filter((w) => !kept.includes(w)), ...panic, ...extra];
  return { cmdline: words.join(" "), dropped };
}
