import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { generateSelfSigned } from '../../src/net/selfsigned.js';
import { freePort, freePorts, startProc, waitPort, LOAD_CORE, SERVER_CORE, type Proc } from './procs.js';

/**
 * The servers of the benchmark, each started on loopback free ports in a scratch directory and
 * serving the same site: a 1 KB playlist and a 512 KB segment where SRS writes HLS
 * (`/live/livestream.m3u8`, `/live/livestream-1.ts`), and `/api/` proxied to one upstream.
 */

/** The repository root, seen from dist/bench/lib/. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(REPO_ROOT, 'dist/src/cli.js');

/** node's arguments for a streamgate on `conf`, with the options `npm start` gives it. */
export function streamgateArgs(conf: string, nodeArgs: string[] = []): string[] {
  return ['--max-semi-space-size=16', ...nodeArgs, CLI, '-c', conf];
}
const SEED_KOA = join(REPO_ROOT, 'dist/bench/peers/seed-koa.js');
const NODE_FLOOR = join(REPO_ROOT, 'dist/bench/peers/node-floor.js');
const NMS = join(REPO_ROOT, 'node_modules/node-media-server/bin/app.js');

export const PLAYLIST_PATH = '/live/livestream.m3u8';
export const SEGMENT_PATH = '/live/livestream-1.ts';
export const API_PATH = '/api/v1/versions';
export const SEGMENT_BYTES = 512 * 1024;

export interface Site {
  dir: string;
  root: string;
  key: string;
  cert: string;
}

export interface Peer {
  name: string;
  http: number;
  https: number | null;
  proc: Proc;
  /** Runs before each of its runs (the log pass's streamgate switches its log on or off). */
  before?: () => Promise<void>;
}

/** A streamgate peer whose access log can be switched by a config reload, in the same process. */
export interface SwitchablePeer extends Peer {
  setLog(on: boolean): Promise<void>;
}

/** Writes the site's files and a self-signed certificate (the same for every HTTPS peer). */
export function prepareSite(dir: string): Site {
  const root = join(dir, 'www');
  // Run as root, NGINX's workers drop to an unprivileged user: the files must be world-readable.
  chmodSync(dir, 0o755);
  mkdirSync(join(root, 'live'), { recursive: true });
  let playlist = '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-TARGETDURATION:2\n';
  for (let i = 1; playlist.length < 1000; i++) playlist += `#EXTINF:2.000,\nlivestream-${i}.ts\n`;
  writeFileSync(join(root, PLAYLIST_PATH), playlist.slice(0, 1024));
  const seg = Buffer.alloc(SEGMENT_BYTES);
  // MPEG-TS sync bytes every 188 bytes, so the file looks like what it is named.
  for (let i = 0; i < seg.length; i += 188) seg[i] = 0x47;
  writeFileSync(join(root, SEGMENT_PATH), seg);
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>bench</title>\n');
  const key = join(dir, 'server.key');
  const cert = join(dir, 'server.crt');
  // streamgate's own generator (EC P-256, as `openssl req -newkey ec` would make): one pair for
  // every HTTPS peer, so no server gets a cheaper handshake than another.
  const pair = generateSelfSigned('localhost');
  writeFileSync(key, pair.key);
  writeFileSync(cert, pair.cert);
  return { dir, root, key, cert };
}

function nginxCommon(prefix: string): string {
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  return `
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }
`;
}

function nginxHttpCommon(prefix: string): string {
  const t = join(prefix, 'tmp');
  return `
    access_log off;
    client_body_temp_path ${t}/body;
    proxy_temp_path ${t}/proxy;
    fastcgi_temp_path ${t}/fastcgi;
    uwsgi_temp_path ${t}/uwsgi;
    scgi_temp_path ${t}/scgi;
    # Debian's nginx.conf defaults (its ssl_protocols adds TLSv1.3, which NGINX 1.22 leaves out by
    # default: without it NGINX alone would speak TLS 1.2, whose records cost less in OpenSSL 3);
    # keepalive_requests raised so wrk's 50 connections stay open for the whole run, as they do on
    # the other peers.
    sendfile on;
    tcp_nopush on;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    keepalive_requests 1000000;
    types { application/x-mpegURL m3u8; video/MP2T ts; text/html html; application/json json; }
    default_type application/octet-stream;
`;
}

