import os from 'node:os';
import type { Context, Middleware } from 'koa';
import { bodyParser } from '@koa/bodyparser';
import type { Config } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { GatewayError } from '../errors.js';
import { VERSION } from '../version.js';
import { configView } from './config-view.js';
import { ClientRates, clientJson, streamJson, vhostId, vhostJson } from './srs.js';
import { CpuSampler, round2 } from './system.js';
import { recordingsEndpoint, type RecordingList } from './recordings.js';

/** What the embedded API reads: the live hub, the loaded config, the counters. */
export interface ApiDeps {
  hub: Hub;
  config: () => Config;
  metrics: Metrics;
  log: Logger;
  /** Listening addresses, for the read-only config view. */
  listeners: () => { role: string; address: string; port: number }[];
  startedAt: number;
  /** Open client connections, and bytes read and written on every connection since start. */
  traffic?: () => { connections: number; recvBytes: number; sendBytes: number };
  /** Each ACME domain's certificate (issuer, expiry, next renewal), for /api/v1/config. */
  certificates?: () => unknown[];
  /** SRS dvr's files, for /api/v1/recordings (src/record/). */
  recordings?: RecordingList;
}

/** SRS reports its own name here; tools check `server`/`service` only for presence. */
export const SERVER_ID = `sg-${process.pid.toString(36)}`;

/** SRS paginates lists with ?start=&count= (default 10 in SRS; we default higher: consoles want all). */
const DEFAULT_COUNT = 100;
const MAX_COUNT = 10_000;

const READ_ONLY = 'GET, HEAD, OPTIONS';

type Handler = (ctx: Context, id: string | undefined) => unknown;

interface Endpoint {
  /** Path under /api/v1/ without slashes, e.g. "streams". */
  GET?: Handler;
  DELETE?: Handler;
}

/**
 * The embedded SRS-compatible HTTP API: SRS's envelope and field names over the live hub, so
 * SRS's console, players and scripts work against streamgate unchanged. Read-only except
 * `DELETE /api/v1/clients/{id}`, which kicks a player or a publisher.
 */
