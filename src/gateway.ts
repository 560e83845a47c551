import http from 'node:http';
import http2 from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import Koa from 'koa';
import type { Context, Middleware, Next } from 'koa';
import { DEFAULT_VHOST, type Config, type VhostConfig } from './config/index.js';
import { GatewayError } from './errors.js';
import { createApi, SERVER_ID } from './api/index.js';
import { AccessControl } from './auth/policy.js';
import { checkApiRequest } from './auth/api-guard.js';
import { accessLog, bodyBytes, formatAccess, headerOf } from './http/accesslog.js';
import { AccessLogTarget } from './http/access-sink.js';
import { cors, CORS_HEADERS } from './http/cors.js';
import { errorBody, errorResponder, isApiPath } from './http/errors.js';
import { welcomePage } from './http/welcome.js';
import { Hub } from './live/hub.js';
import { DEFAULT_SOURCE_OPTIONS, type SourceOptions } from './live/source.js';
import { streamKey } from './live/types.js';
import { Logger } from './log.js';
import { Metrics } from './metrics/metrics.js';
import { bindAll, type Bound, type ListenerSpec } from './net/listeners.js';
import { loadKeyPair } from './net/tls.js';
import { createOrigin, type Origin, type StreamExt, type StreamRequest } from './outputs/origin.js';
import type { HlsViewer } from './outputs/hls.js';
import { createProxy, type AnyRequest, type Proxy } from './proxy/index.js';
import type { LaneRequest } from './proxy/lane.js';
import { createRtmpServer } from './ingest/rtmp/server.js';
import { IDLE_TIMEOUT_MS } from './ingest/rtmp/session.js';
import type { Duplex } from 'node:stream';
import type { OutgoingHttpHeaders } from 'node:http';
import { FileRoot, type CachedBody } from './static/fileserver.js';
import { httpDate, installFrontDoor, installH2FrontDoor, type FastReply, type FastRequest, type FrontDoorOptions, type ProxyRun } from './http/frontdoor.js';
import { UNKNOWN_TYPE } from './static/mime.js';
import { sendfileBuilt } from './net/sendfile.js';
import { clientIp } from './live/client.js';
import { buildTable, VENDOR_FILES, type Entry, type Table } from './routing/build.js';
import { decide, STREAM_PATH } from './routing/table.js';

type Decision = ReturnType<typeof decide<Entry['target']>>;
import { BUSY, ConnectionGuard, IDLE } from './net/guard.js';
import { applyTargetRules } from './http/target.js';
import { normalizePath, validHost } from './http/request-rules.js';
import { Budget } from './limits/budget.js';

/** How long a connection accepted past max_connections may take to send the request its 503 answers. */
const OVER_LIMIT_GRACE_MS = 2_000;

/** SRS's CORS headers as raw header lines, for answers the front door writes itself. */
const CORS_LINES = Object.entries(CORS_HEADERS).map(([k, v]) => `${k}: ${v}\r\n`).join('');

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
  proxy: { prefix: string; proxy: Proxy } | null;
  stream: StreamRequest | null;
  /** Who asks for the stream, for the HLS session listing; made on first use. */
  viewer?: HlsViewer;
  /** The proxy lane's upstream request and its bytes (null: the lane refused the head); made on first use. */
  lane?: { lr: LaneRequest; wire: string } | null;
  /** The request has Origin and crossdomain is on. */
  cors: boolean;
  /** The cached file last answered and its reply: while the cache hands back the same entry, so is the reply. */
  file?: { entry: CachedBody; reply: FastReply };
}

export interface GatewayOptions {
  log?: Logger;
  /**
   * Large cached files go out by sendfile(2) when the native addon is built (default: on, unless
   * STREAMGATE_NO_SENDFILE=1). Off, they go out with write(2), as where the addon is missing.
   */
  sendfile?: boolean;
  /**
   * The plain-HTTP front door (default on). Off, every HTTP/1 request on the plain port goes to
   * Node's parser: the reference the front door is tested against.
   */
  frontDoor?: boolean;
}

/**
 * One streamgate instance: its listeners, hub, routing table. No module-level state, so tests
 * run several side by side and shutdown finds everything it must close.
 */
