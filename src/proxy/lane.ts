import net, { type Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import { headerLines } from '../http/head.js';
import { acceptsTrailers, connectionTokenSet, isHopByHop, trailerAllowed } from './headers.js';
import { checkTarget } from '../http/request-rules.js';
import { sameTurn, writeTurn } from './turn.js';

/**
 * The front door's proxy lane: a plain GET/HEAD for a proxied prefix, read off the client socket
 * by src/http/frontdoor.ts, is written to a pooled keep-alive upstream connection as raw bytes,
 * and the upstream's response head is parsed here and its body relayed as it arrives — NGINX's
 * proxy_pass with upstream keepalive. Node's HTTP server and undici cost about 150 µs of CPU per
 * proxied request between them (request and response objects on both sides); this path is a
 * string in, a string out and the body bytes passed through.
 *
 * Only requests without a body take it: anything with a body, an upgrade or an expectation stays
 * on the undici path (src/proxy/index.ts), which answers the same.
 */

/** A response head longer than this is refused as a 502 (undici's default, Node's max header size). */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
/** Idle pooled connections close after this unless the upstream's Keep-Alive asks for less (undici's default). */
const IDLE_MS = 4_000;
/** Chunk-size lines and trailer sections are bounded: past this it is not HTTP. */
const MAX_CHUNK_LINE_BYTES = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;
/** Hex digits of a chunk size: 12 is 256 TiB, well inside a double's exact integers. */
const MAX_CHUNK_SIZE_DIGITS = 12;

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
const LAST_CHUNK = Buffer.from('0\r\n\r\n');
/**
 * A control character in a head, or a CR or LF that is not part of a CRLF: forwarded as is, a
 * bare LF in a value would start a new header line (or a new request) for the next parser.
 */
const BAD_HEAD = /[\0-\x08\x0b\x0c\x0e-\x1f\x7f]|\r[^\n]|\r$|[^\r]\n|^\n/;

export interface LaneOptions {
  upstream: URL;
  /** The route URL's path, prepended to the request-target. */
  base: string;
  /** No byte from the upstream for this long: 504 before the head, a cut response after. */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Idle connections kept for reuse (NGINX's `keepalive N`). */
  keepAlive: number;
  log: Logger;
  metrics: Metrics;
}

/** What the client asked, as the upstream gets it and as the log names it. */
export interface LaneRequest {
  method: 'GET' | 'HEAD';
  /** The request-target as the client sent it. */
  url: string;
  /** The request head as read off the socket: request line and header lines, without the blank line. */
  head: string;
  clientIp: string;
  /** http or https: what the client spoke to us. */
  proto: string;
  /** The client's Host. */
  host: string;
  /** The Host to send upstream (the route's host mode applied). */
  upstreamHost: string;
  /** The client sent `TE: trailers`: the upstream's trailer section is relayed (set by prepare). */
  trailers?: boolean;
}

/** How an exchange ended, for the access log and metrics. */
export interface LaneOutcome {
  status: number;
  error: ErrorCode | 'CLIENT_CLOSED' | null;
  /** Body bytes written to the client (NGINX's $body_bytes_sent: the head not counted). */
  bytes: number;
  /** The client connection is still open for its next request. */
  open: boolean;
}

export interface LaneHooks {
  /** Write `Connection: close` and end the client connection after this response. */
  close: boolean;
  /** CORS header lines for the client, added unless the upstream set Access-Control-Allow-Origin; '' for none. */
  cors: string;
  /** The body of a 502/504 (JSON on API paths, a text line elsewhere). */
  errorBody(ge: GatewayError): { type: string; body: string };
  /** How long a client that stops reading may keep the answer waiting (request_timeout, at least proxy.timeout). */
  stallTimeoutMs: number;
  /** The Date header line, cached per second by the front door. */
  date(): string;
  done(o: LaneOutcome): void;
}

/** One connection to the upstream; its listeners stay for its life and speak to whichever exchange holds it. */
class Conn {
  readonly sock: Socket;
  ex: Exchange | null = null;
  /** It has carried a whole response: a failure before the next answer may be a stale keep-alive. */
  reused = false;
  connected = false;
  /** How long it may sit idle before it is not trusted with a request, and since when it has. */
  idleMs = IDLE_MS;
  idleSince = 0;

  constructor(readonly pool: UpstreamPool, host: string, port: number, connectTimeoutMs: number) {
    const sock = net.connect({ host, port });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.setTimeout(connectTimeoutMs);
    sock.once('connect', () => {
      this.connected = true;
      sock.setTimeout(pool.opts.timeoutMs);
    });
    // Bytes on an idle connection answer nobody: the connection goes, the bytes with it.
    sock.on('data', (b: Buffer) => (this.ex !== null ? this.ex.onData(b) : pool.stray(this)));
    sock.on('end', () => (this.ex !== null ? this.ex.onEnd() : sock.destroy()));
    sock.on('timeout', () => (this.ex !== null ? this.ex.onTimeout(this.connected) : sock.destroy()));
    sock.on('error', (err: Error) => this.ex?.onError(err));
    sock.on('close', () => {
      pool.forget(this);
      this.ex?.onError(Object.assign(new Error('upstream connection closed'), { code: 'ECONNRESET' }));
    });
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

/** The body framing of the upstream's response. */
const enum Body { None, Length, Chunked, Close }
/** Where the chunked decoder is (RFC 9112 §7.1). */
const enum Chunk { Size, Ext, SizeLf, Data, DataCr, DataLf, Trailer }

/**
 * One proxied request: written to an upstream connection, its response relayed to the client.
 * A request that fails on a reused connection before any byte of answer is sent again, once, on a
 * fresh connection: the upstream may have closed the idle connection as we picked it, and GET and
 * HEAD are idempotent (NGINX's proxy_next_upstream does the same).
 */
class Exchange {
  private conn: Conn | null = null;
  private retried = false;
  private settled = false;
  private headSent = false;
  private gotByte = false;
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
  /** The trailer section, kept while it arrives when the client reads trailers (at most MAX_TRAILER_BYTES). */
  private trailerParts: Buffer[] | null = null;
  // The chunked decoder: state, size being read, digits seen, bytes in the current line.
  private cs = Chunk.Size;
  private csize = 0;
  private cdigits = 0;
  private cline = 0;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly client: Socket,
    private readonly req: LaneRequest,
    private readonly wire: string,
    private readonly hooks: LaneHooks,
  ) {}

  start(): void {
    // The client's FIN mid-answer is a hang-up, as for Node's server and NGINX (499).
    this.client.on('end', this.onClientClose);
    this.client.on('close', this.onClientClose);
    this.attach(this.pool.acquire());
  }

  private attach(c: Conn): void {
    this.conn = c;
    c.ex = this;
    c.sock.write(this.wire, 'latin1');
    if (c.reused) this.sentTurn = writeTurn();
  }

  onData(b: Buffer): void {
    if (!this.gotByte) {
      const c = this.conn!;
      // Read in the turn the request went out: these bytes were sent before the upstream could
      // read it (a stray response, or the rest of an earlier one). Nobody's answer.
      if (c.reused && sameTurn(this.sentTurn)) return this.stray();
      if (c.sock.writableLength > 0) this.early = true;
    }
    this.gotByte = true;
    if (!this.headSent) {
      this.head = this.head === null ? b : Buffer.concat([this.head, b]);
      this.readHead();
      return;
    }
    this.relay(b, 0);
  }

  /** Parses the response head once it is whole, answers the client's head and relays what body came with it. */
  private readHead(): void {
    for (;;) {
      const buf = this.head!;
      const end = buf.indexOf(CRLFCRLF);
      if (end > MAX_RESPONSE_HEAD_BYTES || (end < 0 && buf.length > MAX_RESPONSE_HEAD_BYTES)) return this.fail('UPSTREAM_ERROR', 'response head too large');
      if (end < 0) return;
      const text = buf.toString('latin1', 0, end);
      const out = this.parseHead(text);
      if (out === null) return this.fail('UPSTREAM_ERROR', `invalid response head: ${JSON.stringify(text.slice(0, 40))}`);
      const rest = buf.length > end + 4 ? buf.subarray(end + 4) : null;
      if (out === '') {
        // 1xx (100, 103): informational, not forwarded (as the undici path); the real head follows.
        this.head = rest;
        if (rest === null) return;
        continue;
      }
      this.head = null;
      this.headSent = true;
      this.headBytes = out.length;
      if (this.body === Body.Length && rest !== null && rest.length >= this.left) {
        // The usual small answer, whole in one read: one buffer, one write.
        const n = this.left;
        const one = Buffer.allocUnsafe(out.length + n);
        one.write(out, 0, 'latin1');
        rest.copy(one, out.length, 0, n);
        this.left = 0;
        if (rest.length > n) this.reusable = false;
        this.write(one);
        return this.complete();
      }
      // The head and the body bytes that came with it leave in one write.
      this.client.cork();
      this.write(out);
      if (this.body === Body.None) {
        if (rest !== null) this.reusable = false;
        this.complete();
      } else if (rest !== null) {
        this.relay(rest, 0);
      }
      this.client.uncork();
      return;
    }
  }

  /**
   * The client's response head from the upstream's, or '' for a 1xx to skip, or null when it is
   * not a response head. Sets the body framing and whether the connection can be reused.
   */
  private parseHead(text: string): string | null {
    if (BAD_HEAD.test(text)) return null;
    if (!text.startsWith('HTTP/1.')) return null;
    const minor = text.charCodeAt(7);
    if ((minor !== 0x31 && minor !== 0x30) || text.charCodeAt(8) !== 0x20) return null;
    const eol = text.indexOf('\r\n');
    const statusLine = eol < 0 ? text : text.slice(0, eol);
    const d0 = statusLine.charCodeAt(9) - 0x30;
    const d1 = statusLine.charCodeAt(10) - 0x30;
    const d2 = statusLine.charCodeAt(11) - 0x30;
    if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 0x20)) return null;
    const status = d0 * 100 + d1 * 10 + d2;
    if (status === 101) return null;
    if (status < 200) return '';
    let length = -1;
    let te: string | null = null;
    let connection: string | null = null;
    let acao = false;
    let keepAliveHint = -1;
    const h = headerLines(text, eol < 0 ? text.length : eol + 2);
    if (h === null) return null;
    const { names, lines, colons } = h;
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      if (name === 'content-length') {
        const value = lines[i].slice(colons[i] + 1).trim();
        if (!/^\d{1,15}$/.test(value)) return null;
        const n = Number(value);
        // Two different lengths: no way to know where the response ends (RFC 9112 §6.3).
        if (length >= 0 && n !== length) return null;
        length = n;
      } else if (name === 'transfer-encoding') {
        const value = lines[i].slice(colons[i] + 1).trim();
        te = te === null ? value : `${te}, ${value}`;
      } else if (name === 'connection') {
        const value = lines[i].slice(colons[i] + 1).trim();
        connection = connection === null ? value : `${connection}, ${value}`;
      } else if (name === 'keep-alive') {
        const m = /timeout=(\d+)/i.exec(lines[i]);
        if (m) keepAliveHint = Number(m[1]) * 1000;
      } else if (name === 'access-control-allow-origin') {
        acao = true;
      }
    }
    const conn = this.conn!;
    // A server that said it keeps an idle connection N s: give it up a second earlier, so
    // that our next request does not cross its close (undici does the same with the hint).
    conn.idleMs = keepAliveHint >= 0 ? Math.max(0, Math.min(IDLE_MS, keepAliveHint - 1000)) : IDLE_MS;
    const closing = connection !== null && /(?:^|,)\s*close\s*(?:,|$)/i.test(connection);
    this.reusable = minor === 0x31 && !closing && conn.idleMs > 0;
    const noBody = this.req.method === 'HEAD' || status === 204 || status === 304;
    // RFC 9112 §6.3: Transfer-Encoding wins over Content-Length; a last coding other than chunked
    // means the body runs to the close.
    if (noBody) this.body = Body.None;
    else if (te !== null) this.body = /(?:^|,)\s*chunked\s*$/i.test(te) ? Body.Chunked : Body.Close;
    else if (length >= 0) this.body = length === 0 ? Body.None : Body.Length;
    else this.body = Body.Close;
    if (this.body === Body.Close) this.reusable = false;
    this.left = length;
    const tokens = connectionTokenSet(connection ?? undefined);
    let out = `HTTP/1.1 ${statusLine.slice(9)}\r\n`;
    let date = false;
    let lengthSent = false;
    for (let i = 0; i < names.length; i++) {
      const n = names[i];
      if ((isHopByHop(n) && !(n === 'trailer' && this.req.trailers === true)) || (tokens !== null && tokens.has(n))) continue;
      if (n === 'content-length') {
        // Repeats of the one length are sent once; with Transfer-Encoding not at all (RFC 9112 §6.3).
        if (te !== null || lengthSent) continue;
        lengthSent = true;
      }
      if (n === 'date') date = true;
      out += `${lines[i]}\r\n`;
    }
    if (!date) out += this.hooks.date();
    if (!acao) out += this.hooks.cors;
    if (this.body === Body.Chunked || (this.body === Body.Close && !this.hooks.close)) out += 'Transfer-Encoding: chunked\r\n';
    this.rechunk = this.body === Body.Close && !this.hooks.close;
    this.status = status;
    return `${out}${this.hooks.close ? 'Connection: close' : 'Connection: keep-alive'}\r\n\r\n`;
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
        return;
      }
      case Body.Chunked: {
        const end = this.chunks(b, from);
        if (end === -2) return this.fail('UPSTREAM_ERROR', 'invalid chunked encoding', true);
        if (end < 0) return;
        // The last chunk's size line was relayed; its trailer section goes to a client that reads
        // trailers (TE: trailers), filtered; to others the body just ends (RFC 9112 §7.1.2).
        this.write(this.trailerParts === null ? CRLF : trailerSection(this.trailerParts));
        if (end < b.length) this.reusable = false;
        this.complete();
        return;
      }
      case Body.Close: {
        const part = from === 0 ? b : b.subarray(from);
        if (part.length === 0) return;
        if (this.rechunk) {
          this.client.cork();
          this.write(`${part.length.toString(16)}\r\n`);
          this.write(part);
          this.write(CRLF);
          this.client.uncork();
        } else {
          this.write(part);
        }
        return;
      }
      default:
    }
  }

  /**
   * Walks chunked framing in `b` from `from`, relaying the bytes up to and including the last
   * chunk's size line. Returns -1 when the body goes on, the index after the trailer section
   * when it ended, -2 when the framing is broken.
   */
  private chunks(b: Buffer, from: number): number {
    let i = from;
    const len = b.length;
    let relayTo = this.cs === Chunk.Trailer ? from : len;
    while (i < len) {
      switch (this.cs) {
        case Chunk.Data: {
          const n = Math.min(this.csize, len - i);
          i += n;
          this.csize -= n;
          if (this.csize === 0) this.cs = Chunk.DataCr;
          continue;
        }
        case Chunk.DataCr:
          if (b[i++] !== 0x0d) return -2;
          this.cs = Chunk.DataLf;
          continue;
        case Chunk.DataLf:
          if (b[i++] !== 0x0a) return -2;
          this.cs = Chunk.Size;
          this.csize = 0;
          this.cdigits = 0;
          this.cline = 0;
          continue;
        case Chunk.Trailer: {
          // Trailer lines up to the empty line: kept for a client that reads them, else skipped.
          const c = b[i++];
          if (c === 0x0a) {
            if (this.cline === 0) {
              if (relayTo > from) this.write(b.subarray(from, relayTo));
              if (this.trailerParts !== null) this.trailerParts.push(b.subarray(relayTo, i));
              return i;
            }
            this.cline = 0;
          } else if (c !== 0x0d) {
            this.cline++;
            if (++this.cdigits > MAX_TRAILER_BYTES) return -2;
          }
          continue;
        }
        default: {
          const c = b[i++];
          if (++this.cline > MAX_CHUNK_LINE_BYTES) return -2;
          if (this.cs === Chunk.Size) {
            const d = hexDigit(c);
            if (d >= 0) {
              if (++this.cdigits > MAX_CHUNK_SIZE_DIGITS) return -2;
              this.csize = this.csize * 16 + d;
              continue;
            }
            if (this.cdigits === 0) return -2;
            if (c === 0x3b || c === 0x20 || c === 0x09) {
              this.cs = Chunk.Ext;
              continue;
            }
          } else if (this.cs === Chunk.Ext) {
            if (c !== 0x0d && c !== 0x0a) continue;
          }
          if (this.cs !== Chunk.SizeLf) {
            if (c !== 0x0d) return -2;
            this.cs = Chunk.SizeLf;
            continue;
          }
          if (c !== 0x0a) return -2;
          this.cline = 0;
          if (this.csize === 0) {
            this.cs = Chunk.Trailer;
            this.cdigits = 0;
            relayTo = i;
            if (this.req.trailers === true) this.trailerParts = [];
          } else {
            this.cs = Chunk.Data;
          }
        }
      }
    }
    if (relayTo > from) this.write(from === 0 && relayTo === len ? b : b.subarray(from, relayTo));
    if (this.trailerParts !== null && this.cs === Chunk.Trailer && relayTo < len) this.trailerParts.push(Buffer.from(b.subarray(relayTo, len)));
    return -1;
  }

  /** Writes to the client; strings are latin1 (a head read off the wire goes back byte for byte). */
  private write(b: Buffer | string): void {
    this.bytes += b.length;
    if (!(typeof b === 'string' ? this.client.write(b, 'latin1') : this.client.write(b)) && !this.waitingDrain && this.conn !== null) {
      // A slow client: stop reading the upstream until it catches up, and stop the upstream's
      // idle timer meanwhile (the client's own timeout bounds a client that never reads).
      this.waitingDrain = true;
      this.conn.sock.pause();
      this.conn.sock.setTimeout(0);
      if (this.client.timeout !== this.hooks.stallTimeoutMs) this.client.setTimeout(this.hooks.stallTimeoutMs);
      this.client.once('drain', this.onDrain);
    }
  }

  private readonly onDrain = (): void => {
    this.waitingDrain = false;
    const c = this.conn;
    if (c === null || this.settled) return;
    c.sock.setTimeout(this.pool.opts.timeoutMs);
    c.sock.resume();
  };

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
  private readonly onClientClose = (): void => {
    if (this.settled) return;
    const { log } = this.pool.opts;
    log.info(`proxy ${this.req.method} ${this.req.url} → ${this.pool.opts.upstream.origin}: client closed the connection; upstream request aborted`);
    this.detach(false);
    this.client.destroy();
    this.settle({ status: 499, error: 'CLIENT_CLOSED', bytes: this.bytes - this.headBytes, open: false });
  };

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
      return this.settle({ status: this.status, error: code, bytes: this.bytes - this.headBytes, open: false });
    }
    log.warn(`proxy ${this.req.method} ${this.req.url} → ${origin}: ${why}`);
    const ge = new GatewayError(code, origin);
    const { type, body } = this.hooks.errorBody(ge);
    const payload = Buffer.from(`HTTP/1.1 ${ge.status} ${STATUS_CODES[ge.status]}\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`
      + `${this.hooks.cors}${this.hooks.date()}${this.hooks.close ? 'Connection: close' : 'Connection: keep-alive'}\r\n\r\n${this.req.method === 'HEAD' ? '' : body}`);
    this.status = ge.status;
    this.write(payload);
    this.settle({ status: ge.status, error: code, bytes: this.bytes - this.headBytes, open: !this.hooks.close });
  }

  /** The response is whole: the connection goes back to the pool if it can carry another. */
  private complete(): void {
    this.detach(this.reusable && !this.early);
    this.settle({ status: this.status, error: null, bytes: this.bytes - this.headBytes, open: !this.hooks.close });
  }

  private detach(reusable: boolean): void {
    const c = this.conn;
    if (c === null) return;
    this.conn = null;
    c.ex = null;
    if (this.waitingDrain) {
      // The upstream's read timeout was off while the client caught up: the next exchange on
      // this connection needs it again (acquire does not re-arm it).
      c.sock.setTimeout(this.pool.opts.timeoutMs);
      c.sock.resume();
    }
    this.pool.release(c, reusable);
  }

  private settle(o: LaneOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.client.off('end', this.onClientClose);
    this.client.off('close', this.onClientClose);
    if (this.waitingDrain) this.client.off('drain', this.onDrain);
    if (o.open === false && this.hooks.close && !this.client.destroyed) this.client.end();
    this.hooks.done(o);
  }
}

