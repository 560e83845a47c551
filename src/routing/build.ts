import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DEFAULT_VHOST, type Config, type VhostConfig } from '../config/index.js';
import type { Proxy } from '../proxy/index.js';
import type { FileRoot } from '../static/fileserver.js';
import { isApiPath } from '../http/errors.js';
import { RECORDINGS_PATH, STREAM_PATH, type RouteEntry } from './table.js';

/**
 * Builds the routing table (src/routing/table.ts) from a config. Rebuilt on SIGHUP and swapped
 * in one assignment, so a request sees either the old table or the new one.
 */

/** What an entry points at. */
export interface Target {
  proxy: Proxy | null;
  root: FileRoot | null;
  /** The mount's prefix (static mounts, page dirs), cut off the path before the root serves it. */
  prefix: string;
  /** A vendor script's file name inside its root. */
  file: string;
}

export type Entry = RouteEntry<Target>;

export interface Table {
  config: Config;
  entries: Entry[];
  /** Every proxy of the table (closed when a reload retires them). */
  proxies: Proxy[];
  /** Every file root the table uses (the others are closed after a reload). */
  roots: FileRoot[];
  vhosts: Map<string, VhostConfig>;
  /** Any proxy route at all (the proxy lanes are skipped without). */
  proxied: boolean;
}

/**
 * The player libraries, served from their npm packages by the gateway itself: the players page
 * works offline and needs no CDN or build step.
 */
const require = createRequire(import.meta.url);
export const VENDOR_FILES: Record<string, { dir: string; file: string }> = {
  '/players/vendor/mpegts.js': { dir: join(dirname(require.resolve('mpegts.js/package.json')), 'dist'), file: '/mpegts.js' },
  '/players/vendor/hls.js': { dir: join(dirname(require.resolve('hls.js/package.json')), 'dist'), file: '/hls.min.js' },
};

export interface Makers {
  fileRoot(dir: string): FileRoot;
  proxy(route: Config['proxy']['routes'][number]): Proxy;
}

const NONE: Target = { proxy: null, root: null, prefix: '', file: '' };

/** The HLS files of a stream (NGINX's seed location `^/.+/.*\\.(m3u8|ts)$`, less FLV and audio). */
export const EDGE_HLS_PATH = /^\/.+\/[^/]+\.(m3u8|ts)$/;

/**
 * A front for an origin's HLS (`edge { origin URL; proxy_hls on; }`): GET and HEAD of a stream's
 * playlist or segment go to the origin through a proxy, before the live origin's entry, as
 * NGINX's layout proxies the whole stream pattern; FLV stays with the edge pull (one upstream
 * request per stream, not per player). Nothing is cached here: the origin's headers (its
 * playlists' no-cache, its segments' validators) reach the client as sent. The Host sent is the
 * origin's, as NGINX's proxy_pass sends by default (SRS picks its vhost by it).
 */
function edgeHlsEntries(config: Config, make: Makers): { entries: Entry[]; proxies: Proxy[] } {
  const entries: Entry[] = [];
  const proxies: Proxy[] = [];
  for (const v of config.vhosts) {
    const origin = v.edge.origin;
    if (!v.enabled || origin === null || !v.edge.proxyHls) continue;
    const proxy = make.proxy({ prefix: '/', upstream: origin, host: 'upstream' });
    proxies.push(proxy);
    const host = v.name === DEFAULT_VHOST ? null : v.name;
    entries.push({ name: 'edge:hls', answer: 'proxy', methods: ['GET', 'HEAD'], host, path: { kind: 'pattern', re: EDGE_HLS_PATH }, target: { ...NONE, proxy, prefix: '/' } });
  }
  // A Host-bound vhost before the default one, which matches any Host.
  entries.sort((a, b) => (a.host === null ? 1 : 0) - (b.host === null ? 1 : 0));
  return { entries, proxies };
}

