/**
 * V8's flags as bin/kexec-ts.cjs set them after start, changed or set again later on. The bin
 * starts the short commands (check, plan, machine, kexec's actions) without V8's optimising
 * compiler: they end before its code would pay for itself. Work inside them that turns out to be
 * long, JavaScript decompression of a whole kernel, turns it back on first. And it keeps V8's
 * young generation from growing, which a worker thread's start undoes.
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

/**
 * The young generation kept at its size again, where the bin kept it so (bin/kexec-ts.cjs:
 * --semi-space-growth-factor=1, set after start). Starting a worker thread makes V8 enforce its
 * flags' implications again, and one of them raises that factor back to 2: with a worker, the
 * main thread's young generation then doubled during a save as before, and a 16 GiB -d 1 save
 * peaked at 94-100 MiB where a 1 GiB one peaked at 83; at 85-89 MiB with this (stop 40).
 * Called once the workers have said they are ready: a worker's isolate is made on its own
 * thread, and one still being made would raise the factor again.
 */
export function youngGenerationKeptAgain(): void {
  if ((globalThis as Record<symbol, unknown>)[Symbol.for("kexec-ts.semi-space-growth")] !== 1) return;
  setFlagsFromString("--semi-space-growth-factor=1");
}
