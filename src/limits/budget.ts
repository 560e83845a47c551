/**
 * Memory budgets for what a peer can make the process hold before it is trusted.
 *
 * Every buffer that grows at a peer's request (an unfinished RTMP message, an HTTP/2 header
 * block, a relayed response waiting on a closed flow-control window) has an owner, a connection,
 * and is charged to that connection's `Account` before it is held. An account has its own cap and
 * draws on a process-wide `Budget` shared by every connection not yet authorised to publish or
 * play, so many connections each under their own cap still cannot add up to an exhausted heap.
 *
 * Charges are in real bytes: a caller that keeps N small objects charges their payload plus
 * `OBJECT_OVERHEAD_BYTES` each, because a million empty Buffers cost memory although they hold
 * no byte (the class of the HTTP/2 CONTINUATION flood and of the one-byte RTMP chunk).
 */

/**
 * What one small heap object costs beyond its payload, rounded up: a Buffer (a Uint8Array view
 * plus its backing store record) is about 100-200 bytes on V8 x64; an array slot or a string header
 * less. One figure for all keeps the accounting simple and errs towards charging too much.
 */
export const OBJECT_OVERHEAD_BYTES = 256;

/** A process-wide pool that accounts draw on. */
export class Budget {
  private used = 0;
  private peakUsed = 0;
  /** Charges refused since start (for /metrics). */
  refused = 0;

  constructor(readonly name: string, public limit: number) {}

  get held(): number {
    return this.used;
  }

  get peak(): number {
    return this.peakUsed;
  }

  /** Charge `n` bytes; false, charging nothing, when that would pass the limit. */
  take(n: number): boolean {
    if (this.used + n > this.limit) {
      this.refused++;
      return false;
    }
    this.used += n;
    if (this.used > this.peakUsed) this.peakUsed = this.used;
    return true;
  }

  give(n: number): void {
    this.used -= n;
    if (this.used < 0) this.used = 0;
  }
}

/**
 * One connection's charges: bounded by its own `limit` and by the pool it draws on. `close()`
 * gives everything back, so a connection that dies mid-message leaks nothing from the pool.
 */
export class Account {
  private held = 0;
  private closed = false;

  constructor(private readonly pool: Budget | null, public limit: number) {}

  get bytes(): number {
    return this.held;
  }

  /** Charge `n` bytes to this connection and the pool; false, charging nothing, when either is over. */
  take(n: number): boolean {
    if (this.closed) return false;
    if (this.held + n > this.limit) {
      if (this.pool) this.pool.refused++;
      return false;
    }
    if (this.pool && !this.pool.take(n)) return false;
    this.held += n;
    return true;
  }

  give(n: number): void {
    const g = Math.min(n, this.held);
    this.held -= g;
    this.pool?.give(g);
  }

  /**
   * The connection became trusted (authorised to publish or play): what it holds from now on is
   * its own stream's business, bounded by the stream's limits, not the anonymous pool's. Charges
   * already held go back to the pool; the account keeps its own cap.
   */
  detach(): Account {
    const a = new Account(null, this.limit);
    a.held = 0;
    this.close();
    return a;
  }

  /** Give back everything; later charges are refused. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool?.give(this.held);
    this.held = 0;
  }
}