export class Gateway {
  readonly hub: Hub;
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly app = new Koa();
  readonly startedAt = Date.now();
  /**
   * Memory pools every listener charges before holding what a peer sent (src/limits/budget.ts).
   * `unauthorized`: peers not yet authorised to publish or play (RTMP before publish, HTTP/2
   * header blocks, …), `limits.unauthorized_memory` in all; each connection opens its own
   * Account on it with `limits.connection_memory`.
   */
  readonly budgets: { readonly unauthorized: Budget };
  private table: Table;
  private listeners: Bound[] = [];
  private readonly origin: Origin;
  private readonly roots = new Map<string, FileRoot>();
  private readonly api: Middleware;
  /** The policy chain of every publish and play door (src/auth/policy.ts). */
  readonly access: AccessControl;
  private readonly httpsServers: http2.Http2SecureServer[] = [];
  /** Open HTTP/2 sessions: shutdown sends each a GOAWAY, or an idle browser session holds the drain to its timeout. */
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();
  /** Every open connection, so shutdown can close what outlives the drain timeout. */
  private readonly sockets = new Set<Socket>();
  /** Connections accepted past max_connections, answered 503 on their first request. */
  private readonly overLimit = new WeakSet<object>();
  /** max_connections, max_connections_per_ip and the first-head deadline, on every listener. */
  readonly guard: ConnectionGuard;
  private readonly frontDoorOn: boolean;
  private closing = false;
  /** Plain-HTTP listeners' front doors, whose idle connections shutdown closes. */
  private readonly frontDoors: { closeIdle(): void }[] = [];
  private closedRecv = 0;
  private closedSend = 0;
  private readonly sendfile: boolean;
  /** Where access lines go (stdout or a file), reopened on SIGUSR1 and on reload. */
  private readonly accessLogs: AccessLogTarget;

  private constructor(config: Config, opts: GatewayOptions) {
    this.log = opts.log ?? new Logger();
    this.sendfile = sendfileBuilt && (opts.sendfile ?? process.env.STREAMGATE_NO_SENDFILE !== '1');
    this.frontDoorOn = opts.frontDoor ?? true;
    this.guard = new ConnectionGuard({
      maxConnections: () => this.table.config.maxConnections,
      maxPerIp: () => this.table.config.limits.maxConnectionsPerIp,
      headerTimeoutMs: () => this.table.config.limits.headerTimeoutMs,
      warn: (line) => this.log.warn(line),
    });
    this.budgets = { unauthorized: new Budget('unauthorized', config.limits.unauthorizedMemoryBytes) };
    this.hub = new Hub({
      sourceOptions: (vhost) => this.sourceOptions(vhost),
      takeover: (vhost) => this.vhost(vhost).publish.takeover,
      maxStreams: config.limits.maxStreams,
    });
    this.table = this.buildTable(config);
    this.access = new AccessControl({ vhost: (n) => this.vhost(n), log: this.log, serverId: SERVER_ID, serviceId: this.startedAt.toString(36) });
    this.origin = createOrigin({ hub: this.hub, config: () => this.table.config, vhost: (n) => this.vhost(n), log: this.log, sendfile: this.sendfile, access: this.access });
    this.api = createApi({
      hub: this.hub,
      config: () => this.table.config,
      metrics: this.metrics,
      log: this.log,
      listeners: () => this.listeners.map((l) => ({ role: l.role, address: l.address.address, port: l.address.port })),
      startedAt: this.startedAt,
      traffic: () => this.traffic(),
    });
    this.metrics.gauge('streamgate_streams', 'Live streams.', () => this.hub.all().length);
    this.metrics.gauge('streamgate_players', 'Players watching live streams.', () => this.hub.all().reduce((n, s) => n + s.playerCount, 0));
    this.metrics.gauge('streamgate_connections', 'Open client connections (HTTP, HTTPS, RTMP).', () => this.sockets.size);
    this.accessLogs = new AccessLogTarget(this.log);
    this.metrics.counterFn('streamgate_access_log_dropped_total', 'Access-log lines dropped because the log file or pipe could not keep up or refused them.', () => this.accessLogs.dropped);
    this.metrics.gauge('streamgate_clients', 'Clients the API lists (publishers and players).', () => this.hub.clients().length);
    this.app.proxy = false;
    this.app.silent = true;
    this.app.use(this.guardRequest());
    this.app.use(accessLog(this.log, () => this.table.config.accessLog, (r) => this.metrics.request(r.route, r.status, r.bytes)));
    this.app.use(errorResponder(this.log));
    this.app.use(this.decide());
    this.app.use(cors(() => this.table.config.httpServer.crossdomain,
      () => ({ apiAuth: this.table.config.httpApi.auth.enabled, proxied: (p) => decide(this.table.entries, 'GET', p, '').entry.answer === 'proxy' })));
    this.app.use((ctx, next) => this.route(ctx, next));
  }

