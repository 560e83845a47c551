import http from 'node:http';
import https from 'node:https';
import type { Duplex, Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Context } from 'koa';
import type { ProxyRoute } from '../config/index.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import { acceptsTrailers, clientResponseHeaders, rawHead, upstreamRequestHeaders, type ForwardInfo } from './headers.js';
import { Relay, StrayResponse } from './relay.js';
import { badFieldValue, checkTarget, type TargetVerdict } from '../http/request-rules.js';
import { ProxyLane } from './lane.js';
import { clientIp } from '../net/address.js';

export interface ProxyOptions {
  /** Upstream idle timeout: no byte from the upstream for this long is a 504 (NGINX's proxy_read_timeout). */
  timeoutMs: number;
  /** Time to establish a new upstream connection (NGINX's proxy_connect_timeout). */
  connectTimeoutMs: number;
  /** Idle upstream connections kept for reuse; 0 opens one connection per request. */
  keepAlive: number;
  log: Logger;
  metrics: Metrics;
}

export type AnyRequest = http.IncomingMessage | Http2ServerRequest;
export type AnyResponse = http.ServerResponse | Http2ServerResponse;

/** How one proxied exchange ended, for the access log. */
export interface ProxyOutcome {
  status: number;
  error: ErrorCode | 'CLIENT_CLOSED' | null;
}

/** Adds headers of our own (CORS) to the upstream's response before it is sent. */
export type Decorate = (req: AnyRequest, headers: http.OutgoingHttpHeaders) => void;

/** A timeout we raise ourselves, told apart from socket errors when mapping to 504. */
class UpstreamTimeout extends Error {
  constructor(readonly phase: 'connect' | 'read') {
    super(`upstream ${phase} timeout`);
  }
}

/** undici's error codes that mean the upstream was too slow. */
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);

/**
 * A reverse proxy for one route (Caddy's reverse_proxy, NGINX's proxy_pass): a keep-alive pool
 * per upstream, bodies streamed both ways with backpressure, X-Forwarded-*, hop-by-hop headers
 * removed, WebSocket upgrades passed through, and upstream failures mapped to 502/504 with a
 * body that names the upstream. Built on node:http rather than koa-proxies (http-proxy 1.18):
 * see the README for the bullets it misses.
 */
export class Proxy {
  /** The upstream pool (undici): about twice the requests per core of node:http's client. */
  private readonly pool: Pool;
  /** node:http is kept for upgrades, which leave the pool with their socket anyway. */
  private readonly request: typeof http.request;
  private readonly base: string;
  readonly upstream: string;
  /** The front door's raw lane for plain GET/HEAD (lane.ts); null for https upstreams and `keepalive 0`. */
  readonly lane: ProxyLane | null;
  private closed = false;

  constructor(readonly route: ProxyRoute, private readonly opts: ProxyOptions) {
    const secure = route.upstream.protocol === 'https:';
    this.pool = new Pool(route.upstream.origin, {
      // No cap: a long-lived response (events, a live stream) must never queue the next request.
      connections: null,
      // pipelining 0 is undici's "no keep-alive": one connection per request, as `keepalive 0` asks.
      pipelining: opts.keepAlive > 0 ? 1 : 0,
      keepAliveTimeout: 4_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { timeout: opts.connectTimeoutMs },
    });
    this.request = secure ? https.request : http.request;
    this.base = route.upstream.pathname.replace(/\/+$/, '');
    this.upstream = route.upstream.origin;
    this.lane = !secure && opts.keepAlive > 0
      ? new ProxyLane({ upstream: route.upstream, base: this.base, timeoutMs: opts.timeoutMs, connectTimeoutMs: opts.connectTimeoutMs, keepAlive: opts.keepAlive, log: opts.log, metrics: opts.metrics })
      : null;
  }

  /** The Koa entry: the proxy writes the response itself; errors before the head go to errorResponder. */
  async handle(ctx: Context, decorate?: Decorate): Promise<void> {
    ctx.respond = false;
    try {
      const out = await this.serve(ctx.req, ctx.res, decorate);
      ctx.state.rawStatus = out.status;
      if (out.error) ctx.state.errorCode = out.error;
    } catch (err) {
      ctx.respond = true;
      throw err;
    }
  }

