/** Node's implementations of what the core takes as parameters (hashing, entropy). */
import { createHash, randomBytes } from "node:crypto";

export function sha256(chunks: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return new Uint8Array(h.digest());
}

export function rngSeed(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}
