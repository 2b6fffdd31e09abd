/**
 * The command lines real distributions run, parsed as kexec-ts parses them:
 * which action they select and the Request they become. Each case cites the
 * script it comes from; the arguments are what that script's shell hands to
 * /sbin/kexec after its own quoting and `eval`. Also: flags kexec-ts refuses
 * by name, -t, and the golden --help (UPDATE_GOLDEN=1 rewrites it and the
 * README's command list).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KexecError } from "../core/errors.js";
import { readKernelImage } from "../core/image/index.js";
import { buildBzImage } from "../core/image/testing/synthetic.js";
import type { Machine } from "../core/machine/model.js";
import { placeLoad } from "../core/plan/plan.js";
import type { Request } from "../core/plan/request.js";
import { readMachine } from "../node/machine.js";
import { routeFor } from "./commands.js";
import { commandList, helpText } from "./help.js";
import { FLAGS, REFUSED_KEXEC_TOOLS_FLAGS, parseArgs } from "./options.js";
import { loadRequest, syscallRequest } from "./request.js";

const repo = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "kexec-ts-cli-"));
const KERNEL = join(dir, "vmlinuz-6.1.0-57-amd64");
const INITRD = join(dir, "initrd.img-6.1.0-57-amd64");
const INITRD_SIZE = 3 * 0x100000 + 123;
const image = readKernelImage(buildBzImage({ fields: { xloadflags: 0x7f, init_size: 0x37ee000n, kernel_alignment: 0x200000n, pref_address: 0x1000000n }, tail: 0x4000 }));
writeFileSync(KERNEL, image.bytes);
writeFileSync(INITRD, new Uint8Array(INITRD_SIZE));
const machines = new Map<string, Machine>();
async function machine(name: string): Promise<Machine> {
  if (!machines.has(name)) machines.set(name, await readMachine(join(repo, "testdata/snapshots", name)));
  return machines.get(name)!;
}

interface Case {
  source: string;
  argv: string[];
  action: string;
  /** For loads: the Request fields that must come out (others are not looked at). */
  request?: Partial<Request>;
  /** For unloads: the syscall choice. */
  syscall?: Request["syscall"];
  /** The snapshot to build the Request on (default: an amd64 guest with a 256 MiB crash region). */
  snapshot?: string;
}

// Debian 12: /proc/cmdline minus crashkernel= (and friends), plus KDUMP_CMDLINE_APPEND from debian/rules (amd64).
const DEBIAN_CMDLINE = "root=UUID=0b1c quiet reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb";
// kdump-utils gen-kdump-sysconfig.sh: KDUMP_COMMANDLINE_APPEND for x86_64 (common + arch), added by kdumpctl prepare_cmdline.
const FEDORA_CMDLINE = "root=/dev/mapper/fedora-root ro rhgb novmcoredd hugetlb_cma=0 kfence.sample_interval=0 initramfs_options=size=90% irqpoll nr_cpus=1 reset_devices cgroup_disable=memory mce=off numa=off udev.children-max=2 panic=10 acpi_no_memhotplug transparent_hugepage=never nokaslr hest_disable cma=0 pcie_ports=compat";
const SUSE_CMDLINE = "root=/dev/vda2 sysrq=yes reset_devices acpi_no_memhotplug cgroup_disable=memory nokaslr numa=off irqpoll nr_cpus=1 root=kdump rootflags=bind rd.udev.children-max=8 disable_cpu_apicid=0 console=ttyS0 panic=1";

