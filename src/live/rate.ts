/**
 * Byte counter with a 30-second rate, the figure SRS reports as kbps.recv_30s / send_30s.
 * One-second buckets in a fixed ring: O(1) per add, no timers.
 */
const WINDOW_SECONDS = 30;

export class RateMeter {
  total = 0;
  private readonly buckets = new Float64Array(WINDOW_SECONDS);
  private bucketSecond = 0;

  add(bytes: number, now = Date.now()): void {
    this.total += bytes;
    this.roll(Math.floor(now / 1000));
    this.buckets[this.bucketSecond % WINDOW_SECONDS] += bytes;
  }

  /** Average over the last 30 s, in kilobits per second. */
  kbps(now = Date.now()): number {
    this.roll(Math.floor(now / 1000));
    let sum = 0;
    for (const b of this.buckets) sum += b;
    return Math.round((sum * 8) / 1000 / WINDOW_SECONDS);
  }

  private roll(second: number): void {
    if (second === this.bucketSecond) return;
    const gap = Math.min(second - this.bucketSecond, WINDOW_SECONDS);
    for (let i = 1; i <= gap; i++) this.buckets[(this.bucketSecond + i) % WINDOW_SECONDS] = 0;
    this.bucketSecond = second;
  }
}
