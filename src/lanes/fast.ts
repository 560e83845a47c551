import type http from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors.js';
import { CombinedPieces } from '../http/access-combined.js';
import { bodyBytes, formatAccess, headerOf, type LineFields } from '../http/accesslog.js';
import { CORS_HEADERS } from '../http/cors.js';
import { errorBody } from '../http/errors.js';
import { httpDate, type FastReply, type FastRequest, type FrontDoorOptions, type ProxyRun } from '../http/frontdoor.js';
import { normalizePath, validHost } from '../http/request-rules.js';
import { clientIp, logAddress } from '../net/address.js';
import { streamKey } from '../live/types.js';
import type { Budget } from '../limits/budget.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ConnectionGuard } from '../net/guard.js';
import type { HlsViewer } from '../outputs/hls.js';
import type { Origin, StreamExt, StreamRequest } from '../outputs/origin.js';
import type { AnyRequest, Proxy } from '../proxy/index.js';
import type { LaneRequest } from '../proxy/lane.js';
import type { Table } from '../routing/build.js';
import { decide, STREAM_PATH } from '../routing/table.js';
import type { CachedBody } from '../static/fileserver.js';
import { UNKNOWN_TYPE } from '../static/mime.js';

/**
 * The fast lanes' side of the gateway: how the front door (HTTP/1.1 and the HTTP/2 fast path)
 * and the proxy lanes answer what the routing table decides, without a Koa context. They ask
 * the same table (src/routing/table.ts) as Koa's middleware and differ only in how they answer.
 */

/** What the lanes need of the gateway. */
export interface LaneHost {
  table(): Table;
  closing(): boolean;
  origin: Origin;
  metrics: Metrics;
  log: Logger;
  guard: ConnectionGuard;
  vhostFor(hostname: string): string;
  /** Accepted past max_connections: answered 503 by Node's lane. */
  overLimit(sock: Socket): boolean;
  /** own_h2 can show Node the client's address on its relay link (checked at start-up). */
  h2Relay(): boolean;
  budgets: { unauthorized: Budget };
}

/** SRS's CORS headers as raw header lines, for answers the front door writes itself. */
export const CORS_LINES = Object.entries(CORS_HEADERS).map(([k, v]) => `${k}: ${v}\r\n`).join('');

/** Combined-line pieces larger than this are made per request rather than kept with the head. */
const LINE_KEPT_MAX_BYTES = 1024;

/** A front-door request the full table must answer. */
const FRONT_NONE = 0;
/** A stream path the origin may answer from memory; otherwise the full table. */
const FRONT_STREAMS = 1;
/** As FRONT_STREAMS, then a file of http_server.dir. */
const FRONT_FILES = 2;

interface FrontRoute {
  table: Table;
  kind: typeof FRONT_NONE | typeof FRONT_STREAMS | typeof FRONT_FILES;
  /** The URL's path, undecoded. */
  path: string;
  /** The proxy route of the path's prefix, for the proxy lane. */
  /** `route` is the table entry's name, as the access log and metrics show it (proxy:/up/, edge:hls). */
  proxy: { prefix: string; proxy: Proxy; route: string } | null;
  stream: StreamRequest | null;
  /** Who asks for the stream, for the HLS session listing; made on first use. */
  viewer?: HlsViewer;
  /** The proxy lane's upstream request and its bytes (null: the lane refused the head); made on first use. */
  lane?: { lr: LaneRequest; wire: Buffer } | null;
  /** The request has Origin and crossdomain is on. */
  cors: boolean;
  /** The cached file last answered and its reply: while the cache hands back the same entry, so is the reply. */
  file?: { entry: CachedBody; reply: FastReply };
  /** The access log's pieces of this head's combined line; made on first use. */
  log?: CombinedPieces;
}

export class FastLanes {
  constructor(private readonly h: LaneHost) {}

