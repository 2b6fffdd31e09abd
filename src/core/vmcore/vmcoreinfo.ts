/**
 * VMCOREINFO: the "KEY=value\n" text the crashed kernel leaves in its ELF note
 * (kernel/crash_core.c, arch/x86/kernel/crash_core_64.c). SYMBOL/SIZE/OFFSET/
 * LENGTH/NUMBER entries are what lets a reader walk kernel structures without
 * debug info; everything here keeps the kernel's spelling of the keys.
 */
import { KexecError } from "../errors.js";

export interface VmcoreInfo {
  /** The raw text, kept verbatim: the kdump writer copies it into its sub header. */
  text: string;
  osRelease: string | undefined;
  buildId: string | undefined;
  pageSize: number | undefined;
  /** PAGESIZE as written, where there is one: a value that is not a number leaves pageSize undefined. */
  pageSizeText?: string;
  /** KERNELOFFSET: the KASLR slide of the kernel text (0 without KASLR). */
  kernelOffset: bigint | undefined;
  /** CRASHTIME: seconds since the epoch when the kernel panicked. */
  crashTime: bigint | undefined;
  symbols: Map<string, bigint>;
  sizes: Map<string, number>;
  offsets: Map<string, number>;
  lengths: Map<string, bigint>;
  /** NUMBER(x) values are signed in the kernel (PAGE_BUDDY_MAPCOUNT_VALUE=-129). */
  numbers: Map<string, bigint>;
  /** Every other KEY=value line. */
  other: Map<string, string>;
  /** SYMBOL(x)=... and the like whose value is not a number, as written: told apart from a key that is absent. */
  malformed?: Map<string, string>;
}

const KEYED = /^(SYMBOL|SIZE|OFFSET|LENGTH|NUMBER)\((.+)\)$/;

export function parseVmcoreInfo(text: string): VmcoreInfo {
  const info: VmcoreInfo = {
    text, osRelease: undefined, buildId: undefined, pageSize: undefined, kernelOffset: undefined, crashTime: undefined,
    symbols: new Map(), sizes: new Map(), offsets: new Map(), lengths: new Map(), numbers: new Map(), other: new Map(), malformed: new Map(),
  };
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1).trim();
    const keyed = KEYED.exec(key);
    if (keyed) {
      const kind = keyed[1]!;
      const name = keyed[2]!;
      // SYMBOL and KERNELOFFSET are printed with %lx (hex, no prefix); the rest with %lu/%ld.
      const parsed = kind === "SYMBOL" ? setIf(info.symbols, name, parseHex(value))
        : kind === "SIZE" ? setIf(info.sizes, name, parseSmall(value))
          : kind === "OFFSET" ? setIf(info.offsets, name, parseSmall(value))
            : kind === "LENGTH" ? setIf(info.lengths, name, parseDec(value))
              : setIf(info.numbers, name, parseDec(value));
      if (!parsed) info.malformed!.set(key, value);
      continue;
    }
    switch (key) {
      case "OSRELEASE": info.osRelease = value; break;
      case "BUILD-ID": info.buildId = value; break;
      case "PAGESIZE": info.pageSize = parseSmall(value); info.pageSizeText = value; break;
      case "KERNELOFFSET": info.kernelOffset = parseHex(value); break;
      case "CRASHTIME": info.crashTime = parseDec(value); break;
      default: info.other.set(key, value);
    }
  }
  return info;
}

/** Whether there was a value to set. */
function setIf<T>(map: Map<string, T>, key: string, value: T | undefined): boolean {
  if (value !== undefined) map.set(key, value);
  return value !== undefined;
}

function parseHex(value: string): bigint | undefined {
  return /^(0x)?[0-9a-f]+$/i.test(value) ? BigInt(value.startsWith("0x") ? value : `0x${value}`) : undefined;
}

function parseDec(value: string): bigint | undefined {
  return /^-?[0-9]+$/.test(value) ? BigInt(value) : undefined;
}

