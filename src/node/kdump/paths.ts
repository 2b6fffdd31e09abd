/**
 * Where the kdump service keeps things. Persistent state lives in /var/lib (never in /boot,
 * which may be read-only or shared, and never touching the host's own initrd); what holds for
 * one boot only lives in /run. Tests pass another prefix.
 */
import { join } from "node:path";

export interface KdumpPaths {
  config: string;
  /** The config was named on the command line (--config): missing, it is an error, not the defaults. */
  configGiven?: boolean;
  /** Capture initramfs images, their manifests, the pending test, what was reported. */
  stateDir: string;
  /** This boot's arming result (tmpfs: gone after a reboot). */
  runState: string;
  /** systemd units and the kernel hooks. */
  unitDir: string;
  postinstDir: string;
  kernelInstallDir: string;
}

export function kdumpPaths(prefix = "/"): KdumpPaths {
  return {
    config: join(prefix, "etc/kexec-ts/kdump.conf"),
    stateDir: join(prefix, "var/lib/kexec-ts/kdump"),
    runState: join(prefix, "run/kexec-ts/kdump.json"),
    unitDir: join(prefix, "etc/systemd/system"),
    postinstDir: join(prefix, "etc/kernel/postinst.d"),
    kernelInstallDir: join(prefix, "etc/kernel/install.d"),
  };
}

export const initrdPath = (p: KdumpPaths, release: string): string => join(p.stateDir, `initrd-${release}.img`);
export const manifestPath = (p: KdumpPaths, release: string): string => join(p.stateDir, `initrd-${release}.json`);
export const testStatePath = (p: KdumpPaths): string => join(p.stateDir, "test.json");
/** Which dumps of a target were reported: kept with the dumps, since it is about them. */
export const reportedPath = (target: string): string => join(target, ".kexec-ts-reported.json");
export const bootStatePath = (p: KdumpPaths): string => join(p.stateDir, "last-boot.json");
