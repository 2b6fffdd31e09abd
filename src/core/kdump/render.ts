/** The text view of `kdump estimate`. Pure. */
import { size, table } from "../format.js";
import { formatMemory } from "../machine/crashkernel.js";
import type { Estimate } from "./estimate.js";

export function renderEstimate(e: Estimate, crashSize: bigint | null): string {
  const rows = [["  what", "MiB", "from"]];
  for (const i of e.items) rows.push([`  ${i.what}`, (Number(i.bytes) / 2 ** 20).toFixed(1), i.source]);
  const verdict = crashSize === null
    ? "the reservation (/sys/kernel/kexec_crash_size) could not be read"
    : crashSize === 0n
      ? "nothing is reserved now"
      : crashSize >= e.total ? `the ${size(crashSize)} reserved now is enough (${size(crashSize - e.total)} to spare)` : `the ${size(crashSize)} reserved now is NOT enough`;
  return [
    "The capture environment needs:",
    table(rows, [false, true, false]),
    `  total ${size(e.total)}: crashkernel=${formatMemory(e.suggested)} (rounded up to 16 MiB); ${verdict}`,
  ].join("\n");
}