  /**
   * The front door's answer (src/http/frontdoor.ts): a plain GET/HEAD of a small file or a live
   * HLS playlist/segment already in memory, with no route in front of it, read straight off the
   * socket without a Koa context. Null sends the request to the full table, which gives the same
   * answer, more slowly.
   */
  frontAnswer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null> {
    if (this.h.closing()) return null;
    const r = this.frontRoute(req);
    if (r.kind === FRONT_NONE) return null;
    if (r.stream !== null) {
      r.viewer ??= { ip: clientIp(req.ip), agent: req.agent, host: req.host, referer: req.referer, sessionKey: undefined };
      const live = this.h.origin.fast(r.stream, req.method === 'HEAD', r.viewer);
      if (live !== undefined) return live && r.cors ? this.withCors(live) : live;
    }
    // Mounts and a catch-all route decide files on the full table.
    if (r.kind !== FRONT_FILES) return null;
    const root = r.table.entries[r.table.entries.length - 1].target.root!;
    if (r.file !== undefined && root.stillFresh(r.file.entry, now)) return r.file.reply;
    const e = root.fastBody(r.path, now);
    if (e instanceof Promise) return e.then((x) => (x ? this.fileReply(x, r.cors) : null));
    if (e === undefined) return null;
    const f = r.file;
    if (f !== undefined && f.entry === e) return f.reply;
    const reply = this.fileReply(e, r.cors);
    r.file = { entry: e, reply };
    return reply;
  }

  /**
   * Where the table sends a front-door request, worked out once per request object: the front
   * door hands the same object back while a keep-alive client repeats its head, so a polled
   * playlist costs a lookup, not a parse of its path and a walk of the prefixes. A reload makes
   * a new table, which the memo notices.
   */
  frontRoute(req: FastRequest): FrontRoute {
    const t = this.h.table();
    let r = req.memo as FrontRoute | null;
    if (r !== null && r.table === t) return r;
    // Every field from the start, those filled on first use too: one object shape for every memo
    // keeps the property loads on the hot path monomorphic (measured: fields added later made them
    // miss their inline caches into the runtime, 2% of the CPU on live HLS).
    r = { table: t, kind: FRONT_NONE, path: rawPath(req.url), proxy: null, stream: null, viewer: undefined, lane: undefined, cors: req.origin && t.config.httpServer.crossdomain, file: undefined, log: undefined };
    req.memo = r;
    if (req.url.length > t.config.limits.maxUrlBytes) return r;
    const path = r.path;
    // A path not in normal form (dot-segments) or a Host the rules refuse is Node's lane's to
    // normalise or refuse: routed here, a prefix could match what normalising would move.
    if (normalizePath(path) !== path || !validHost(req.host)) return r;
    const host = hostOnly(req.host);
    const d = decide(t.entries, req.method, path, host);
    const e = d.entry;
    if (e.answer === 'proxy') {
      r.proxy = { prefix: e.target.prefix, proxy: e.target.proxy!, route: e.name };
      return r;
    }
    if (e.answer !== 'stream' && e.answer !== 'files') return r;
    // What the file cache cannot answer as is (a directory, an encoded or odd path) takes Koa's lane.
    if (path.endsWith('/') || path.includes('%') || path.includes('\\') || path.includes('//')) return r;
    let files = e;
    if (e.answer === 'stream') {
      const m = STREAM_PATH.exec(path)!;
      // A literal with every field, not a spread of keyedName's: a spread's object took another
      // shape and brought back the inline-cache misses on live HLS (measured with perf).
      const vhost = this.h.vhostFor(host);
      r.stream = { vhost, app: m[1], stream: m[2], key: streamKey({ vhost, app: m[1], stream: m[2] }), ext: m[3] as StreamExt, segmentName: undefined };
      files = decide(t.entries, req.method, path, host, d.index + 1).entry;
    }
    r.kind = files.answer === 'files' ? FRONT_FILES : FRONT_STREAMS;
    return r;
  }

  private readonly replies = new WeakMap<CachedBody, FastReply>();
  private readonly corsReplies = new WeakMap<FastReply, FastReply>();

  /** A cached file's 200 answer, made once per cache entry: the front door keys its rendered bytes on it. */
  private fileReply(e: CachedBody, cors: boolean): FastReply {
    let r = this.replies.get(e);
    if (r === undefined) {
      let head = `Content-Type: ${e.type}\r\nContent-Length: ${e.body.length}\r\nAccept-Ranges: bytes\r\nETag: ${e.etag}\r\nLast-Modified: ${e.lastModified}\r\n`;
      if (e.cache) head += `Cache-Control: ${e.cache}\r\n`;
      if (e.type === UNKNOWN_TYPE) head += 'X-Content-Type-Options: nosniff\r\n';
      r = { status: 200, head, body: e.body, route: 'static', direct: e.direct };
      this.replies.set(e, r);
    }
    return cors ? this.withCors(r) : r;
  }

  private withCors(r: FastReply): FastReply {
    let c = this.corsReplies.get(r);
    if (c === undefined) {
      c = { ...r, head: r.head + CORS_LINES };
      this.corsReplies.set(r, c);
    }
    return c;
  }