  /** Parse is done; this validates what needs I/O (TLS files), binds every listener or none, and serves. */
  static async start(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
    const gw = new Gateway(config, opts);
    await gw.listen();
    return gw;
  }

  get config(): Config {
    return this.table.config;
  }

  /** The bound addresses, e.g. to learn the ports chosen for `listen 0`. */
  addresses(): { role: string; host: string; port: number }[] {
    return this.listeners.map((l) => ({ role: l.role, host: l.address.address, port: l.address.port }));
  }

  port(role: string): number {
    const l = this.listeners.find((x) => x.role === role);
    if (!l) throw new Error(`no ${role} listener`);
    return l.address.port;
  }

  // ---- the routing table (src/routing/table.ts): Koa's way of answering it -----------------------

  /** Decides the route once, before CORS and the answer, so the access log names it whoever answers. */
  private decide(): Middleware {
    return (ctx, next) => {
      const d = decide(this.table.entries, ctx.method, ctx.path, ctx.hostname);
      ctx.state.decision = d;
      ctx.state.route = d.entry.name;
      return next();
    };
  }

  private async route(ctx: Context, next: Next): Promise<void> {
    const t = this.table;
    const d = (ctx.state.decision as Decision | undefined) ?? decide(t.entries, ctx.method, ctx.path, ctx.hostname);
    if (d.entry.answer !== 'stream') return this.answer(ctx, next, d.entry);
    // The live origin; what it does not answer (GET/HEAD of nothing live: HLS on disk) goes on down the table.
    const m = STREAM_PATH.exec(ctx.path)!;
    const vhost = this.vhostFor(ctx.hostname);
    return this.origin.handle(ctx, { vhost, app: m[1], stream: m[2], ext: m[3] as StreamExt }, () => {
      const rest = decide(t.entries, ctx.method, ctx.path, ctx.hostname, d.index + 1);
      ctx.state.route = rest.entry.name;
      return this.answer(ctx, next, rest.entry);
    });
  }

  /** The API's and /metrics' authorisation (src/auth/api-guard.ts). */
  private apiDoor(ctx: Context): void {
    checkApiRequest(this.table.config.httpApi.auth, { method: ctx.method, authorization: ctx.get('Authorization'), ip: ctx.req.socket.remoteAddress ?? '' });
  }

  /** How Koa answers each kind of entry. */
  private async answer(ctx: Context, next: Next, e: Entry): Promise<void> {
    const { proxy, root, prefix, file } = e.target;
    const raw = rawPath(ctx.url);
    switch (e.answer) {
      case 'cors':
        // Answered by the CORS middleware before this one.
        return next();
      case 'api':
        if (!this.table.config.httpApi.enabled) throw new GatewayError('API_NOT_FOUND', 'http_api is disabled; add a proxy route for /api/');
        if (!ctx.path.startsWith('/rtc')) this.apiDoor(ctx);
        return this.api(ctx, next);
      case 'metrics':
        this.apiDoor(ctx);
        ctx.type = 'text/plain; version=0.0.4; charset=utf-8';
        ctx.body = this.metrics.render();
        return;
      case 'proxy':
        return proxy!.handle(ctx, this.proxyCors);
      case 'vendor':
        return root!.serve(ctx, file, raw);
      case 'pages':
        return root!.serve(ctx, raw.slice(prefix.length) || '', raw);
      case 'mount':
        return root!.serve(ctx, raw.slice(prefix.length).replace(/^(?!\/)/, '/'), raw);
      case 'stream':
      case 'files':
        return this.files(ctx, root!, raw);
    }
  }

  /** http_server.dir, the table's last entry. */
  private async files(ctx: Context, root: FileRoot, raw: string): Promise<void> {
    try {
      await root.serve(ctx, raw, raw);
    } catch (err) {
      // SRS serves srs.html at "/"; we serve a built-in welcome page unless the dir has its own index.
      if (ctx.path === '/' && err instanceof GatewayError && (err.status === 404 || err.status === 403) && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
        ctx.type = 'text/html;charset=utf-8';
        ctx.body = welcomePage();
        return;
      }
      throw err;
    }
  }

