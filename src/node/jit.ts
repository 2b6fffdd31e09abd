/**
 * bin/kexec-ts.cjs starts the short commands (check, plan, machine, kexec's actions) without V8's
 * optimising compiler: they end before its code would pay for itself. Work inside them that
 * turns out to be long, JavaScript decompression of a whole kernel, turns it back on first.
 */
import { setFlagsFromString } from "node:v8";

/** V8 10 (Node 18) has --opt, V8 11 (Node 20) as an alias of --turbofan: the versions the bin chooses for. */
const V8_MAJOR = Number(process.versions.v8.split(".")[0]);

/**
 * TurboFan on from here: functions that get hot from now on are optimised as usual. Inflating a
 * 60 MB vmlinux.gz took 2.3 s on the baseline compiler, 0.3 s with it. A no-op where it is on.
 */
export function optimisingCompilerOn(): void {
  if (V8_MAJOR === 10 || V8_MAJOR === 11) setFlagsFromString("--opt");
}
