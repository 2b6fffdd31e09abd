/**
 * What a kexec'd kernel needs to keep EFI runtime services, as the running kernel publishes it
 * (CONFIG_EFI_RUNTIME_MAP): /sys/firmware/efi/runtime-map/N/ describes each region the firmware
 * needs at runtime, with the virtual address the first kernel mapped it at (SetVirtualAddressMap
 * can be called only once, so every later kernel must keep those addresses), and
 * /sys/firmware/efi/{fw_vendor,runtime,config_table} and the SMBIOS line of systab give the
 * pointers the EFI system table held before it was converted.
 */
import { KexecError } from "../errors.js";
import { parseHex, singleValue } from "./text.js";

/** One efi_memory_desc_t of the runtime map. */
export interface EfiRuntimeRegion {
  type: number;
  physAddr: bigint;
  virtAddr: bigint;
  numPages: bigint;
  attribute: bigint;
}

/** The files of one runtime-map entry, in the order the kernel lists them. */
export const EFI_RUNTIME_MAP_FILES = ["type", "phys_addr", "virt_addr", "num_pages", "attribute"] as const;
type RuntimeMapFile = (typeof EFI_RUNTIME_MAP_FILES)[number];

const HINT = "the kernel prints these as 0x-prefixed hex (drivers/firmware/efi/runtime-map.c); re-take the snapshot";

/** Entries in index order; each maps a file name to its text. `where` names the directory in errors. */
export function parseEfiRuntimeMap(entries: { index: string; files: Partial<Record<RuntimeMapFile, string>> }[], where = "/sys/firmware/efi/runtime-map"): EfiRuntimeRegion[] {
  return entries.map(({ index, files }) => {
    const value = (f: RuntimeMapFile): bigint => {
      const text = files[f];
      if (text === undefined) {
        // The kernel makes an entry's files together: one gone is a damaged copy (65), as in the firmware memmap.
        throw new KexecError("parse", `${where}/${index}/${f}: missing, but ${where}/${index} has other files`, { file: `${where}/${index}/${f}`, field: f, expected: EFI_RUNTIME_MAP_FILES.join(", ") },
          "a runtime-map entry has type, phys_addr, virt_addr, num_pages and attribute (drivers/firmware/efi/runtime-map.c); re-take the snapshot");
      }
      const v = parseHex(singleValue(text));
      if (v === undefined) throw new KexecError("parse", `${where}/${index}/${f}: expected a hex number, found ${JSON.stringify(singleValue(text))}`, { file: `${where}/${index}/${f}`, expected: "0x...", actual: singleValue(text) }, HINT);
      return v;
    };
    return { type: Number(value("type")), physAddr: value("phys_addr"), virtAddr: value("virt_addr"), numPages: value("num_pages"), attribute: value("attribute") };
  });
}

/** The "SMBIOS=0x..." line of /sys/firmware/efi/systab (the SMBIOS 2 entry point), if any. */
export function parseEfiSystabSmbios(text: string): bigint | null {
  for (const line of text.split("\n")) {
    const m = /^SMBIOS=(0x[0-9a-fA-F]+)\s*$/.exec(line.trim());
    if (m) return BigInt(m[1]!);
  }
  return null;
}