/**
 * The trailer section for the client, from the upstream's (the bytes after the last chunk's size
 * line, empty line included): each field that may travel in a trailer and parses cleanly, then
 * the empty line. A malformed line is dropped, not relayed: the body is already whole.
 */
function trailerSection(parts: Buffer[]): string {
  let out = '';
  for (const line of Buffer.concat(parts).toString('latin1').split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (trailerAllowed(name, value)) out += `${line.slice(0, colon)}: ${value}\r\n`;
  }
  return `${out}\r\n`;
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * The lane of one proxy route: its upstream pool and the request rewriting. Built by the route's
 * Proxy only for http:// upstreams with keep-alive on; retired with it on reload.
 */
export class ProxyLane {
  private readonly pool: UpstreamPool;

  constructor(private readonly opts: LaneOptions) {
    this.pool = new UpstreamPool(opts);
  }

  /**
   * The request as the upstream gets it: the client's header lines minus hop-by-hop ones (and
   * those its Connection names), X-Forwarded-For appended, -Proto and -Host set, Host per the
   * route. Null for a head the lane will not forward verbatim (control characters, bare CR or LF):
   * Node's parser then judges it on the long path.
   */
  prepare(r: LaneRequest): string | null {
    const h = r.head;
    if (BAD_HEAD.test(h)) return null;
    // Only a target the request rules leave as it is goes out verbatim: one with dot-segments
    // (or anything else to normalise or refuse) takes the long path, which applies them.
    const v = checkTarget(r.method, r.url, [r.host], true);
    if (!v.ok || v.path.length + v.query.length !== r.url.length) return null;
    const eol = h.indexOf('\r\n');
    const hl = headerLines(h, eol < 0 ? h.length : eol + 2);
    if (hl === null) return null;
    const { names, lines, colons } = hl;
    let connection: string | undefined;
    let xff = '';
    for (let i = 0; i < names.length; i++) {
      if (names[i] === 'connection') {
        const v = lines[i].slice(colons[i] + 1).trim();
        connection = connection === undefined ? v : `${connection}, ${v}`;
      } else if (names[i] === 'x-forwarded-for') {
        const x = lines[i].slice(colons[i] + 1).trim();
        xff = xff === '' ? x : `${xff}, ${x}`;
      } else if (names[i] === 'te' && acceptsTrailers(lines[i].slice(colons[i] + 1))) {
        r.trailers = true;
      }
    }
    const tokens = connectionTokenSet(connection);
    let out = `${r.method} ${this.opts.base}${r.url} HTTP/1.1\r\nHost: ${r.upstreamHost}\r\n`;
    for (let i = 0; i < names.length; i++) {
      const n = names[i];
      if (isHopByHop(n) || (tokens !== null && tokens.has(n))) continue;
      if (n === 'host' || n === 'x-forwarded-for' || n === 'x-forwarded-proto' || n === 'x-forwarded-host') continue;
      out += `${lines[i]}\r\n`;
    }
    // A client that reads trailers lets the upstream know it may send them (RFC 9110 §10.1.4).
    if (r.trailers === true) out += 'TE: trailers\r\n';
    return `${out}X-Forwarded-For: ${xff === '' ? r.clientIp : `${xff}, ${r.clientIp}`}\r\nX-Forwarded-Proto: ${r.proto}\r\nX-Forwarded-Host: ${r.host}\r\nConnection: keep-alive\r\n\r\n`;
  }

  /** Sends a prepared request upstream and relays the answer to `client`; `hooks.done` when it is over. */
  run(client: Socket, r: LaneRequest, wire: string, hooks: LaneHooks): void {
    new Exchange(this.pool, client, r, wire, hooks).start();
  }

  close(): void {
    this.pool.close();
  }
}
