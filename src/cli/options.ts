/**
 * One table of flags drives parsing and --help. kexec-tools' spellings are
 * accepted as they are there (-l, -p, -e, --append=..., --initrd=...), so
 * `kexec-ts` can stand in for `kexec` in scripts.
 */
import { KexecError } from "../core/errors.js";
import { IMAGE_TYPES } from "../core/plan/request.js";

export interface FlagSpec {
  readonly long: string;
  readonly short?: string;
  /** Other long spellings that mean the same (kexec-tools has several). */
  readonly aliases?: readonly string[];
  /** Name of the value, when the flag takes one. */
  readonly value?: string;
  /** The only values it takes; the parser refuses others, and --help lists them. */
  readonly choices?: readonly string[];
  /** Flags that may be repeated collect every value. */
  readonly repeat?: boolean;
  readonly help: string;
  /** Where it is listed in --help. */
  readonly group: FlagGroup;
}

export type FlagGroup = "action" | "load" | "output" | "lab" | "vmcore" | "kdump" | "general";

export const FLAG_GROUPS: readonly { group: FlagGroup; title: string }[] = [
  { group: "action", title: "Actions (as in kexec-tools)" },
  { group: "load", title: "Load flags (-l, -p, plan, check)" },
  { group: "output", title: "Output" },
  { group: "general", title: "General" },
  { group: "lab", title: "Lab flags (kexec-ts lab)" },
  { group: "vmcore", title: "vmcore flags (kexec-ts vmcore save; -d N is the dump level there)" },
  { group: "kdump", title: "kdump flags (kexec-ts kdump ...; README \"The kdump service\")" },
];

export const FLAGS: readonly FlagSpec[] = [
  { long: "load", short: "l", help: "load IMAGE for a later -e (kexec)", group: "action" },
  { long: "load-panic", short: "p", help: "load IMAGE as the crash kernel (kdump), entered on panic", group: "action" },
  { long: "exec", short: "e", help: "jump to the loaded kernel now (syncs file systems first; under systemd, through `systemctl kexec` unless --force)", group: "action" },
  { long: "unload", short: "u", help: "unload the loaded kernel (with -p: the crash kernel)", group: "action" },
  { long: "status", short: "S", help: "exit 1 if a kernel is loaded (with -l: the kexec kernel, else the crash kernel), 0 if not", group: "action" },
  { long: "force", short: "f", help: "alone: load IMAGE and jump at once (as kexec -f); with -l/-p: load even when a check fails (kdump start: arm so; kdump import: replace the config; vmcore save: replace an existing DST)", group: "action" },
  { long: "no-sync", short: "y", help: "-e, -f: do not sync file systems before the jump (as kexec -y)", group: "action" },
  { long: "no-ifdown", short: "x", help: "accepted as kexec -x: kexec-ts never takes network interfaces down, so there is nothing to skip", group: "action" },
  { long: "kexec-file-syscall", short: "s", help: "use kexec_file_load only (the kernel parses and verifies the image)", group: "load" },
  { long: "kexec-syscall", short: "c", help: "use kexec_load only (kexec-ts places the segments itself)", group: "load" },
  { long: "kexec-syscall-auto", short: "a", help: "kexec_file_load first, kexec_load if the kernel lacks it (default)", group: "load" },
  { long: "initrd", aliases: ["ramdisk"], value: "FILE", help: "initial ramdisk for the new kernel", group: "load" },
  { long: "append", aliases: ["command-line"], value: "STRING", help: "the new kernel's command line (appended after --reuse-cmdline)", group: "load" },
  { long: "reuse-cmdline", help: "start from the running kernel's command line (without crashkernel= and BOOT_IMAGE=)", group: "load" },
  { long: "mem-min", value: "ADDR", help: "place nothing below ADDR", group: "load" },
  { long: "mem-max", value: "ADDR", help: "place nothing above ADDR", group: "load" },
  { long: "type", short: "t", value: "TYPE", help: `kexec-tools' image type, ${IMAGE_TYPES.join(", ")}: checked against the image (default: detected); bzImage on a 64-bit bzImage enters it at its 32-bit entry`, group: "load" },
  { long: "entry-32bit", help: "enter a 64-bit bzImage through its 32-bit entry", group: "load" },
  { long: "args-linux", help: "accepted as kexec-tools' ELF loader option: kexec-ts always hands the kernel Linux boot_params, for an ELF vmlinux too", group: "load" },
  { long: "elf32-core-headers", help: "-p: describe the crashed kernel's memory with ELF32 program headers (the default for an i386 kernel)", group: "load" },
  { long: "elf64-core-headers", help: "-p: ELF64 program headers (the default on x86_64; on i386 needed for RAM above 4 GiB)", group: "load" },
  { long: "debug", short: "d", help: "print the plan before loading", group: "output" },
  { long: "json", help: "machine-readable output", group: "output" },
  { long: "vmlinux", help: "inspect: also decompress the payload and read the vmlinux ELF inside", group: "output" },
  { long: "extract", value: "FILE", help: "inspect: write the decompressed vmlinux (ELF) to FILE, like scripts/extract-vmlinux", group: "output" },
  { long: "tar", value: "FILE", help: "snapshot: write one tar archive (the web app opens it) instead of a directory", group: "output" },
  { long: "output", short: "o", value: "FILE", help: "report: the HTML page to write", group: "output" },
  { long: "vmcore", value: "FILE", help: "report: add a vmcore's dumped ranges, left-out pages and last log lines", group: "output" },
  { long: "root", value: "DIR", help: "read /proc, /sys and /boot under DIR (a snapshot) instead of the live machine", group: "general" },
  { long: "help", short: "h", help: "show this help", group: "general" },
  { long: "version", short: "v", help: "print the version", group: "general" },
  { long: "from", value: "IMAGE", help: "the first kernel (booted by QEMU)", group: "lab" },
  { long: "to", value: "IMAGE", help: "the kernel to kexec or kdump into", group: "lab" },
  { long: "crash", help: "load with -p and panic, expect the capture kernel", group: "lab" },
  { long: "crashkernel", value: "SPEC", help: "crashkernel= for the first kernel", group: "lab" },
  { long: "mem", value: "SIZE", help: "guest RAM (QEMU -m)", group: "lab" },
  { long: "cpu", value: "MODEL", help: "QEMU -cpu model (default max: has LA57)", group: "lab" },
  { long: "userspace", value: "ARCH", choices: ["x86_64", "i386"], help: "the user space the load runs in (lab: in the first kernel; check/plan: the loader to predict for)", group: "lab" },
  { long: "load-flags", value: "FLAGS", help: "extra flags for the load step", group: "lab" },
  { long: "with-kexec-tools", help: "run Debian's kexec-tools instead, for comparison", group: "lab" },
  { long: "dump-level", value: "N", help: "makedumpfile's -d bitmask: 1 zero, 2 cache, 4 private cache, 8 user data, 16 free pages (default 31)", group: "vmcore" },
  { long: "format", value: "FORMAT", choices: ["kdump", "elf", "flat"], help: "kdump (makedumpfile's compressed format, default), elf, or flat (a stream for pipes; makedumpfile -R reads it)", group: "vmcore" },
  { long: "compress", value: "CODEC", choices: ["zlib", "lzo", "snappy", "zstd", "none"], help: "per page, as makedumpfile -c/-l/-p/-z (default zlib; none for --format elf)", group: "vmcore" },
  { long: "threads", value: "N", help: "compression worker threads, beside the main thread, which compresses a share too (default: the CPU count less one when the dump is big enough to pay for starting them — from 16 MiB to compress with zlib, 64 MiB with snappy or zstd, 256 MiB with lzo — else 0; 0 compresses in the main thread alone)", group: "vmcore" },
  { long: "config", value: "FILE", help: "kdump: the configuration file (default /etc/kexec-ts/kdump.conf)", group: "kdump" },
  { long: "kernel-version", value: "V", help: "kdump rebuild: the kernel release to build the capture initramfs for (the kernel hook's argument)", group: "kdump" },
  { long: "yes", help: "kdump test: really crash this machine to test the capture", group: "kdump" },
  { long: "all", help: "kdump report: every dump, not only those not reported yet", group: "kdump" },
  { long: "now", help: "kdump install: also start the units now", group: "kdump" },
];

