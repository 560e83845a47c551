import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ConfigError, type Directive } from './tree.js';
import { accessLogConfig, } from './access-log.js';
import { DEFAULT_VHOST } from './validate.js';
import { DEFAULT_DVR_PATH, SRS1_FILE_NAME, type DvrConfig } from '../record/types.js';
import { DEFAULT_HOOKS_TIMEOUT_MS, HOOK_EVENTS, type ApiAuth, type HookEvent, type SecurityRule, type VhostAccess } from '../auth/types.js';
import { DEFAULT_TLS_CERT, DEFAULT_TLS_KEY, LETSENCRYPT_DIRECTORY, type AcmeConfig, type Config, type Limits, type ListenAddr, type ProxyRoute, type VhostConfig } from './types.js';

export * from './types.js';

/**
 * The pages shipped with the package, found from this module (dist/src/config/ → the package
 * root), not from the working directory: an installed `streamgate` started anywhere serves them.
 */
const SHIPPED_PAGES = {
  console: fileURLToPath(new URL('../../../www/console', import.meta.url)),
  players: fileURLToPath(new URL('../../../www/players', import.meta.url)),
};

/** Top-level `listen` (SRS 4–6, and streamgate's `listen off;`), else SRS 7's `rtmp { listen; }`, else 1935. */
function rtmpListen(r: View): ListenAddr[] {
  const from = r.one('listen') ? r : r.one('rtmp')?.children ? r.block('rtmp') : r;
  return from.one('listen')?.args[0] === 'off' ? [] : from.listen('listen', [1935]);
}

/** Read access to one block of the validated tree, with typed value parsers that cite file:line. */
class View {
  constructor(private readonly dirs: Directive[]) {}

  one(name: string): Directive | undefined {
    return this.dirs.find((d) => d.name === name);
  }

  all(name: string): Directive[] {
    return this.dirs.filter((d) => d.name === name);
  }

  block(name: string): View {
    return new View(this.one(name)?.children ?? []);
  }

  bool(name: string, dflt: boolean, envRule: 'on-only' | 'unless-off' = 'on-only'): boolean {
    const d = this.one(name);
    if (!d) return dflt;
    const v = d.args[0];
    if (d.line === 0) return envRule === 'on-only' ? v === 'on' : v !== 'off';
    if (v !== 'on' && v !== 'off') fail(d, `"${name}" expects on or off, got "${v}"`);
    return v === 'on';
  }

  int(name: string, dflt: number, min: number, max: number): number {
    const d = this.one(name);
    if (!d) return dflt;
    const v = d.args[0];
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) fail(d, `"${name}" expects an integer from ${min} to ${max}, got "${v}"`);
    return Number(v);
  }

  /** Durations: a number of seconds as SRS writes them (`2`, `0.5`), or with a unit (`350ms`, `5s`, `2m`). */
  ms(name: string, dfltMs: number, unitless: 's' | 'ms' = 's'): number {
    const d = this.one(name);
    if (!d) return dfltMs;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(d.args[0]);
    if (!m) fail(d, `"${name}" expects a duration such as 5, 5s or 350ms, got "${d.args[0]}"`);
    const unit = m[2] ?? unitless;
    return Math.round(Number(m[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : 60_000));
  }

  bytes(name: string, dflt: number): number {
    const d = this.one(name);
    if (!d) return dflt;
    const m = /^(\d+)([kKmMgG])?$/.exec(d.args[0]);
    if (!m) fail(d, `"${name}" expects a size such as 8192, 16k or 1m, got "${d.args[0]}"`);
    const mult = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase()] ?? 1;
    return Number(m[1]) * mult;
  }

  str(name: string, dflt: string): string {
    return this.one(name)?.args[0] ?? dflt;
  }

  listen(name: string, dflt: number[]): ListenAddr[] {
    const d = this.one(name);
    if (!d) return dflt.map((port) => ({ host: undefined, port }));
    return d.args.map((a) => parseListen(a, d));
  }
}

