/**
 * What the parsers' fuzz tests share. The rule they check (STYLE.md): whatever bytes or text
 * come in, a reader either answers or throws a KexecError that says what is wrong; any other
 * exception (a RangeError from a DataView, a TypeError from a missing field, an allocation
 * failure) is a bug, and so is a KexecError with the code for a bug in kexec-ts. The inputs are
 * seeds (real files where there are some) with edits a damaged or hostile file would have:
 * bytes overwritten, fields set to boundary values, the file cut short.
 */
import fc from "fast-check";
import { KexecError } from "../errors.js";

/** Runs `read`; undefined when it answered or threw a KexecError that blames the input, else what escaped. */
export function escaped(read: () => unknown): string | undefined {
  try {
    read();
    return undefined;
  } catch (e) {
    if (e instanceof KexecError && (e.code as string) !== "internal" && e.message.length > 0) return undefined;
    return e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : `non-Error thrown: ${String(e)}`;
  }
}

/**
 * For fc.property bodies: throws with what escaped, so fast-check shrinks the input and reports
 * it. True when the input was refused with a KexecError: a test counts these to show its edits
 * reach the checks at all.
 */
export function onlyKexecErrors(read: () => unknown, what = "input"): boolean {
  try {
    read();
    return false;
  } catch (e) {
    const bug = escaped(() => { throw e; });
    if (bug !== undefined) throw new Error(`only a KexecError may escape, and for this ${what} this did: ${bug}`);
    return true;
  }
}

/**
 * Runs a property `runs` times over `arbitrary` (fast-check shrinks and reports what escaped)
 * and checks that at least a share `atLeast` of the inputs were refused: edits that never
 * reach a check prove nothing. `t` is the node:test context (its diagnostic line gives the count).
 */
export function refusals<T>(t: { diagnostic(message: string): void }, arbitrary: fc.Arbitrary<T>, runs: number, read: (input: T) => boolean, atLeast = 0.05): void {
  let refused = 0;
  fc.assert(fc.property(arbitrary, (input) => { if (read(input)) refused++; }), { numRuns: runs });
  t.diagnostic(`${refused} of ${runs} damaged inputs refused with a KexecError`);
  if (refused < runs * atLeast) throw new Error(`only ${refused} of ${runs} inputs were refused: the edits miss the fields the reader checks`);
}

/** One edit: a byte, or a little-endian field of 2, 4 or 8 bytes set to a value readers trip over. */
export type Edit = { at: number; size: 1 | 2 | 4 | 8; value: bigint };

const BOUNDARY = [0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n,
  0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0x1000n, 0xfffn, 0x40n, 0x38n];

/**
 * Edits inside [from, to): mostly aligned fields set to boundary values (sizes, counts and offsets
 * are what readers must check), some random bytes.
 */
export function edits(from: number, to: number, maxEdits = 6): fc.Arbitrary<Edit[]> {
  const span = Math.max(1, to - from);
  const field = fc.record({
    at: fc.nat(span - 1).map((n) => from + n),
    size: fc.constantFrom<1 | 2 | 4 | 8>(2, 4, 8),
    value: fc.oneof(fc.constantFrom(...BOUNDARY), fc.bigUintN(64), fc.bigUintN(16)),
  }).map((e) => ({ ...e, at: e.at - ((e.at - from) % e.size) }));
  const byte = fc.record({ at: fc.nat(span - 1).map((n) => from + n), size: fc.constant<1>(1), value: fc.bigUintN(8) });
  return fc.array(fc.oneof({ arbitrary: field, weight: 3 }, { arbitrary: byte, weight: 1 }), { minLength: 1, maxLength: maxEdits });
}

/** `edits` applied to `bytes` in place (past the end they are dropped); returns what they overwrote, for undo. */
export function applyEdits(bytes: Uint8Array, list: readonly Edit[]): () => void {
  const saved: [number, number][] = [];
  for (const { at, size, value } of list) {
    for (let i = 0; i < size && at + i < bytes.length; i++) {
      saved.push([at + i, bytes[at + i]!]);
      bytes[at + i] = Number((value >> BigInt(8 * i)) & 0xffn);
    }
  }
  return () => {
    for (let i = saved.length - 1; i >= 0; i--) bytes[saved[i]![0]] = saved[i]![1];
  };
}

/** A copy of `seed` with edits in [from, to) and maybe cut short: the usual shape of a damaged file. */
export function damaged(seed: Uint8Array, from = 0, to = seed.length, maxEdits = 6): fc.Arbitrary<Uint8Array> {
  return fc.tuple(edits(from, to, maxEdits), fc.option(fc.nat(seed.length), { freq: 4 })).map(([list, cut]) => {
    const copy = seed.slice(0, cut ?? seed.length);
    applyEdits(copy, list);
    return copy;
  });
}
