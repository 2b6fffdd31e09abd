/**
 * Who compresses a batch handed to a worker, in shared memory, by the batch's id: open until the
 * worker begins it or the main thread takes it back (pool.ts takeBack), whichever comes first.
 * Shared by the pool and its workers.
 */

/**
 * A ring: a batch's slot serves again CLAIM_SLOTS batches later. A worker takes its batches in
 * order and the dump writer holds a few at once (dump-writer.ts inFlight), so the batch that had
 * the slot before was settled long since.
 */
export const CLAIM_SLOTS = 1024;
/** Handed out, begun by no one. */
export const CLAIM_OPEN = 0;
/** Begun by the worker it was handed to. */
export const CLAIM_WORKER = 1;
/** Taken back and compressed by the main thread: the worker passes over it. */
export const CLAIM_MAIN = 2;
/** Compressed by the worker: its reply is on the way. */
export const CLAIM_DONE = 3;

export function claimSlot(id: number): number {
  return id % CLAIM_SLOTS;
}
