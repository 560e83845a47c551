import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { GatewayError, type ErrorCode } from '../errors.js';
import { ChunkedBody, CHUNKS_BROKEN, CHUNKS_MORE } from './chunked.js';
import type { LaneHooks, LaneRequest } from './lane.js';
import type { Conn, ConnUser, UpstreamPool } from './pool.js';
import { Body, framing, parseResponseHead, type HeadMemo, type UpstreamHead } from './response-head.js';
import { NOT_RAW, queued, rawWrite, WRITTEN, type WriteOwner } from './raw-write.js';
import { sameTurn, writeTurn } from './turn.js';

/** A response head longer than this is refused as a 502 (undici's default, Node's max header size). */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
const EMPTY = Buffer.alloc(0);

/**
 * The exchange a client socket is waiting on, if any. One pair of listeners per client socket
 * for its life, not two added and removed per request (measured on the /api/ row); a WeakMap, so
 * nothing is held past the socket.
 */
const watched = new WeakMap<Socket, { ex: Exchange | null }>();

function watch(client: Socket, ex: Exchange): void {
  let w = watched.get(client);
  if (w === undefined) {
    const slot: { ex: Exchange | null } = { ex: null };
    // The client's FIN mid-answer is a hang-up, as for Node's server and NGINX (499).
    const gone = () => slot.ex?.onClientClose();
    client.on('end', gone);
    client.on('close', gone);
    watched.set(client, slot);
    w = slot;
  }
  w.ex = ex;
}

function unwatch(client: Socket): void {
  const w = watched.get(client);
  if (w !== undefined) w.ex = null;
}

/**
 * One proxied request: written to an upstream connection, its response relayed to the client.
 * A request that fails on a reused connection before any byte of answer is sent again, once, on a
 * fresh connection: the upstream may have closed the idle connection as we picked it, and GET and
 * HEAD are idempotent (NGINX's proxy_next_upstream does the same).
 */
