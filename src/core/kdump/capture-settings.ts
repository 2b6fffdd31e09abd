/**
 * What `kexec-ts kdump save` needs in the capture kernel, written into the capture initramfs
 * at build time (/etc/kexec-ts/capture.json): the capture kernel cannot read kdump.conf from a
 * root it may not mount, and the settings must be those the reservation was checked against.
 */
import { KexecError } from "../errors.js";
import type { CaptureMode, DumpCodec, FailureAction, FinalAction } from "./config.js";

export interface CaptureSettings {
  format: 1;
  /** kexec-ts version that built the initramfs. */
  builtBy: string;
  host: string;
  mode: CaptureMode;
  /** The target directory as Node sees it in the capture kernel. */
  target: string;
  /** The same directory in the running system, for messages. */
  targetInSystem: string;
  codec: DumpCodec;
  dumpLevel: number;
  keep: number;
  /** Bytes, as a decimal string (JSON numbers lose 64-bit values). */
  minFree: string;
  threads: number;
  failureAction: FailureAction;
  finalAction: FinalAction;
  /** The capture kernel's release. */
  kernelRelease: string;
}

export function parseCaptureSettings(text: string, file: string): CaptureSettings {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new KexecError("parse", `${file}: not JSON: ${(e as Error).message}`, { file }, "rebuild the capture initramfs: kexec-ts kdump rebuild");
  }
  const o = raw as Partial<CaptureSettings>;
  if (o === null || typeof o !== "object" || o.format !== 1 || typeof o.target !== "string" || typeof o.host !== "string" || typeof o.codec !== "string" || typeof o.dumpLevel !== "number") {
    throw new KexecError("parse", `${file}: not a kexec-ts capture settings file (format 1)`, { file, expected: "format 1" }, "rebuild the capture initramfs with this kexec-ts: kexec-ts kdump rebuild");
  }
  return o as CaptureSettings;
}