  private buildTable(config: Config): Table {
    const proxyOpts = { timeoutMs: config.proxy.timeoutMs, connectTimeoutMs: config.proxy.connectTimeoutMs, keepAlive: config.proxy.keepAlive, log: this.log, metrics: this.metrics };
    return buildTable(config, { fileRoot: (dir) => this.fileRoot(dir), proxy: (r) => createProxy(r, proxyOpts) });
  }

  /**
   * After a reload: roots the new table does not use give back their memory and memfds. The
   * players' vendor roots are looked up per request, so they stay.
   */
  private closeUnusedRoots(): void {
    const t = this.table;
    const used = new Set<FileRoot | null>(t.roots);
    for (const lib of Object.values(VENDOR_FILES)) used.add(this.roots.get(lib.dir) ?? null);
    for (const [dir, r] of this.roots) {
      if (used.has(r)) continue;
      r.close();
      this.roots.delete(dir);
    }
  }

  private fileRoot(dir: string): FileRoot {
    let r = this.roots.get(dir);
    if (!r) {
      r = new FileRoot(dir, { direct: this.sendfile, warn: (m) => this.log.warn(m) });
      this.roots.set(dir, r);
    }
    return r;
  }

  private vhostFor(hostname: string): string {
    const v = this.table.vhosts.get(hostname);
    return v && v.enabled ? v.name : DEFAULT_VHOST;
  }

  vhost(name: string): VhostConfig {
    return this.table.vhosts.get(name) ?? this.table.vhosts.get(DEFAULT_VHOST)!;
  }

  private sourceOptions(vhost: string): SourceOptions {
    const v = this.vhost(vhost);
    return {
      ...DEFAULT_SOURCE_OPTIONS,
      mwLatencyMs: v.play.mwLatencyMs,
      gopCacheMaxBytes: v.play.gopCache ? DEFAULT_SOURCE_OPTIONS.gopCacheMaxBytes : 0,
      maxPlayers: v.play.maxPlayers,
      timeJitter: v.play.timeJitter,
    };
  }

