/**
 * The FFI module koffi, loaded once and only when something calls C: commands that never do
 * (inspect, plan) must work where the native module is absent, e.g. another architecture.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { KexecError } from "../core/errors.js";

export type Koffi = typeof import("koffi");

let loaded: { koffi: Koffi } | { error: Error } | undefined;

/**
 * koffi's native module for this Linux arch, required directly. koffi's index.js loads its
 * prebuild downloader first (https, zlib, crypto): tens of milliseconds natively, a second and
 * more in an emulated guest, on every load, and nothing of it is used here. The functions
 * kexec-ts calls are the native module's own (index.js only adds deprecated aliases), so
 * anywhere this does not apply (another platform, a version mismatch) the package is loaded whole.
 */
function loadNative(): Koffi {
  const require = createRequire(import.meta.url);
  const arch = process.arch === "x64" || process.arch === "ia32" ? process.arch : undefined;
  if (process.platform === "linux" && arch !== undefined) {
    try {
      const manifest = require.resolve("koffi/package.json");
      const native = require(join(dirname(manifest), "build", "koffi", `linux_${arch}`, "koffi.node")) as Koffi & { version?: string };
      if (native.version === (require(manifest) as { version: string }).version) return native;
    } catch {
      // Not where a prebuilt koffi puts it: the package finds its module itself.
    }
  }
  return require("koffi") as Koffi;
}

function attempt(): { koffi: Koffi } | { error: Error } {
  if (!loaded) {
    try {
      loaded = { koffi: loadNative() };
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

/**
 * V8 keeps the bytes of a typed array made with 64 bytes or less (V8_TYPED_ARRAY_MAX_SIZE_IN_HEAP)
 * inside its heap, where the garbage collector moves them: C must never be given their address.
 * Arrays over a buffer at least this big, or over an ArrayBuffer made on its own, are outside it.
 */
export const FIXED_MIN_BYTES = 128;

/** Whether C may be given the address of this array's bytes (they stay put while it lives). */
export function hasFixedAddress(bytes: Uint8Array | Uint32Array): boolean {
  return bytes.buffer.byteLength >= FIXED_MIN_BYTES;
}

/** The address of a typed array's bytes, its byteOffset included; they stay where they are while the array lives. */
export function fixedAddress(koffi: Koffi, bytes: Uint8Array | Uint32Array): number {
  if (!hasFixedAddress(bytes)) throw new RangeError(`a typed array over ${bytes.buffer.byteLength} bytes may move (V8 keeps it in its heap): no address for C`);
  return Number(koffi.address(bytes));
}

/** koffi, or a KexecError saying why not (callers that need it). */
export function loadKoffi(): Koffi {
  const a = attempt();
  if ("koffi" in a) return a.koffi;
  throw new KexecError("syscall", `cannot load the FFI module koffi: ${a.error.message}`, {}, "reinstall kexec-ts with its dependencies (npm ci --omit=dev)");
}
