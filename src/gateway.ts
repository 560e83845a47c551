// Over ~400 lines (about 590), for a stated reason: the listeners' set-up (listen), Koa's lane
// of the routing table (route, answer) and extraListeners are where four other rooms are wiring
// their work in this round (RTMP budgets, HTTP/2 server settings, the API policy, ACME's HTTP-01
// route and SNI); they move to rooms of their own (listeners, Koa lane, lifecycle) once merged.
// Already out: the table (src/routing/), the fast lanes (src/lanes/fast.ts), the connection
// guard (src/net/guard.ts), the request rules on Node's lanes (src/http/target.ts).
import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import Koa from 'koa';
import type { Context, Middleware, Next } from 'koa';
import { DEFAULT_VHOST, type Config, type VhostConfig } from './config/index.js';
import { GatewayError } from './errors.js';
import { createApi, SERVER_ID } from './api/index.js';
import { AccessControl } from './auth/policy.js';
import { checkApiRequest } from './auth/api-guard.js';
import { accessLog, headerOf } from './http/accesslog.js';
import { AccessLogTarget } from './http/access-sink.js';
import { cors } from './http/cors.js';
import { errorBody, errorResponder, isApiPath } from './http/errors.js';
import { welcomePage } from './http/welcome.js';
import { Hub } from './live/hub.js';
import { DEFAULT_SOURCE_OPTIONS, type SourceOptions } from './live/source.js';
import { Logger } from './log.js';
import { Metrics } from './metrics/metrics.js';
import { bindAll, type Bound, type ListenerSpec } from './net/listeners.js';
import { Certificates } from './net/acme/index.js';
import { createOrigin, type Origin, type StreamExt } from './outputs/origin.js';
import { createProxy } from './proxy/index.js';
import { createRtmpServer } from './ingest/rtmp/server.js';
import { IDLE_TIMEOUT_MS } from './ingest/rtmp/session.js';
import type { Duplex } from 'node:stream';
import type { OutgoingHttpHeaders } from 'node:http';
import { FileRoot } from './static/fileserver.js';
import { installFrontDoor, installH2FrontDoor } from './http/frontdoor.js';
import { sendfileBuilt } from './net/sendfile.js';
import { MAX_CONCURRENT_STREAMS, relayAddressWorks, relaySessions, watchSession } from './http/h2/index.js';
import { buildTable, VENDOR_FILES, type Entry, type Table } from './routing/build.js';
import { decide, STREAM_PATH } from './routing/table.js';
import { FastLanes, hostOnly, rawPath } from './lanes/fast.js';

type Decision = ReturnType<typeof decide<Entry['target']>>;
import { BUSY, ConnectionGuard, IDLE } from './net/guard.js';
import { applyTargetRules } from './http/target.js';
import { Budget } from './limits/budget.js';
import { Recorder } from './record/recorder.js';

