import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { GatewayError, ErrorCode } from '../errors.js';
import { headerLines } from '../http/head.js';
import { checkTarget } from '../http/request-rules.js';
import { Exchange } from './exchange.js';
import { acceptsTrailers, connectionTokenSet, isHopByHop } from './headers.js';
import { UpstreamPool } from './pool.js';
import { BAD_HEAD, HeadMemo } from './response-head.js';

/**
 * The front door's proxy lane: a plain GET/HEAD for a proxied prefix, read off the client socket
 * by src/http/frontdoor.ts, is written to a pooled keep-alive upstream connection as raw bytes,
 * and the upstream's response head is parsed here and its body relayed as it arrives — NGINX's
 * proxy_pass with upstream keepalive. Node's HTTP server and undici cost about 150 µs of CPU per
 * proxied request between them (request and response objects on both sides); this path is bytes
 * in, bytes out.
 *
 * Only requests without a body take it: anything with a body, an upgrade or an expectation stays
 * on the undici path (src/proxy/index.ts), which answers the same.
 *
 * Its rooms: this file (the request as the upstream gets it), pool.ts (connections),
 * exchange.ts (one request's life), response-head.ts (the upstream's head), chunked.ts (framing).
 */

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

/**
 * The lane of one proxy route: its upstream pool and the request rewriting. Built by the route's
 * Proxy only for http:// upstreams with keep-alive on; retired with it on reload.
 */
export class ProxyLane {
  private readonly pool: UpstreamPool;
  /** The last response head of this upstream, kept with its parse. */
  private readonly memo = new HeadMemo();

  constructor(private readonly opts: LaneOptions) {
    this.pool = new UpstreamPool(opts);
  }

  /**
   * The request as the upstream gets it: the client's header lines minus hop-by-hop ones (and
   * those its Connection names), X-Forwarded-For appended, -Proto and -Host set, Host per the
   * route. Null for a head the lane will not forward verbatim (control characters, bare CR or LF):
   * Node's parser then judges it on the long path.
   */
  prepare(r: LaneRequest): Buffer | null {
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
    // Bytes, made once per kept head (the front door memoises it): each request is one write of them.
    return Buffer.from(`${out}X-Forwarded-For: ${xff === '' ? r.clientIp : `${xff}, ${r.clientIp}`}\r\nX-Forwarded-Proto: ${r.proto}\r\nX-Forwarded-Host: ${r.host}\r\nConnection: keep-alive\r\n\r\n`, 'latin1');
  }

  /** Sends a prepared request upstream and relays the answer to `client`; `hooks.done` when it is over. */
  run(client: Socket, r: LaneRequest, wire: Buffer, hooks: LaneHooks): void {
    new Exchange(this.pool, this.memo, client, r, wire, hooks).start();
  }

  close(): void {
    this.pool.close();
  }
}
