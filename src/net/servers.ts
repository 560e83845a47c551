import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config, ListenAddr } from '../config/index.js';
import { GatewayError } from '../errors.js';
import { errorBody, isApiPath } from '../http/errors.js';
import { installFrontDoor, installH2FrontDoor } from '../http/frontdoor.js';
import { MAX_CONCURRENT_STREAMS, relayAddressWorks, relaySessions, watchSession } from '../http/h2/index.js';
import { type FastLanes, rawPath } from '../lanes/fast.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Certificates } from './acme/index.js';
import type { ConnectionGuard } from './guard.js';
import type { ListenerSpec } from './listeners.js';

/** How long a connection accepted past max_connections may take to send the request its 503 answers. */
const OVER_LIMIT_GRACE_MS = 2_000;

type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** What the HTTP servers need of the gateway. */
export interface ServersHost {
  log: Logger;
  metrics: Metrics;
  certs: Certificates;
  guard: ConnectionGuard;
  lanes: FastLanes;
  /** The plain-HTTP front door (src/http/frontdoor.ts); off sends every request to Node's parser. */
  frontDoor: boolean;
  /** Node's lane (src/lanes/node.ts). */
  handler: RequestHandler;
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
}

/**
 * The gateway's HTTP listeners: plain HTTP, HTTPS (HTTP/2 by ALPN, HTTP/1.1 fallback) and SRS's
 * API-only port, each with its timers, its front door and the connection guard; and every open
 * connection, so shutdown can drain and then close them and the API can count their bytes.
 */
export class HttpServers {
  /** Every open connection (HTTP, HTTPS, RTMP), so shutdown can close what outlives the drain. */
  readonly sockets = new Set<Socket>();
  /** Connections accepted past max_connections, answered 503 on their first request. */
  private readonly overLimitSocks = new WeakSet<object>();
  /** The HTTPS servers, whose certificates a reload replaces. */
  readonly https: http2.Http2SecureServer[] = [];
  /** Open HTTP/2 sessions: shutdown sends each a GOAWAY, or an idle browser session holds the drain to its timeout. */
  private readonly h2Sessions = new Set<http2.ServerHttp2Session>();
  /** Front doors, whose idle connections shutdown closes. */
  private readonly frontDoors: { closeIdle(): void }[] = [];
  private closedRecv = 0;
  private closedSend = 0;
  /** own_h2 can show Node the client's address on its relay link (checked at start-up; off with a warning when not). */
  h2Relay = true;

  constructor(private readonly h: ServersHost) {}

  overLimit(sock: Socket): boolean {
    return this.overLimitSocks.has(sock);
  }

  /** The listeners a config asks for, not yet bound (HTTPS material is loaded here). */
  async specs(c: Config): Promise<ListenerSpec[]> {
    const specs: ListenerSpec[] = [];
    if (c.httpServer.enabled) {
      for (const addr of c.httpServer.listen) specs.push(this.plain(c, addr));
      if (c.httpServer.https.enabled) {
        await this.h.certs.load(c);
        if (c.httpServer.https.ownH2 && !(this.h2Relay = relayAddressWorks())) {
          this.h.log.warn(`own_h2: this Node (${process.version}) does not let the HTTP/2 relay show Koa the client's address; serving HTTP/2 with Node's own server (own_h2 off)`);
        }
        for (const addr of c.httpServer.https.listen) specs.push(this.secure(c, addr));
      }
    }
    if (c.httpApi.enabled) for (const addr of c.httpApi.listen) specs.push(this.apiOnly(c, addr));
    return specs;
  }