/** How long a connection accepted past max_connections may take to send the request its 503 answers. */
const OVER_LIMIT_GRACE_MS = 2_000;


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
  /** own_h2 can show Node the client's address on its relay link (checked at start-up; off with a warning when not). */
  private h2Relay = true;
  /** Where access lines go (stdout or a file), reopened on SIGUSR1 and on reload. */
  private readonly accessLogs: AccessLogTarget;
  /** HTTPS certificates: the default pair, and ACME's per domain (src/net/acme/). */
  readonly certs: Certificates;
  /** The front door's and the proxy lanes' answers (src/lanes/fast.ts). */
  private readonly lanes: FastLanes;
  /** SRS's dvr: recordings and their retention (src/record/). */
  readonly recorder: Recorder;

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
    this.certs = new Certificates(this.log, STREAM_PATH);
    this.access = new AccessControl({ vhost: (n) => this.vhost(n), log: this.log, serverId: SERVER_ID, serviceId: this.startedAt.toString(36) });
    this.origin = createOrigin({ hub: this.hub, config: () => this.table.config, vhost: (n) => this.vhost(n), log: this.log, sendfile: this.sendfile, access: this.access });
    this.lanes = new FastLanes({
      table: () => this.table,
      closing: () => this.closing,
      origin: this.origin,
      metrics: this.metrics,
      log: this.log,
      guard: this.guard,
      vhostFor: (h) => this.vhostFor(h),
      overLimit: (sock) => this.overLimit.has(sock),
      h2Relay: () => this.h2Relay,
      budgets: this.budgets,
    });
    this.recorder = new Recorder({ hub: this.hub, vhost: (n) => this.vhost(n), vhosts: () => this.table.config.vhosts, log: this.log, finished: (r, s) => this.access.dvrFile(s.name, r.file, s.id, s.publisher) });
    this.api = createApi({
      recordings: this.recorder,
      hub: this.hub,
      config: () => this.table.config,
      metrics: this.metrics,
      log: this.log,
      listeners: () => this.listeners.map((l) => ({ role: l.role, address: l.address.address, port: l.address.port })),
      startedAt: this.startedAt,
      traffic: () => this.traffic(),
      certificates: () => this.certs.info(),
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
    gw.recorder.start();
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
        return proxy!.handle(ctx, this.lanes.proxyCors);
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
      if (!this.lanes.proxyLane(req, res)) void koa(req, res);
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
        }, this.certs.httpHandler(handler));
        // No server.maxConnections here: it closes the socket unanswered; the guard reclaims idle
        // connections first, then refuseOverLimit() answers 503.
        server.on('upgrade', upgrade);
        if (this.frontDoorOn) this.frontDoors.push(installFrontDoor(server, this.certs.frontDoor(this.lanes.frontDoorOptions())));
        specs.push({ role: 'http', directive: 'http_server.listen', addr, server });
      }
      if (c.httpServer.https.enabled) {
        await this.certs.load(c);
        if (c.httpServer.https.ownH2 && !(this.h2Relay = relayAddressWorks())) {
          this.log.warn(`own_h2: this Node (${process.version}) does not let the HTTP/2 relay show Koa the client's address; serving HTTP/2 with Node's own server (own_h2 off)`);
        }
        for (const addr of c.httpServer.https.listen) {
          // HTTP/2 by ALPN, HTTP/1.1 for clients that do not offer h2 (curl --http1.1, old players).
          const server = http2.createSecureServer({
            ...this.certs.serverOptions(),
            allowHTTP1: true,
            handshakeTimeout: limits.headerTimeoutMs,
            settings: { maxHeaderListSize: limits.maxHeaderBytes, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
          }, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
          // Node gives the HTTP/1.1 fallback timers of its own (60 s for headers, 300 s for a whole
          // request, which would cut an HTTPS publish, a 30 s sweep, no keep-alive timeout) and
          // HTTP/2 sessions none: a slowloris on this port held its connections for good.
          Object.assign(server, { headersTimeout: limits.headerTimeoutMs, requestTimeout: 0, keepAliveTimeout: limits.keepAliveTimeoutMs, connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs) });
          server.setTimeout(limits.keepAliveTimeoutMs);
          // max_connections is the guard's (it reclaims idle connections before refusing one).
          this.certs.attach(server);
          server.on('upgrade', upgrade);
          this.frontDoors.push(installFrontDoor(server, this.lanes.frontDoorOptions(), 'secureConnection'));
          installH2FrontDoor(server, this.lanes.frontDoorOptions());
          this.httpsServers.push(server);
          server.on('session', (session: http2.ServerHttp2Session) => {
            this.h2Sessions.add(session);
            session.once('close', () => this.h2Sessions.delete(session));
            if (!relaySessions.has(session)) watchSession(session, () => this.lanes.frontDoorOptions().requestTimeoutMs!());
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
    this.certs.start(this.addresses());
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
    this.lanes.proxyDone('none', 400, Buffer.byteLength(body), performance.now(), {
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
    await this.certs.reload(config, this.httpsServers);
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
    await this.recorder.close();
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
    this.certs.close();
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


