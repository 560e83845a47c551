import net, { type Socket } from 'node:net';
import type { LaneOptions } from './lane.js';

/**
 * The proxy lane's keep-alive connections to one upstream (NGINX's upstream `keepalive N`). Each
 * connection reads into a buffer of its own (net's `onread`), not a fresh one per read through a
 * Readable stream: measured on the /api/ row, the stream machinery and the allocation per read
 * were a sixth of the lane's JavaScript time per request.
 */

/** Idle pooled connections close after this unless the upstream's Keep-Alive asks for less (undici's default). */
export const IDLE_MS = 4_000;
/**
 * A connection's read buffer: small while answers are small, grown once a read fills it (a large
 * body then moves in 64 KiB reads, as Node's own sockets read), small again when it goes idle.
 * What the pool holds is bounded: at most `keepalive` idle connections, each with one buffer
 * (64 KiB at most, until its next read); a busy one is one client's request in flight.
 */
const READ_SMALL_BYTES = 16 * 1024;
const READ_LARGE_BYTES = 64 * 1024;

/** Whoever holds a connection: the exchange its bytes belong to. */
export interface ConnUser {
  /** Bytes read: a view of the connection's buffer, valid until this call returns (see Conn.lend). */
  onData(b: Buffer): void;
  onEnd(): void;
  onTimeout(connected: boolean): void;
  onError(err: Error): void;
}

/** One connection to the upstream; its listeners stay for its life and speak to whichever exchange holds it. */
export class Conn {
  readonly sock: Socket;
  ex: ConnUser | null = null;
  /** It has carried a whole response: a failure before the next answer may be a stale keep-alive. */
  reused = false;
  connected = false;
  /** How long it may sit idle before it is not trusted with a request, and since when it has. */
  idleMs = IDLE_MS;
  idleSince = 0;
  private buf: Buffer = Buffer.allocUnsafeSlow(READ_SMALL_BYTES);
  private want = READ_SMALL_BYTES;
  private lent = false;

  constructor(readonly pool: UpstreamPool, host: string, port: number, connectTimeoutMs: number) {
    const sock = net.connect({ host, port, onread: { buffer: () => this.nextBuffer(), callback: (n: number, b: Uint8Array) => this.onRead(n, b as Buffer) } });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.setTimeout(connectTimeoutMs);
    sock.once('connect', () => {
      this.connected = true;
      sock.setTimeout(pool.opts.timeoutMs);
    });
    sock.on('end', () => (this.ex !== null ? this.ex.onEnd() : sock.destroy()));
    sock.on('timeout', () => (this.ex !== null ? this.ex.onTimeout(this.connected) : sock.destroy()));
    sock.on('error', (err: Error) => this.ex?.onError(err));
    sock.on('close', () => {
      pool.forget(this);
      this.ex?.onError(Object.assign(new Error('upstream connection closed'), { code: 'ECONNRESET' }));
    });
  }

  /** `b` is the buffer nextBuffer() gave; true keeps reading (an exchange pauses the socket itself). */
  private onRead(n: number, b: Buffer): boolean {
    if (n === b.length) this.want = READ_LARGE_BYTES;
    // Bytes on an idle connection answer nobody: the connection goes, the bytes with it.
    if (this.ex !== null) this.ex.onData(b.subarray(0, n));
    else this.pool.stray(this);
    return true;
  }

  /**
   * The bytes just read may outlive this read: a write to a client that did not go out at once
   * still points into them. The next read then goes into a new buffer, never over bytes that
   * are still to reach a client.
   */
  lend(): void {
    this.lent = true;
  }

  /** net asks after every read where the next one goes. */
  private nextBuffer(): Buffer {
    if (this.lent || this.buf.length !== this.want) {
      this.lent = false;
      this.buf = Buffer.allocUnsafeSlow(this.want);
    }
    return this.buf;
  }

  /** Back in the pool: its next answer starts small again. */
  idle(): void {
    this.want = READ_SMALL_BYTES;
  }
}

/** Keep-alive connections to one upstream, most recently used first (the warm ones). */
export class UpstreamPool {
  private readonly idle: Conn[] = [];
  private closed = false;
  private readonly host: string;
  private readonly port: number;

  constructor(readonly opts: LaneOptions) {
    this.host = opts.upstream.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(opts.upstream.port) || 80;
  }

  acquire(): Conn {
    // The socket's own timer stays at the read timeout for its whole life (re-arming it twice per
    // request cost more than the rest of the pool): an idle connection is judged by its age when
    // picked, and one idle past the read timeout closes on that timer.
    const now = performance.now();
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
      if (c.sock.destroyed || c.sock.readyState !== 'open') continue;
      if (now - c.idleSince > c.idleMs) {
        c.sock.destroy();
        continue;
      }
      return c;
    }
    return this.fresh();
  }

  fresh(): Conn {
    this.opts.metrics.count('streamgate_proxy_lane_connects_total', 'Upstream connections the proxy lane opened.');
    return new Conn(this, this.host, this.port, this.opts.connectTimeoutMs);
  }

  release(c: Conn, reusable: boolean): void {
    c.ex = null;
    if (!reusable || this.closed || this.idle.length >= this.opts.keepAlive || c.sock.destroyed) {
      c.sock.destroy();
      return;
    }
    c.reused = true;
    c.idleSince = performance.now();
    c.idle();
    this.idle.push(c);
  }

  /** A connection the upstream sent bytes on that no request asked for: closed, counted. */
  stray(c: Conn): void {
    this.opts.metrics.count('streamgate_proxy_stray_responses_total', 'Upstream connections closed because a response arrived before its request could have been read.');
    c.sock.destroy();
  }

  forget(c: Conn): void {
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Retires the pool: idle connections close now, busy ones when their response is over. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.sock.destroy();
  }
}