  private plain(c: Config, addr: ListenAddr): ListenerSpec {
    const limits = c.limits;
    const server = http.createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headerTimeoutMs,
      // Live publishes are requests that last for hours: the whole-request timer must be off;
      // headersTimeout bounds slowloris and the socket idle timeout bounds stalled bodies.
      requestTimeout: 0,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs),
    }, this.h.certs.httpHandler(this.h.handler));
    // No server.maxConnections here: it closes the socket unanswered; the guard reclaims idle
    // connections first, then Node's lane answers 503.
    server.on('upgrade', this.h.upgrade);
    if (this.h.frontDoor) this.frontDoors.push(installFrontDoor(server, this.h.certs.frontDoor(this.h.lanes.frontDoorOptions())));
    return { role: 'http', directive: 'http_server.listen', addr, server };
  }

  private secure(c: Config, addr: ListenAddr): ListenerSpec {
    const limits = c.limits;
    // HTTP/2 by ALPN, HTTP/1.1 for clients that do not offer h2 (curl --http1.1, old players).
    const server = http2.createSecureServer({
      ...this.h.certs.serverOptions(),
      allowHTTP1: true,
      handshakeTimeout: limits.headerTimeoutMs,
      settings: { maxHeaderListSize: limits.maxHeaderBytes, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
    }, this.h.handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
    // Node gives the HTTP/1.1 fallback timers of its own (60 s for headers, 300 s for a whole
    // request, which would cut an HTTPS publish, a 30 s sweep, no keep-alive timeout) and
    // HTTP/2 sessions none: a slowloris on this port held its connections for good.
    Object.assign(server, { headersTimeout: limits.headerTimeoutMs, requestTimeout: 0, keepAliveTimeout: limits.keepAliveTimeoutMs, connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs) });
    server.setTimeout(limits.keepAliveTimeoutMs);
    // max_connections is the guard's (it reclaims idle connections before refusing one).
    this.h.certs.attach(server);
    server.on('upgrade', this.h.upgrade);
    const opts = this.h.lanes.frontDoorOptions();
    this.frontDoors.push(installFrontDoor(server, opts, 'secureConnection'));
    installH2FrontDoor(server, opts);
    this.https.push(server);
    server.on('session', (session: http2.ServerHttp2Session) => {
      this.h2Sessions.add(session);
      session.once('close', () => this.h2Sessions.delete(session));
      if (!relaySessions.has(session)) watchSession(session, () => opts.requestTimeoutMs!());
    });
    return { role: 'https', directive: 'http_server.https.listen', addr, server };
  }

  /** SRS's http_api.listen (1985) serves the API and nothing else: the site stays on its own ports. */
  private apiOnly(c: Config, addr: ListenAddr): ListenerSpec {
    const limits = c.limits;
    const handler: RequestHandler = (req, res) => {
      if (isApiPath(rawPath(req.url ?? '/'))) return this.h.handler(req, res);
      const { type, body } = errorBody('/api/', new GatewayError('API_NOT_FOUND', 'this listener serves /api/ and /rtc/ only'));
      res.writeHead(404, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) }).end(body);
      this.h.metrics.request('none', 404, Buffer.byteLength(body));
    };
    const server = http.createServer({ maxHeaderSize: limits.maxHeaderBytes, headersTimeout: limits.headerTimeoutMs, requestTimeout: 0, connectionsCheckingInterval: headerCheckMs(limits.headerTimeoutMs) }, handler);
    return { role: 'http_api', directive: 'http_api.listen', addr, server };
  }

  /** Puts a listener under the connection guard and counts its connections and their bytes. */
  track(spec: ListenerSpec): void {
    const { server, role } = spec;
    const plainHttp = role === 'http' || role === 'http_api';
    this.h.guard.watch(server, plainHttp || role === 'https', role === 'https', (sock) => {
      // Past max_connections with every connection busy, a plain-HTTP client is told 503
      // (Node's lane) instead of being cut off unanswered as Node's server.maxConnections
      // does; with no request within a grace period it is dropped. TLS and RTMP peers are closed.
      if (!plainHttp) return void sock.destroy();
      this.overLimitSocks.add(sock);
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

  /** Open connections and bytes in and out on every connection since start; `sendfileBytes` went out by sendfile. */
  traffic(sendfileBytes: number): { connections: number; recvBytes: number; sendBytes: number } {
    let recv = this.closedRecv;
    // Bytes sent by sendfile on a socket's fd: no socket's bytesWritten has them.
    let send = this.closedSend + sendfileBytes;
    for (const s of this.sockets) {
      recv += s.bytesRead;
      send += s.bytesWritten;
    }
    return { connections: this.sockets.size, recvBytes: recv, sendBytes: send };
  }

  /** Shutdown's first step: idle keep-alive connections close; HTTP/2 sessions get a GOAWAY and finish their streams. */
  drain(servers: readonly { close(cb: () => void): unknown }[]): void {
    for (const s of servers) (s as http.Server).closeIdleConnections?.();
    for (const f of this.frontDoors) f.closeIdle();
    for (const session of this.h2Sessions) session.close();
  }

  /** Shutdown past its timeout: every connection still open is cut. */
  destroyAll(): void {
    for (const sock of this.sockets) sock.destroy();
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
