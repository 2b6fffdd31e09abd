/** The text view of `kdump estimate`. Pure. */
import { size, table } from "../format.js";
import { formatMemory } from "../machine/crashkernel.js";
import type { Estimate } from "./estimate.js";

const PHASE = { always: "", boot: "at boot", save: "saving" } as const;

export function renderEstimate(e: Estimate, crashSize: bigint | null): string {
  const rows = [["  what", "MiB", "when", "from"]];
  for (const i of e.items) rows.push([`  ${i.what}`, (Number(i.bytes) / 2 ** 20).toFixed(1), PHASE[i.phase], i.source]);
  const verdict = crashSize === null
    ? "the reservation (/sys/kernel/kexec_crash_size) could not be read"
    : crashSize === 0n
      ? "nothing is reserved now"
      : crashSize >= e.total ? `the ${size(crashSize)} reserved now is enough (${size(crashSize - e.total)} to spare)` : `the ${size(crashSize)} reserved now is NOT enough`;
  return [
    "The capture environment needs (the larger of the two moments, at boot and while saving, counts):",
    table(rows, [false, true, false, false]),
    `  total ${size(e.total)}, the peak ${e.peak === "boot" ? "at boot, while the initramfs is unpacked" : "while saving"}: crashkernel=${formatMemory(e.suggested)} (rounded up to 16 MiB); ${verdict}`,
  ].join("\n");
}