const CASES: Case[] = [
  // Debian kdump-tools 1:1.8 debian/kdump-config.in, kdump_load() and kdump_unload()
  // (mirrored in openvelinux/kdump-tools @ bc8b413b3130624385a75240947ee85fcd92fa87).
  { source: "Debian kdump-config kdump_load", argv: ["-p", `--command-line=${DEBIAN_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, syscall: "auto", cmdline: DEBIAN_CMDLINE, initrdSize: INITRD_SIZE } },
  { source: "Debian kdump-config kdump_load, Secure Boot", argv: ["-p", "-s", `--command-line=${DEBIAN_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, syscall: "kexec_file_load", cmdline: DEBIAN_CMDLINE, initrdSize: INITRD_SIZE } },
  // --args-linux is added when `file $KDUMP_KERNEL` says ELF; kexec-ts hands an ELF vmlinux Linux boot_params anyway.
  { source: "Debian kdump-config kdump_load, ELF kernel", argv: ["-p", "--args-linux", `--command-line=${DEBIAN_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, syscall: "auto", cmdline: DEBIAN_CMDLINE } },
  { source: "Debian kdump-config kdump_unload", argv: ["-p", "-u"], action: "-u", syscall: "auto" },
  { source: "Debian kdump-config kdump_unload, Secure Boot", argv: ["-s", "-p", "-u"], action: "-u", syscall: "kexec_file_load" },
  // Fedora/RHEL kdump-utils kdumpctl load_kdump() @ 63f248c94a4af61e3e2c3d89108020e2b36793a6: prepare_kexec_args "$KEXEC_ARGS"
  // (x86_64 default "-s" from gen-kdump-sysconfig.sh, plus another -s under Secure Boot), then -p, --command-line, --initrd, the kernel.
  { source: "kdumpctl load_kdump", argv: ["-s", "-p", `--command-line=${FEDORA_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, syscall: "kexec_file_load", cmdline: FEDORA_CMDLINE, initrdSize: INITRD_SIZE } },
  { source: "kdumpctl load_kdump, Secure Boot", argv: ["-s", "-s", "-p", `--command-line=${FEDORA_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, syscall: "kexec_file_load" } },
  // kdump-lib.sh prepare_kexec_args: on i686 --elf64-core-headers when the last /proc/iomem range ends above 4 GiB, else --elf32-core-headers.
  { source: "kdumpctl load_kdump, i686, RAM above 4 GiB", argv: ["--elf64-core-headers", "-p", `--command-line=${FEDORA_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, syscall: "auto", coreHeaderClass: 64 }, snapshot: "qemu-686-pae-6.1-crash128M" },
  { source: "kdumpctl load_kdump, i686", argv: ["--elf32-core-headers", "-p", `--command-line=${FEDORA_CMDLINE}`, `--initrd=${INITRD}`, KERNEL], action: "-l",
    request: { crash: true, coreHeaderClass: 32 }, snapshot: "qemu-686-pae-6.1-crash128M" },
  { source: "kdumpctl stop_kdump", argv: ["-p", "-u"], action: "-u", syscall: "auto" },
  { source: "kdumpctl stop_kdump, Secure Boot", argv: ["-s", "-p", "-u"], action: "-u", syscall: "kexec_file_load" },
  // openSUSE kdump init/load.sh load_kdump_kexec() @ 34da4b8824555565b3ba2d03da33ec7802a14ecf: the kernel first, -a last, KEXEC_OPTIONS="" by default.
  { source: "SUSE load.sh load_kdump_kexec", argv: ["-p", KERNEL, `--append=${SUSE_CMDLINE}`, `--initrd=${INITRD}`, "-a"], action: "-l",
    request: { crash: true, syscall: "auto", cmdline: SUSE_CMDLINE, initrdSize: INITRD_SIZE } },
  { source: "SUSE unload.sh", argv: ["-a", "-p", "-u"], action: "-u", syscall: "auto" },
  // systemd src/systemctl/systemctl-start-special.c load_kexec_kernel(): `systemctl kexec` with nothing loaded loads the
  // default Boot Loader Spec entry with separate values; src/shutdown/shutdown.c then runs `kexec -e` as its last step.
  { source: "systemctl kexec (load_kexec_kernel)", argv: ["--load", KERNEL, "--append", "root=/dev/vda1 rw quiet", "--initrd", INITRD], action: "-l",
    request: { crash: false, syscall: "auto", cmdline: "root=/dev/vda1 rw quiet", initrdSize: INITRD_SIZE } },
  { source: "systemd-shutdown (kexec -e)", argv: ["-e"], action: "-e" },
];

for (const c of CASES) {
  test(`a distro command line: ${c.source}: kexec ${c.argv.join(" ").replaceAll(dir, "…")}`, async () => {
    const args = parseArgs(c.argv);
    const { command, operands } = routeFor(args);
    // -l and -p are one module; its name in the table is the first of them.
    assert.equal(command.name === "-p" ? "-l" : command.name, c.action);
    if (c.syscall !== undefined) assert.equal(syscallRequest(args), c.syscall);
    if (c.request === undefined) return;
    assert.deepEqual(operands, [KERNEL]);
    const m = await machine(c.snapshot ?? "qemu-amd64-6.1-5level-crash1968M");
    const request = loadRequest(args, m, image, INITRD);
    for (const [key, value] of Object.entries(c.request)) assert.deepEqual(request[key as keyof Request], value, key);
    // And the Request places: the same one `plan`, `check` and the loader use.
    const placed = placeLoad(image, m, { ...request, userArch: m.kernelArch ?? "x86_64" });
    assert.ok(placed.segments.some((s) => s.kind === "initrd"));
  });
}

test("kexec-tools flags kexec-ts does not implement are refused by name, with the reason", () => {
  for (const [name, why] of Object.entries(REFUSED_KEXEC_TOOLS_FLAGS)) {
    const arg = name.length === 1 ? `-${name}` : `--${name}`;
    assert.throws(() => parseArgs(["-l", arg, KERNEL]), (e: unknown) => e instanceof KexecError && e.code === "usage" && e.message.includes(arg) && e.message.includes(why) && e.hint !== undefined, arg);
  }
  // A refused flag is never also a flag kexec-ts takes.
  for (const f of FLAGS) assert.equal(REFUSED_KEXEC_TOOLS_FLAGS[f.long], undefined, f.long);
});

test("-t: kexec-tools' x86 names, checked against the image; the types kexec-ts does not load are refused by name", async () => {
  const m = await machine("qemu-amd64-6.1-5level-crash1968M");
  const req = (...argv: string[]) => loadRequest(parseArgs(["-l", ...argv, KERNEL]), m, image, undefined);
  assert.equal(req("-t", "bzImage64").entry32, false);
  assert.equal(req("--type=bzImage").entry32, true, "-t bzImage is kexec-tools' 32-bit bzImage loader");
  assert.equal(req("-tbzImage").imageType, "bzImage");
  const refused = (argv: string[], pattern: RegExp) => assert.throws(() => req(...argv), (e: unknown) => e instanceof KexecError && e.code === "usage" && pattern.test(e.message));
  refused(["-t", "elf-x86_64"], /wrong file type elf-x86_64: the image is a bzImage64/);
  refused(["-t", "multiboot-x86"], /multiboot-x86: kexec-ts does not load this type: a Multiboot kernel/);
  refused(["-t", "uki"], /Unified Kernel Image/);
  refused(["-t", "zImage"], /--type=zImage: unsupported kernel type/);
});

test("--elf32-core-headers is refused for an x86_64 kernel, whose addresses do not fit ELF32", async () => {
  const m = await machine("qemu-amd64-6.1-5level-crash1968M");
  assert.throws(() => loadRequest(parseArgs(["-p", "--elf32-core-headers", KERNEL]), m, image, undefined), /x86_64 kernel's virtual addresses/);
});

test("options anywhere, --name value, bundled short flags, -- ends the options (getopt_long, as kexec-tools)", () => {
  const a = parseArgs(["-sp", "--append", "a b", KERNEL, "--initrd", INITRD, "--", "-weird-name"]);
  assert.ok(a.flags.has("kexec-file-syscall") && a.flags.has("load-panic"));
  assert.equal(a.flags.get("append")?.[0], "a b");
  assert.deepEqual(a.positionals, [KERNEL, "-weird-name"]);
  // A repeated --append replaces the earlier one, as in kexec-tools.
  assert.equal(parseArgs(["--append=x", "--command-line=y"]).flags.get("append")?.[0], "y");
  assert.throws(() => parseArgs(["vmcore", "save", "--compress=bzip2"]), /--compress=bzip2: expected zlib, lzo, snappy, zstd, none/);
  // Under `vmcore`, -d is makedumpfile's dump level; elsewhere kexec-tools' --debug.
  assert.equal(parseArgs(["vmcore", "save", "-d", "31"], { d: "dump-level" }).flags.get("dump-level")?.[0], "31");
  assert.ok(parseArgs(["-d", "-l", KERNEL]).flags.has("debug"));
});

test("golden --help (UPDATE_GOLDEN=1 regenerates it), and the README's command list is the same table", () => {
  const golden = join(repo, "testdata/cli/help.txt");
  const readme = join(repo, "README.md");
  const block = /(## Commands\n\n```\n)([\s\S]*?)(\n```)/;
  if (process.env["UPDATE_GOLDEN"] === "1") {
    writeFileSync(golden, helpText());
    writeFileSync(readme, readFileSync(readme, "utf8").replace(block, (_m, a: string, _b: string, c: string) => `${a}${commandList()}${c}`));
  }
  assert.equal(helpText(), readFileSync(golden, "utf8"), "run UPDATE_GOLDEN=1 node --test dist/cli/cli.test.js after changing a flag or command");
  const inReadme = block.exec(readFileSync(readme, "utf8"));
  assert.ok(inReadme, "README.md has a ## Commands code block");
  assert.equal(inReadme[2], commandList());
});

test("every --flag the README gives kexec-ts is in the flag table, with the same choices", () => {
  // What follows "kexec-ts" on a line: other tools' flags (makedumpfile --dump-dmesg) are theirs.
  const readme = readFileSync(join(repo, "README.md"), "utf8").split("\n").filter((l) => l.includes("kexec-ts ")).map((l) => l.slice(l.indexOf("kexec-ts "))).join("\n");
  for (const m of readme.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)(?:[= ]([a-z0-9]+(?:\|[a-z0-9]+)+))?/g)) {
    if (REFUSED_KEXEC_TOOLS_FLAGS[m[1]!] !== undefined) continue;
    const flag = FLAGS.find((f) => f.long === m[1] || f.aliases?.includes(m[1]!));
    assert.ok(flag, `README mentions --${m[1]}, which kexec-ts neither takes nor refuses by name`);
    if (m[2] !== undefined && flag.choices) assert.deepEqual([...m[2].split("|")].sort(), [...flag.choices].sort(), `README's choices for --${m[1]}`);
  }
});
