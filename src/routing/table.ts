import { isApiPath } from '../http/errors.js';

/**
 * The routing table, as data: one ordered list of entries, each saying what it matches (method,
 * path prefix, exact path or pattern, Host) and what answers. Every lane — Koa's middleware, the
 * front door, the HTTP/2 fast path, the proxy lanes, WebSocket upgrades — asks `decide()` the same
 * question and differs only in how it answers, so no two lanes can route one request apart.
 *
 * The order is NGINX's `location` order in the SRS layouts it mirrors (so each layout translates 1:1):
 *  1. OPTIONS when crossdomain is on → the CORS answer
 *  2. /api/, /rtc/ → a proxy route for that prefix, else the embedded API
 *  —  /metrics → Prometheus text (the gateway's own, never proxied)
 *  3. user proxy routes, longest prefix first
 *  —  /recordings/{app}/{stream}.m3u8 and its segments → HLS VOD of recordings (when a vhost records)
 *  4. /{app}/{stream}.(flv|m3u8|ts|m4s|aac|mp3) → the live origin (nothing live: the rest of the table)
 *  5. the players' vendor scripts, /console/, /players/
 *  6. vhost http_static mounts, longest prefix first, a Host-bound mount before an any-host one
 *  7. the `/` proxy route, if any; else http_server.dir
 */

/** What answers a request the entry matches. */
export type Answer = 'cors' | 'api' | 'metrics' | 'proxy' | 'recordings' | 'stream' | 'vendor' | 'pages' | 'mount' | 'files';

/** How an entry matches the path (still percent-encoded, dot-segments already removed). */
export type PathMatch =
  | { kind: 'any' }
  /** path.startsWith(prefix) (proxy routes: NGINX's prefix location). */
  | { kind: 'prefix'; prefix: string }
  /** path === dir, or under dir + "/" (a directory and what is in it). */
  | { kind: 'dir'; prefix: string }
  | { kind: 'exact'; path: string }
  | { kind: 'api'; prefix: string }
  | { kind: 'pattern'; re: RegExp };

export interface RouteEntry<T = unknown> {
  /** The access log's route field, and the metrics' label. */
  name: string;
  answer: Answer;
  /** Methods it applies to; null = every method. */
  methods: readonly string[] | null;
  path: PathMatch;
  /** The Host (without port) it is bound to; null = any. */
  host: string | null;
  /** What answers: a proxy, a file root, a vendor file … (the gateway's objects; the table does not look). */
  target: T;
}

/**
 * HLS VOD of recordings (src/record/vod/): `/recordings/{app}/{stream}.m3u8`, a recording's bytes
 * `…/{stream}/{id}.mp4|.flv` and a TS segment `…/{stream}/{id}/{n}.ts` ({id}: 16 hex digits). Only
 * these shapes: recordings that dvr_path puts under the web root at /recordings/ stay files.
 */
export const RECORDINGS_PATH = /^\/recordings\/.+\/[^/]+(?:\.m3u8|\/[0-9a-f]{16}\.(?:mp4|flv)|\/[0-9a-f]{16}\/\d{1,9}\.ts)$/;

/** `/{app}/{stream}.{ext}`: NGINX's `^/.+/.*\.(flv|m3u8|ts|aac|mp3)$` from the seed layout, and fMP4 HLS's `.m4s`. */
export const STREAM_PATH = /^\/(.+)\/([^/]+)\.(flv|m3u8|ts|m4s|aac|mp3)$/;

/** Whether `e` matches a request; `path` is the normalised raw path, `host` without its port. */
export function matches(e: RouteEntry, method: string, path: string, host: string): boolean {
  if (e.methods !== null && !e.methods.includes(method)) return false;
  if (e.host !== null && e.host !== host) return false;
  const p = e.path;
  switch (p.kind) {
    case 'any':
      return true;
    case 'prefix':
      return path.startsWith(p.prefix);
    case 'dir':
      return path === p.prefix || path.startsWith(p.prefix.endsWith('/') ? p.prefix : `${p.prefix}/`);
    case 'exact':
      return path === p.path;
    case 'api':
      return isApiPath(path) && path.startsWith(p.prefix);
    case 'pattern':
      return p.re.test(path);
  }
}

/**
 * The first entry from `from` on that matches: the route. The last entry matches everything, so
 * there always is one. `from` lets a lane continue past an entry that declined (a stream path
 * with nothing live goes on to the files).
 */
export function decide<T>(entries: readonly RouteEntry<T>[], method: string, path: string, host: string, from = 0): { entry: RouteEntry<T>; index: number } {
  for (let i = from; i < entries.length; i++) {
    const e = entries[i];
    if (matches(e, method, path, host)) return { entry: e, index: i };
  }
  throw new Error('routing table without a catch-all entry');
}

/** The table's rows for a human (the README, `streamgate -t`): one line per entry. */
export function describe(entries: readonly RouteEntry[]): string[] {
  return entries.map((e, i) => {
    const p = e.path;
    const what = p.kind === 'any' ? '*' : p.kind === 'pattern' ? p.re.source : p.kind === 'exact' ? `= ${p.path}` : p.kind === 'api' ? `${p.prefix} (API)` : p.prefix;
    return `${i + 1}. ${e.methods?.join(',') ?? '*'} ${what}${e.host ? ` [host ${e.host}]` : ''} → ${e.name}`;
  });
}
