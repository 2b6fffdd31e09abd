/**
 * Handing EFI runtime services to a kernel loaded with kexec_load. The firmware's runtime
 * regions were given virtual addresses once (SetVirtualAddressMap can be called only once per
 * boot), so the next kernel must map them where the first one did and find the tables without
 * the boot-time system table. What it needs, as kexec-tools and the kernel's own
 * kexec_file_load pass it (arch/x86/kernel/kexec-bzimage64.c setup_efi_state):
 *
 *   - boot_params.efi_info: the loader signature and the system table address from the running
 *     kernel's boot_params, and efi_memmap pointing at the runtime map
 *     (/sys/firmware/efi/runtime-map, one efi_memory_desc_t per region);
 *   - a SETUP_EFI setup_data node (struct efi_setup_data): fw_vendor, runtime, the configuration
 *     table and SMBIOS addresses from /sys/firmware/efi.
 *
 * Only an image with XLF_EFI_KEXEC understands that hand-over. Without it, or when the running
 * kernel publishes no runtime map, the new kernel boots with EFI but without runtime services:
 * no efivars, no efibootmgr. The rule `efi-runtime` says so before anything is loaded.
 */
import { defineLayout, field, writeStruct } from "../bytes/layout.js";
import { hex } from "../format.js";
import type { BzImage } from "../image/bzimage.js";
import { XLF_EFI_KEXEC } from "../image/setup-header.js";
import type { EfiRuntimeRegion } from "../machine/efi.js";
import type { Machine } from "../machine/model.js";

/** efi_memory_desc_t (include/linux/efi.h): one region of the runtime map, as efi_info.efi_memmap lists them. */
export const EFI_MEMORY_DESC = defineLayout("efi_memory_desc_t", 40, "little", [
  field("type", 0, 4, "uint"),
  field("phys_addr", 8, 8, "u64"),
  field("virt_addr", 16, 8, "u64"),
  field("num_pages", 24, 8, "u64"),
  field("attribute", 32, 8, "u64"),
]);

/** struct efi_setup_data (arch/x86/include/asm/efi.h), the data of a SETUP_EFI node; reserved[8] follows. */
export const EFI_SETUP_DATA = defineLayout("struct efi_setup_data", 96, "little", [
  field("fw_vendor", 0, 8, "u64"),
  // The runtime services table: read by kernels before 5.7, `__unused` since.
  field("runtime", 8, 8, "u64"),
  field("tables", 16, 8, "u64"),
  field("smbios", 24, 8, "u64"),
]);

/** The only efi_memory_desc_t version there is; kexec-tools refuses others too. */
export const EFI_MEMDESC_VERSION = 1;

export interface EfiHandoverData {
  /** efi_info as the new kernel gets it; efi_memmap is filled in where the map is placed. */
  loaderSignature: number;
  systab: bigint;
  memdescVersion: number;
  runtimeMap: EfiRuntimeRegion[];
  fwVendor: bigint;
  runtimeServices: bigint;
  configTable: bigint;
  smbios: bigint;
}

export type EfiHandover =
  | { kind: "not-efi"; reason: string }
  | { kind: "handover"; data: EfiHandoverData; reason: string }
  /** Booted through EFI, but the new kernel cannot keep runtime services: why not. */
  | { kind: "lost"; reason: string; remedy: string };

const LOST = "the new kernel boots without EFI runtime services: no /sys/firmware/efi/efivars (efibootmgr and efivar fail), no EFI variables, no EFI reset or RTC services; ACPI still works through acpi_rsdp_addr";

