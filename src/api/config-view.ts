import type { Config, ListenAddr } from '../config/index.js';

/**
 * The read-only view of the loaded config for the console (GET /api/v1/config): what listens,
 * which route answers which path, where each proxy goes. Secrets never leave the process: a
 * publish secret shows as set or not, nothing more.
 */
export function configView(c: Config, listening: { role: string; address: string; port: number }[], certificates: unknown[] = []) {
  const apiProxy = (p: string) => c.proxy.routes.find((r) => r.prefix !== '/' && (r.prefix.startsWith(p) || p.startsWith(r.prefix)));
  const routes: { path: string; to: string }[] = [];
  for (const p of ['/api/', '/rtc/']) {
    const r = apiProxy(p);
    routes.push({ path: p, to: r ? `proxy ${r.upstream.href}` : c.httpApi.enabled ? 'embedded SRS-compatible API' : 'off' });
  }
  routes.push({ path: '/metrics', to: 'Prometheus metrics' });
  for (const r of c.proxy.routes) {
    if (r.prefix === '/' || r.prefix.startsWith('/api') || r.prefix.startsWith('/rtc')) continue;
    routes.push({ path: r.prefix, to: `proxy ${r.upstream.href}` });
  }
  routes.push({ path: '/{app}/{stream}.flv|.m3u8|.ts|.aac|.mp3', to: 'stream origin (live, then files)' });
  if (c.consoleDir) routes.push({ path: '/console/', to: `dir ${c.consoleDir}` });
  if (c.playersDir) routes.push({ path: '/players/', to: `dir ${c.playersDir}` });
  for (const v of c.vhosts) {
    if (v.enabled && v.httpStatic.enabled) routes.push({ path: v.httpStatic.mount, to: `dir ${v.httpStatic.dir} (vhost ${v.name})` });
  }
  const catchAll = c.proxy.routes.find((r) => r.prefix === '/');
  routes.push({ path: '/', to: catchAll ? `proxy ${catchAll.upstream.href}` : `dir ${c.httpServer.dir}` });

  return {
    file: c.file,
    listeners: listening.map((l) => ({ role: l.role, address: l.address, port: l.port })),
    routes,
    upstreams: c.proxy.routes.map((r) => ({ prefix: r.prefix, upstream: r.upstream.href, host: r.host })),
    proxy: { timeout_ms: c.proxy.timeoutMs, connect_timeout_ms: c.proxy.connectTimeoutMs, keepalive: c.proxy.keepAlive },
    http_server: {
      listen: c.httpServer.enabled ? c.httpServer.listen.map(addr) : [],
      dir: c.httpServer.dir,
      crossdomain: c.httpServer.crossdomain,
      https: c.httpServer.https.enabled ? { listen: c.httpServer.https.listen.map(addr), cert: c.httpServer.https.cert, own_h2: c.httpServer.https.ownH2, acme: c.httpServer.https.acme.enabled ? { directory: c.httpServer.https.acme.directory, certificates } : null } : null,
      https_redirect: c.httpServer.httpsRedirect,
    },
    rtmp: { listen: c.rtmp.listen.map(addr) },
    http_api: { listen: c.httpApi.listen.map(addr), auth: c.httpApi.auth.enabled },
    vhosts: c.vhosts.map((v) => ({
      name: v.name,
      enabled: v.enabled,
      http_static: v.httpStatic.enabled ? `${v.httpStatic.mount} → ${v.httpStatic.dir}` : 'off',
      hls: v.hls.enabled ? `fragment ${v.hls.fragmentS}s, window ${v.hls.windowS}s` : 'off',
      publish_allow: v.publish.allow.join(' '),
      publish_secret_set: v.publish.secret !== null,
      takeover: v.publish.takeover,
      edge_origin: v.edge.origin?.href ?? null,
      // Which controls are on, never their secrets or hook URLs (a URL's query may hold a key).
      security: v.access.security.enabled,
      http_hooks: v.access.hooks.enabled,
      token: v.access.token.enabled ? `require ${['publish', 'play'].filter((a) => v.access.token.require[a as 'publish' | 'play']).join(' ')} (${v.access.token.jwks ? 'jwks' : 'secret'})` : 'off',
    })),
    limits: {
      max_connections: c.maxConnections,
      max_streams: c.limits.maxStreams,
      max_players: c.limits.maxPlayers,
      header_timeout_ms: c.limits.headerTimeoutMs,
      keepalive_timeout_ms: c.limits.keepAliveTimeoutMs,
      max_header_size: c.limits.maxHeaderBytes,
      max_url_length: c.limits.maxUrlBytes,
      max_api_body: c.limits.maxApiBodyBytes,
      shutdown_timeout_ms: c.limits.shutdownTimeoutMs,
    },
    access_log: c.accessLog,
  };
}

function addr(a: ListenAddr): string {
  if (a.host === undefined) return String(a.port);
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
