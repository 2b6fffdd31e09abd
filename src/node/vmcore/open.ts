/**
 * The one place Node opens a vmcore for reading: a kdump file's pages are decoded by the system's
 * codec libraries where they load (native-codecs.ts), by the JavaScript decoders where they do not
 * (no koffi, no liblzo2 in another distribution's capture initramfs, KEXEC_TS_NATIVE_CODECS=0).
 */
import { openVmcore, type Vmcore } from "../../core/vmcore/vmcore.js";
import type { RandomAccess } from "../../core/vmcore/memory.js";
import { systemPageDecoder } from "./native-codecs.js";

export function openVmcoreWithSystemCodecs(file: RandomAccess, what = "vmcore"): Vmcore {
  return openVmcore(file, what, { decodePage: systemPageDecoder() });
}