/** Whether and what a kexec_load hands on, from the machine model and the image. */
export function efiHandover(machine: Machine, bz: BzImage | undefined): EfiHandover {
  const efi = machine.efi;
  const bp = machine.bootParams?.efi ?? null;
  if (efi.booted !== true) return { kind: "not-efi", reason: efi.booted === false ? "not booted through EFI" : "whether the machine booted through EFI is unknown (no /sys in the snapshot)" };
  if (bz === undefined || (bz.xloadflags & XLF_EFI_KEXEC) === 0) {
    return { kind: "lost", reason: `the image does not set XLF_EFI_KEXEC (xloadflags ${hex(bz?.xloadflags ?? 0)}): it cannot take EFI runtime services over from a kexec; ${LOST}`, remedy: "load a kernel built with CONFIG_EFI (x86_64 bzImages set XLF_EFI_KEXEC)" };
  }
  if (efi.runtimeMap === null) {
    return { kind: "lost", reason: `the running kernel publishes no EFI runtime map (/sys/firmware/efi/runtime-map is missing: CONFIG_EFI_RUNTIME_MAP off, efi=noruntime, or this kernel was itself kexec'd without EFI runtime): ${LOST}`, remedy: "boot the running kernel with CONFIG_EFI_RUNTIME_MAP and without efi=noruntime, or accept a kernel without EFI runtime services" };
  }
  if (efi.runtimeMap.length === 0) return { kind: "lost", reason: `the EFI runtime map is empty: ${LOST}`, remedy: "check the firmware; a runtime map with no regions leaves nothing to hand on" };
  if (bp === null || bp.memmapSize === 0) {
    return { kind: "lost", reason: `the running kernel's boot_params (/sys/kernel/boot_params/data) carry no efi_info: ${LOST}`, remedy: "run kexec-ts where /sys/kernel/boot_params/data is readable (root, sysfs mounted)" };
  }
  if (bp.memdescVersion !== EFI_MEMDESC_VERSION) {
    return { kind: "lost", reason: `efi_info.efi_memdesc_version is ${bp.memdescVersion}, and only version ${EFI_MEMDESC_VERSION} descriptors are known: ${LOST}`, remedy: "report this machine: its firmware uses an EFI memory descriptor version nobody handles" };
  }
  const missing = (["fwVendor", "runtimeServices", "configTable"] as const).filter((k) => efi[k] === null);
  if (missing.length > 0) {
    const files: Record<(typeof missing)[number], string> = { fwVendor: "fw_vendor", runtimeServices: "runtime", configTable: "config_table" };
    return { kind: "lost", reason: `/sys/firmware/efi/${missing.map((k) => files[k]).join(", ")} missing: the EFI tables cannot be handed on; ${LOST}`, remedy: "boot the running kernel with CONFIG_EFI_RUNTIME_MAP (it publishes these files)" };
  }
  const signature = Number(machine.bootParams!.raw.efi_loader_signature);
  return {
    kind: "handover",
    reason: `the new kernel keeps EFI runtime services: efi_info from boot_params (${bp.loaderSignature}, system table ${hex(bp.systab)}), ${efi.runtimeMap.length} runtime regions from /sys/firmware/efi/runtime-map, SETUP_EFI with fw_vendor ${hex(efi.fwVendor!)} and tables ${hex(efi.configTable!)}`,
    data: {
      loaderSignature: signature,
      systab: bp.systab,
      memdescVersion: bp.memdescVersion,
      runtimeMap: efi.runtimeMap,
      fwVendor: efi.fwVendor!,
      runtimeServices: efi.runtimeServices!,
      configTable: efi.configTable!,
      smbios: efi.smbios ?? 0n,
    },
  };
}

/** The runtime map as the array of efi_memory_desc_t that efi_info.efi_memmap points at. */
export function encodeRuntimeMap(regions: readonly EfiRuntimeRegion[]): Uint8Array {
  const out = new Uint8Array(regions.length * EFI_MEMORY_DESC.size);
  regions.forEach((r, i) => writeStruct(EFI_MEMORY_DESC, out, i * EFI_MEMORY_DESC.size, { type: r.type, phys_addr: r.physAddr, virt_addr: r.virtAddr, num_pages: r.numPages, attribute: r.attribute }));
  return out;
}

/** struct efi_setup_data, the payload of the SETUP_EFI node. */
export function encodeEfiSetupData(d: EfiHandoverData): Uint8Array {
  const out = new Uint8Array(EFI_SETUP_DATA.size);
  writeStruct(EFI_SETUP_DATA, out, 0, { fw_vendor: d.fwVendor, runtime: d.runtimeServices, tables: d.configTable, smbios: d.smbios });
  return out;
}
