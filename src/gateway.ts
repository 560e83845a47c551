import Koa from 'koa';
import type { Middleware } from 'koa';
import { createApi, SERVER_ID } from './api/index.js';
import { AccessControl } from './auth/policy.js';
import { type Config, DEFAULT_VHOST, type VhostConfig } from './config/index.js';
import { AccessLogTarget } from './http/access-sink.js';
import { createRtmpServer } from './ingest/rtmp/server.js';
import { IDLE_TIMEOUT_MS } from './ingest/rtmp/session.js';
import { FastLanes } from './lanes/fast.js';
import { installKoaLane } from './lanes/koa.js';
import { NodeLane } from './lanes/node.js';
import { Budget } from './limits/budget.js';
import { Hub } from './live/hub.js';
import { DEFAULT_SOURCE_OPTIONS, type SourceOptions } from './live/source.js';
import { Logger } from './log.js';
import { Metrics } from './metrics/metrics.js';
import { Certificates } from './net/acme/index.js';
import { ConnectionGuard } from './net/guard.js';
import { type Bound, bindAll, type ListenerSpec } from './net/listeners.js';
import { sendfileBuilt } from './net/sendfile.js';
import { HttpServers } from './net/servers.js';
import { createOrigin, type Origin } from './outputs/origin.js';
import { createProxy } from './proxy/index.js';
import { buildTable, type Table, VENDOR_FILES } from './routing/build.js';
import { STREAM_PATH } from './routing/table.js';
import { FileRoot } from './static/fileserver.js';
import { Recorder } from './record/recorder.js';
import { vodHandler } from './record/vod/handler.js';
import { VodLibrary } from './record/vod/library.js';

/*
 * The gateway builds the rooms from the config and owns their lifecycle (start, reload, close):
 *   the routing table        src/routing/ (data: what matches, what answers)
 *   the lanes that answer it src/lanes/fast.ts (front door, HTTP/2 fast path, proxy lane),
 *                            src/lanes/node.ts (Node's parser), src/lanes/koa.ts (Koa, the full table)
 *   listeners and TLS        src/net/servers.ts (HTTP, HTTPS, API port), src/net/acme/, RTMP below
 */

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
  /** max_connections, max_connections_per_ip and the first-head deadline, on every listener. */
  readonly guard: ConnectionGuard;
  private closing = false;
  private readonly sendfile: boolean;
  /** Where access lines go (stdout or a file), reopened on SIGUSR1 and on reload. */
  private readonly accessLogs: AccessLogTarget;
  /** HTTPS certificates: the default pair, and ACME's per domain (src/net/acme/). */
  readonly certs: Certificates;
  /** The front door's and the proxy lanes' answers (src/lanes/fast.ts). */
  private readonly lanes: FastLanes;
  /** SRS's dvr: recordings and their retention (src/record/). */
  readonly recorder: Recorder;
  /** The HTTP listeners and every open connection (src/net/servers.ts). */
  private readonly servers: HttpServers;

  private constructor(config: Config, opts: GatewayOptions) {
    this.log = opts.log ?? new Logger();
    this.sendfile = sendfileBuilt && (opts.sendfile ?? process.env.STREAMGATE_NO_SENDFILE !== '1');
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
      overLimit: (sock) => this.servers.overLimit(sock),
      h2Relay: () => this.servers.h2Relay,
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
    this.metrics.gauge('streamgate_connections', 'Open client connections (HTTP, HTTPS, RTMP).', () => this.servers.sockets.size);
    this.accessLogs = new AccessLogTarget(this.log);
    this.metrics.counterFn('streamgate_access_log_dropped_total', 'Access-log lines dropped because the log file or pipe could not keep up or refused them.', () => this.accessLogs.dropped);
    this.metrics.gauge('streamgate_clients', 'Clients the API lists (publishers and players).', () => this.hub.clients().length);
    installKoaLane(this.app, {
      table: () => this.table,
      closing: () => this.closing,
      origin: this.origin,
      metrics: this.metrics,
      log: this.log,
      api: this.api,
      lanes: this.lanes,
      vhostFor: (h) => this.vhostFor(h),
      recordings: vodHandler({ library: new VodLibrary((f) => this.recorder.list(f)), access: this.access }),
    });
    const node = new NodeLane({
      table: () => this.table,
      closing: () => this.closing,
      guard: this.guard,
      lanes: this.lanes,
      metrics: this.metrics,
      overLimit: (sock) => this.servers.overLimit(sock),
      koa: this.app.callback(),
    });
    this.servers = new HttpServers({
      log: this.log,
      metrics: this.metrics,
      certs: this.certs,
      guard: this.guard,
      lanes: this.lanes,
      frontDoor: opts.frontDoor ?? true,
      handler: node.handler,
      upgrade: node.upgrade,
    });
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


  // ---- listeners and lifecycle ----------------------------------------------------------------

  private async listen(): Promise<void> {
    const c = this.table.config;
    const specs = await this.servers.specs(c);
    for (const extra of this.extraListeners()) specs.push(extra);
    await this.accessLogs.apply(c.accessLogFile);
    for (const spec of specs) this.servers.track(spec);
    this.listeners = await bindAll(specs);
    for (const w of c.warnings) this.log.warn(`config: ${w}`);
    for (const l of this.listeners) this.log.info(`listening on ${l.address.address}:${l.address.port} (${l.role})`);
    this.certs.start(this.addresses());
    for (const n of c.notes) this.log.info(`config: ${n}`);
    this.log.info(this.sendfile ? 'sendfile: on (native addon): large cached files go out zero-copy'
      : `sendfile: off (${sendfileBuilt ? 'STREAMGATE_NO_SENDFILE' : 'native addon not built'}): large files go out with write(2)`);
  }

  /** Open connections and bytes in and out on every connection since start (the API's summaries). */
  traffic(): { connections: number; recvBytes: number; sendBytes: number } {
    return this.servers.traffic(this.metrics.sendfileBytesTotal);
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
    await this.certs.reload(config, this.servers.https);
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
    // Graceful: streams in flight (a download) finish, then the session closes.
    this.servers.drain(servers);
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
      this.servers.destroyAll();
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
