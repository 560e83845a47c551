import type { Server, Socket } from 'node:net';

/**
 * Who may hold a connection, on every listener: the per-address cap (NGINX's limit_conn), the
 * first-request-head deadline (NGINX's client_header_timeout), and what happens at
 * max_connections.
 *
 * At max_connections the guard first reclaims a connection that is holding a slot without using
 * it — one that has not sent a whole request head yet, oldest first, else the keep-alive
 * connection idle the longest — the way NGINX drains its "reusable" connections when it runs out
 * of free ones. So 1,000 silent sockets cost their owner a slot each only until someone with a
 * request arrives, instead of locking every other client out until they time out. Only when every
 * connection is in the middle of a request does a newcomer get the over-limit answer.
 */

/** A connection that has not completed its first request head. */
export const FRESH = 0;
/** Between requests on a keep-alive connection, nothing in flight. */
export const IDLE = 1;
/** A request in flight, or a protocol the guard does not look into (RTMP, HTTP/2). */
export const BUSY = 2;

export type ConnState = typeof FRESH | typeof IDLE | typeof BUSY;

/** One accepted connection. The lanes write `state` and `since` (plain fields: the front door sets them per request). */
export interface Tracked {
  /** The socket to destroy: the TLS socket once the handshake is done, the TCP socket before. */
  sock: Socket;
  /** The accepted TCP socket (the key of its entry). */
  raw: Socket;
  ip: string;
  /** Whether the first-head deadline applies (HTTP and HTTPS/1.1; RTMP and HTTP/2 bound their own starts). */
  http: boolean;
  state: ConnState;
  /** When the connection was accepted (FRESH) or went idle (IDLE), Date.now(). */
  since: number;
  acceptedAt: number;
  /** Reclaimed: already counted off, its 'close' must not count it again. */
  dropped: boolean;
}

export interface GuardOptions {
  maxConnections(): number;
  maxPerIp(): number;
  headerTimeoutMs(): number;
  /** One line for the log (rate-limited by the guard). */
  warn(line: string): void;
}

/** What admit() decided for a new connection. */
export const ADMITTED = 0;
/** Past max_connections with nothing to reclaim: the listener answers it as over the limit. */
export const OVER_LIMIT = 1;
/** Closed at once (past max_connections_per_ip, or far past max_connections). */
export const REFUSED = 2;

/** At most one refusal line per this long: an address hammering the cap must not flood the log. */
const WARN_EVERY_MS = 5_000;

export class ConnectionGuard {
  /** Every open connection, in accept order (a Map keeps insertion order: the oldest first). */
  private readonly all = new Map<Socket, Tracked>();
  /** By the socket a lane sees (TLS sockets after their handshake), for the lanes' lookups. */
  private readonly bySock = new WeakMap<Socket, Tracked>();
  /** HTTPS connections between accept and handshake, by their 4-tuple: the TLS socket finds its entry here. */
  private readonly handshaking = new Map<string, Tracked>();
  private readonly perIp = new Map<string, number>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastWarn = 0;
  private suppressed = 0;
  /** Connections closed by the guard, by reason (for /metrics and tests). */
  readonly closed = { perIp: 0, headerTimeout: 0, reclaimed: 0, overLimit: 0 };

  constructor(private readonly opts: GuardOptions) {}

  get size(): number {
    return this.all.size;
  }

  /** Connections open from one address. */
  countOf(ip: string): number {
    return this.perIp.get(ip) ?? 0;
  }

  /**
   * Watches a listener: runs before any other 'connection' listener, so a refused socket costs
   * no parser, TLS state or front-door closure. `http`: the first-head deadline applies.
   */
  watch(server: Server, http: boolean, tls: boolean, overLimit: (sock: Socket) => void): void {
    server.prependListener('connection', (sock: Socket) => {
      const verdict = this.admit(sock, http, tls);
      if (verdict === OVER_LIMIT) overLimit(sock);
    });
  }

  /** The entry of a socket a lane holds (TCP, or TLS after the handshake). */
  of(sock: Socket): Tracked | undefined {
    return this.bySock.get(sock);
  }

  /** An HTTPS connection finished its handshake: the lanes will see it as `tlsSock` from now on. */
  secured(tlsSock: Socket): Tracked | undefined {
    const key = tupleKey(tlsSock);
    const t = this.handshaking.get(key);
    if (t === undefined) return undefined;
    this.handshaking.delete(key);
    t.sock = tlsSock;
    this.bySock.set(tlsSock, t);
    return t;
  }