export function buildTable(config: Config, make: Makers): Table {
  const entries: Entry[] = [];
  const add = (e: Omit<Entry, 'target' | 'methods' | 'host'> & Partial<Entry>) => entries.push({ methods: null, host: null, target: NONE, ...e });
  const routes = config.proxy.routes.map((r) => ({ prefix: r.prefix, proxy: make.proxy(r) }));
  const isApiRoute = (p: string) => p !== '/' && isApiPath(p);
  // Longest prefix first (NGINX's prefix locations).
  const byLength = (a: { prefix: string }, b: { prefix: string }) => b.prefix.length - a.prefix.length;

  if (config.httpServer.crossdomain) add({ name: 'cors', answer: 'cors', methods: ['OPTIONS'], path: { kind: 'any' } });
  for (const r of routes.filter((x) => isApiRoute(x.prefix)).sort(byLength)) {
    add({ name: `proxy:${r.prefix}`, answer: 'proxy', path: { kind: 'api', prefix: r.prefix }, target: { ...NONE, proxy: r.proxy, prefix: r.prefix } });
  }
  add({ name: 'api', answer: 'api', path: { kind: 'api', prefix: '/' } });
  add({ name: 'metrics', answer: 'metrics', path: { kind: 'exact', path: '/metrics' } });
  for (const r of routes.filter((x) => x.prefix !== '/' && !isApiRoute(x.prefix)).sort(byLength)) {
    add({ name: `proxy:${r.prefix}`, answer: 'proxy', path: { kind: 'prefix', prefix: r.prefix }, target: { ...NONE, proxy: r.proxy, prefix: r.prefix } });
  }
  // Before the live origin's pattern, which would take /recordings/{app} for an app; only where something records.
  if (config.vhosts.some((v) => v.enabled && v.dvr.enabled)) add({ name: 'recordings', answer: 'recordings', path: { kind: 'pattern', re: RECORDINGS_PATH } });
  const edgeProxies = edgeHlsEntries(config, make);
  entries.push(...edgeProxies.entries);
  add({ name: 'stream', answer: 'stream', path: { kind: 'pattern', re: STREAM_PATH } });

  const roots: FileRoot[] = [];
  const rootOf = (dir: string) => {
    const r = make.fileRoot(dir);
    roots.push(r);
    return r;
  };
  if (config.playersDir) {
    for (const [path, lib] of Object.entries(VENDOR_FILES)) {
      add({ name: 'players', answer: 'vendor', path: { kind: 'exact', path }, target: { ...NONE, root: rootOf(lib.dir), file: lib.file } });
    }
  }
  for (const [prefix, dir] of [['/console', config.consoleDir], ['/players', config.playersDir]] as const) {
    if (dir) add({ name: prefix.slice(1), answer: 'pages', path: { kind: 'dir', prefix }, target: { ...NONE, root: rootOf(dir), prefix } });
  }
  const mounts: Entry[] = [];
  for (const v of config.vhosts) {
    if (!v.enabled || !v.httpStatic.enabled) continue;
    let mount = v.httpStatic.mount;
    let host: string | null = null;
    if (mount.startsWith('[vhost]')) {
      mount = mount.slice('[vhost]'.length);
      if (v.name !== DEFAULT_VHOST) host = v.name;
    }
    if (!mount.startsWith('/')) mount = `/${mount}`;
    mounts.push({ name: `static:${mount}`, answer: 'mount', methods: null, host, path: { kind: 'dir', prefix: mount }, target: { ...NONE, root: rootOf(v.httpStatic.dir), prefix: mount } });
  }
  // Longest prefix first; a host-bound mount before an any-host mount of the same prefix.
  mounts.sort((a, b) => (b.target.prefix.length - a.target.prefix.length) || (a.host === null ? 1 : 0) - (b.host === null ? 1 : 0));
  entries.push(...mounts);
  const catchAll = routes.find((r) => r.prefix === '/');
  if (catchAll) add({ name: 'proxy:/', answer: 'proxy', path: { kind: 'any' }, target: { ...NONE, proxy: catchAll.proxy, prefix: '/' } });
  add({ name: 'static', answer: 'files', path: { kind: 'any' }, target: { ...NONE, root: rootOf(config.httpServer.dir) } });
  return {
    config,
    entries,
    proxies: [...routes.map((r) => r.proxy), ...edgeProxies.proxies],
    roots,
    vhosts: new Map(config.vhosts.map((v) => [v.name, v])),
    proxied: routes.length > 0 || edgeProxies.proxies.length > 0,
  };
}