function fail(d: Directive, msg: string): never {
  throw new ConfigError(d.file, d.line, msg);
}

function parseListen(arg: string, d: Directive): ListenAddr {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([^:[\]]+):)?(\d{1,5})$/.exec(arg);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) fail(d, `"${d.name}" expects a port or host:port (e.g. 8080, 127.0.0.1:8080, [::1]:8080), got "${arg}"`);
  const host = m[1] ?? m[2];
  if (host !== undefined && host !== 'localhost' && isIP(host) === 0) fail(d, `"${d.name}" expects an IP address before the port, got "${host}"`);
  return { host, port };
}

function parseUrl(arg: string, d: Directive): URL {
  let u: URL;
  try {
    u = new URL(arg);
  } catch {
    fail(d, `"${d.name}" expects an http:// or https:// URL, got "${arg}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') fail(d, `"${d.name}" expects an http:// or https:// URL, got "${arg}"`);
  return u;
}

/** hls_fmp4, hls_ll, hls_part: LL-HLS is fMP4 only, and a part must fit well inside a segment. */
function llHls(hls: View): { fmp4: boolean; ll: boolean; partS: number } {
  const ll = hls.bool('hls_ll', false);
  const partMs = hls.ms('hls_part', 333);
  const d = hls.one('hls_part');
  const fragmentMs = hls.ms('hls_fragment', 2000);
  if (d && (partMs < 100 || partMs > 2000 || partMs >= fragmentMs)) fail(d, `"hls_part" expects 0.1 to 2 seconds and less than hls_fragment, got "${d.args[0]}"`);
  return { fmp4: ll || hls.bool('hls_fmp4', false), ll, partS: partMs / 1000 };
}

function vhostConfig(name: string, v: View, limits: Limits): VhostConfig {
  const st = v.block('http_static');
  const remux = v.block('http_remux');
  const hls = v.block('hls');
  const pub = v.block('publish');
  const play = v.block('play');
  const edge = v.block('edge');
  const originDir = edge.one('origin');
  const allow = pub.all('allow').flatMap((d) => d.args.map((a) => checkAllow(a, d)));
  return {
    name,
    enabled: v.bool('enabled', true),
    // SRS's mount default is [vhost]/, which would shadow http_server.dir entirely once enabled
    // (SRS_VHOST_HTTP_STATIC_ENABLED=on alone); /hls is what config/streamgate.conf documents.
    httpStatic: { enabled: st.bool('enabled', false), mount: st.str('mount', '[vhost]/hls'), dir: st.str('dir', './public/hls') },
    httpRemux: { enabled: remux.bool('enabled', true), mount: remux.str('mount', '[vhost]/[app]/[stream].flv') },
    hls: { enabled: hls.bool('enabled', true), fragmentS: hls.ms('hls_fragment', 2000) / 1000, windowS: hls.ms('hls_window', 12_000) / 1000, disposeMs: hls.ms('hls_dispose', 60_000), ...llHls(hls) },
    publish: {
      allow: pub.one('allow') ? allow : ['127.0.0.0/8', '::1'],
      secret: pub.one('secret')?.args[0] ?? null,
      takeover: pub.bool('takeover', false),
    },
    play: { mwLatencyMs: play.ms('mw_latency', 350, 'ms'), gopCache: play.bool('gop_cache', true), maxPlayers: play.int('max_players', limits.maxPlayers, 0, 10_000_000), waitPublisherMs: play.ms('wait_publisher', 30_000), timeJitter: timeJitter(play.one('time_jitter')) },
    edge: {
      origin: originDir ? parseUrl(originDir.args[0], originDir) : null,
      idleTimeoutMs: edge.ms('idle_timeout', 3000),
      connectTimeoutMs: edge.ms('connect_timeout', 5000),
      proxyHls: edge.bool('proxy_hls', false),
    },
    access: vhostAccess(v),
    dvr: dvrConfig(v.block('dvr')),
  };
}

/** dvr_max_age: seconds, or with a unit as retention is usually said (`90m`, `24h`, `7d`); 0 = kept. */
function ageMs(d: Directive | undefined): number {
  if (!d) return 0;
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(d.args[0]);
  if (!m) fail(d, `"dvr_max_age" expects an age such as 3600, 90m, 24h or 7d, got "${d.args[0]}"`);
  return Math.round(Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!);
}

/** SRS's dvr block, with SRS's defaults, plus streamgate's retention (dvr_max_age, dvr_max_bytes). */
function dvrConfig(d: View): DvrConfig {
  const planDir = d.one('dvr_plan');
  const plan = planDir?.args[0] ?? 'session';
  // SRS 2's `append` plan was removed in SRS 3: say so rather than record something else.
  if (plan !== 'session' && plan !== 'segment') fail(planDir!, `"dvr_plan" expects session or segment, got "${plan}"`);
  const applyDir = d.one('dvr_apply');
  const apply = applyDir?.args ?? ['all'];
  for (const a of apply) if (a !== 'all' && !/^[^/\s]+\/[^/\s]+$/.test(a)) fail(applyDir!, `"dvr_apply" expects all or app/stream names, got "${a}"`);
  const pathDir = d.one('dvr_path');
  let path = pathDir?.args[0] ?? DEFAULT_DVR_PATH;
  if (!/\.(flv|mp4)$/.test(path)) path = `${path.replace(/\/+$/, '')}/${SRS1_FILE_NAME}`;
  const jitter = d.str('time_jitter', 'full');
  if (jitter !== 'full' && jitter !== 'zero' && jitter !== 'off') fail(d.one('time_jitter')!, `"time_jitter" expects full, zero or off, got "${jitter}"`);
  const durationMs = d.ms('dvr_duration', 30_000);
  if (durationMs < 1000) fail(d.one('dvr_duration')!, '"dvr_duration" must be at least 1 second');
  return {
    enabled: d.bool('enabled', false),
    apply: apply.includes('all') ? 'all' : apply,
    plan,
    path,
    durationMs,
    waitKeyframe: d.bool('dvr_wait_keyframe', true),
    timeJitter: jitter,
    maxAgeMs: ageMs(d.one('dvr_max_age')),
    maxBytes: d.bytes('dvr_max_bytes', 0),
  };
}

function apiAuth(a: View): ApiAuth {
  const auth = { enabled: a.bool('enabled', false), username: a.str('username', ''), password: a.str('password', '') };
  // SRS refuses every request then; a config error says why at start-up instead.
  if (auth.enabled && (auth.username === '' || auth.password === '')) fail(a.one('enabled')!, '"auth" is enabled: it needs a username and a password');
  return auth;
}

function vhostAccess(v: View): VhostAccess {
  const sec = v.block('security');
  const rules: SecurityRule[] = [];
  for (const d of [...sec.all('allow'), ...sec.all('deny')]) {
    const [action, target] = d.args;
    if (action !== 'publish' && action !== 'play') fail(d, `"${d.name}" expects publish or play, got "${action}"`);
    rules.push({ allow: d.name === 'allow', action, target: checkAllow(target, d) });
  }
  const hk = v.block('http_hooks');
  const urls = Object.fromEntries(HOOK_EVENTS.map((e) => [e, hk.all(e).flatMap((d) => d.args.map((a) => parseUrl(a, d)))])) as Record<HookEvent, URL[]>;
  const tk = v.block('token');
  const req = tk.one('require');
  for (const a of req?.args ?? []) if (a !== 'publish' && a !== 'play') fail(req!, `"require" expects publish and/or play, got "${a}"`);
  const jwksDir = tk.one('jwks');
  const token = {
    enabled: tk.bool('enabled', false),
    require: { publish: req ? req.args.includes('publish') : true, play: req ? req.args.includes('play') : true },
    secret: tk.one('secret')?.args[0] ?? null,
    jwks: jwksDir ? parseUrl(jwksDir.args[0], jwksDir) : null,
  };
  if (token.enabled && (token.secret === null) === (token.jwks === null)) {
    fail(tk.one('enabled')!, '"token" needs exactly one of "secret" (HS256) or "jwks" (ES256/RS256)');
  }
  return {
    security: { enabled: sec.bool('enabled', false), rules },
    hooks: { enabled: hk.bool('enabled', false), urls, timeoutMs: hk.ms('hooks_timeout', DEFAULT_HOOKS_TIMEOUT_MS) },
    token,
  };
}

/** SRS's play.time_jitter: full (default), zero or off. */
function timeJitter(d: Directive | undefined): 'full' | 'zero' | 'off' {
  const v = d?.args[0] ?? 'full';
  if (v !== 'full' && v !== 'zero' && v !== 'off') fail(d!, `"time_jitter" expects full, zero or off, got "${v}"`);
  return v;
}

function acmeConfig(a: View): AcmeConfig {
  const enabled = a.bool('enabled', false);
  const domainsDir = a.one('domains');
  const domains = domainsDir?.args.map((n) => n.toLowerCase()) ?? [];
  for (const n of domains) {
    // RFC 8555 §7.1.4: dNSName identifiers; a wildcard needs DNS-01, which streamgate cannot answer.
    if (!/^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(n) || isIP(n) !== 0) {
      fail(domainsDir!, `"domains" expects DNS names (no wildcards, no IP addresses), got "${n}"`);
    }
  }
  if (enabled && domains.length === 0) fail(a.one('enabled')!, 'acme is enabled but "domains" names no domain');
  const dirDirective = a.one('directory');
  if (dirDirective) parseUrl(dirDirective.args[0], dirDirective);
  return {
    enabled,
    domains: [...new Set(domains)],
    email: a.one('email')?.args[0] ?? null,
    directory: a.str('directory', LETSENCRYPT_DIRECTORY),
    caCert: a.one('ca_cert')?.args[0] ?? null,
    dir: a.str('dir', './conf/acme'),
  };
}

function checkAllow(a: string, d: Directive): string {
  if (a === 'all') return a;
  const [addr, bits] = a.split('/');
  const fam = isIP(addr);
  const max = fam === 6 ? 128 : 32;
  if (fam === 0 || (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > max))) {
    fail(d, `"${d.name}" expects an IP address, a CIDR (10.0.0.0/8) or "all", got "${a}"`);
  }
  return a;
}

/** Turns the validated directive tree into the typed config, with SRS's defaults. */
export function buildConfig(root: Directive[], file: string, notes: string[], warnings: string[] = []): Config {
  const r = new View(root);
  const api = r.block('http_api');
  // In the order errors were always reported: limits, proxy routes, access_log, vhosts, then the rest.
  const limits = limitsConfig(r.block('limits'));
  const proxy = proxyConfig(r.block('proxy'));
  const accessLogFile = accessLogConfig(r.one('access_log'));
  const vhosts = vhostsConfig(r, limits);
  const pagesDir = (name: string, dflt: string): string | null => {
    const v = r.str(name, dflt);
    return v === 'off' ? null : v;
  };
  return {
    file,
    // `listen off;` (streamgate): no RTMP listener, e.g. when fronting an SRS that owns 1935.
    rtmp: { listen: rtmpListen(r) },
    maxConnections: r.int('max_connections', 1000, 1, 10_000_000),
    httpApi: {
      enabled: api.bool('enabled', true),
      listen: api.one('listen') ? api.listen('listen', []) : [],
      auth: apiAuth(api.block('auth')),
    },
    httpServer: httpServerConfig(r.block('http_server')),
    proxy,
    consoleDir: pagesDir('console_dir', SHIPPED_PAGES.console),
    playersDir: pagesDir('players_dir', SHIPPED_PAGES.players),
    accessLog: accessLogFile.format,
    accessLogFile,
    limits,
    vhosts,
    notes,
    warnings,
  };
}

/** The `limits` block: streamgate's bounds, each with its default. */
function limitsConfig(lim: View): Limits {
  return {
    maxStreams: lim.int('max_streams', 0, 0, 1_000_000),
    maxPlayers: lim.int('max_players', 0, 0, 10_000_000),
    headerTimeoutMs: lim.ms('header_timeout', 10_000),
    requestTimeoutMs: lim.ms('request_timeout', 60_000),
    keepAliveTimeoutMs: lim.ms('keepalive_timeout', 65_000),
    maxHeaderBytes: lim.bytes('max_header_size', 16 * 1024),
    maxUrlBytes: lim.bytes('max_url_length', 8 * 1024),
    maxApiBodyBytes: lim.bytes('max_api_body', 1024 * 1024),
    shutdownTimeoutMs: lim.ms('shutdown_timeout', 10_000),
    unauthorizedMemoryBytes: lim.bytes('unauthorized_memory', 128 * 1024 * 1024),
    connectionMemoryBytes: lim.bytes('connection_memory', 1024 * 1024),
    maxConnectionsPerIp: lim.int('max_connections_per_ip', 0, 0, 1_000_000),
    hlsHeldRequests: lim.int('hls_held_requests', 8192, 1, 1_000_000),
  };
}

/** `http_server` and its `https` block. */
function httpServerConfig(hs: View): Config['httpServer'] {
  const https = hs.block('https');
  return {
    enabled: hs.bool('enabled', true),
    listen: hs.listen('listen', [8080]),
    dir: hs.str('dir', './public'),
    crossdomain: hs.bool('crossdomain', true, 'unless-off'),
    https: {
      enabled: https.bool('enabled', true),
      listen: https.listen('listen', [8088]),
      key: https.str('key', DEFAULT_TLS_KEY),
      cert: https.str('cert', DEFAULT_TLS_CERT),
      ownH2: https.bool('own_h2', true),
      acme: acmeConfig(https.block('acme')),
    },
    httpsRedirect: hs.bool('https_redirect', false),
  };
}

/** The `proxy` block: routes longest prefix first, one route per prefix. */
function proxyConfig(px: View): Config['proxy'] {
  const routes: ProxyRoute[] = px.all('route').map((d) => {
    const [prefix, url, hostOpt] = d.args;
    if (!prefix.startsWith('/')) fail(d, `"route" expects a path prefix starting with "/", got "${prefix}"`);
    let host: ProxyRoute['host'] = 'client';
    if (hostOpt !== undefined) {
      const m = /^host=(.+)$/.exec(hostOpt);
      if (!m) fail(d, `"route" third argument must be host=client, host=upstream or host=NAME, got "${hostOpt}"`);
      host = m[1];
    }
    return { prefix, upstream: parseUrl(url, d), host };
  });
  const dupe = routes.find((x, i) => routes.findIndex((y) => y.prefix === x.prefix) !== i);
  if (dupe) {
    const d = px.all('route').find((x) => x.args[0] === dupe.prefix)!;
    fail(d, `two routes for the prefix "${dupe.prefix}"`);
  }
  routes.sort((a, b) => b.prefix.length - a.prefix.length);
  return {
    routes,
    timeoutMs: px.ms('timeout', 30_000),
    connectTimeoutMs: px.ms('connect_timeout', 5_000),
    keepAlive: px.int('keepalive', 64, 0, 100_000),
  };
}

/** Every `vhost` block, names unique, and __defaultVhost__ whether written or not. */
function vhostsConfig(r: View, limits: Limits): VhostConfig[] {
  const vhostDirs = r.all('vhost');
  const vhosts = vhostDirs.map((d) => vhostConfig(d.args[0], new View(d.children ?? []), limits));
  const dup = vhosts.find((x, i) => vhosts.findIndex((y) => y.name === x.name) !== i);
  if (dup) fail(vhostDirs.filter((d) => d.args[0] === dup.name)[1], `duplicate vhost "${dup.name}"`);
  if (!vhosts.some((v) => v.name === DEFAULT_VHOST)) vhosts.push(vhostConfig(DEFAULT_VHOST, new View([]), limits));
  return vhosts;
}
