/**
 * /sys/firmware/memmap/N/{start,end,type} (drivers/firmware/memmap.c): the
 * memory map as the firmware handed it over, before the kernel edits it with
 * mem=, memmap= or its own reservations. kexec-tools prefers it for that reason.
 */
import { MAX_U64, inFile, valueError, parseHex, singleValue } from "./text.js";
import { KexecError } from "../errors.js";

export interface MemoryRange {
  start: bigint;
  size: bigint;
  /** As the kernel names it: "System RAM", "Reserved", "ACPI Tables", ... */
  type: string;
}

export interface FirmwareMemmapFiles {
  /** The N of /sys/firmware/memmap/N, kept for messages. */
  index: string;
  start: string;
  end: string;
  type: string;
}

const HINT = "the firmware memmap files hold one \"0x...\" value each; re-read them from /sys/firmware/memmap";

/** Parses one sysfs address file ("0x9fbff\n"); `field` names it in the error. */
export function parseMemmapAddress(text: string, field: string): bigint {
  const value = parseHex(singleValue(text));
  if (value === undefined) {
    const err = valueError(singleValue(text), "a 64-bit hex address like 0x9fbff", HINT);
    throw new KexecError(err.code, err.message, { ...err.data, field }, err.hint);
  }
  return value;
}

/** Entries sorted by start; `end` files are inclusive and become half-open here. */
export function parseFirmwareMemmap(entries: FirmwareMemmapFiles[], dir = "/sys/firmware/memmap"): MemoryRange[] {
  const ranges = entries.map((e) => {
    const start = inFile(() => `${dir}/${e.index}/start`, () => parseMemmapAddress(e.start, "start"));
    const last = inFile(() => `${dir}/${e.index}/end`, () => parseMemmapAddress(e.end, "end"));
    if (last < start) {
      throw new KexecError(
        "parse",
        `line 1: expected an end >= start 0x${start.toString(16)} (from ${dir}/${e.index}/start), found 0x${last.toString(16)}`,
        { line: 1, field: "end", expected: `>= 0x${start.toString(16)}`, actual: `0x${last.toString(16)}` },
        HINT,
      ).inFile(`${dir}/${e.index}/end`);
    }
    // The kernel's entries have a 64-bit size: all of [0, 2^64) is none of them.
    if (last - start + 1n > MAX_U64) {
      throw new KexecError(
        "parse",
        `line 1: expected an end below 0x${MAX_U64.toString(16)} for a range from 0 (its size must fit 64 bits, as in the e820 table), found 0x${last.toString(16)}`,
        { line: 1, field: "end", expected: `< 0x${MAX_U64.toString(16)}`, actual: `0x${last.toString(16)}` },
        HINT,
      ).inFile(`${dir}/${e.index}/end`);
    }
    // The kernel names every entry's type (e820 names: "System RAM", "Reserved"...); an empty one
    // is a damaged copy, and taken as it is it counted the range as no kind of memory.
    const type = singleValue(e.type);
    if (type === "") {
      const err = valueError(type, 'the name of a memory type such as "System RAM" or "Reserved"', "the kernel writes each entry's type by name; re-read them from /sys/firmware/memmap");
      throw new KexecError(err.code, err.message, { ...err.data, field: "type" }, err.hint).inFile(`${dir}/${e.index}/type`);
    }
    return { start, size: last - start + 1n, type };
  });
  return ranges.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}
