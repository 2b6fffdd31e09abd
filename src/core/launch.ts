/**
 * How Node is started to run kexec-ts: options that only count if Node is given them when it
 * starts. bin/kexec-ts.cjs carries them in its #! line (`env -S`, coreutils 8.30 and later); the
 * places that start Node themselves (the capture kernel's init, the lab's guests, the bench)
 * take them from here, and a test holds the #! line to them.
 *
 * `--v8-pool-size=1`: V8's platform starts four threads for garbage collection and the optimising
 * compiler on any machine, and each touches its stack and a malloc arena of its own. One is
 * enough beside a save's own threads, which keep the cores busy: the peak RSS of saves fell by
 * 3-6 MiB (16 GiB -d 31 lzo 70 -> 65 MiB, 4 GiB -d 31 zlib with a worker 84 -> 78), their times
 * the same (stop 27, alternating runs). Capping glibc's arenas as well (MALLOC_ARENA_MAX=2) took
 * 1-2 MiB more, but zlib's compress2 allocates some 270 KiB per page: on a machine with many
 * cores, and a worker per core, the workers would queue for two arenas' locks.
 */
export const LAUNCH_NODE_FLAGS: readonly string[] = ["--v8-pool-size=1"];

/** The #! line of bin/kexec-ts.cjs. */
export function launcherShebang(): string {
  return `#!/usr/bin/env -S node ${LAUNCH_NODE_FLAGS.join(" ")}`;
}