export class Exchange implements ConnUser, WriteOwner {
  private conn: Conn | null = null;
  private retried = false;
  private settled = false;
  private headSent = false;
  private gotByte = false;
  /** The response head while it arrives in pieces (a copy: reads reuse the connection's buffer). */
  private head: Buffer | null = null;
  private status = 0;
  private body = Body.None;
  /** The client gets our chunked framing around a close-delimited body. */
  private rechunk = false;
  private left = 0;
  private reusable = false;
  private bytes = 0;
  /** The relayed head's bytes, which the access log does not count. */
  private headBytes = 0;
  private waitingDrain = false;
  /** The turn our request went out on a pooled connection (see turn.ts). */
  private sentTurn = -1;
  /** The answer began before the whole request was written: the connection is not reused. */
  private early = false;
  /** The request went to the kernel whole in one write: no queue to ask about when the answer comes. */
  private sentWhole = false;
  /** A client write was queued (libuv or Node's stream): only then is its queue asked, a call into Node. */
  private clientQueued = false;
  private chunks: ChunkedBody | null = null;
  /** The client's response head while it waits to leave with the first body bytes. */
  private headOut: Buffer | null = null;
  /** The client's 'drain' listener, made only for a client that stopped reading. */
  private drainListener: (() => void) | null = null;
  /** Made for chunked bodies only: most answers have a length. */
  private relayPart: ((b: Buffer) => void) | null = null;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly memo: HeadMemo,
    private readonly client: Socket,
    private readonly req: LaneRequest,
    private readonly wire: Buffer,
    private readonly hooks: LaneHooks,
  ) {}

  start(): void {
    watch(this.client, this);
    this.attach(this.pool.acquire());
  }

  private attach(c: Conn): void {
    this.conn = c;
    c.ex = this;
    // A connection still connecting takes the request through its stream, which holds it until then.
    const r = rawWrite(c.sock, this.wire, null);
    if (r === NOT_RAW) c.sock.write(this.wire);
    this.sentWhole = r === WRITTEN;
    if (c.reused) this.sentTurn = writeTurn();
  }

  onData(b: Buffer): void {
    if (!this.gotByte) {
      const c = this.conn!;
      // Read in the turn the request went out: these bytes were sent before the upstream could
      // read it (a stray response, or the rest of an earlier one). Nobody's answer.
      if (c.reused && sameTurn(this.sentTurn)) return this.stray();
      if (!this.sentWhole && queued(c.sock)) this.early = true;
    }
    this.gotByte = true;
    if (this.headSent) return this.relay(b, 0);
    if (this.head === null) {
      // The usual answer: the same head as the last one, whole in this read.
      const u = this.memo.match(b);
      if (u !== null) return this.answer(u, b, this.memo.rawLength);
      return this.readHead(b);
    }
    this.readHead(Buffer.concat([this.head, b]));
  }

  /** Parses the response head once it is whole, answers the client's head and relays what body came with it. */
  private readHead(buf: Buffer): void {
    for (;;) {
      const end = buf.indexOf(CRLFCRLF);
      if (end > MAX_RESPONSE_HEAD_BYTES || (end < 0 && buf.length > MAX_RESPONSE_HEAD_BYTES)) return this.fail('UPSTREAM_ERROR', 'response head too large');
      if (end < 0) {
        this.head = Buffer.from(buf);
        return;
      }
      const text = buf.toString('latin1', 0, end);
      const u = parseResponseHead(text);
      if (u === null) return this.fail('UPSTREAM_ERROR', `invalid response head: ${JSON.stringify(text.slice(0, 40))}`);
      if (u === 'info') {
        // 1xx (100, 103): informational, not forwarded (as the undici path); the real head follows.
        this.head = null;
        if (buf.length === end + 4) return;
        buf = buf.subarray(end + 4);
        continue;
      }
      this.head = null;
      this.memo.keep(buf, end, u);
      return this.answer(u, buf, end + 4);
    }
  }

  /** Sends the client its head for `u` and relays the body bytes after it in `buf` (from `at`). */
  private answer(u: UpstreamHead, buf: Buffer, at: number): void {
    const { hooks, req } = this;
    const c = this.conn!;
    c.idleMs = u.idleMs;
    this.status = u.status;
    this.body = framing(u, req.method);
    this.reusable = u.persistent && u.idleMs > 0 && this.body !== Body.Close;
    this.rechunk = this.body === Body.Close && !hooks.close;
    this.left = u.length;
    if (this.body === Body.Chunked) this.chunks = new ChunkedBody(req.trailers === true);
    const out = this.memo.render(u, { body: this.body, trailers: req.trailers === true, close: hooks.close, cors: hooks.cors, date: hooks.date() });
    this.headSent = true;
    this.headBytes = out.length;
    const restLen = buf.length - at;
    if (this.body === Body.Length && restLen >= this.left) {
      // The usual small answer, whole in one read: head and body in one writev.
      const n = this.left;
      this.left = 0;
      if (restLen > n) this.reusable = false;
      this.write([out, at === 0 && n === buf.length ? buf : buf.subarray(at, at + n)]);
      return this.complete();
    }
    // The head leaves with the first body bytes (those that came with it, if any), in one write.
    this.headOut = out;
    if (this.body === Body.None) {
      if (restLen > 0) this.reusable = false;
    } else if (restLen > 0) {
      this.relay(buf, at);
    }
    if (this.headOut !== null) this.write(EMPTY);
    if (this.body === Body.None) this.complete();
  }

  /** Relays body bytes from `b[from]` on, tracking the framing to know where the response ends. */
  private relay(b: Buffer, from: number): void {
    switch (this.body) {
      case Body.Length: {
        const n = Math.min(this.left, b.length - from);
        this.write(from === 0 && n === b.length ? b : b.subarray(from, from + n));
        this.left -= n;
        if (this.left === 0) {
          if (from + n < b.length) this.reusable = false;
          this.complete();
        }
        break;
      }
      case Body.Chunked: {
        const end = this.chunks!.walk(b, from, (this.relayPart ??= (part: Buffer): void => this.write(part)));
        if (end === CHUNKS_BROKEN) return this.fail('UPSTREAM_ERROR', 'invalid chunked encoding', true);
        if (end === CHUNKS_MORE) break;
        // The last chunk's size line was relayed; its trailer section goes to a client that reads
        // trailers (TE: trailers), filtered; to others the body just ends (RFC 9112 §7.1.2).
        this.write(Buffer.from(this.chunks!.trailerSection(), 'latin1'));
        if (end < b.length) this.reusable = false;
        this.complete();
        break;
      }
      case Body.Close: {
        const part = from === 0 ? b : b.subarray(from);
        if (part.length === 0) return;
        if (this.rechunk) {
          this.write([Buffer.from(`${part.length.toString(16)}\r\n`, 'latin1'), part, CRLF]);
        } else {
          this.write(part);
        }
        break;
      }
      default:
    }
    this.lendIfHeld();
  }

  /**
   * Bytes read from the upstream went to the client by reference: if the client's socket did not
   * take them at once (a backlog, a partial write), its queue still points into the connection's
   * read buffer, which must then not be read into again (Conn.lend).
   */
  private lendIfHeld(): void {
    if (this.clientQueued && queued(this.client)) this.conn?.lend();
  }

  /**
   * Writes to the client: one buffer, or pieces in one writev; the response head, when it has not
   * gone yet, goes in front. Straight on the socket's handle where it can (raw-write.ts), else
   * through the socket's stream, corked, which writes the pieces in one writev too.
   */
  private write(b: Buffer | Buffer[]): void {
    let data = b;
    const head = this.headOut;
    if (head !== null) {
      this.headOut = null;
      data = Array.isArray(b) ? [head, ...b] : b.length === 0 ? head : [head, b];
    }
    const client = this.client;
    let n = 0;
    if (Array.isArray(data)) for (let i = 0; i < data.length; i++) n += data[i].length;
    else n = data.length;
    this.bytes += n;
    const r = rawWrite(client, data, this);
    if (r === WRITTEN) return;
    this.clientQueued = true;
    let ok = false;
    if (r === NOT_RAW) {
      if (Array.isArray(data)) {
        client.cork();
        for (let i = 0; i < data.length; i++) ok = client.write(data[i]);
        client.uncork();
      } else {
        ok = client.write(data);
      }
    }
    this.lendIfHeld();
    if (!ok && !this.waitingDrain && this.conn !== null) {
      // A slow client: stop reading the upstream until it catches up, and stop the upstream's
      // idle timer meanwhile (the client's own timeout bounds a client that never reads).
      this.waitingDrain = true;
      this.conn.sock.pause();
      this.conn.sock.setTimeout(0);
      if (this.client.timeout !== this.hooks.stallTimeoutMs) this.client.setTimeout(this.hooks.stallTimeoutMs);
      // A write queued on the handle says itself when it has gone (written); the stream says 'drain'.
      if (r === NOT_RAW) this.client.once('drain', (this.drainListener ??= (): void => this.onDrain()));
    }
  }

  /** A write queued on the client's handle went out (status 0) or failed (the socket is closing). */
  written(status: number): void {
    if (status < 0) return void this.client.destroy();
    if (this.waitingDrain) this.onDrain();
  }

  private onDrain(): void {
    this.waitingDrain = false;
    const c = this.conn;
    if (c === null || this.settled) return;
    c.sock.setTimeout(this.pool.opts.timeoutMs);
    c.sock.resume();
  }

  onEnd(): void {
    if (this.headSent && this.body === Body.Close) {
      if (this.rechunk) this.write(LAST_CHUNK);
      this.reusable = false;
      return this.complete();
    }
    this.lost('', 'upstream closed the connection');
  }

  onTimeout(connected: boolean): void {
    if (this.settled) return;
    this.fail('UPSTREAM_TIMEOUT', connected ? 'upstream read timeout' : 'upstream connect timeout', this.headSent);
  }

  onError(err: Error): void {
    this.lost((err as NodeJS.ErrnoException).code ?? '', err.message);
  }

  /** The upstream connection failed or closed early (`code` is the socket error's, '' for an early close). */
  private lost(code: string, message: string): void {
    if (this.settled) return;
    const c = this.conn!;
    if (!this.gotByte && c.reused && !this.retried) {
      // A stale keep-alive connection: the same request once more on a fresh one.
      this.retried = true;
      this.pool.opts.metrics.count('streamgate_proxy_lane_retries_total', 'Proxy lane requests sent again after a pooled upstream connection failed.');
      this.detach(false);
      this.attach(this.pool.fresh());
      return;
    }
    this.fail(code === 'ECONNREFUSED' ? 'UPSTREAM_REFUSED' : 'UPSTREAM_ERROR', code || message, this.headSent);
  }

  /** A response that cannot be this request's: its connection closes; the request goes once more on a fresh one. */
  private stray(): void {
    const { log, metrics, upstream } = this.pool.opts;
    metrics.count('streamgate_proxy_stray_responses_total', 'Upstream connections closed because a response arrived before its request could have been read.');
    this.detach(false);
    if (this.retried) return this.fail('UPSTREAM_ERROR', 'a response arrived before the request could have been read');
    log.warn(`proxy ${this.req.method} ${this.req.url} → ${upstream.origin}: a response arrived before the request could have been read; connection closed, request sent again`);
    this.retried = true;
    this.attach(this.pool.fresh());
  }

  /** The client hung up before the response was over: the upstream connection goes, not back to the pool. */
  onClientClose(): void {
    if (this.settled) return;
    const { log } = this.pool.opts;
    log.info(`proxy ${this.req.method} ${this.req.url} → ${this.pool.opts.upstream.origin}: client closed the connection; upstream request aborted`);
    this.detach(false);
    this.client.destroy();
    this.settle(499, 'CLIENT_CLOSED', false);
  }

  /** Upstream failure: a 502/504 if the client has seen nothing yet, else its response is cut short. */
  private fail(code: ErrorCode, why: string, midBody = false): void {
    const { log, metrics, upstream } = this.pool.opts;
    const origin = upstream.origin;
    metrics.upstreamError(origin, code === 'UPSTREAM_TIMEOUT' ? 'timeout' : code === 'UPSTREAM_REFUSED' ? 'refused' : 'error');
    this.detach(false);
    if (midBody) {
      log.warn(`proxy ${this.req.method} ${this.req.url} → ${origin}: upstream failed mid-response (${why})`);
      // Mid-body the only honest signal left is to cut the client's response short.
      this.client.destroy();
      return this.settle(this.status, code, false);
    }
    log.warn(`proxy ${this.req.method} ${this.req.url} → ${origin}: ${why}`);
    const ge = new GatewayError(code, origin);
    const { type, body } = this.hooks.errorBody(ge);
    const payload = Buffer.from(`HTTP/1.1 ${ge.status} ${STATUS_CODES[ge.status]}\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
      + `${this.hooks.cors}${this.hooks.date()}${this.hooks.close ? 'Connection: close' : 'Connection: keep-alive'}\r\n\r\n${this.req.method === 'HEAD' ? '' : body}`);
    this.status = ge.status;
    this.write(payload);
    this.settle(ge.status, code, !this.hooks.close);
  }

  /** The response is whole: the connection goes back to the pool if it can carry another. */
  private complete(): void {
    this.detach(this.reusable && !this.early);
    this.settle(this.status, null, !this.hooks.close);
  }

  private detach(reusable: boolean): void {
    const c = this.conn;
    if (c === null) return;
    this.conn = null;
    c.ex = null;
    // Whatever went to the client by reference and is still queued keeps the read buffer.
    if (this.clientQueued && queued(this.client)) c.lend();
    if (this.waitingDrain) {
      // The upstream's read timeout was off while the client caught up: the next exchange on
      // this connection needs it again (acquire does not re-arm it).
      c.sock.setTimeout(this.pool.opts.timeoutMs);
      c.sock.resume();
    }
    this.pool.release(c, reusable);
  }

  private settle(status: number, error: ErrorCode | 'CLIENT_CLOSED' | null, open: boolean): void {
    if (this.settled) return;
    this.settled = true;
    unwatch(this.client);
    if (this.drainListener !== null) this.client.off('drain', this.drainListener);
    if (!open && this.hooks.close && !this.client.destroyed) this.client.end();
    this.hooks.done({ status, error, bytes: this.bytes - this.headBytes, open });
  }
}
