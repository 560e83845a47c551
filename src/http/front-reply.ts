import type { Socket } from 'node:net';
import type { Budget } from '../limits/budget.js';
import type { DirectBody } from '../net/sendfile.js';
import type { Tracked } from '../net/guard.js';

/**
 * What the front door (src/http/frontdoor.ts) and its HTTP/2 counterparts trade with the code
 * that answers (src/lanes/fast.ts): the request as read, the reply as made once and reused, and
 * the rendering of a reply into the bytes that go on the wire.
 */

export interface FastRequest {
  method: 'GET' | 'HEAD';
  /** The request-target as sent (origin-form, starts with "/"). */
  url: string;
  host: string;
  /** The request carries Origin (CORS headers are then due). */
  origin: boolean;
  referer: string;
  agent: string;
  ip: string;
  httpVersion: '1.1' | '2.0';
  /** The request head as read (request line and header lines, no blank line), for the proxy lane; '' on HTTP/2. */
  head: string;
  /**
   * The answerer's own slot (null when made): what it worked out about this request. A repeated
   * head comes back as the same object, so it is worked out once per head, not per request.
   */
  memo: unknown;
}

/**
 * A proxied request in flight (src/proxy/lane.ts): it owns the connection until it calls
 * `finished`, with true when the connection is open for the next request.
 */
export type ProxyRun = (close: boolean, finished: (open: boolean) => void) => void;

/**
 * A reply the front door writes. Producers reuse one object per answer (per cached file, playlist
 * version, segment): the front door caches the rendered bytes and HTTP/2 headers by identity.
 */
export interface FastReply {
  status: number;
  /** Header lines after the status line, each ending in CRLF, without Date and Connection. */
  head: string;
  body: Buffer;
  route: string;
  /** The body's memfd copy: on a plain TCP socket a large body then goes out by sendfile(2). */
  direct?: DirectBody | null;
}

export interface FrontDoorOptions {
  /**
   * The reply for a plain GET/HEAD, or null to leave the request to the full routing table. A
   * promise (a cold cache being filled) holds this connection's later requests until it settles.
   * `now` is Date.now() as the request was read: one clock read serves the answer and the Date.
   */
  answer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null>;
  /**
   * The proxy lane's runner for a plain GET/HEAD (conditions and ranges included: an upstream
   * answers those), or null. Asked before `answer`.
   */
  proxy?(req: FastRequest, sock: Socket): ProxyRun | null;
  /**
   * After a reply is written: access log and metrics. `bytes` are the body's; `direct` bytes of
   * the response went out by send/sendfile on the socket's fd, which bytesWritten does not count.
   * `at` is the wall-clock time (Date.now()) of the answer when the caller has read it already.
   */
  done(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number, at?: number): void;
  /** Whether done() wants `ms`, the time the answer took (an access log is on); 0 is passed when not. */
  timed(): boolean;
  /** False hands the connection over at once (shutting down, past max_connections). */
  eligible(sock: Socket): boolean;
  keepAliveTimeoutMs(): number;
  maxHeaderBytes(): number;
  /** HTTPS only: serve h2 connections with streamgate's own HTTP/2 (src/http/h2/) instead of Node's. */
  ownH2?(): boolean;
  headerTimeoutMs?(): number;
  /** HTTP/2 (src/http/h2/): how long open streams may make no progress before the connection is closed. */
  requestTimeoutMs?(): number;
  /** HTTP/2: each connection's memory account, drawing on `pool` (src/limits/budget.ts). */
  memory?(): { pool: Budget | null; connectionBytes: number };
  /** One log line when a peer is cut off for a budget. */
  warn?(line: string): void;
  /**
   * The connection guard's entry for a connection (src/net/guard.ts), asked once per connection:
   * the front door marks it busy from a head to its answer and idle between requests, so a
   * connection that never sends a head can be closed at header_timeout and reclaimed first.
   */
  tracked?(sock: Socket): Tracked | undefined;
}

let dateSecond = 0;
let dateLine = '';

/** The Date header, rendered once per second as NGINX does. */
export function httpDate(now = Date.now()): string {
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateLine = `Date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

/**
 * The bytes of a reply as they go on the wire — status line, headers, Date, Connection and, for
 * small bodies, the body — rendered once per reply per second (the Date changes) and reused for
 * every request in between: a hot playlist costs one write of a ready buffer.
 */
interface Wire {
  second: number;
  /** Indexed by (close ? 1 : 0) + (with the body ? 2 : 0). */
  bufs: (Buffer | undefined)[];
}
const wires = new WeakMap<FastReply, Wire>();

export function wireOf(r: FastReply, close: boolean, withBody: boolean, now: number): Buffer {
  const date = httpDate(now);
  let w = wires.get(r);
  if (w === undefined || w.second !== dateSecond) {
    w = { second: dateSecond, bufs: [] };
    wires.set(r, w);
  }
  const i = (close ? 1 : 0) + (withBody ? 2 : 0);
  let b = w.bufs[i];
  if (b === undefined) {
    const head = Buffer.from(`HTTP/1.1 ${r.status} ${REASONS[r.status] ?? ''}\r\n${r.head}${date}${close ? 'Connection: close\r\n' : 'Connection: keep-alive\r\n'}\r\n`, 'latin1');
    b = withBody ? Buffer.concat([head, r.body], head.length + r.body.length) : head;
    w.bufs[i] = b;
  }
  return b;
}

const REASONS: Record<number, string> = { 200: 'OK', 304: 'Not Modified', 404: 'Not Found' };

/**
 * An answer's start for done()'s `ms`, or -1 when nobody wants it: with the access log off (the
 * usual setting under load) a request read from memory costs no clock reads for its timing.
 */
export function startClock(opts: Pick<FrontDoorOptions, 'timed'>): number {
  return opts.timed() ? performance.now() : -1;
}

export function took(start: number): number {
  return start < 0 ? 0 : performance.now() - start;
}

/** A reply's status and header lines as HTTP/2 fields (lower-case names), in order. */
export function replyFields(r: FastReply): [string, string][] {
  const fields: [string, string][] = [[':status', String(r.status)]];
  for (const line of r.head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return fields;
}
