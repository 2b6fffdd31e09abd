/**
 * Node's implementations of what the core takes as parameters (hashing, entropy). node:crypto is
 * required on first use, not imported: loading it (and the worker and stream modules it pulls in)
 * costs ~3 ms of every start, and `check`, `plan` and `machine` never hash or draw a seed.
 */
import { createRequire } from "node:module";

type NodeCrypto = typeof import("node:crypto");
let loaded: NodeCrypto | undefined;
function nodeCrypto(): NodeCrypto {
  loaded ??= createRequire(import.meta.url)("node:crypto") as NodeCrypto;
  return loaded;
}

export function sha256(chunks: Uint8Array[]): Uint8Array {
  const h = nodeCrypto().createHash("sha256");
  for (const c of chunks) h.update(c);
  return new Uint8Array(h.digest());
}

export function rngSeed(): Uint8Array {
  return new Uint8Array(nodeCrypto().randomBytes(32));
}
