/** A one-line progress bar on a terminal (bytes, rate, ETA); silent when stderr is not a TTY. */
import { size } from "../../core/format.js";

export class Progress {
  private done = 0n;
  private last = 0;
  private readonly started = Date.now();
  constructor(private readonly enabled: boolean, private readonly total: bigint) {}

  update(bytes: bigint, outputBytes: bigint): void {
    this.done += bytes;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 200) return;
    this.last = now;
    const secs = (now - this.started) / 1000;
    const rate = secs > 0 ? Number(this.done) / secs : 0;
    const pct = this.total > 0n ? Number((this.done * 1000n) / this.total) / 10 : 100;
    const eta = rate > 0 ? Math.max(0, Number(this.total - this.done) / rate) : 0;
    process.stderr.write(`\r  ${pct.toFixed(1).padStart(5)}%  ${size(this.done)} of ${size(this.total)}  ${size(BigInt(Math.round(rate)))}/s  ETA ${eta.toFixed(0)} s  out ${size(outputBytes)}   `);
  }

  finish(): void {
    if (this.enabled) process.stderr.write("\n");
  }
}