/**
 * kexec-tools flags kexec-ts does not implement (kexec/kexec.h KEXEC_OPTIONS and
 * kexec/arch/i386/include/arch/options.h): refused by name with the reason, never
 * taken for something else or ignored. The distro scripts pass none of these.
 */
export const REFUSED_KEXEC_TOOLS_FLAGS: Readonly<Record<string, string>> = {
  "no-checks": "kexec-ts' purgatory always verifies the segments' SHA-256 before it jumps",
  i: "kexec-ts' purgatory always verifies the segments' SHA-256 before it jumps (-i is kexec-tools' --no-checks)",
  reuseinitrd: "reusing the running kernel's initrd (retain_initrd) is not supported: pass --initrd=FILE",
  "load-preserve-context": "preserve-context kexec (jumping back) is not supported",
  "load-jump-back-helper": "preserve-context kexec (jumping back) is not supported",
  "load-live-update": "Xen live update is not supported",
  "exec-live-update": "Xen live update is not supported",
  entry: "kexec-ts enters the kernel through its boot protocol entry; a different entry is not supported",
  "print-ckr-size": "use `kexec-ts machine`, which shows the crash region",
  hotplug: "crash hotplug (the kernel updating elfcorehdr in place) is not supported; reload the crash kernel after a CPU or memory change",
  "no-cma": "not an x86 option",
  "force-dtb": "not an x86 option",
  dtb: "not an x86 option",
  "reset-vga": "kexec-ts' purgatory does not touch the display",
  "console-vga": "kexec-ts' purgatory does not print to the display",
  "console-serial": "kexec-ts' purgatory prints on COM1 only when KEXEC_TS_PURGATORY_SERIAL=1",
  serial: "kexec-ts' purgatory prints on COM1 only when KEXEC_TS_PURGATORY_SERIAL=1",
  "serial-baud": "kexec-ts' purgatory prints on COM1 only when KEXEC_TS_PURGATORY_SERIAL=1",
  "pass-memmap-cmdline": "the memory map goes in boot_params (e820), never on the command line",
  noefi: "kexec-ts passes the EFI state the running kernel has; it cannot hide it",
  "reuse-video-type": "kexec-ts does not fill in the screen_info video type",
  "real-mode": "entering the kernel in real mode is not supported",
  module: "multiboot modules are not supported",
  "args-elf": "kexec-ts hands an ELF vmlinux Linux boot_params (as --args-linux), not ELF boot notes",
  "args-none": "kexec-ts hands an ELF vmlinux Linux boot_params (as --args-linux)",
};

