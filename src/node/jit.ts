/**
 * bin/kexec-ts.cjs starts the short commands (check, plan, machine, kexec's actions) without V8's
 * optimising compiler: they end before its code would pay for itself. Work inside them that
 * turns out to be long, JavaScript decompression of a whole kernel, turns it back on first.
 */
import { setFlagsFromString } from "node:v8";

/**
 * TurboFan on from here: functions that get hot from now on are optimised as usual. Inflating a
 * 60 MB vmlinux.gz took 2.3 s on the baseline compiler, 0.3 s with it. Only where the bin turned
 * it off (it records its choice, and knows which V8s have --opt); a no-op otherwise, as when
 * dist/cli/main.js runs without the bin.
 */
export function optimisingCompilerOn(): void {
  const chosen = (globalThis as Record<symbol, unknown>)[Symbol.for("kexec-ts.jit")];
  if (chosen !== "baseline") return;
  setFlagsFromString("--opt");
  (globalThis as Record<symbol, unknown>)[Symbol.for("kexec-ts.jit")] = "full";
}