  frontDoorOptions(): FrontDoorOptions {
    return {
      answer: (r, now) => this.frontAnswer(r, now),
      proxy: (r, sock) => this.proxyRun(r, sock),
      done: (r, reply, bytes, ms, direct, at) => this.frontDone(r, reply, bytes, ms, direct, at),
      timed: () => this.h.table().config.accessLog !== 'off',
      eligible: (sock) => !this.h.closing() && !this.h.overLimit(sock),
      tracked: (sock) => this.h.guard.of(sock) ?? this.h.guard.secured(sock),
      keepAliveTimeoutMs: () => this.h.table().config.limits.keepAliveTimeoutMs,
      headerTimeoutMs: () => this.h.table().config.limits.headerTimeoutMs,
      ownH2: () => this.h.table().config.httpServer.https.ownH2 && this.h.h2Relay(),
      requestTimeoutMs: () => (this.h.table().config.proxy.routes.length > 0 ? Math.max(this.h.table().config.limits.requestTimeoutMs, this.h.table().config.proxy.timeoutMs) : this.h.table().config.limits.requestTimeoutMs),
      memory: () => ({ pool: this.h.budgets.unauthorized, connectionBytes: this.h.table().config.limits.connectionMemoryBytes }),
      warn: (line) => this.h.log.warn(line),
      maxHeaderBytes: () => this.h.table().config.limits.maxHeaderBytes,
    };
  }

  private frontDone(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number, at: number | undefined): void {
    this.h.metrics.request(reply.route, reply.status, bytes);
    if (direct > 0) this.h.metrics.sendfile(direct);
    const format = this.h.table().config.accessLog;
    if (format === 'off') return;
    if (format === 'combined') return this.h.log.accessCombined(this.linePieces(req), reply.status, bytes, ms, at);
    this.h.log.access(formatAccess(format, {
      route: reply.route, status: reply.status, bytes, ms, ip: req.ip, method: req.method, url: req.url, httpVersion: req.httpVersion,
      referer: req.referer, agent: req.agent, error: null,
    }));
  }

  /** The last pieces made for a request without a memo of its own (an HTTP/2 stream's request is new each time). */
  private lastLine: { f: LineFields; p: CombinedPieces } | null = null;

  /**
   * The pieces of a front-door request's combined line: kept on its memo, which a keep-alive
   * client's repeated head brings back, so they are made once per head.
   */
  private linePieces(req: FastRequest): CombinedPieces {
    const r = req.memo as FrontRoute | null;
    if (r !== null && r.log !== undefined) return r.log;
    const last = this.lastLine;
    let p: CombinedPieces;
    if (last !== null && last.f.url === req.url && last.f.ip === req.ip && last.f.agent === req.agent && last.f.referer === req.referer
      && last.f.method === req.method && last.f.httpVersion === req.httpVersion) {
      p = last.p;
    } else {
      p = new CombinedPieces(req);
      this.lastLine = { f: { ip: req.ip, method: req.method, url: req.url, httpVersion: req.httpVersion, referer: req.referer, agent: req.agent }, p };
    }
    // Kept while as small as a player's line: a head with a long URL, Referer or User-Agent is
    // kept as read (up to 2 KiB), and its pieces, twice the line, would add more than that again.
    if (r !== null && p.max <= LINE_KEPT_MAX_BYTES) r.log = p;
    return p;
  }

