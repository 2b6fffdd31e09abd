/** The human view of the machine model: what `kexec-ts machine` prints. */
import { hex, size, table } from "../format.js";
import { formatCrashkernel, formatMemory } from "./crashkernel.js";
import type { Machine, Span } from "./model.js";

/** CPU flags that matter for kexec; the full list is in --json. */
const INTERESTING_FLAGS = ["lm", "pae", "la57", "nx", "pdpe1gb", "pse", "hypervisor", "sme", "sev", "tdx_guest"];

const yesNo = (v: boolean | null, unknown = "unknown"): string => (v === null ? unknown : v ? "yes" : "no");
const range = (s: Span): string => `${hex(s.start, 16)}-${hex(s.start + s.size, 16)}`;

export function renderMachine(m: Machine): string {
  const out: string[] = [];
  const section = (title: string): void => {
    if (out.length > 0) out.push("");
    out.push(title);
  };

  section("Kernel");
  const paging = m.pagingLevels === null ? `unknown (${m.pagingEvidence})` : `${m.pagingLevels}-level (${m.pagingEvidence})`;
  const cpu = m.cpu;
  out.push(
    indent(
      table([
        ["release", m.kernelRelease ?? "unknown"],
        ["arch", m.kernelArch === null ? "unknown" : `${m.kernelArch} (${m.kernelArchEvidence})`],
        ["paging", paging],
        [
          "cpu",
          cpu === null
            ? "unknown"
            : `${cpu.modelName ?? cpu.vendor ?? "?"}, ${cpu.count} online` +
              (cpu.physicalBits === null ? "" : `, ${cpu.physicalBits}-bit physical / ${cpu.virtualBits}-bit virtual addresses`),
        ],
        ["cpu flags", cpu === null ? "unknown" : INTERESTING_FLAGS.map((f) => (cpu.flags.includes(f) ? f : `-${f}`)).join(" ")],
        ["cmdline", m.cmdline ?? "unknown"],
      ]),
    ),
  );

  section("kexec");
  const k = m.kexec;
  const crashkernel = m.crashkernel;
  let ckLine = "none on the command line";
  if (crashkernel?.error) ckLine = `invalid, the kernel ignored it: ${crashkernel.error.message}`;
  else if (crashkernel) {
    const forms = [
      crashkernel.spec.plain ? `crashkernel=${formatCrashkernel(crashkernel.spec.plain)}` : null,
      crashkernel.spec.high !== null ? `crashkernel=${formatMemory(crashkernel.spec.high)},high` : null,
      crashkernel.spec.low !== null ? `crashkernel=${formatMemory(crashkernel.spec.low)},low` : null,
      crashkernel.spec.cma !== null ? `crashkernel=${formatMemory(crashkernel.spec.cma)},cma` : null,
    ].filter((x) => x !== null);
    const r = crashkernel.resolution;
    const unresolved = m.memorySource === null ? "RAM size unknown, cannot resolve" : "the memory map lists no System RAM, cannot resolve";
    // A reason that starts with the one value there is names it already ("crashkernel=256M reserves 256M").
    const named = r !== null && forms.length === 1 && r.reason.startsWith(`${forms[0]} `);
    ckLine = `${named ? "" : `${forms.join(" ")}: `}${r === null ? unresolved : `${r.reason}${r.ok ? "" : " [not reserved]"}`}`;
  }
  out.push(
    indent(
      table([
        ["supported", k.supported === false ? "no (no /sys/kernel/kexec_loaded: kernel built without kexec)" : yesNo(k.supported)],
        ["loaded", yesNo(k.loaded)],
        ["crash loaded", yesNo(k.crashLoaded)],
        ["load disabled", yesNo(k.loadDisabled)],
        ["load limits", `panic ${limit(k.loadLimitPanic)}, reboot ${limit(k.loadLimitReboot)}`],
        ["crashkernel=", ckLine],
        ["crash size", k.crashSize === null ? "unknown" : size(k.crashSize)],
      ]),
    ),
  );
  if (m.crashRegions.length === 0) {
    out.push(`  crash regions: none${m.memorySource === "iomem" ? "" : " known (no readable /proc/iomem)"}`);
  } else {
    for (const r of m.crashRegions) out.push(`  >>> Crash kernel  ${range(r)}  ${size(r.size)}${r.start >= 1n << 32n ? "  (above 4G)" : ""}`);
  }

  section("Firmware and security");
  const bp = m.bootParams;
  out.push(
    indent(
      table([
        ["EFI boot", m.efi.booted === null ? "unknown (no sysfs)" : m.efi.booted ? `yes${m.efi.firmwareBits ? `, ${m.efi.firmwareBits}-bit firmware` : ""}` : "no (BIOS or direct boot)"],
        ["secure boot", m.secureBoot === null ? "unknown" : `${yesNo(m.secureBoot)} (${m.secureBootEvidence})`],
        ["lockdown", m.lockdown ?? "unknown"],
        [
          "boot_params",
          bp === null
            ? "unknown"
            : `protocol ${(bp.version >> 8).toString()}.${(bp.version & 0xff).toString().padStart(2, "0")}, loader ${hex(bp.typeOfLoader, 2)}, ` +
              `${bp.e820.length} e820 entries, acpi_rsdp_addr ${hex(bp.acpiRsdpAddr)}` +
              (bp.efi ? `, EFI ${bp.efi.loaderSignature} systab ${hex(bp.efi.systab)}` : ""),
        ],
        ["vmcoreinfo", m.vmcoreinfo === null ? "unknown" : `${hex(m.vmcoreinfo.address)} (${size(m.vmcoreinfo.size)})`],
        ["cpus", `possible ${cpuList(m.cpus.possible)}, present ${cpuList(m.cpus.present)}, crash notes on ${m.crashNotes.length}`],
      ]),
    ),
  );

  section(
    `Memory map (${m.memorySource === null ? "unknown" : { iomem: "/proc/iomem, top level", "firmware-memmap": "/sys/firmware/memmap", "boot-params-e820": "boot_params e820" }[m.memorySource]})`,
  );
  if (m.memory.length > 0) {
    const rows: string[][] = [["start", "end (exclusive)", "size", "type"]];
    for (const r of m.memory) {
      rows.push([hex(r.start, 16), hex(r.start + r.size, 16), size(r.size), r.type]);
      // Crash regions and the kernel image nest inside System RAM; show them under their parent.
      for (const c of m.crashRegions) {
        if (c.start >= r.start && c.start < r.start + r.size) rows.push([`  ${hex(c.start, 16)}`, hex(c.start + c.size, 16), size(c.size), ">>> Crash kernel <<<"]);
      }
    }
    out.push(indent(table(rows, [false, false, true, false])));
  }
  const totals = [
    m.systemRam === null ? null : `System RAM ${size(m.systemRam)}`,
    m.memTotal === null ? null : `MemTotal ${size(m.memTotal)}`,
  ].filter((x) => x !== null);
  if (totals.length > 0) out.push(`  ${totals.join(", ")}`);
  const img = m.kernelImage;
  const parts = (["code", "rodata", "data", "bss"] as const).filter((p) => img[p] !== null).map((p) => `${p} ${range(img[p]!)}`);
  if (parts.length > 0) out.push(`  kernel image: ${parts.join(", ")}`);

  if (m.facts.length > 0) {
    section("Not known (missing or unreadable)");
    out.push(indent(table(m.facts.map((f) => [f.path, f.meaning]))));
  }
  return `${out.join("\n")}\n`;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}

function limit(v: number | null): string {
  return v === null ? "n/a" : v < 0 ? "unlimited" : String(v);
}

function cpuList(cpus: number[] | null): string {
  if (cpus === null) return "unknown";
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    parts.push(i === j ? String(cpus[i]) : `${cpus[i]}-${cpus[j]}`);
    i = j + 1;
  }
  return parts.length === 0 ? "none" : parts.join(",");
}