export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
  /** How each flag was first written (`-c`, `--ramdisk`), by its long name: a refusal quotes the user's spelling. */
  spelled?: Map<string, string>;
}

function findLong(name: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.long === name || f.aliases?.includes(name));
}

function findShort(ch: string, shortFlags: Readonly<Record<string, string>>): FlagSpec | undefined {
  const override = shortFlags[ch];
  if (override !== undefined) return FLAGS.find((f) => f.long === override);
  return FLAGS.find((f) => f.short === ch);
}

function unknown(arg: string, name: string): KexecError {
  const refused = REFUSED_KEXEC_TOOLS_FLAGS[name];
  if (refused !== undefined) {
    return new KexecError("usage", `${arg} is a kexec-tools option kexec-ts does not implement: ${refused}`, { field: name, actual: arg }, "leave it out; kexec-ts --help lists what it takes");
  }
  return new KexecError("usage", `unknown option ${arg}`, { actual: arg }, "see kexec-ts --help");
}

function checkChoice(spec: FlagSpec, value: string): void {
  if (spec.choices === undefined || spec.choices.includes(value)) return;
  throw new KexecError("usage", `--${spec.long}=${value}: expected ${spec.choices.join(", ")}`, { field: spec.long, expected: spec.choices.join(" | "), actual: value }, `e.g. --${spec.long}=${spec.choices[0]}`);
}

/**
 * getopt_long as kexec-tools uses it: options anywhere (before or after the
 * image), `--name=value` or `--name value`, bundled short flags (-lf, -tbzImage),
 * `--` ending the options. `shortFlags` are the command's own meanings of short
 * letters (makedumpfile's `-d 31` under `vmcore`, where kexec-tools' -d is --debug).
 */
export function parseArgs(argv: readonly string[], shortFlags: Readonly<Record<string, string>> = {}): ParsedArgs {
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const spelled = new Map<string, string>();
  const set = (spec: FlagSpec, value: string, as: string) => {
    checkChoice(spec, value);
    if (!spelled.has(spec.long)) spelled.set(spec.long, as);
    const list = flags.get(spec.long) ?? [];
    // kexec-tools: a repeated --append replaces the earlier one (the last one wins).
    if (spec.repeat) list.push(value);
    else list.splice(0, list.length, value);
    flags.set(spec.long, list);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      const spec = findLong(name);
      if (!spec) throw unknown(arg, name);
      if (spec.value) {
        const value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new KexecError("usage", `option --${name} needs a value (${spec.value})`, { field: name }, `e.g. --${name}=${spec.value}`);
        set(spec, value, `--${name}`);
      } else {
        if (eq >= 0) throw new KexecError("usage", `option --${name} takes no value`, { field: name, actual: arg.slice(eq + 1) }, `write --${name} alone`);
        set(spec, "", `--${name}`);
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      // Bundled short flags, getopt style: -lf, -tbzImage, -t bzImage.
      for (let k = 1; k < arg.length; k++) {
        const spec = findShort(arg[k]!, shortFlags);
        if (!spec) throw unknown(`-${arg[k]}`, arg[k]!);
        if (spec.value) {
          const rest = arg.slice(k + 1);
          const value = rest.length > 0 ? rest : argv[++i];
          if (value === undefined) throw new KexecError("usage", `option -${arg[k]} needs a value (${spec.value})`, { field: spec.long }, `e.g. -${arg[k]} ${spec.value}`);
          set(spec, value, `-${arg[k]}`);
          break;
        }
        set(spec, "", `-${arg[k]}`);
      }
      continue;
    }
    positionals.push(arg);
  }
  return { flags, positionals, spelled };
}

export function has(args: ParsedArgs, long: string): boolean {
  return args.flags.has(long);
}

export function value(args: ParsedArgs, long: string): string | undefined {
  const list = args.flags.get(long);
  return list === undefined ? undefined : list[list.length - 1];
}

/** How a flag is written in --help: `-t, --type=bzImage64|bzImage|elf-x86_64|elf-x86, ...`. */
export function flagUsage(f: FlagSpec): string {
  const value = f.value ? `=${f.choices ? f.choices.join("|") : f.value}` : "";
  return [f.short ? `-${f.short}` : "", `--${f.long}${value}`, ...(f.aliases ?? []).map((a) => `--${a}`)].filter(Boolean).join(", ");
}
