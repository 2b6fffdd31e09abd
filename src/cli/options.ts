/**
 * One table of flags drives parsing and --help. kexec-tools' spellings are
 * accepted as they are there (-l, -p, -e, --append=..., --initrd=...), so
 * `kexec-ts` can stand in for `kexec` in scripts.
 */
import { KexecError } from "../core/errors.js";

export interface FlagSpec {
  readonly long: string;
  readonly short?: string;
  /** Other long spellings that mean the same (kexec-tools has several). */
  readonly aliases?: readonly string[];
  /** Name of the value, when the flag takes one. */
  readonly value?: string;
  /** Flags that may be repeated collect every value. */
  readonly repeat?: boolean;
  readonly help: string;
  /** Where it is listed in --help. */
  readonly group: "action" | "load" | "output" | "lab" | "vmcore" | "general";
}

export const FLAGS: readonly FlagSpec[] = [
  { long: "load", short: "l", help: "load IMAGE for a later -e (kexec)", group: "action" },
  { long: "load-panic", short: "p", help: "load IMAGE as the crash kernel (kdump), entered on panic", group: "action" },
  { long: "exec", short: "e", help: "jump to the loaded kernel now (syncs file systems first)", group: "action" },
  { long: "unload", short: "u", help: "unload the loaded kernel (with -p: the crash kernel)", group: "action" },
  { long: "status", short: "S", help: "exit 1 if a kernel is loaded (with -l: the kexec kernel, else the crash kernel), 0 if not", group: "action" },
  { long: "force", short: "f", help: "alone: load IMAGE and jump at once (as kexec -f); with -l/-p: load even when a check fails", group: "action" },
  { long: "kexec-file-syscall", short: "s", help: "use kexec_file_load only (the kernel parses and verifies the image)", group: "load" },
  { long: "kexec-syscall", short: "c", help: "use kexec_load only (kexec-ts places the segments itself)", group: "load" },
  { long: "kexec-syscall-auto", short: "a", help: "kexec_file_load first, kexec_load if the kernel lacks it (default)", group: "load" },
  { long: "initrd", aliases: ["ramdisk"], value: "FILE", help: "initial ramdisk for the new kernel", group: "load" },
  { long: "append", aliases: ["command-line"], value: "STRING", help: "the new kernel's command line (appended after --reuse-cmdline)", group: "load" },
  { long: "reuse-cmdline", help: "start from the running kernel's command line (without crashkernel= and BOOT_IMAGE=)", group: "load" },
  { long: "mem-min", value: "ADDR", help: "place nothing below ADDR", group: "load" },
  { long: "mem-max", value: "ADDR", help: "place nothing above ADDR", group: "load" },
  { long: "type", short: "t", value: "TYPE", help: "image type: bzImage64, bzImage, elf-x86_64, elf-x86 (default: detected)", group: "load" },
  { long: "entry-32bit", help: "enter a 64-bit bzImage through its 32-bit entry", group: "load" },
  // kdump-tools' kdump-config passes it whenever the crash kernel is an ELF file.
  { long: "args-linux", help: "accepted as kexec-tools' ELF loader takes it: an ELF vmlinux always gets Linux's boot parameters", group: "load" },
  { long: "debug", short: "d", help: "print the plan before loading", group: "output" },
  { long: "json", help: "machine-readable output", group: "output" },
  { long: "vmlinux", help: "inspect: also decompress the payload and read the vmlinux ELF inside", group: "output" },
  { long: "extract", value: "FILE", help: "inspect: write the decompressed vmlinux (ELF) to FILE, like scripts/extract-vmlinux", group: "output" },
  { long: "root", value: "DIR", help: "read /proc, /sys and /boot under DIR (a snapshot) instead of the live machine", group: "general" },
  { long: "help", short: "h", help: "show this help", group: "general" },
  { long: "version", short: "v", help: "print the version", group: "general" },
  { long: "from", value: "IMAGE", help: "lab: the first kernel (booted by QEMU)", group: "lab" },
  { long: "to", value: "IMAGE", help: "lab: the kernel to kexec or kdump into", group: "lab" },
  { long: "crash", help: "lab: load with -p and panic, expect the capture kernel", group: "lab" },
  { long: "crashkernel", value: "SPEC", help: "lab: crashkernel= for the first kernel", group: "lab" },
  { long: "mem", value: "SIZE", help: "lab: guest RAM (QEMU -m)", group: "lab" },
  { long: "cpu", value: "MODEL", help: "lab: QEMU -cpu model (default max: has LA57)", group: "lab" },
  { long: "userspace", value: "ARCH", help: "lab: x86_64 or i386 user space in the first kernel", group: "lab" },
  { long: "load-flags", value: "FLAGS", help: "lab: extra flags for the load step", group: "lab" },
  { long: "with-kexec-tools", help: "lab: run Debian's kexec-tools instead, for comparison", group: "lab" },
  { long: "dump-level", value: "N", help: "vmcore save: makedumpfile's -d bitmask: 1 zero, 2 cache, 4 private cache, 8 user data, 16 free pages (default 31)", group: "vmcore" },
  { long: "format", value: "FORMAT", help: "vmcore save: kdump (makedumpfile's compressed format, default), elf, or flat (a stream for pipes; makedumpfile -R reads it)", group: "vmcore" },
  { long: "compress", value: "CODEC", help: "vmcore save: zlib (default), lzo, snappy or none, per page as makedumpfile -c/-l/-p", group: "vmcore" },
  { long: "threads", value: "N", help: "vmcore save: compression worker threads (default: the CPU count; 0 compresses in the main thread)", group: "vmcore" },
];