  /**
   * The front door's proxy lane (src/proxy/lane.ts): a plain GET/HEAD for a proxied prefix goes
   * to a pooled upstream connection as raw bytes, its answer relayed the same way. Everything
   * else for the prefix (a body, an upgrade, an https upstream, `keepalive 0`) goes to proxyLane
   * below once Node's server has parsed it; both answer alike.
   */
  private proxyRun(req: FastRequest, sock: Socket): ProxyRun | null {
    if (!this.h.table().proxied || this.h.closing()) return null;
    const route = this.frontRoute(req);
    const t = route.table;
    const { path, proxy: r } = route;
    const url = req.url;
    const lane = r?.proxy.lane;
    if (!r || !lane) return null;
    // The request as it goes upstream, made once per memo: a memo belongs to one connection's
    // head, so the address and TLS that go into it are the same every time.
    if (route.lane === undefined) {
      const lr = { method: req.method, url, head: req.head, ...r.proxy.forward(req.host, req.ip, (sock as Socket & { encrypted?: boolean }).encrypted === true) };
      const wire = lane.prepare(lr);
      route.lane = wire === null ? null : { lr, wire };
    }
    if (route.lane === null) return null;
    const { lr, wire } = route.lane;
    return (close, finished) => {
      const start = performance.now();
      const c = t.config;
      // A proxied answer may be silent up to proxy.timeout and a client may stop reading for
      // request_timeout (as on the long path). The keep-alive timer, when longer, already covers
      // the first (the upstream's timer fires before it); the lane applies the second when a
      // client stalls. Re-arming a socket timer on every request costs.
      const silent = Math.max(c.limits.requestTimeoutMs, c.proxy.timeoutMs);
      const now = sock.timeout ?? 0;
      if (now !== 0 && now < silent) sock.setTimeout(silent);
      this.h.metrics.count('streamgate_proxy_lane_requests_total', 'Proxied requests the front door carried on its raw lane.');
      lane.run(sock, lr, wire, {
        close: close || this.h.closing(),
        cors: req.origin && c.httpServer.crossdomain ? CORS_LINES : '',
        errorBody: (ge) => errorBody(path, ge),
        stallTimeoutMs: silent,
        date: httpDate,
        done: (o) => {
          this.proxyDone(r.route, o.status, o.bytes, start, req, o.error, this.linePieces(req));
          finished(o.open);
        },
      });
    };
  }

  /** Access log line and metrics of a proxied request, on either lane. */
  proxyDone(route: string, status: number, bytes: number, start: number, r: LineFields, error: string | null, pieces?: CombinedPieces): void {
    this.h.metrics.request(route, status, bytes);
    const format = this.h.table().config.accessLog;
    if (format === 'off') return;
    const ms = performance.now() - start;
    if (format === 'combined' && pieces !== undefined) return this.h.log.accessCombined(pieces, status, bytes, ms);
    this.h.log.access(formatAccess(format, {
      route, status, bytes, ms, ip: r.ip, method: r.method, url: r.url, httpVersion: r.httpVersion, referer: r.referer, agent: r.agent, error,
    }));
  }

  /**
   * What the front door's proxy lane leaves (a body, an upgrade refused, HTTP/1.0, an https
   * upstream): once Node's server has parsed it, an HTTP/1 request for a proxied prefix goes to
   * undici without a Koa context. The proxy answers the same as it would through the table; only
   * CORS preflights (answered by the gateway) take the long way.
   */
  proxyLane(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const t = this.h.table();
    if (!t.proxied || this.h.closing() || req.httpVersionMajor !== 1) return false;
    const url = req.url ?? '';
    if (url.length > t.config.limits.maxUrlBytes || url.charCodeAt(0) !== 47) return false;
    const path = rawPath(url);
    const e = decide(t.entries, req.method ?? 'GET', path, hostOnly(req.headers.host)).entry;
    if (e.answer !== 'proxy') return false;
    const r = { prefix: e.target.prefix, proxy: e.target.proxy! };
    const start = performance.now();
    const sock = req.socket;
    const written0 = sock.bytesWritten;
    const route = e.name;
    const done = (status: number, error: string | null) => this.proxyDone(route, status, bodyBytes(res, sock.bytesWritten - written0), start, {
      ip: logAddress(sock.remoteAddress), method: req.method ?? '-', url, httpVersion: req.httpVersion, referer: headerOf(req, 'referer'), agent: headerOf(req, 'user-agent'),
    }, error);
    r.proxy.serve(req, res, this.proxyCors).then((out) => done(out.status, out.error), (err: unknown) => {
      const ge = err instanceof GatewayError ? err : new GatewayError('INTERNAL');
      const { type, body } = errorBody(path, ge);
      const headers: OutgoingHttpHeaders = { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) };
      this.proxyCors(req, headers);
      if (!res.headersSent && !res.destroyed) res.writeHead(ge.status, headers).end(body);
      done(ge.status, ge.code);
    });
    return true;
  }

  /** CORS on proxied answers, unless the upstream (an SRS, say) set its own. */
  readonly proxyCors = (req: AnyRequest, headers: OutgoingHttpHeaders): void => {
    if (req.headers.origin === undefined || !this.h.table().config.httpServer.crossdomain) return;
    if (headers['access-control-allow-origin'] !== undefined) return;
    Object.assign(headers, CORS_HEADERS);
  };
}

/** The Host header without a port (IPv6 literals keep their brackets off). */
export function hostOnly(host: string | undefined): string {
  if (!host) return '';
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const c = host.indexOf(':');
  return c < 0 ? host : host.slice(0, c);
}

/** The raw (still percent-encoded) path of a request-target, without the query. */
export function rawPath(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
