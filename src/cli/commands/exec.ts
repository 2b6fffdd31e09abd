/**
 * `kexec-ts -e`: jump to the loaded kernel. Under systemd as PID 1, `systemctl
 * kexec` stops services and unmounts file systems first; the bare reboot
 * syscall is for --force (as kexec -f) and for minimal systems such as an
 * initramfs. systemd's own shutdown runs `kexec -e` as its last step, with
 * systemd-shutdown as PID 1, which is not "systemd": that path jumps directly.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { KexecError } from "../../core/errors.js";
import { readMachine } from "../../node/machine.js";
import { rebootIntoKexec } from "../../node/syscalls.js";
import { errnoContext } from "../errno-context.js";
import { has, type ParsedArgs } from "../options.js";
import { machineRoot } from "../request.js";

export async function run(args: ParsedArgs): Promise<number> {
  const machine = await readMachine(machineRoot(args));
  if (machine.kexec.loaded === false) {
    throw new KexecError("usage", "nothing has been loaded: /sys/kernel/kexec_loaded is 0", { file: "/sys/kernel/kexec_loaded", expected: "1", actual: "0" }, "load a kernel first with kexec-ts -l IMAGE");
  }
  if (!has(args, "force") && !has(args, "root") && pidOneIsSystemd()) {
    const r = spawnSync("systemctl", ["kexec"], { stdio: "inherit" });
    if (r.error) throw new KexecError("syscall", `systemctl kexec could not run: ${r.error.message}`, { call: "systemctl kexec" }, "use kexec-ts -e --force to jump without systemd", { cause: r.error });
    return r.status ?? 1;
  }
  rebootIntoKexec(errnoContext(machine), { sync: !has(args, "no-sync") });
}

function pidOneIsSystemd(): boolean {
  try {
    return readFileSync("/proc/1/comm", "utf8").trim() === "systemd";
  } catch {
    return false;
  }
}
