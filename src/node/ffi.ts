/**
 * The FFI module koffi, loaded once and only when something calls C: commands that never do
 * (inspect, plan) must work where the native module is absent, e.g. another architecture.
 */
import { createRequire } from "node:module";
import { KexecError } from "../core/errors.js";

export type Koffi = typeof import("koffi");

let loaded: { koffi: Koffi } | { error: Error } | undefined;

function attempt(): { koffi: Koffi } | { error: Error } {
  if (!loaded) {
    try {
      loaded = { koffi: createRequire(import.meta.url)("koffi") as Koffi };
    } catch (e) {
      loaded = { error: e as Error };
    }
  }
  return loaded;
}

/** koffi, or undefined where it cannot be loaded (callers with another way to do the work). */
export function tryKoffi(): Koffi | undefined {
  const a = attempt();
  return "koffi" in a ? a.koffi : undefined;
}

/** koffi, or a KexecError saying why not (callers that need it). */
export function loadKoffi(): Koffi {
  const a = attempt();
  if ("koffi" in a) return a.koffi;
  throw new KexecError("syscall", `cannot load the FFI module koffi: ${a.error.message}`, {}, "reinstall kexec-ts with its dependencies (npm ci --omit=dev)");
}
