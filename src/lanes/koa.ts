import type Koa from 'koa';
import type { Context, Middleware, Next } from 'koa';
import { checkApiRequest } from '../auth/api-guard.js';
import { GatewayError } from '../errors.js';
import { accessLog } from '../http/accesslog.js';
import { cors } from '../http/cors.js';
import { errorResponder } from '../http/errors.js';
import { welcomePage } from '../http/welcome.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Origin, StreamExt } from '../outputs/origin.js';
import type { Entry, Table } from '../routing/build.js';
import { decide, STREAM_PATH } from '../routing/table.js';
import type { FileRoot } from '../static/fileserver.js';
import { type FastLanes, rawPath } from './fast.js';

type Decision = ReturnType<typeof decide<Entry['target']>>;

/** What Koa's lane needs of the gateway. */
export interface KoaLaneHost {
  table(): Table;
  closing(): boolean;
  origin: Origin;
  metrics: Metrics;
  log: Logger;
  /** The embedded API (src/api/). */
  api: Middleware;
  lanes: FastLanes;
  vhostFor(hostname: string): string;
  /** HLS VOD of recordings (src/record/vod/). */
  recordings?: (ctx: Context, vhost: string) => Promise<void>;
}

/**
 * Koa's lane of the routing table: every request the fast lanes leave, with a full context.
 * In order: the URL-length and shutdown guard, the access log, the one error responder, the
 * table's decision (made once, so the log names the route whoever answers), CORS, the answer.
 */
export function installKoaLane(app: Koa, h: KoaLaneHost): void {
  app.proxy = false;
  app.silent = true;
  app.use(guardRequest(h));
  app.use(accessLog(h.log, () => h.table().config.accessLog, (r) => h.metrics.request(r.route, r.status, r.bytes)));
  app.use(errorResponder(h.log));
  app.use((ctx, next) => {
    const d = decide(h.table().entries, ctx.method, ctx.path, ctx.hostname);
    ctx.state.decision = d;
    ctx.state.route = d.entry.name;
    return next();
  });
  app.use(cors(() => h.table().config.httpServer.crossdomain,
    () => ({ apiAuth: h.table().config.httpApi.auth.enabled, proxied: (p) => decide(h.table().entries, 'GET', p, '').entry.answer === 'proxy' })));
  app.use((ctx, next) => route(h, ctx, next));
}

/** 414 before anything else looks at the URL; refuse new work while shutting down. */
function guardRequest(h: KoaLaneHost): Middleware {
  return async (ctx, next) => {
    if (ctx.url.length > h.table().config.limits.maxUrlBytes) {
      ctx.status = 414;
      ctx.type = 'text/plain;charset=utf-8';
      ctx.body = '414 request-target too long\n';
      ctx.state.route = 'none';
      return;
    }
    if (h.closing()) ctx.set('Connection', 'close');
    return next();
  };
}

async function route(h: KoaLaneHost, ctx: Context, next: Next): Promise<void> {
  const t = h.table();
  const d = (ctx.state.decision as Decision | undefined) ?? decide(t.entries, ctx.method, ctx.path, ctx.hostname);
  if (d.entry.answer !== 'stream') return answer(h, ctx, next, d.entry);
  // The live origin; what it does not answer (GET/HEAD of nothing live: HLS on disk) goes on down the table.
  const m = STREAM_PATH.exec(ctx.path)!;
  const vhost = h.vhostFor(ctx.hostname);
  return h.origin.handle(ctx, { vhost, app: m[1], stream: m[2], ext: m[3] as StreamExt }, () => {
    const rest = decide(t.entries, ctx.method, ctx.path, ctx.hostname, d.index + 1);
    ctx.state.route = rest.entry.name;
    return answer(h, ctx, next, rest.entry);
  });
}

/** The API's and /metrics' authorisation (src/auth/api-guard.ts). */
function apiDoor(h: KoaLaneHost, ctx: Context): void {
  checkApiRequest(h.table().config.httpApi.auth, { method: ctx.method, authorization: ctx.get('Authorization'), ip: ctx.req.socket.remoteAddress ?? '' });
}

/** How Koa answers each kind of entry. */
async function answer(h: KoaLaneHost, ctx: Context, next: Next, e: Entry): Promise<void> {
  const { proxy, root, prefix, file } = e.target;
  const raw = rawPath(ctx.url);
  switch (e.answer) {
    case 'cors':
      // Answered by the CORS middleware before this one.
      return next();
    case 'api':
      if (!h.table().config.httpApi.enabled) throw new GatewayError('API_NOT_FOUND', 'http_api is disabled; add a proxy route for /api/');
      if (!ctx.path.startsWith('/rtc')) apiDoor(h, ctx);
      return h.api(ctx, next);
    case 'metrics':
      apiDoor(h, ctx);
      ctx.type = 'text/plain; version=0.0.4; charset=utf-8';
      ctx.body = h.metrics.render();
      return;
    case 'proxy':
      return proxy!.handle(ctx, h.lanes.proxyCors);
    case 'recordings':
      if (!h.recordings) throw new GatewayError('NOT_FOUND');
      return h.recordings(ctx, h.vhostFor(ctx.hostname));
    case 'vendor':
      return root!.serve(ctx, file, raw);
    case 'pages':
      return root!.serve(ctx, raw.slice(prefix.length) || '', raw);
    case 'mount':
      return root!.serve(ctx, raw.slice(prefix.length).replace(/^(?!\/)/, '/'), raw);
    case 'stream':
    case 'files':
      return files(ctx, root!, raw);
  }
}

/** http_server.dir, the table's last entry. */
async function files(ctx: Context, root: FileRoot, raw: string): Promise<void> {
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
