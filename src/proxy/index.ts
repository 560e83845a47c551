import http from 'node:http';
import https from 'node:https';
import { EventEmitter } from 'node:events';
import { Writable, type Duplex, type Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { constants as h2c, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Context } from 'koa';
import type { ProxyRoute } from '../config/index.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import { clientResponseHeaders, rawHead, upstreamRequestHeaders, type ForwardInfo } from './headers.js';
import { ProxyLane } from './lane.js';
import { clientIp } from '../live/client.js';

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
   * is over; rejects with a GatewayError only when nothing has been sent to the client yet.
   */
  serve(req: AnyRequest, res: AnyResponse, decorate?: Decorate): Promise<ProxyOutcome> {
    return new Promise<ProxyOutcome>((resolve, reject) => {
      const method = req.method ?? 'GET';
      const h = req.headers;
      const hasBody = h['content-length'] !== undefined ? h['content-length'] !== '0'
        : h['transfer-encoding'] !== undefined || (req.httpVersionMajor >= 2 && !NO_BODY_METHODS.has(method));
      let status = 0;
      let settled = false;
      // undici listens for 'abort' on any emitter: cheaper than an AbortController per request.
      const abort = new EventEmitter();
      const finish = (o: ProxyOutcome) => {
        if (settled) return;
        settled = true;
        resolve(o);
      };
      res.once('close', () => {
        if (settled || res.writableFinished) return;
        abort.emit('abort');
        this.opts.log.info(`proxy ${method} ${req.url} → ${this.upstream}: client closed the connection; upstream request aborted`);
        finish({ status: 499, error: 'CLIENT_CLOSED' });
      });
      this.pool.stream({
        path: this.base + (req.url ?? '/'),
        method: method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(h, this.forwardInfo(req), false) as Record<string, string | string[]>,
        body: hasBody ? (req as Readable) : null,
        signal: abort,
      }, ({ statusCode, headers }) => {
        status = statusCode;
        const out = clientResponseHeaders(headers as http.IncomingHttpHeaders);
        decorate?.(req, out);
        (res as http.ServerResponse).writeHead(statusCode, out);
        // A response of unknown length may be a stream of events: show its head at once.
        if (out['content-length'] === undefined && req.httpVersionMajor === 1) (res as http.ServerResponse).flushHeaders();
        return req.httpVersionMajor >= 2 ? h2Body(res as Http2ServerResponse) : (res as unknown as Writable);
      }, (err) => {
        if (settled) return;
        if (!err) return finish({ status, error: null });
        const code = this.classify(err);
        const why = (err as NodeJS.ErrnoException).code ?? err.message;
        this.opts.metrics.upstreamError(this.upstream, code === 'UPSTREAM_TIMEOUT' ? 'timeout' : code === 'UPSTREAM_REFUSED' ? 'refused' : 'error');
        if (res.headersSent) {
          // Mid-body: the only honest signal left is to cut the client's response short.
          this.opts.log.warn(`proxy ${method} ${req.url} → ${this.upstream}: upstream failed mid-response (${why})`);
          cutShort(res);
          return finish({ status, error: code });
        }
        this.opts.log.warn(`proxy ${method} ${req.url} → ${this.upstream}: ${why}`);
        settled = true;
        reject(new GatewayError(code, this.upstream));
      });
    });
  }

  /** WebSocket (and any HTTP/1.1 Upgrade): hand-shake upstream, then splice the two sockets. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const headers = upstreamRequestHeaders(req.headers, this.forwardInfo(req), true);
    const upReq = this.request({
      agent: false,
      host: this.route.upstream.hostname.replace(/^\[|\]$/g, ''),
      port: this.route.upstream.port || (this.route.upstream.protocol === 'https:' ? 443 : 80),
      method: req.method,
      path: this.base + (req.url ?? '/'),
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

  private forwardInfo(req: AnyRequest): ForwardInfo {
    const h = req.headers;
    const sock = req.socket as (typeof req.socket & { encrypted?: boolean }) | undefined;
    return this.forward((h[':authority'] as string | undefined) ?? h.host ?? '', sock?.remoteAddress, sock?.encrypted === true);
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
 * Ends a response mid-body so the client knows it is incomplete: HTTP/1 by closing the
 * connection; HTTP/2 by RST_STREAM with INTERNAL_ERROR (as NGINX does), since a plain destroy
 * resets with NO_ERROR and a client may take the truncated body for a whole one.
 */
function cutShort(res: AnyResponse): void {
  const stream = (res as Http2ServerResponse).stream;
  if (stream && (res as Http2ServerResponse).req?.httpVersionMajor >= 2) stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
  else res.destroy();
}

/**
 * The HTTP/2 response behind a plain Writable. undici 6's stream() nulls its writable, destroys
 * it, then reads `.readable` off the null when the writable reports a clean finish, which an
 * Http2ServerResponse does on destroy: an upstream reset mid-body to an HTTP/2 client threw a
 * TypeError from an event handler and took the whole process down. A Writable of our own
 * reports its destroy as an error; serve() then cuts the client's stream and logs why.
 */
function h2Body(res: Http2ServerResponse): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      if (res.write(chunk)) done();
      else res.stream.once('drain', () => done());
    },
    final(done) {
      res.end();
      done();
    },
  });
}

export function createProxy(route: ProxyRoute, opts: ProxyOptions): Proxy {
  return new Proxy(route, opts);
}