  /**
   * Proxies one request on raw node objects (HTTP/1 or HTTP/2 compat). Resolves when the exchange
   * is over; rejects with a GatewayError only when nothing has been sent to the client yet (a 400
   * for a target or field the request rules refuse, a 502/504 for the upstream).
   */
  serve(req: AnyRequest, res: AnyResponse, decorate?: Decorate): Promise<ProxyOutcome> {
    return new Promise<ProxyOutcome>((resolve, reject) => {
      const method = req.method ?? 'GET';
      const target = this.target(req);
      if (!target.ok) {
        this.opts.log.info(`proxy ${method} ${JSON.stringify((req.url ?? '').slice(0, 80))} refused: ${target.reason}`);
        reject(new GatewayError('BAD_REQUEST', target.reason));
        return;
      }
      const http2 = req.httpVersionMajor >= 2;
      const trailers = http2 || acceptsTrailers(req.headers.te);
      const { opts, hasBody } = this.dispatchOptions(req, method, target, trailers);
      let settled = false;
      let relay: Relay | null = null;
      let retried = false;
      const finish = (o: ProxyOutcome) => {
        if (settled) return;
        settled = true;
        resolve(o);
      };
      res.once('close', () => {
        // Not res.writableFinished: an HTTP/2 response reports that true once its stream is reset,
        // which left the upstream request of every reset stream running.
        if (settled) return;
        relay?.cancel();
        this.opts.log.info(`proxy ${method} ${req.url} → ${this.upstream}: client closed the connection; upstream request aborted`);
        finish({ status: 499, error: 'CLIENT_CLOSED' });
      });
      const send = (): void => {
        relay = new Relay({
          res,
          trailers,
          http2,
          decorate: (out) => decorate?.(req, out),
          done: (status, err) => {
            if (err === null) return finish({ status, error: null });
            const code = this.classify(err);
            this.opts.metrics.upstreamError(this.upstream, code === 'UPSTREAM_TIMEOUT' ? 'timeout' : code === 'UPSTREAM_REFUSED' ? 'refused' : 'error');
            this.opts.log.warn(`proxy ${method} ${req.url} → ${this.upstream}: upstream failed mid-response (${(err as NodeJS.ErrnoException).code ?? err.message})`);
            finish({ status, error: code });
          },
          failed: (err) => {
            if (settled) return;
            if (err instanceof StrayResponse) {
              this.opts.metrics.count('streamgate_proxy_stray_responses_total', 'Upstream connections closed because a response arrived before its request could have been read.');
              // No body was consumed: the request can go again, on another connection (undici
              // destroyed this one). A body already streamed cannot be sent twice.
              if (!hasBody && !retried) {
                retried = true;
                this.opts.log.warn(`proxy ${method} ${req.url} → ${this.upstream}: ${err.message}; connection closed, request sent again`);
                return send();
              }
            }
            const code = this.classify(err);
            this.opts.metrics.upstreamError(this.upstream, code === 'UPSTREAM_TIMEOUT' ? 'timeout' : code === 'UPSTREAM_REFUSED' ? 'refused' : 'error');
            this.opts.log.warn(`proxy ${method} ${req.url} → ${this.upstream}: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
            settled = true;
            reject(new GatewayError(code, this.upstream));
          },
        });
        const r = relay;
        this.pool.dispatch(opts, r);
        // Queued after the dispatch, so after undici's own idle-socket check for a reused
        // connection (its setImmediate, where it writes the request): whatever response head
        // undici parses before this runs was sent before the upstream could read our request.
        setImmediate(() => (r.early = false));
      };
      send();
    });
  }

  /** What undici sends upstream for `req`: the target as the rules read it, the forwarded headers, the body as it comes. */
  private dispatchOptions(req: AnyRequest, method: string, target: TargetVerdict & { ok: true }, trailers: boolean): { opts: Dispatcher.DispatchOptions; hasBody: boolean } {
    const h = req.headers;
    const hasBody = h['content-length'] !== undefined ? h['content-length'] !== '0'
      : h['transfer-encoding'] !== undefined || (req.httpVersionMajor >= 2 && !NO_BODY_METHODS.has(method));
    const headers = upstreamRequestHeaders(h, this.forward(target.host, req.socket?.remoteAddress, (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true), false);
    // A client that reads trailers lets the upstream know it may send them (RFC 9110 §10.1.4).
    if (trailers) headers.te = 'trailers';
    const opts: Dispatcher.DispatchOptions = {
      path: this.base + target.path + target.query,
      method: method as Dispatcher.HttpMethod,
      headers: headers as Record<string, string | string[]>,
      // A body of unknown length goes as an iterable: given the stream, undici sends a body that
      // had wholly arrived by dispatch time (a small chunked upload in one packet) with a
      // Content-Length, reframing what the client chose to stream.
      // (undici documents AsyncIterable bodies; its DispatchOptions type does not list them.)
      body: !hasBody ? null : h['content-length'] !== undefined ? (req as Readable) : (chunksOf(req as Readable) as unknown as Readable),
    };
    return { opts, hasBody };
  }

  /**
   * The request-target and Host as the request rules read them (RFC 9112 §3.2): origin-form
   * forwarded, absolute-form forwarded as origin-form with its authority as Host, dot-segments
   * removed; more than one Host, a path above "/" or a control character in a field is refused.
   * A path that leaves this route's prefix once its dot-segments are gone is refused too: it was
   * routed here by what it looked like, not by what it is.
   */
  private target(req: AnyRequest): TargetVerdict {
    const raw = req.rawHeaders;
    let hosts: string[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (badFieldValue(raw[i + 1])) return { ok: false, reason: `control character in the ${raw[i]} field` };
      if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') hosts.push(raw[i + 1]);
    }
    const http2 = req.httpVersionMajor >= 2;
    if (http2) {
      // RFC 9113 §8.3.1: a Host that differs from :authority makes the request malformed.
      const authority = req.headers[':authority'];
      if (typeof authority === 'string') hosts = hosts.every((x) => x === authority) ? [authority] : [authority, ...hosts];
    }
    const v = checkTarget(req.method ?? 'GET', req.url ?? '/', hosts, !http2 && req.httpVersion === '1.1');
    if (!v.ok) return v;
    if (v.path === '*') return { ok: false, reason: 'asterisk-form target is not proxied' };
    const prefix = this.route.prefix;
    if (prefix !== '/' && !v.path.startsWith(prefix)) return { ok: false, reason: `path leaves ${prefix} once its dot-segments are removed` };
    return v;
  }

  /** WebSocket (and any HTTP/1.1 Upgrade): hand-shake upstream, then splice the two sockets. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const target = this.target(req);
    if (!target.ok) {
      const body = `400 ${target.reason}\n`;
      socket.end(rawHead(400, 'Bad Request', { 'Content-Type': 'text/plain;charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' }) + body);
      return;
    }
    const sock = req.socket as typeof req.socket & { encrypted?: boolean };
    const headers = upstreamRequestHeaders(req.headers, this.forward(target.host, sock.remoteAddress, sock.encrypted === true), true);
    const upReq = this.request({
      agent: false,
      host: this.route.upstream.hostname.replace(/^\[|\]$/g, ''),
      port: this.route.upstream.port || (this.route.upstream.protocol === 'https:' ? 443 : 80),
      method: req.method,
      path: this.base + target.path + target.query,
      headers,
      setHost: false,
      timeout: this.opts.connectTimeoutMs,
    });
    const giveUp = (err: Error) => {
      const code = this.classify(err);
      this.opts.metrics.upstreamError(this.upstream, code === 'UPSTREAM_TIMEOUT' ? 'timeout' : 'error');
      this.opts.log.warn(`proxy upgrade ${req.url} → ${this.upstream}: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      if (socket.writable) {
        const ge = new GatewayError(code, this.upstream);
        const body = `${ge.status} ${ge.message}\n`;
        socket.end(rawHead(ge.status, code === 'UPSTREAM_TIMEOUT' ? 'Gateway Timeout' : 'Bad Gateway', {
          'Content-Type': 'text/plain;charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close',
        }) + body);
      } else {
        socket.destroy();
      }
    };
    upReq.on('timeout', () => upReq.destroy(new UpstreamTimeout('connect')));
    upReq.on('error', giveUp);
    socket.on('error', () => upReq.destroy());
    upReq.on('upgrade', (upRes, upSock, upHead) => {
      upSock.setTimeout(0);
      socket.write(rawHead(upRes.statusCode ?? 101, upRes.statusMessage ?? 'Switching Protocols', upRes.rawHeaders));
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSock.write(head);
      upSock.on('error', () => socket.destroy());
      socket.on('close', () => upSock.destroy());
      upSock.on('close', () => socket.destroy());
      upSock.pipe(socket);
      socket.pipe(upSock);
    });
    upReq.on('response', (upRes) => {
      // The upstream declined the upgrade: relay its answer as a plain response.
      socket.write(rawHead(upRes.statusCode ?? 502, upRes.statusMessage ?? '', { ...clientResponseHeaders(upRes.headers), Connection: 'close' }));
      upRes.pipe(socket);
    });
    upReq.end();
  }

  /**
   * Retires the pool: no new requests, and in-flight ones (a download, an event stream) run to
   * their end before its connections close. SIGHUP builds new proxies and retires the old ones,
   * so destroying here would cut every proxied response in flight at each reload.
   */
  close(): void {
    this.closed = true;
    this.lane?.close();
    void this.pool.close().catch(() => {});
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** What a request forwards (X-Forwarded-*, the upstream Host) from its Host, address and TLS; both lanes use it. */
  forward(host: string, address: string | undefined, encrypted: boolean): ForwardInfo {
    const hostMode = this.route.host;
    return {
      clientIp: clientIp(address),
      proto: encrypted ? 'https' : 'http',
      host,
      upstreamHost: hostMode === 'client' ? (host || this.route.upstream.host) : hostMode === 'upstream' ? this.route.upstream.host : hostMode,
    };
  }

  private classify(err: Error): ErrorCode {
    if (err instanceof UpstreamTimeout) return 'UPSTREAM_TIMEOUT';
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'ECONNREFUSED') return 'UPSTREAM_REFUSED';
    if (TIMEOUT_CODES.has(code)) return 'UPSTREAM_TIMEOUT';
    return 'UPSTREAM_ERROR';
  }
}

/**
 * A request body as an async iterable: undici then frames it chunked and pulls it with
 * backpressure. Read in flowing mode with a read-ahead, so the client's stream is paused only
 * when undici falls BODY_QUEUE_BYTES behind, not once per chunk.
 */
/** Request body bytes read ahead of undici's writes before the client's stream is paused. */
const BODY_QUEUE_BYTES = 256 * 1024;

function chunksOf(body: Readable): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Buffer> {
      const queue: Buffer[] = [];
      let queued = 0;
      let ended = false;
      let failed: Error | null = null;
      let wake: (() => void) | null = null;
      const poke = () => {
        const w = wake;
        wake = null;
        w?.();
      };
      body.on('data', (c: Buffer) => {
        queue.push(c);
        queued += c.length;
        // Paused only once undici falls behind (as undici's own stream writer does), not per chunk.
        if (queued > BODY_QUEUE_BYTES) body.pause();
        poke();
      });
      body.once('end', () => {
        ended = true;
        poke();
      });
      body.once('error', (err: Error) => {
        failed = err;
        poke();
      });
      body.once('close', () => {
        if (!ended && failed === null) failed = new Error('request body closed before its end');
        poke();
      });
      return {
        async next(): Promise<IteratorResult<Buffer>> {
          for (;;) {
            const c = queue.shift();
            if (c !== undefined) {
              queued -= c.length;
              if (queued <= BODY_QUEUE_BYTES && body.isPaused()) body.resume();
              return { value: c, done: false };
            }
            if (failed !== null) throw failed;
            if (ended) return { value: undefined, done: true };
            await new Promise<void>((r) => (wake = r));
          }
        },
        async return(): Promise<IteratorResult<Buffer>> {
          body.destroy();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

export function createProxy(route: ProxyRoute, opts: ProxyOptions): Proxy {
  return new Proxy(route, opts);
}