function parseSmall(value: string): number | undefined {
  const v = parseDec(value);
  return v === undefined ? undefined : Number(v);
}

/** No kernel structure a reader walks is this big (pglist_data, the largest, is ~170 KiB). */
const MAX_STRUCT_SIZE = 1 << 24;

/** Typed accessors that fail with the key that is missing, so "dmesg needs OFFSET(prb_desc.state_var)" is the message. */
export class VmcoreInfoView {
  constructor(readonly info: VmcoreInfo, readonly purpose: string) {}

  private missing(key: string): KexecError {
    const written = this.info.malformed?.get(key);
    if (written !== undefined) {
      return new KexecError("parse", `VMCOREINFO's ${key}=${written} is not a number, so ${this.purpose} cannot use it`, { field: key, expected: key.startsWith("SYMBOL(") ? "a hexadecimal address" : "a decimal number", actual: written },
        "the VMCOREINFO note is damaged; makedumpfile -d 1 or an ELF dump without page filtering may still save the memory");
    }
    return new KexecError("parse", `VMCOREINFO has no ${key}, which ${this.purpose} needs`, { field: key, expected: key, actual: "absent" },
      "the crashed kernel is older or configured differently than this reader expects; makedumpfile may still read it");
  }
  symbol(name: string): bigint {
    const v = this.info.symbols.get(name);
    if (v === undefined) throw this.missing(`SYMBOL(${name})`);
    return v;
  }
  size(name: string): number {
    const v = this.info.sizes.get(name);
    if (v === undefined) throw this.missing(`SIZE(${name})`);
    if (!(v > 0 && v <= MAX_STRUCT_SIZE)) throw this.impossible(`SIZE(${name})`, v, `between 1 and ${MAX_STRUCT_SIZE}`);
    return v;
  }
  /**
   * OFFSET(struct.field), checked to leave `width` bytes inside SIZE(struct): readers index
   * buffers of SIZE(struct) bytes with it, so a damaged value must stop here, named.
   */
  member(struct: string, field: string, width: number): number {
    const at = this.offset(`${struct}.${field}`);
    const size = this.size(struct);
    if (!(at >= 0 && at + width <= size)) throw this.impossible(`OFFSET(${struct}.${field})`, at, `0 to ${size - width} (SIZE(${struct}) is ${size}, the field ${width} bytes)`);
    return at;
  }
  /** Like member, for a field a reader can do without: undefined when absent, an error when impossible. */
  optionalMember(struct: string, field: string, width: number): number | undefined {
    return this.info.offsets.has(`${struct}.${field}`) ? this.member(struct, field, width) : undefined;
  }
  /** NUMBER(name), checked to lie in [min, max] (a shift, a count of bits). */
  numberIn(name: string, min: bigint, max: bigint): bigint {
    const v = this.number(name);
    if (v < min || v > max) throw this.impossible(`NUMBER(${name})`, v, `${min} to ${max}`);
    return v;
  }
  /** The error for a value no kernel writes. */
  impossible(key: string, value: number | bigint, expected: string): KexecError {
    return new KexecError("parse", `VMCOREINFO's ${key}=${value} is impossible (expected ${expected}), so ${this.purpose} cannot trust it`, { field: key, expected, actual: String(value) },
      "the VMCOREINFO note is damaged; makedumpfile -d 1 or an ELF dump without page filtering may still save the memory");
  }
  offset(name: string): number {
    const v = this.info.offsets.get(name);
    if (v === undefined) throw this.missing(`OFFSET(${name})`);
    return v;
  }
  number(name: string): bigint {
    const v = this.info.numbers.get(name);
    if (v === undefined) throw this.missing(`NUMBER(${name})`);
    return v;
  }
  length(name: string): bigint {
    const v = this.info.lengths.get(name);
    if (v === undefined) throw this.missing(`LENGTH(${name})`);
    return v;
  }
}