function startNginxConf(name: string, core: number, dir: string, conf: string): Proc {
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return startProc(name, core, 'nginx', ['-p', dir, '-c', file, '-g', 'daemon off;']);
}

/**
 * The upstream API all proxies point to: NGINX answering a small SRS-like JSON body from memory,
 * on the load core. The cheapest server there is, so the proxied figure measures the proxy.
 */
export async function startUpstream(base: string): Promise<Peer> {
  const dir = join(base, 'upstream');
  const port = await freePort();
  const conf = `${nginxCommon(dir)}
http {
${nginxHttpCommon(dir)}
    server {
        listen 127.0.0.1:${port} backlog=4096;
        location / {
            default_type application/json;
            return 200 '{"code":0,"server":"vid-bench","service":"bench","pid":"1","data":{"major":7,"minor":0,"revision":18,"version":"7.0.18"}}';
        }
    }
}
`;
  const proc = startNginxConf('upstream', LOAD_CORE, dir, conf);
  await waitPort(port, proc);
  return { name: 'upstream', http: port, https: null, proc };
}

/**
 * NGINX with the seed's nginx.proxy.conf layout: one worker, files from a root, `/api/` and
 * `/rtc/` proxied. `keepalive` adds the tuning the seed lacks: an upstream block with a
 * keep-alive pool, HTTP/1.1 and an empty Connection header.
 */
export async function startNginx(base: string, site: Site, upstream: number, keepalive: boolean, dirName?: string, logs = false): Promise<Peer> {
  const name = keepalive ? 'nginx-keepalive' : 'nginx';
  const dir = join(base, dirName ?? (logs ? `${name}-logs` : name));
  const [http, https] = await freePorts(2);
  const api = keepalive
    ? `proxy_pass http://api_upstream; proxy_http_version 1.1; proxy_set_header Connection "";`
    : `proxy_pass http://127.0.0.1:${upstream};`;
  const conf = `${nginxCommon(dir)}
http {
${nginxHttpCommon(dir)}
    ${keepalive ? `upstream api_upstream { server 127.0.0.1:${upstream}; keepalive 64; }` : ''}
    server {
        listen 127.0.0.1:${http} backlog=4096;
        listen 127.0.0.1:${https} ssl http2 backlog=4096;
        ssl_certificate ${site.cert};
        ssl_certificate_key ${site.key};
        server_name _;
        ${logs ? `access_log ${join(dir, 'access.log')} combined buffer=64k flush=1s;` : ''}
        location ~ ^/(api|rtc)/ { ${api} }
        location / { root ${site.root}; }
    }
}
`;
  const proc = startNginxConf(name, SERVER_CORE, dir, conf);
  await waitPort(http, proc);
  return { name, http, https, proc };
}

/** Caddy with the seed's Caddyfile layout: reverse_proxy for /api/ and /rtc/, file_server for the rest. */
export async function startCaddy(base: string, site: Site, upstream: number, logs = false): Promise<Peer> {
  const dir = join(base, logs ? 'caddy-logs' : 'caddy');
  mkdirSync(dir, { recursive: true });
  const http = await freePort();
  const file = join(dir, 'Caddyfile');
  writeFileSync(
    file,
    `{
    admin off
    auto_https off
    storage file_system ${join(dir, 'data')}
}
http://127.0.0.1:${http} {
    reverse_proxy /api/* 127.0.0.1:${upstream}
    reverse_proxy /rtc/* 127.0.0.1:${upstream}
    root * ${site.root}
    file_server
    ${logs ? `log {
        output file ${join(dir, 'access.log')}
    }` : ''}
}
`,
  );
  // Caddy keeps state under $HOME/XDG dirs even with admin off: point them at the scratch dir.
  const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
  const proc = startProc('caddy', SERVER_CORE, 'caddy', ['run', '--config', file, '--adapter', 'caddyfile'], { env });
  await waitPort(http, proc);
  return { name: 'caddy', http, https: null, proc };
}

