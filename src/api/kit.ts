import type { Context } from 'koa';
import type { Config } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Client } from '../live/types.js';
import type { Source } from '../live/source.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { ClientRates } from './srs.js';
import type { RecordingList } from './recordings.js';

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

/**
 * A handler's answer is the JSON body; it throws a GatewayError for anything else. `id` is the
 * decoded path segment after the resource's name, when there is one.
 */
export type Handler = (ctx: Context, id: string | undefined) => unknown;

/**
 * One resource under /api/v1/: `GET /api/v1/{name}[/]` lists, `GET /api/v1/{name}/{id}` shows
 * one. `DELETE` is only ever taken with an id. Registered by one line in src/api/index.ts.
 */
export interface Resource {
  /** The path segment under /api/v1/, lower-case letters (SRS's names). */
  name: string;
  /** One line for the /api/v1/ index. */
  about: string;
  get: Handler;
  delete?: Handler;
}

/** What every resource shares: the deps, SRS's envelope, a census of the hub, paging. */
export interface ApiKit {
  deps: ApiDeps;
  rates: ClientRates;
  envelope(data: Record<string, unknown>): Record<string, unknown>;
  /** Players per source id, and every client's stream id, in one pass over the client list. */
  census(): { clients: Client[]; perSource: Map<string, number>; streamIdOf: (c: Client) => string };
  /** SRS's ?start=&count= window over a list. */
  page<T>(ctx: Context, items: T[]): T[];
}

export function makeKit(deps: ApiDeps): ApiKit {
  const rates = new ClientRates();
  return {
    deps,
    rates,
    envelope: (data) => ({
      code: 0,
      server: SERVER_ID,
      service: deps.startedAt.toString(36),
      pid: String(process.pid),
      ...data,
    }),
    census: () => {
      const clients = deps.hub.clients();
      const perSource = new Map<string, number>();
      const sourceOf = new Map<string, Source>();
      for (const s of deps.hub.all()) sourceOf.set(`${s.name.vhost}/${s.name.app}/${s.name.stream}`, s);
      const streamIdOf = (c: { vhost: string; app: string; stream: string }) => sourceOf.get(`${c.vhost}/${c.app}/${c.stream}`)?.id ?? '';
      for (const c of clients) {
        const id = streamIdOf(c);
        if (id) perSource.set(id, (perSource.get(id) ?? 0) + 1);
      }
      rates.prune(new Set(clients.map((c) => c.id)));
      return { clients, perSource, streamIdOf };
    },
    page: (ctx, items) => {
      const start = clampInt(ctx.query.start, 0, 0, Number.MAX_SAFE_INTEGER);
      const count = clampInt(ctx.query.count, DEFAULT_COUNT, 1, MAX_COUNT);
      return items.slice(start, start + count);
    },
  };
}

function clampInt(v: unknown, dflt: number, min: number, max: number): number {
  const n = typeof v === 'string' ? Number.parseInt(v, 10) : Number.NaN;
  if (!Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}
