/**
 * `kdump install` / `kdump uninstall`: the systemd units that arm at boot and report after a
 * crash, the kernel hooks that rebuild the capture initramfs when a kernel is installed
 * (Debian's /etc/kernel/postinst.d, and systemd's kernel-install), and a documented default
 * config. Every file written carries a marker line, and uninstall removes only files with it.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { defaultConfig, formatConfig } from "../../core/kdump/config.js";
import type { KdumpPaths } from "./paths.js";
import { packageRoot } from "./service.js";
import { makeDirectories } from "../files.js";

export const MARKER = "Installed by kexec-ts kdump install; kexec-ts kdump uninstall removes it.";
export const ARM_UNIT = "kexec-ts-kdump.service";
export const REPORT_UNIT = "kexec-ts-kdump-report.service";

/** The command line that runs this kexec-ts: absolute paths, so the units work whatever PATH is. */
export function selfCommand(): string {
  return `${realpathSync(process.execPath)} ${join(packageRoot(), "dist", "cli", "main.js")}`;
}

export function unitFiles(command: string): Record<string, string> {
  return {
    [REPORT_UNIT]: `# ${MARKER}
[Unit]
Description=kexec-ts kdump: report what the last crash left
Documentation=https://www.npmjs.com/package/kexec-ts
After=local-fs.target
Before=${ARM_UNIT}

[Service]
Type=oneshot
ExecStart=${command} kdump report
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`,
    [ARM_UNIT]: `# ${MARKER}
[Unit]
Description=kexec-ts kdump: check and arm the crash kernel
Documentation=https://www.npmjs.com/package/kexec-ts
After=local-fs.target ${REPORT_UNIT}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${command} kdump start
ExecStop=${command} kdump stop
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
`,
  };
}

/** Debian runs /etc/kernel/postinst.d/* as `hook VERSION /boot/vmlinuz-VERSION` after a kernel's depmod. A failure here must not fail the kernel's installation. */
export function postinstHook(command: string): string {
  return `#!/bin/sh
# ${MARKER}
# Rebuilds kexec-ts' kdump capture initramfs for a newly installed kernel.
[ -n "$1" ] || exit 0
${command} kdump rebuild --kernel-version "$1" || echo "kexec-ts kdump: could not build the capture initramfs for $1 (kexec-ts kdump status says why)" >&2
exit 0
`;
}

function postrmHook(stateDir: string): string {
  return `#!/bin/sh
# ${MARKER}
# Removes kexec-ts' kdump capture initramfs of a removed kernel.
[ -n "$1" ] || exit 0
rm -f "${stateDir}/initrd-$1.img" "${stateDir}/initrd-$1.json"
exit 0
`;
}

/** systemd's kernel-install calls install.d plugins as `PLUGIN add|remove VERSION ...`. */
function kernelInstallPlugin(command: string, stateDir: string): string {
  return `#!/bin/sh
# ${MARKER}
case "$1" in
  add) ${command} kdump rebuild --kernel-version "$2" || echo "kexec-ts kdump: could not build the capture initramfs for $2" >&2 ;;
  remove) rm -f "${stateDir}/initrd-$2.img" "${stateDir}/initrd-$2.json" ;;
esac
exit 0
`;
}

export interface InstallResult {
  written: string[];
  kept: string[];
  systemctl: string[];
}

function write(path: string, text: string, mode: number, out: InstallResult): void {
  makeDirectories(dirname(path));
  writeFileSync(path, text);
  chmodSync(path, mode);
  out.written.push(path);
}

function systemctl(args: string[], out: InstallResult, enabled: boolean): void {
  if (!enabled) return;
  const r = spawnSync("systemctl", args, { encoding: "utf8" });
  out.systemctl.push(`systemctl ${args.join(" ")}: ${r.error ? r.error.message : r.status === 0 ? "ok" : (r.stderr || `exit ${r.status}`).trim()}`);
}

export function install(paths: KdumpPaths, options: { systemctl: boolean; now: boolean }): InstallResult {
  const out: InstallResult = { written: [], kept: [], systemctl: [] };
  const command = selfCommand();
  for (const [name, text] of Object.entries(unitFiles(command))) write(join(paths.unitDir, name), text, 0o644, out);
  write(join(paths.postinstDir, "zz-kexec-ts-kdump"), postinstHook(command), 0o755, out);
  write(join(dirname(paths.postinstDir), "postrm.d", "zz-kexec-ts-kdump"), postrmHook(paths.stateDir), 0o755, out);
  write(join(paths.kernelInstallDir, "85-kexec-ts-kdump.install"), kernelInstallPlugin(command, paths.stateDir), 0o755, out);
  if (existsSync(paths.config)) out.kept.push(paths.config);
  else write(paths.config, formatConfig(defaultConfig()), 0o644, out);
  systemctl(["daemon-reload"], out, options.systemctl);
  systemctl(["enable", ...(options.now ? ["--now"] : []), REPORT_UNIT, ARM_UNIT], out, options.systemctl);
  return out;
}

export function uninstall(paths: KdumpPaths, options: { systemctl: boolean }): InstallResult {
  const out: InstallResult = { written: [], kept: [], systemctl: [] };
  systemctl(["disable", "--now", ARM_UNIT, REPORT_UNIT], out, options.systemctl);
  const files = [
    join(paths.unitDir, ARM_UNIT), join(paths.unitDir, REPORT_UNIT), join(paths.postinstDir, "zz-kexec-ts-kdump"),
    join(dirname(paths.postinstDir), "postrm.d", "zz-kexec-ts-kdump"), join(paths.kernelInstallDir, "85-kexec-ts-kdump.install"),
  ];
  for (const f of files) {
    if (!existsSync(f)) continue;
    // Only what install wrote: a file without the marker is someone else's.
    if (!readFileSync(f, "utf8").includes(MARKER)) {
      out.kept.push(f);
      continue;
    }
    rmSync(f);
    out.written.push(f);
  }
  systemctl(["daemon-reload"], out, options.systemctl);
  // The config and the dumps are the user's: kept.
  if (existsSync(paths.config)) out.kept.push(paths.config);
  return out;
}
