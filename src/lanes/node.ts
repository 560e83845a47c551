import http from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { GatewayError } from '../errors.js';
import { headerOf } from '../http/accesslog.js';
import { errorBody } from '../http/errors.js';
import { applyTargetRules } from '../http/target.js';
import type { Metrics } from '../metrics/metrics.js';
import { BUSY, type ConnectionGuard, IDLE } from '../net/guard.js';
import type { Table } from '../routing/build.js';
import { decide } from '../routing/table.js';
import { type FastLanes, hostOnly, rawPath } from './fast.js';
import { logAddress } from '../net/address.js';

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** What Node's lane needs of the gateway. */
export interface NodeLaneHost {
  table(): Table;
  closing(): boolean;
  guard: ConnectionGuard;
  lanes: FastLanes;
  metrics: Metrics;
  /** Accepted past max_connections (src/net/servers.ts): answered 503 here. */
  overLimit(sock: Socket): boolean;
  /** Koa's lane (src/lanes/koa.ts), for what the proxy lane does not take. */
  koa: RequestHandler;
}

/**
 * Node's lane: every request Node's own parser reads (HTTP/1 handed over by the front door,
 * HTTP/2 streams the fast path leaves, the API port). The checks every request gets before the
 * routing table — past max_connections, the request rules, request_timeout — then the proxy
 * lane for proxied prefixes or Koa for the rest.
 */
export class NodeLane {
  constructor(private readonly h: NodeLaneHost) {}

  readonly handler: RequestHandler = (req, res) => {
    if (this.refuseOverLimit(req, res)) return;
    if (req.httpVersionMajor === 1) this.trackRequest(req, res);
    if (this.refuseTarget(req, res)) return;
    // request_timeout: a request whose body or response moves no byte for this long is closed
    // (NGINX's client_body_timeout, send_timeout). Set per request: Node drops server.timeout
    // after a connection's first request. Proxied answers may be silent up to proxy.timeout.
    if (req.httpVersionMajor === 1) {
      const t = this.h.table().config;
      req.socket.setTimeout(t.proxy.routes.length > 0 ? Math.max(t.limits.requestTimeoutMs, t.proxy.timeoutMs) : t.limits.requestTimeoutMs);
    }
    if (!this.h.lanes.proxyLane(req, res)) this.h.koa(req, res);
  };

  /**
   * HTTP/1.1 Upgrade: WebSocket to a proxied prefix is spliced to its upstream; any other upgrade
   * (curl's h2c offer, a WebSocket to a path nobody proxies) is answered as a plain request.
   */
  readonly upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const t = this.h.table();
    this.h.guard.busy(socket as Socket);
    // A refused target falls through to the handler, which answers its 400.
    const bad = applyTargetRules(req) !== null;
    const e = bad ? null : decide(t.entries, req.method ?? 'GET', rawPath(req.url ?? '/'), hostOnly(req.headers.host)).entry;
    const r = e?.answer === 'proxy' ? e.target.proxy : null;
    if (r && !this.h.closing()) {
      r.upgrade(req, socket, head);
      return;
    }
    const res = new http.ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    this.handler(req, res);
  };

  /**
   * The guard's view of an HTTP/1 connection Node's parser owns: busy from its request head to
   * the end of its answer, then idle (reclaimable at max_connections) until the next head.
   */
  private trackRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const tr = this.h.guard.of(req.socket);
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
    this.h.lanes.proxyDone('none', 400, Buffer.byteLength(body), performance.now(), {
      ip: logAddress(req.socket?.remoteAddress), method: req.method ?? '-', url: req.url ?? '', httpVersion: req.httpVersion, referer: headerOf(req, 'referer'), agent: headerOf(req, 'user-agent'),
    }, 'BAD_REQUEST');
    return true;
  }

  /** A request on a connection accepted past max_connections: 503 with the reason, then close. */
  private refuseOverLimit(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (!this.h.overLimit(req.socket)) return false;
    const max = this.h.table().config.maxConnections;
    const { type, body } = errorBody(rawPath(req.url ?? '/'), new GatewayError('LIMIT_REACHED', `too many connections (max_connections ${max})`));
    res.writeHead(503, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), Connection: 'close', 'Retry-After': '1' });
    res.end(body);
    this.h.metrics.request('none', 503, Buffer.byteLength(body));
    return true;
  }
}
