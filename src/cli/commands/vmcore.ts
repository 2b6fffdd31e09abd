/** `kexec-ts vmcore save | info | dmesg`: the edges (files, terminal) around src/core/vmcore. */
import { KexecError } from "../../core/errors.js";
import { formatDmesg, readLockless } from "../../core/vmcore/dmesg.js";
import { renderVmcoreSummary, summarizeVmcore } from "../../core/vmcore/info.js";
import { openVmcore, vmcoreKernelMemory } from "../../core/vmcore/vmcore.js";
import { openRandomAccess } from "../../node/vmcore/file.js";
import { saveVmcore, parseSaveOptions } from "../../node/vmcore/save.js";
import { has, type ParsedArgs } from "../options.js";

const USAGE = "kexec-ts vmcore save [--format kdump|elf|flat] [--compress zlib|lzo|snappy|zstd|none] [--dump-level N] [--threads N] SRC DST\n" +
  "       kexec-ts vmcore info FILE [--json]\n       kexec-ts vmcore dmesg FILE [--json]";

export async function run(args: ParsedArgs, rest: string[]): Promise<number> {
  const [sub, ...files] = rest;
  if (sub === "save") return saveVmcore(parseSaveOptions(args, files));
  if (sub !== "info" && sub !== "dmesg") throw new KexecError("usage", `vmcore needs save, info or dmesg${sub ? `, not ${sub}` : ""}`, { actual: sub ?? "" }, USAGE);
  const path = files[0];
  if (path === undefined) throw new KexecError("usage", `vmcore ${sub} needs a FILE`, {}, USAGE);
  const file = openRandomAccess(path);
  try {
    const core = openVmcore(file, path);
    if (sub === "info") {
      const summary = summarizeVmcore(core);
      process.stdout.write(has(args, "json") ? `${JSON.stringify(summary, null, 2)}\n` : `${renderVmcoreSummary(summary, path)}\n`);
      return core.incomplete ? 1 : 0;
    }
    const records = readLockless(vmcoreKernelMemory(core), core.vmcoreinfo!);
    if (has(args, "json")) {
      process.stdout.write(`${JSON.stringify(records.map((r) => ({ seq: String(r.seq), tsNsec: String(r.tsNsec), callerId: r.callerId, text: r.text, truncated: r.truncated })), null, 2)}\n`);
    } else process.stdout.write(formatDmesg(records));
    return 0;
  } finally {
    file.close();
  }
}
