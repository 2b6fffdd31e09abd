/** Formatting shared by every renderer: hex the way the kernel prints it, sizes with binary units. */

export function hex(value: bigint | number, width = 0): string {
  const v = typeof value === "bigint" ? value : BigInt(value);
  const digits = v.toString(16);
  return `0x${digits.padStart(width, "0")}`;
}

/** Parse "0x1f", "31", or a bigint-valued string; undefined when it is not a number. */
export function parseNumber(text: string): bigint | undefined {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return BigInt(t);
  if (/^[0-9]+$/.test(t)) return BigInt(t);
  return undefined;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] as const;

/** 0x10000000 → "256 MiB"; exact multiples print without decimals. */
export function size(bytes: bigint | number): string {
  let v = typeof bytes === "bigint" ? bytes : BigInt(bytes);
  let unit = 0;
  while (unit < UNITS.length - 1 && v >= 1024n && v % 1024n === 0n) {
    v /= 1024n;
    unit++;
  }
  if (v >= 1024n && unit < UNITS.length - 1) {
    // Not an exact multiple: one decimal of the next unit up is easier to read than 1234567 B.
    const base = typeof bytes === "bigint" ? bytes : BigInt(bytes);
    let u = 0;
    let div = 1n;
    while (u < UNITS.length - 1 && base >= div * 1024n) {
      div *= 1024n;
      u++;
    }
    const tenths = (base * 10n) / div;
    return `${tenths / 10n}.${tenths % 10n} ${UNITS[u]}`;
  }
  return `${v} ${UNITS[unit]}`;
}

/** Printable preview of bytes for error messages: hex plus the ASCII reading. */
export function describeBytes(bytes: Uint8Array, count = 16): string {
  const slice = bytes.subarray(0, Math.min(count, bytes.length));
  const hexPart = Array.from(slice, (b) => b.toString(16).padStart(2, "0")).join(" ");
  const ascii = Array.from(slice, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
  return `${hexPart} |${ascii}|`;
}

/** A parsed JSON value for error messages: its kind, and a short preview of a scalar. */
export function describeJsonValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "absent";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  const s = JSON.stringify(value);
  return `${typeof value} ${s.length > 40 ? `${s.slice(0, 40)}...` : s}`;
}

/** Render rows as aligned columns (first column left-aligned, others as given). */
export function table(rows: string[][], rightAlign: boolean[] = []): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (rightAlign[i] ? cell.padStart(widths[i] ?? 0) : i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  "),
    )
    .join("\n");
}