export function createApi(deps: ApiDeps): Middleware {
  const { hub } = deps;
  const rates = new ClientRates();
  const cpu = new CpuSampler();

  const envelope = (data: Record<string, unknown>) => ({
    code: 0,
    server: SERVER_ID,
    service: deps.startedAt.toString(36),
    pid: String(process.pid),
    ...data,
  });

  /** Players per source id, and every client's stream id, in one pass over the client list. */
  const census = () => {
    const clients = hub.clients();
    const perSource = new Map<string, number>();
    const sourceOf = new Map<string, Source>();
    for (const s of hub.all()) sourceOf.set(`${s.name.vhost}/${s.name.app}/${s.name.stream}`, s);
    const streamIdOf = (c: { vhost: string; app: string; stream: string }) => sourceOf.get(`${c.vhost}/${c.app}/${c.stream}`)?.id ?? '';
    for (const c of clients) {
      const id = streamIdOf(c);
      if (id) perSource.set(id, (perSource.get(id) ?? 0) + 1);
    }
    rates.prune(new Set(clients.map((c) => c.id)));
    return { clients, perSource, streamIdOf };
  };

  const page = <T>(ctx: Context, items: T[]): T[] => {
    const start = clampInt(ctx.query.start, 0, 0, Number.MAX_SAFE_INTEGER);
    const count = clampInt(ctx.query.count, DEFAULT_COUNT, 1, MAX_COUNT);
    return items.slice(start, start + count);
  };

  const endpoints: Record<string, Endpoint> = {
    versions: {
      GET: () => {
        const [major, minor, revision] = VERSION.split('.').map((x) => Number.parseInt(x, 10) || 0);
        return envelope({ data: { major, minor, revision, version: VERSION } });
      },
    },
    summaries: {
      GET: () => {
        const now = Date.now();
        const mem = process.memoryUsage().rss;
        const total = os.totalmem();
        const load = os.loadavg();
        const c = cpu.read();
        const t = deps.traffic?.() ?? { connections: 0, recvBytes: 0, sendBytes: 0 };
        return envelope({
          data: {
            ok: true,
            now_ms: now,
            self: {
              version: VERSION,
              pid: process.pid,
              ppid: process.ppid,
              argv: process.argv.join(' '),
              cwd: process.cwd(),
              mem_kbyte: Math.round(mem / 1024),
              mem_percent: round2(mem / total),
              cpu_percent: c.self,
              srs_uptime: Math.floor((now - deps.startedAt) / 1000),
            },
            system: {
              cpu_percent: c.system,
              disk_read_KBps: 0,
              disk_write_KBps: 0,
              disk_busy_percent: 0,
              mem_ram_kbyte: Math.round(total / 1024),
              mem_ram_percent: round2(1 - os.freemem() / total),
              mem_swap_kbyte: 0,
              mem_swap_percent: 0,
              cpus: os.cpus().length,
              cpus_online: os.availableParallelism(),
              uptime: os.uptime(),
              ilde_time: 0,
              load_1m: round2(load[0]),
              load_5m: round2(load[1]),
              load_15m: round2(load[2]),
              net_sample_time: now,
              net_recv_bytes: t.recvBytes,
              net_send_bytes: t.sendBytes,
              net_recvi_bytes: 0,
              net_sendi_bytes: 0,
              srs_sample_time: now,
              srs_recv_bytes: t.recvBytes,
              srs_send_bytes: t.sendBytes,
              conn_sys: t.connections,
              conn_sys_et: t.connections,
              conn_sys_tw: 0,
              conn_sys_udp: 0,
              conn_srs: t.connections,
            },
          },
        });
      },
    },
    streams: {
      GET: (ctx, id) => {
        const now = Date.now();
        const { perSource } = census();
        if (id !== undefined) {
          const s = hub.sourceById(id);
          if (!s) throw new GatewayError('STREAM_NOT_FOUND', `no stream with id ${id}`);
          return envelope({ stream: streamJson(s, perSource.get(s.id) ?? 0, now) });
        }
        return envelope({ streams: page(ctx, hub.all()).map((s) => streamJson(s, perSource.get(s.id) ?? 0, now)) });
      },
    },
    clients: {
      GET: (ctx, id) => {
        const now = Date.now();
        const { clients, streamIdOf } = census();
        if (id !== undefined) {
          const c = hub.client(id);
          if (!c) throw new GatewayError('API_NOT_FOUND', `no client with id ${id}`);
          return envelope({ client: clientJson(c, streamIdOf(c), rates.kbps(c, now), now) });
        }
        return envelope({ clients: page(ctx, clients).map((c) => clientJson(c, streamIdOf(c), rates.kbps(c, now), now)) });
      },
      DELETE: (_ctx, id) => {
        if (id === undefined) throw new GatewayError('METHOD_NOT_ALLOWED', 'DELETE needs a client id', { Allow: READ_ONLY });
        const c = hub.client(id);
        if (!c) throw new GatewayError('API_NOT_FOUND', `no client with id ${id}`);
        deps.log.info(`api: kicked client ${id} (${c.type} ${c.url} from ${c.ip})`);
        c.kick();
        return envelope({});
      },
    },
    vhosts: {
      GET: (_ctx, id) => {
        const now = Date.now();
        const { clients } = census();
        const rows = deps.config().vhosts.map((v) => vhostJson(v, hub.all().filter((s) => s.name.vhost === v.name),
          clients.filter((c) => c.vhost === v.name).length, now));
        if (id !== undefined) {
          const v = rows.find((r) => r.id === id || r.name === id);
          if (!v) throw new GatewayError('API_NOT_FOUND', `no vhost with id ${id}`);
          return envelope({ vhost: v });
        }
        return envelope({ vhosts: rows });
      },
    },
    recordings: recordingsEndpoint(deps.recordings, envelope),
    config: {
      GET: () => envelope({ data: configView(deps.config(), deps.listeners(), deps.certificates?.() ?? []) }),
    },
  };

  // Bodies are read only where an endpoint takes one (SRS's WebRTC signalling), bounded, and
  // only after the proxies: a proxied /rtc/ never meets this parser (koa-proxies #55).
  const parseRtcBody = bodyParser({
    enableTypes: ['json', 'text'],
    extendTypes: { text: ['application/sdp'] },
    jsonLimit: deps.config().limits.maxApiBodyBytes,
    textLimit: deps.config().limits.maxApiBodyBytes,
  });

  return async (ctx) => {
    const path = ctx.path;
    if (path === '/rtc' || path.startsWith('/rtc/')) {
      if (ctx.method === 'POST') {
        const declared = Number(ctx.get('Content-Length') || 0);
        if (declared > deps.config().limits.maxApiBodyBytes) throw new GatewayError('BODY_TOO_LARGE', `at most ${deps.config().limits.maxApiBodyBytes} bytes`);
        await parseRtcBody(ctx, async () => {});
      }
      throw new GatewayError('RTC_NO_BACKEND');
    }
    if (path === '/api' || path === '/api/' || path === '/api/v1' || path === '/api/v1/') {
      onlyRead(ctx);
      ctx.body = envelope(path.startsWith('/api/v1')
        ? { urls: { versions: 'the version of streamgate', summaries: 'pid, uptime, cpu, memory, connections, bytes', streams: 'live streams', clients: 'publishers and players; DELETE kicks', vhosts: 'vhosts', config: 'the loaded config, read-only' } }
        : { urls: { v1: 'the api version 1.0' } });
      return;
    }
    const m = /^\/api\/v1\/([a-z]+)(?:\/([^/]*))?\/?$/.exec(path);
    const ep = m ? endpoints[m[1]] : undefined;
    if (!m || !ep) throw new GatewayError('API_NOT_FOUND', path);
    const id = m[2] ? decodeId(m[2]) : undefined;
    const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
    const handler = method === 'GET' ? ep.GET : method === 'DELETE' ? ep.DELETE : undefined;
    if (!handler) {
      throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: ep.DELETE ? `${READ_ONLY}, DELETE` : READ_ONLY });
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = handler(ctx, id);
  };
}

/** A path segment's id; malformed percent-encoding (`%ff`, `%`) is the client's error, not ours. */
function decodeId(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new GatewayError('BAD_REQUEST', 'malformed percent-encoding in the id');
  }
}

function onlyRead(ctx: Context): void {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: READ_ONLY });
}

function clampInt(v: unknown, dflt: number, min: number, max: number): number {
  const n = typeof v === 'string' ? Number.parseInt(v, 10) : Number.NaN;
  if (!Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}

export { vhostId };
