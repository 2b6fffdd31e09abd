/** `kexec-ts vmcore save | info | dmesg`: arguments in, the Node driver (node/vmcore) and the core's renderers out. */
import { EXIT_STATUS, KexecError, isKexecError } from "../../core/errors.js";
import { size } from "../../core/format.js";
import { formatDmesg, readLockless } from "../../core/vmcore/dmesg.js";
import type { DumpCodec } from "../../core/vmcore/dump-writer.js";
import { renderVmcoreSummary, summarizeVmcore } from "../../core/vmcore/info.js";
import { vmcoreKernelMemory } from "../../core/vmcore/vmcore.js";
import { openVmcoreWithSystemCodecs } from "../../node/vmcore/open.js";
import { outputName } from "../../node/files.js";
import { openRandomAccess } from "../../node/vmcore/file.js";
import { saveVmcoreTo, type SaveOptions, type SaveResult } from "../../node/vmcore/save.js";
import { has, value, type ParsedArgs } from "../options.js";

const USAGE = "kexec-ts vmcore save [--format kdump|elf|flat] [--compress zlib|lzo|snappy|zstd|none] [--dump-level N] [--threads N] SRC DST\n" +
  "       kexec-ts vmcore info FILE [--json]\n       kexec-ts vmcore dmesg FILE [--json]";

const FORMATS = ["kdump", "elf", "flat"] as const;
const CODECS: readonly DumpCodec[] = ["zlib", "lzo", "snappy", "zstd", "none"];

export function parseSaveOptions(args: ParsedArgs, files: string[]): SaveOptions {
  const list = [...files];
  let level = value(args, "dump-level");
  // `-d` is kexec-tools' --debug in the shared flag table, so `-d 31` arrives as --debug plus a positional.
  if (level === undefined && has(args, "debug") && list.length === 3 && /^[0-9]+$/.test(list[0]!)) level = list.shift();
  const [src, dst] = list;
  if (src === undefined || dst === undefined || list.length > 2) {
    throw new KexecError("usage", "vmcore save needs SRC and DST", { actual: list.join(" ") }, "kexec-ts vmcore save --dump-level 31 /proc/vmcore /var/crash/vmcore");
  }
  const format = value(args, "format") ?? "kdump";
  if (!(FORMATS as readonly string[]).includes(format)) throw new KexecError("usage", `--format ${format}: expected kdump, elf or flat`, { field: "format", actual: format }, "e.g. --format kdump");
  const codec = (value(args, "compress") ?? (format === "elf" ? "none" : "zlib")) as DumpCodec;
  if (!CODECS.includes(codec)) throw new KexecError("usage", `--compress ${codec}: expected zlib, lzo, snappy, zstd or none`, { field: "compress", actual: codec }, "e.g. --compress zlib");
  if (format === "elf" && codec !== "none") throw new KexecError("usage", "the ELF format stores pages uncompressed", { field: "compress", actual: codec }, "use --format kdump to compress");
  const dumpLevel = parseDumpLevel(level ?? "31", "dump-level");
  const threadsText = value(args, "threads");
  const threads = threadsText === undefined ? "auto" : Number(threadsText);
  if (threads !== "auto" && (!Number.isInteger(threads) || threads < 0 || threads > 256)) throw new KexecError("usage", `--threads ${threadsText}: expected 0..256 (0: compress in the main thread)`, { field: "threads" }, "e.g. --threads 4");
  return { src, dst, format: format === "elf" ? "elf" : "kdump", flat: format === "flat", codec, dumpLevel, threads, progress: process.stderr.isTTY === true, overwrite: has(args, "force") };
}

/** makedumpfile's -d: a bitmask 0..31. */
export function parseDumpLevel(text: string, field: string): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 31) throw new KexecError("usage", `dump level ${text}: expected 0..31 (makedumpfile's -d bitmask)`, { field, actual: text }, "e.g. -d 31, what the distro kdump services use");
  return n;
}

/** The one line a save ends with, on stderr. */
export function describeSave(opts: SaveOptions, result: SaveResult): string {
  const c = result.counts;
  const excluded = `excluded: ${c.zero} zero, ${c.cache} cache, ${c.cachePrivate} private cache, ${c.user} user, ${c.free} free, ${c.hwpoison} hwpoison pages`;
  if (result.complete) {
    const format = opts.flat ? `flattened ${opts.format}` : opts.format;
    return `kexec-ts: saved ${opts.dst === "-" ? "the dump to standard output" : outputName(opts.dst, result.file ?? opts.dst)} (${format}, ${opts.codec}, -d ${opts.dumpLevel}): ${result.pagesWritten} pages, ${size(result.bytesWritten)}; ${excluded}${result.syncSeconds === undefined ? "" : `; fsync ${result.syncSeconds.toFixed(2)} s`}\n`;
  }
  return `kexec-ts: the dump is INCOMPLETE: ${result.missing}\nkexec-ts: what was written is readable and marked incomplete in ${opts.dst === "-" ? "the stream" : result.file ?? `${opts.dst}.incomplete`}\n`;
}

export async function saveVmcore(opts: SaveOptions): Promise<number> {
  const result = await saveVmcoreTo(opts);
  process.stderr.write(describeSave(opts, result));
  return result.complete ? 0 : EXIT_STATUS.io;
}

export async function run(args: ParsedArgs, rest: string[]): Promise<number> {
  const [sub, ...files] = rest;
  if (sub === "save") return saveVmcore(parseSaveOptions(args, files));
  if (sub !== "info" && sub !== "dmesg") throw new KexecError("usage", `vmcore needs save, info or dmesg${sub ? `, not ${sub}` : ""}`, { actual: sub ?? "" }, USAGE);
  const path = files[0];
  if (path === undefined) throw new KexecError("usage", `vmcore ${sub} needs a FILE`, {}, USAGE);
  const file = openRandomAccess(path);
  try {
    const core = openVmcoreWithSystemCodecs(file, path);
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
  } catch (e) {
    // The readers of kernel structures (page tables, the ring buffer) never see the path.
    throw isKexecError(e) ? e.inFile(path) : e;
  } finally {
    file.close();
  }
}