  /**
   * The front door's answer (src/http/frontdoor.ts): a plain GET/HEAD of a small file or a live
   * HLS playlist/segment already in memory, with no route in front of it, read straight off the
   * socket without a Koa context. Null sends the request to the full table, which gives the same
   * answer, more slowly.
   */
  private frontAnswer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null> {
    if (this.closing) return null;
    const r = this.frontRoute(req);
    if (r.kind === FRONT_NONE) return null;
    if (r.stream !== null) {
      r.viewer ??= { ip: clientIp(req.ip), agent: req.agent, host: req.host, referer: req.referer, sessionKey: undefined };
      const live = this.origin.fast(r.stream, req.method === 'HEAD', r.viewer);
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
  private frontRoute(req: FastRequest): FrontRoute {
    const t = this.table;
    let r = req.memo as FrontRoute | null;
    if (r !== null && r.table === t) return r;
    // Every field from the start, those filled on first use too: one object shape for every memo
    // keeps the property loads on the hot path monomorphic (measured: fields added later made them
    // miss their inline caches into the runtime, 2% of the CPU on live HLS).
    r = { table: t, kind: FRONT_NONE, path: rawPath(req.url), proxy: null, stream: null, viewer: undefined, lane: undefined, cors: req.origin && t.config.httpServer.crossdomain, file: undefined };
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
      r.proxy = { prefix: e.target.prefix, proxy: e.target.proxy! };
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
      const vhost = this.vhostFor(host);
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

  private frontDoorOptions(): FrontDoorOptions {
    return {
      answer: (r, now) => this.frontAnswer(r, now),
      proxy: (r, sock) => this.proxyRun(r, sock),
      done: (r, reply, bytes, ms, direct) => this.frontDone(r, reply, bytes, ms, direct),
      timed: () => this.table.config.accessLog !== 'off',
      eligible: (sock) => !this.closing && !this.overLimit.has(sock),
      tracked: (sock) => this.guard.of(sock) ?? this.guard.secured(sock),
      keepAliveTimeoutMs: () => this.table.config.limits.keepAliveTimeoutMs,
      headerTimeoutMs: () => this.table.config.limits.headerTimeoutMs,
      ownH2: () => this.table.config.httpServer.https.ownH2,
      maxHeaderBytes: () => this.table.config.limits.maxHeaderBytes,
    };
  }

  private frontDone(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number): void {
    this.metrics.request(reply.route, reply.status, bytes);
    if (direct > 0) this.metrics.sendfile(direct);
    const format = this.table.config.accessLog;
    if (format === 'off') return;
    this.log.access(formatAccess(format, {
      route: reply.route, status: reply.status, bytes, ms, ip: req.ip, method: req.method, url: req.url, httpVersion: req.httpVersion,
      referer: req.referer, agent: req.agent, error: null,
    }));
  }

  /**
   * The front door's proxy lane (src/proxy/lane.ts): a plain GET/HEAD for a proxied prefix goes
   * to a pooled upstream connection as raw bytes, its answer relayed the same way. Everything
   * else for the prefix (a body, an upgrade, an https upstream, `keepalive 0`) goes to proxyLane
   * below once Node's server has parsed it; both answer alike.
   */
  private proxyRun(req: FastRequest, sock: Socket): ProxyRun | null {
    if (!this.table.proxied || this.closing) return null;
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
      this.metrics.count('streamgate_proxy_lane_requests_total', 'Proxied requests the front door carried on its raw lane.');
      lane.run(sock, lr, wire, {
        close: close || this.closing,
        cors: req.origin && c.httpServer.crossdomain ? CORS_LINES : '',
        errorBody: (ge) => errorBody(path, ge),
        stallTimeoutMs: silent,
        date: httpDate,
        done: (o) => {
          this.proxyDone(`proxy:${r.prefix}`, o.status, o.bytes, start, { ip: req.ip, method: req.method, url, httpVersion: '1.1', referer: req.referer, agent: req.agent }, o.error);
          finished(o.open);
        },
      });
    };
  }

  /** Access log line and metrics of a proxied request, on either lane. */
  private proxyDone(route: string, status: number, bytes: number, start: number,
    r: { ip: string; method: string; url: string; httpVersion: string; referer: string; agent: string }, error: string | null): void {
    this.metrics.request(route, status, bytes);
    const format = this.table.config.accessLog;
    if (format === 'off') return;
    this.log.access(formatAccess(format, { route, status, bytes, ms: performance.now() - start, ...r, error }));
  }

  /**
   * What the front door's proxy lane leaves (a body, an upgrade refused, HTTP/1.0, an https
   * upstream): once Node's server has parsed it, an HTTP/1 request for a proxied prefix goes to
   * undici without a Koa context. The proxy answers the same as it would through the table; only
   * CORS preflights (answered by the gateway) take the long way.
   */
  private proxyLane(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const t = this.table;
    if (!t.proxied || this.closing || req.httpVersionMajor !== 1) return false;
    const url = req.url ?? '';
    if (url.length > t.config.limits.maxUrlBytes || url.charCodeAt(0) !== 47) return false;
    const path = rawPath(url);
    const e = decide(t.entries, req.method ?? 'GET', path, hostOnly(req.headers.host)).entry;
    if (e.answer !== 'proxy') return false;
    const r = { prefix: e.target.prefix, proxy: e.target.proxy! };
    const start = performance.now();
    const sock = req.socket;
    const written0 = sock.bytesWritten;
    const route = `proxy:${r.prefix}`;
    const done = (status: number, error: string | null) => this.proxyDone(route, status, bodyBytes(res, sock.bytesWritten - written0), start, {
      ip: sock.remoteAddress ?? '-', method: req.method ?? '-', url, httpVersion: req.httpVersion, referer: headerOf(req, 'referer'), agent: headerOf(req, 'user-agent'),
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
  private readonly proxyCors = (req: AnyRequest, headers: OutgoingHttpHeaders): void => {
    if (req.headers.origin === undefined || !this.table.config.httpServer.crossdomain) return;
    if (headers['access-control-allow-origin'] !== undefined) return;
    Object.assign(headers, CORS_HEADERS);
  };

  /**
   * HTTP/1.1 Upgrade: WebSocket to a proxied prefix is spliced to its upstream; any other upgrade
   * (curl's h2c offer, a WebSocket to a path nobody proxies) is answered as a plain request.
   */
  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): void {
    const t = this.table;
    this.guard.busy(socket as Socket);
    // A refused target falls through to the handler, which answers its 400.
    const bad = applyTargetRules(req) !== null;
    const e = bad ? null : decide(t.entries, req.method ?? 'GET', rawPath(req.url ?? '/'), hostOnly(req.headers.host)).entry;
    const r = e?.answer === 'proxy' ? e.target.proxy : null;
    if (r && !this.closing) {
      r.upgrade(req, socket, head);
      return;
    }
    const res = new http.ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    handler(req, res);
  }

  /** 414 before anything else looks at the URL; refuse new work while shutting down. */
  private guardRequest(): Middleware {
    return async (ctx, next) => {
      if (ctx.url.length > this.table.config.limits.maxUrlBytes) {
        ctx.status = 414;
        ctx.type = 'text/plain;charset=utf-8';
        ctx.body = '414 request-target too long\n';
        ctx.state.route = 'none';
        return;
      }
      if (this.closing) ctx.set('Connection', 'close');
      return next();
    };
  }

  // ---- listeners and lifecycle ----------------------------------------------------------------

  private async listen(): Promise<void> {
    const c = this.table.config;
    const koa = this.app.callback();
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (this.refuseOverLimit(req, res)) return;
      if (req.httpVersionMajor === 1) this.trackRequest(req, res);
      if (this.refuseTarget(req, res)) return;
      // request_timeout: a request whose body or response moves no byte for this long is closed
      // (NGINX's client_body_timeout, send_timeout). Set per request: Node drops server.timeout
      // after a connection's first request. Proxied answers may be silent up to proxy.timeout.
      if (req.httpVersionMajor === 1) {
        const t = this.table.config;
        req.socket.setTimeout(t.proxy.routes.length > 0 ? Math.max(t.limits.requestTimeoutMs, t.proxy.timeoutMs) : t.limits.requestTimeoutMs);
      }
      if (!this.proxyLane(req, res)) void koa(req, res);
    };
    const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head, handler);
    const specs: ListenerSpec[] = [];
    const limits = c.limits;
    if (c.httpServer.enabled) {
      for (const addr of c.httpServer.listen) {
        const server = http.createServer({
          maxHeaderSize: limits.maxHeaderBytes,
          headersTimeout: limits.headerTimeoutMs,
          // Live publishes are requests that last for hours: the whole-request timer must be off;
          // headersTimeout bounds slowloris and the socket idle timeout bounds stalled bodies.
          requestTimeout: 0,
          keepAliveTimeout: limits.keepAliveTimeoutMs,
          connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs),
        }, handler);
        // No server.maxConnections here: it closes the socket unanswered; the guard reclaims idle
        // connections first, then refuseOverLimit() answers 503.
        server.on('upgrade', upgrade);
        if (this.frontDoorOn) this.frontDoors.push(installFrontDoor(server, this.frontDoorOptions()));
        specs.push({ role: 'http', directive: 'http_server.listen', addr, server });
      }
      if (c.httpServer.https.enabled) {
        const pair = await loadKeyPair(c.httpServer.https.key, c.httpServer.https.cert, this.log);
        for (const addr of c.httpServer.https.listen) {
          // HTTP/2 by ALPN, HTTP/1.1 for clients that do not offer h2 (curl --http1.1, old players).
          const server = http2.createSecureServer({
            key: pair.key,
            cert: pair.cert,
            allowHTTP1: true,
            handshakeTimeout: limits.headerTimeoutMs,
            settings: { maxHeaderListSize: limits.maxHeaderBytes },
          }, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
          // Node gives the HTTP/1.1 fallback timers of its own (60 s for headers, 300 s for a whole
          // request, which would cut an HTTPS publish, a 30 s sweep, no keep-alive timeout) and
          // HTTP/2 sessions none: a slowloris on this port held its connections for good.
          Object.assign(server, { headersTimeout: limits.headerTimeoutMs, requestTimeout: 0, keepAliveTimeout: limits.keepAliveTimeoutMs, connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs) });
          server.setTimeout(limits.keepAliveTimeoutMs);
          // max_connections is the guard's (it reclaims idle connections before refusing one).
          server.on('upgrade', upgrade);
          this.frontDoors.push(installFrontDoor(server, this.frontDoorOptions(), 'secureConnection'));
          installH2FrontDoor(server, this.frontDoorOptions());
          this.httpsServers.push(server);
          server.on('session', (session: http2.ServerHttp2Session) => {
            this.h2Sessions.add(session);
            session.once('close', () => this.h2Sessions.delete(session));
          });
          specs.push({ role: 'https', directive: 'http_server.https.listen', addr, server });
        }
      }
    }
    if (c.httpApi.enabled) {
      // SRS's http_api.listen (1985) serves the API and nothing else: the site stays on its own ports.
      const apiOnly = (req: http.IncomingMessage, res: http.ServerResponse) => {
        if (isApiPath(rawPath(req.url ?? '/'))) return handler(req, res);
        const { type, body } = errorBody('/api/', new GatewayError('API_NOT_FOUND', 'this listener serves /api/ and /rtc/ only'));
        res.writeHead(404, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) }).end(body);
        this.metrics.request('none', 404, Buffer.byteLength(body));
      };
      for (const addr of c.httpApi.listen) {
        specs.push({ role: 'http_api', directive: 'http_api.listen', addr, server: http.createServer({ maxHeaderSize: limits.maxHeaderBytes, headersTimeout: limits.headerTimeoutMs, requestTimeout: 0, connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs) }, apiOnly) });
      }
    }
    for (const extra of this.extraListeners()) specs.push(extra);
    await this.accessLogs.apply(c.accessLogFile);
    for (const spec of specs) this.track(spec);
    this.listeners = await bindAll(specs);
    for (const w of c.warnings) this.log.warn(`config: ${w}`);
    for (const l of this.listeners) this.log.info(`listening on ${l.address.address}:${l.address.port} (${l.role})`);
    for (const n of c.notes) this.log.info(`config: ${n}`);
    this.log.info(this.sendfile ? 'sendfile: on (native addon): large cached files go out zero-copy'
      : `sendfile: off (${sendfileBuilt ? 'STREAMGATE_NO_SENDFILE' : 'native addon not built'}): large files go out with write(2)`);
  }

  private track(spec: ListenerSpec): void {
    const { server, role } = spec;
    const plainHttp = role === 'http' || role === 'http_api';
    this.guard.watch(server, plainHttp || role === 'https', role === 'https', (sock) => {
      // Past max_connections with every connection busy, a plain-HTTP client is told 503
      // (refuseOverLimit) instead of being cut off unanswered as Node's server.maxConnections
      // does; with no request within a grace period it is dropped. TLS and RTMP peers are closed.
      if (!plainHttp) return void sock.destroy();
      this.overLimit.add(sock);
      sock.setTimeout(OVER_LIMIT_GRACE_MS, () => sock.destroy());
    });
    server.on('connection', (sock: Socket) => {
      if (sock.destroyed) return;
      this.sockets.add(sock);
      sock.once('close', () => {
        this.sockets.delete(sock);
        this.closedRecv += sock.bytesRead;
        this.closedSend += sock.bytesWritten;
      });
    });
  }

  /**
   * The guard's view of an HTTP/1 connection Node's parser owns: busy from its request head to
   * the end of its answer, then idle (reclaimable at max_connections) until the next head.
   */
  private trackRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const tr = this.guard.of(req.socket);
    if (tr === undefined) return;
    tr.state = BUSY;
    res.once('finish', () => {
      if (tr.state !== BUSY) return;
      tr.state = IDLE;
      tr.since = Date.now();
    });
  }

  /**
   * The request rules on Node's lanes (HTTP/1.x and HTTP/2 alike) before anything routes: a
   * target that climbs above "/", a second Host, a malformed Host or target is a 400 here;
   * otherwise the request is normalised in place (src/http/target.ts).
   */
  private refuseTarget(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const reason = applyTargetRules(req);
    if (reason === null) return false;
    const path = rawPath(req.url ?? '/');
    const { type, body } = errorBody(path, new GatewayError('BAD_REQUEST', reason));
    const headers: OutgoingHttpHeaders = { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) };
    if (req.httpVersionMajor === 1) headers.Connection = 'close';
    res.writeHead(400, headers);
    res.end(body);
    this.proxyDone('none', 400, Buffer.byteLength(body), performance.now(), {
      ip: req.socket?.remoteAddress ?? '-', method: req.method ?? '-', url: req.url ?? '', httpVersion: req.httpVersion, referer: headerOf(req, 'referer'), agent: headerOf(req, 'user-agent'),
    }, 'BAD_REQUEST');
    return true;
  }

  /** A request on a connection accepted past max_connections: 503 with the reason, then close. */
  private refuseOverLimit(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (!this.overLimit.has(req.socket)) return false;
    const max = this.table.config.maxConnections;
    const { type, body } = errorBody(rawPath(req.url ?? '/'), new GatewayError('LIMIT_REACHED', `too many connections (max_connections ${max})`));
    res.writeHead(503, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), Connection: 'close', 'Retry-After': '1' });
    res.end(body);
    this.metrics.request('none', 503, Buffer.byteLength(body));
    return true;
  }

  /** Open connections and bytes in and out on every connection since start (the API's summaries). */
  traffic(): { connections: number; recvBytes: number; sendBytes: number } {
    let recv = this.closedRecv;
    // Bytes sent by sendfile on a socket's fd: no socket's bytesWritten has them.
    let send = this.closedSend + this.metrics.sendfileBytesTotal;
    for (const s of this.sockets) {
      recv += s.bytesRead;
      send += s.bytesWritten;
    }
    return { connections: this.sockets.size, recvBytes: recv, sendBytes: send };
  }

  /** Listeners other rooms contribute (RTMP). Wired in start-up so all bind together. */
  protected extraListeners(): ListenerSpec[] {
    return this.table.config.rtmp.listen.map((addr) => {
      const server = createRtmpServer({
        hub: this.hub,
        log: this.log,
        access: this.access,
        vhostFor: (host) => this.vhostFor(host),
        pool: this.budgets.unauthorized,
        limits: () => ({
          headerTimeoutMs: this.table.config.limits.headerTimeoutMs,
          connectionMemoryBytes: this.table.config.limits.connectionMemoryBytes,
          idleTimeoutMs: IDLE_TIMEOUT_MS,
          waitPublisherMs: (vhost) => this.vhost(vhost).play.waitPublisherMs,
        }),
      });
      server.maxConnections = this.table.config.maxConnections;
      return { role: 'rtmp', directive: 'listen', addr, server };
    });
  }

  /** SIGUSR1: the access log file is opened again by its name (after logrotate moved it). */
  reopenLogs(): void {
    this.accessLogs.reopen();
  }

  /** Re-reads config and certificates (SIGHUP). Listening addresses need a restart. */
  async reload(config: Config): Promise<void> {
    const old = this.table;
    const listenKey = (x: Config) => JSON.stringify([x.httpServer.listen, x.httpServer.https.listen, x.rtmp.listen, x.httpApi.listen, x.httpServer.enabled, x.httpServer.https.enabled]);
    if (listenKey(old.config) !== listenKey(config)) this.log.warn('reload: listen addresses changed; they take effect after a restart');
    if (this.httpsServers.length > 0 && config.httpServer.https.enabled) {
      const pair = await loadKeyPair(config.httpServer.https.key, config.httpServer.https.cert, this.log);
      for (const server of this.httpsServers) server.setSecureContext({ key: pair.key, cert: pair.cert });
    }
    await this.accessLogs.apply(config.accessLogFile);
    this.table = this.buildTable(config);
    this.budgets.unauthorized.limit = config.limits.unauthorizedMemoryBytes;
    this.closeUnusedRoots();
    for (const p of old.proxies) if (!this.table.proxies.includes(p)) p.close();
    this.log.info(`reload: ${config.file} applied`);
  }

  /**
   * SIGTERM: stop accepting, end live streams (players' responses end cleanly), let in-flight
   * requests finish, and force-close what is left after `limits.shutdown_timeout`.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const servers = this.listeners.map((l) => l.server);
    this.log.info('shutdown: no longer accepting connections');
    const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.hub.closeAll();
    this.log.info('shutdown: live streams ended');
    for (const s of servers) (s as http.Server).closeIdleConnections?.();
    for (const f of this.frontDoors) f.closeIdle();
    // Graceful: streams in flight (a download) finish, then the session closes.
    for (const session of this.h2Sessions) session.close();
    const timeout = this.table.config.limits.shutdownTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const forced = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeout);
      }),
    ]);
    clearTimeout(timer);
    if (forced) {
      this.log.warn(`shutdown: connections still open after ${timeout} ms, closing them`);
      for (const sock of this.sockets) sock.destroy();
      await closed;
    }
    this.origin.close();
    this.access.close();
    for (const p of this.table.proxies) p.close();
    for (const r of this.roots.values()) r.close();
    this.roots.clear();
    this.log.info('shutdown: done');
    await this.accessLogs.end();
    this.log.flush();
  }
}

/**
 * How often Node's server sweeps for connections past headersTimeout. Its default (30 s) let a
 * slowloris connection live up to 40 s under a 10 s header_timeout; a quarter of the timeout
 * (at most 1 s) keeps the bound close to what the config says, for one pass over the connections.
 */
function headerCheckMs(headerTimeoutMs: number): number {
  return Math.max(100, Math.min(1000, Math.floor(headerTimeoutMs / 4)));
}

/** The Host header without a port (IPv6 literals keep their brackets off). */
function hostOnly(host: string | undefined): string {
  if (!host) return '';
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const c = host.indexOf(':');
  return c < 0 ? host : host.slice(0, c);
}

/** The raw (still percent-encoded) path of a request-target, without the query. */
function rawPath(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}