export async function startSeedKoa(site: Site, upstream: number): Promise<Peer> {
  const http = await freePort();
  const proc = startProc('seed-koa', SERVER_CORE, process.execPath, [SEED_KOA, String(http), site.root, `http://127.0.0.1:${upstream}`]);
  await waitPort(http, proc);
  return { name: 'seed-koa', http, https: null, proc };
}

/** The verbatim byte relay of peers/node-floor.ts: Node's own floor for the proxy row. */
export async function startNodeFloor(upstream: number): Promise<Peer> {
  const http = await freePort();
  const proc = startProc('node-floor', SERVER_CORE, process.execPath, [NODE_FLOOR, String(http), String(upstream)]);
  await waitPort(http, proc);
  return { name: 'node-floor', http, https: null, proc };
}

export interface StreamgateOptions {
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  mwLatencyMs?: number;
  /** Access log on, to a file in the peer's dir, with the default batching (what the shipped configs do, to stdout). */
  logs?: boolean;
}

/**
 * streamgate from dist/ with the same layout: files from the root, `/api/` as a proxy route,
 * access log off (the other peers log nothing either), RTMP off, limits raised for fan-out.
 */
export async function startStreamgate(base: string, site: Site, upstream: number, o: StreamgateOptions = {}): Promise<SwitchablePeer> {
  const dir = join(base, o.logs ? 'streamgate-logs' : 'streamgate');
  mkdirSync(dir, { recursive: true });
  const [http, https] = await freePorts(2);
  const file = join(dir, 'streamgate.conf');
  const conf = (logs: boolean) => `listen off;
max_connections 20000;
http_server {
    enabled on;
    listen 127.0.0.1:${http};
    dir ${site.root};
    https { enabled on; listen 127.0.0.1:${https}; key ${site.key}; cert ${site.cert}; }
}
http_api { enabled off; }
proxy { route /api/ http://127.0.0.1:${upstream}; route /rtc/ http://127.0.0.1:${upstream}; }
access_log ${logs ? `combined ${join(dir, 'access.log')}` : 'off'};
limits { max_streams 0; max_players 0; }
vhost __defaultVhost__ {
    # 0 = no limit on players per stream.
    play { max_players 0; mw_latency ${o.mwLatencyMs ?? 350}ms; gop_cache on; }
}
`;
  let logs = o.logs === true;
  writeFileSync(file, conf(logs));
  const proc = startProc('streamgate', SERVER_CORE, process.execPath, streamgateArgs(file, o.nodeArgs), { cwd: dir });
  await waitPort(http, proc);
  const setLog = async (on: boolean): Promise<void> => {
    if (on === logs) return;
    const applied = () => proc.output().split('reload: ').length;
    const before = applied();
    writeFileSync(file, conf(on));
    process.kill(proc.pid, 'SIGHUP');
    for (const t0 = Date.now(); applied() === before; await sleep(10)) {
      if (Date.now() - t0 > 10_000) throw new Error(`streamgate did not apply its reload: ${proc.tail()}`);
    }
    logs = on;
  };
  return { name: 'streamgate', http, https, proc, setLog };
}

/** node-media-server v4 with its admin console off; RTMP for ffmpeg's publish, HTTP-FLV to play. */
export async function startNms(base: string): Promise<Peer & { rtmp: number }> {
  const dir = join(base, 'nms');
  mkdirSync(dir, { recursive: true });
  const [http, rtmp] = await freePorts(2);
  const file = join(dir, 'config.json');
  writeFileSync(
    file,
    JSON.stringify({
      bind: '127.0.0.1',
      notify: { url: '' },
      store: { path: join(dir, 'data'), maxHistory: 100 },
      auth: { play: false, publish: false, secret: '', jwt: { secret: 'bench', expiresIn: '24h', refreshExpiresIn: '7d', algorithm: 'HS256', users: [] } },
      rtmp: { port: rtmp },
      http: { port: http },
      webadmin: { enable: false },
      record: { auto: false, path: join(dir, 'record') },
    }),
  );
  const proc = startProc('node-media-server', SERVER_CORE, process.execPath, [NMS, '-c', file, '--no-admin'], { cwd: dir });
  await waitPort(http, proc);
  await waitPort(rtmp, proc);
  return { name: 'node-media-server', http, https: null, proc, rtmp };
}