export interface ParsedArgs {
  flags: Map<string, string[]>;
  positionals: string[];
}

function findLong(name: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.long === name || f.aliases?.includes(name));
}

/**
 * Short flags that mean something else under one command: makedumpfile's
 * `-d 31` is the dump level, where kexec-tools' `-d` is --debug.
 */
const COMMAND_SHORT: Record<string, Record<string, string>> = {
  vmcore: { d: "dump-level" },
};

function findShort(ch: string, command: string | undefined): FlagSpec | undefined {
  const override = command === undefined ? undefined : COMMAND_SHORT[command]?.[ch];
  if (override !== undefined) return FLAGS.find((f) => f.long === override);
  return FLAGS.find((f) => f.short === ch);
}

function unknown(arg: string): KexecError {
  return new KexecError("usage", `unknown option ${arg}`, { actual: arg }, "see kexec-ts --help");
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const flags = new Map<string, string[]>();
  const positionals: string[] = [];
  const command = argv[0] !== undefined && !argv[0].startsWith("-") ? argv[0] : undefined;
  const set = (spec: FlagSpec, value: string) => {
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
      if (!spec) throw unknown(arg);
      if (spec.value) {
        let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new KexecError("usage", `option --${name} needs a value (${spec.value})`, { field: name }, `e.g. --${name}=${spec.value}`);
        set(spec, value);
      } else {
        if (eq >= 0) throw new KexecError("usage", `option --${name} takes no value`, { field: name, actual: arg.slice(eq + 1) });
        set(spec, "");
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      // Bundled short flags, getopt style: -lf, -tbzImage, -t bzImage.
      for (let k = 1; k < arg.length; k++) {
        const spec = findShort(arg[k]!, command);
        if (!spec) throw unknown(`-${arg[k]}`);
        if (spec.value) {
          const rest = arg.slice(k + 1);
          const value = rest.length > 0 ? rest : argv[++i];
          if (value === undefined) throw new KexecError("usage", `option -${arg[k]} needs a value (${spec.value})`, { field: spec.long });
          set(spec, value);
          break;
        }
        set(spec, "");
      }
      continue;
    }
    positionals.push(arg);
  }
  return { flags, positionals };
}

export function has(args: ParsedArgs, long: string): boolean {
  return args.flags.has(long);
}

export function value(args: ParsedArgs, long: string): string | undefined {
  const list = args.flags.get(long);
  return list === undefined ? undefined : list[list.length - 1];
}

export function helpText(): string {
  const groups: [FlagSpec["group"], string][] = [
    ["action", "Actions (as in kexec-tools)"],
    ["load", "Loading"],
    ["output", "Output"],
    ["general", "General"],
    ["lab", "Lab (kexec-ts lab)"],
    ["vmcore", "vmcore (kexec-ts vmcore save|info|dmesg; -d N is the dump level there)"],
  ];
  const lines = [
    "usage: kexec-ts [-l|-p] IMAGE [--initrd=FILE] [--append=STRING] [options]   (like kexec)",
    "       kexec-ts -e | -u [-p] | -S",
    "       kexec-ts inspect IMAGE [--json] [--vmlinux]",
    "       kexec-ts machine [--root DIR] [--json]",
    "       kexec-ts snapshot DIR",
    "       kexec-ts check|plan -l|-p IMAGE [load flags] [--root DIR] [--json]",
    "       kexec-ts lab --from A --to B [--crash] [--crashkernel SPEC] [--userspace i386] | lab suite [NAME...]",
    "       kexec-ts vmcore save [--format kdump|elf|flat] [--compress zlib|lzo|snappy|none] [-d N] [--threads N] SRC DST",
    "       kexec-ts vmcore info|dmesg FILE",
    "       kexec-ts drop-in install|remove|status [kexec]   (kexec-ts as /sbin/kexec, through dpkg-divert)",
    "       kexec-ts demo                      (what `npm start` runs)",
    "",
  ];
  for (const [group, title] of groups) {
    lines.push(`${title}:`);
    for (const f of FLAGS.filter((x) => x.group === group)) {
      const names = [f.short ? `-${f.short}` : "", `--${f.long}${f.value ? `=${f.value}` : ""}`, ...(f.aliases ?? []).map((a) => `--${a}`)].filter(Boolean).join(", ");
      lines.push(`  ${names.padEnd(40)} ${f.help}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}
