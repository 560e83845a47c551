/**
 * The bounds on what a client may make one HTTP/2 connection do that costs the server without
 * moving a request forward: reset streams, streams in flight to the relay, and time with no
 * progress.
 */

/** A socket with this much unsent output stops being fed until it drains. */
export const BACKLOG_PAUSE_BYTES = 1024 * 1024;

/**
 * The work (frames.ts frameWork: 8 for a header block, 1 for a control frame) one connection's
 * frames may do in one event-loop turn before the rest waits for the next: 16 requests, or 128
 * control frames, or about 0.5 MiB of DATA. A rapid-reset flood on 12 connections decoded some
 * 1,500 header blocks in one stretch and held every other client's answer behind it.
 */
export const TURN_WORK = 128;

/** What we tell clients (NGINX's http2_max_concurrent_streams default). */
export const MAX_CONCURRENT_STREAMS = 128;

/**
 * Streams relayed to Node (each may be a Koa request and an upstream request) at once, cancelled
 * ones included until Node has seen their RST_STREAM. Past it a new relayed stream is refused
 * (REFUSED_STREAM, which a client retries): cancelling cannot start more work than this, and a
 * client that reads nothing cannot make Node and Koa hold more answers than this. Answers from
 * memory, the bulk of a page's requests, do not count.
 */
export const MAX_RELAYED_IN_FLIGHT = 32;

/**
 * "Rapid reset" (CVE-2023-44487): a client that opens streams and cancels them at once makes the
 * server start work that the concurrent-stream bound does not count. Like nghttp2, every reset of
 * a started stream is charged, whether the client sent it or provoked it (a WINDOW_UPDATE of 0,
 * DATA past the window, a malformed request: stream errors we answer with RST_STREAM). nghttp2's
 * default burst is 1,000, which let one connection start ~1,000 upstream requests; here the burst
 * is one window of concurrent streams (a browser leaving a page cancels at most that many),
 * refilled at nghttp2's 33 a second. Streams reset in the read that opened them never reach Node
 * (relay.ts), so what a flood costs before its GOAWAY is this many HPACK decodes: measured, 12
 * such connections at once stalled other clients by 0.2-0.5 s with a burst of 256, mostly cold
 * decoding code on a loaded machine; half the burst is half that work.
 */
export const RESET_BURST = MAX_CONCURRENT_STREAMS;
export const RESET_PER_S = 33;
/**
 * A stream reset before it left for Node (cancelled, or provoked into an error, in the turn that
 * opened it) costs this many: a browser cancels what it asked for a round trip ago, a flood what
 * it opened in the same write. Such a flood gets its GOAWAY after 64 streams, not 128.
 */
export const UNSENT_RESET_COST = 2;

/**
 * Streams the client cancelled that Node may still be working on (they count against
 * MAX_RELAYED_IN_FLIGHT): counted until a PING sent after their RST_STREAM comes back, Node having
 * then seen the reset and closed the stream. One PING is out at a time.
 */
export class CancelsInFlight {
  private sincePing = 0;
  private inPing = 0;
  private pingOut = false;

  get count(): number {
    return this.sincePing + this.inPing;
  }

  /** A cancel went to Node; true when a PING is to follow it now. */
  add(): boolean {
    this.sincePing++;
    return this.pingDue();
  }

  /** The PING came back: what it covered is closed; true when another is to go. */
  acked(): boolean {
    this.pingOut = false;
    this.inPing = 0;
    return this.pingDue();
  }

  private pingDue(): boolean {
    if (this.pingOut || this.sincePing === 0) return false;
    this.pingOut = true;
    this.inPing = this.sincePing;
    this.sincePing = 0;
    return true;
  }
}

/** A token bucket of resets. */
export class ResetBudget {
  private tokens = RESET_BURST;
  private at = performance.now();

  /** False once resets come faster than the budget allows; `n` is what this one costs. */
  spend(n = 1): boolean {
    const now = performance.now();
    this.tokens = Math.min(RESET_BURST, this.tokens + ((now - this.at) / 1000) * RESET_PER_S);
    this.at = now;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

/**
 * The connection's one timer. With no stream open, keepalive_timeout after the last request or
 * answer; with streams open, request_timeout after the last octet of a request or answer moved
 * (NGINX's send_timeout and client_body_timeout). Only stream progress counts: PING, SETTINGS and
 * WINDOW_UPDATE frames that move nothing do not keep a connection whose streams are stuck (a
 * client with its windows at 0) alive.
 */
export class ProgressTimer {
  private last = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly keepAliveMs: () => number,
    private readonly requestMs: () => number,
    private readonly open: () => boolean,
    private readonly expire: () => void,
  ) {
    this.arm(Math.min(this.keepAliveMs(), this.requestMs()));
  }

  /** A request or answer moved. Cheap: a field write; the timer re-arms itself when it fires. */
  moved(): void {
    this.last = Date.now();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.check(), Math.max(10, ms));
    this.timer.unref();
  }

  private check(): void {
    this.timer = null;
    const bound = this.open() ? this.requestMs() : this.keepAliveMs();
    const left = this.last + bound - Date.now();
    // Streams may open before the keep-alive bound is up: look again within request_timeout.
    if (left <= 0) this.expire();
    else this.arm(Math.min(left, this.requestMs()));
  }
}