  /** A lane saw a whole request head (or took the connection for a protocol of its own). */
  busy(sock: Socket): void {
    const t = this.bySock.get(sock);
    if (t !== undefined) t.state = BUSY;
  }

  /** A keep-alive connection finished a request and waits for the next. */
  idle(sock: Socket): void {
    const t = this.bySock.get(sock);
    if (t !== undefined) {
      t.state = IDLE;
      t.since = Date.now();
    }
  }

  private admit(sock: Socket, http: boolean, tls: boolean): number {
    const ip = sock.remoteAddress ?? '-';
    const perIp = this.opts.maxPerIp();
    const n = this.perIp.get(ip) ?? 0;
    if (perIp > 0 && n >= perIp) {
      this.closed.perIp++;
      this.note(`connection from ${ip} closed: max_connections_per_ip ${perIp} reached`);
      sock.destroy();
      return REFUSED;
    }
    const max = this.opts.maxConnections();
    let verdict = ADMITTED;
    if (this.all.size >= max && !this.reclaim()) {
      // Nothing to reclaim: every slot is in a request. Up to twice the bound the listener says
      // why (HTTP: a 503); past that, answering would itself become the resource leak.
      if (this.all.size >= 2 * max) {
        this.closed.overLimit++;
        this.note(`connection from ${ip} closed: max_connections ${max} reached, every connection busy`);
        sock.destroy();
        return REFUSED;
      }
      verdict = OVER_LIMIT;
    }
    const now = Date.now();
    const t: Tracked = { sock, raw: sock, ip, http, state: http ? FRESH : BUSY, since: now, acceptedAt: now, dropped: false };
    this.all.set(sock, t);
    this.bySock.set(sock, t);
    this.perIp.set(ip, n + 1);
    let key: string | null = null;
    if (tls) {
      key = tupleKey(sock);
      this.handshaking.set(key, t);
    }
    sock.once('close', () => {
      if (key !== null) this.handshaking.delete(key);
      if (!t.dropped) this.forget(sock, t);
    });
    if (http) this.armSweep();
    return verdict;
  }

  /**
   * Closes the connection that holds a slot for the least: the oldest that has not sent a whole
   * head, else the one idle the longest with nothing left to write. False when all are busy.
   */
  private reclaim(): boolean {
    let fresh: Tracked | null = null;
    let idle: Tracked | null = null;
    for (const t of this.all.values()) {
      if (t.state === FRESH) {
        fresh = t;
        break;
      }
      if (t.state === IDLE && t.sock.writableLength === 0 && (idle === null || t.since < idle.since)) idle = t;
    }
    const victim = fresh ?? idle;
    if (victim === null) return false;
    this.closed.reclaimed++;
    // Counted off now: its 'close' comes a tick later, after the newcomer is counted.
    this.forget(victim.raw, victim);
    victim.dropped = true;
    victim.sock.destroy();
    return true;
  }

  private forget(raw: Socket, t: Tracked): void {
    this.all.delete(raw);
    const left = (this.perIp.get(t.ip) ?? 1) - 1;
    if (left <= 0) this.perIp.delete(t.ip);
    else this.perIp.set(t.ip, left);
  }

  /**
   * One timer per gateway, not one per connection: it runs while some HTTP connection has not
   * sent its first head, every quarter of header_timeout (at least 100 ms, at most 1 s).
   */
  private armSweep(): void {
    if (this.sweepTimer !== null) return;
    const every = Math.max(100, Math.min(1000, Math.floor(this.opts.headerTimeoutMs() / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  /** Closes HTTP connections that have not completed a request head within header_timeout of their accept. */
  sweep(now = Date.now()): void {
    const limit = this.opts.headerTimeoutMs();
    let waiting = 0;
    for (const t of this.all.values()) {
      if (!t.http || t.state !== FRESH) continue;
      if (now - t.acceptedAt >= limit) {
        this.closed.headerTimeout++;
        t.sock.destroy();
      } else waiting++;
    }
    if (waiting === 0 && this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  close(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  private note(line: string): void {
    const now = Date.now();
    if (now - this.lastWarn < WARN_EVERY_MS) {
      this.suppressed++;
      return;
    }
    this.lastWarn = now;
    this.opts.warn(this.suppressed > 0 ? `${line} (and ${this.suppressed} more refusals since the last line)` : line);
    this.suppressed = 0;
  }
}

/** A connection's 4-tuple as both its TCP socket and, after the handshake, its TLS socket report it. */
function tupleKey(s: Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}
