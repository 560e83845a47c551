import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, streamgateArgs, type Peer, type Site } from './peers.js';
import { freePort, startProc, waitPort, LOAD_CORE, SERVER_CORE } from './procs.js';

/**
 * The SRS-front layout as users deploy it: a front door (80/443) in front of an origin that
 * serves HLS files and live FLV. A streamgate origin stands in for SRS (on the load core, as the
 * proxy row's upstream is): the site's files on its disk where SRS writes HLS, a live stream
 * published to it. In front of it, streamgate with config/srs-front.conf, or NGINX with the
 * seed's nginx.proxy.conf (its stream location proxies every playlist, segment and player).
 */

export const FRONT_FLV_PATH = '/live/bench.flv';

/** The origin (SRS's stand-in): files from the site's root, HTTP-FLV live, its API to count players. */
export async function startOrigin(base: string, site: Site): Promise<Peer> {
  const dir = join(base, 'front-origin');
  mkdirSync(dir, { recursive: true });
  const http = await freePort();
  const file = join(dir, 'origin.conf');
  writeFileSync(file, `listen off;
max_connections 20000;
http_server { enabled on; listen 127.0.0.1:${http}; dir ${site.root}; https { enabled off; } }
http_api { enabled on; }
access_log off;
limits { max_streams 0; max_players 0; }
vhost __defaultVhost__ { play { max_players 0; mw_latency 350ms; gop_cache on; } }
`);
  const proc = startProc('front-origin', LOAD_CORE, process.execPath, streamgateArgs(file), { cwd: dir });
  await waitPort(http, proc);
  return { name: 'front-origin', http, https: null, proc };
}

/**
 * streamgate with the shipped config/srs-front.conf, only its addresses changed: its port, the
 * origin's for SRS's 8080 and 1985, the site's root, HTTPS off (the rows are plain HTTP), the
 * access log as the pass asks, and fan-out limits raised as on the other rows.
 */
export async function startSrsFront(base: string, site: Site, origin: number, logs = false): Promise<Peer> {
  const dir = join(base, logs ? 'front-sg-logs' : 'front-sg');
  mkdirSync(dir, { recursive: true });
  const http = await freePort();
  let conf = readFileSync(join(REPO_ROOT, 'config/srs-front.conf'), 'utf8');
  const swap = (from: RegExp, to: string) => {
    if (!from.test(conf)) throw new Error(`config/srs-front.conf no longer has ${from.source}: update bench/lib/front.ts`);
    conf = conf.replace(from, to);
  };
  swap(/^(\s*)listen\s+8000;/m, `$1listen 127.0.0.1:${http};`);
  swap(/(https\s*\{\s*enabled\s+)on;/, '$1off;');
  swap(/^(\s*)dir\s+\.\/public;/m, `$1dir ${site.root};`);
  conf = conf.replaceAll('http://127.0.0.1:8080', `http://127.0.0.1:${origin}`).replaceAll('http://127.0.0.1:1985', `http://127.0.0.1:${origin}`);
  swap(/^vhost __defaultVhost__ \{/m, 'vhost __defaultVhost__ {\n    play { max_players 0; mw_latency 350ms; gop_cache on; }');
  conf += `\nmax_connections 20000;\nlimits { max_streams 0; max_players 0; }\naccess_log ${logs ? `combined ${join(dir, 'access.log')}` : 'off'};\n`;
  const file = join(dir, 'srs-front.conf');
  writeFileSync(file, conf);
  const proc = startProc('streamgate-front', SERVER_CORE, process.execPath, streamgateArgs(file), { cwd: dir });
  await waitPort(http, proc);
  return { name: 'streamgate', http, https: null, proc };
}

/** NGINX with the seed's nginx.proxy.conf: the stream pattern, /api/ and /rtc/ proxied to the origin, one worker. */
export async function startNginxFront(base: string, site: Site, origin: number, logs = false): Promise<Peer> {
  const dir = join(base, logs ? 'front-nginx-logs' : 'front-nginx');
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const http = await freePort();
  const t = join(dir, 'tmp');
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, `worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }
http {
    access_log ${logs ? `${join(dir, 'access.log')} combined buffer=64k flush=1s` : 'off'};
    client_body_temp_path ${t}/body;
    proxy_temp_path ${t}/proxy;
    fastcgi_temp_path ${t}/fastcgi;
    uwsgi_temp_path ${t}/uwsgi;
    scgi_temp_path ${t}/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { application/x-mpegURL m3u8; video/MP2T ts; text/html html; application/json json; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:${http} backlog=4096;
        server_name _;
        location ~ ^/(console|players)/ { proxy_pass http://127.0.0.1:${origin}/$request_uri; }
        location ~ ^/.+/.*\\.(flv|m3u8|ts|aac|mp3)$ { proxy_pass http://127.0.0.1:${origin}$request_uri; }
        location ~ ^/(api|rtc)/ { proxy_pass http://127.0.0.1:${origin}$request_uri; }
        location / { root ${site.root}; }
    }
}
`);
  const proc = startProc('nginx-front', SERVER_CORE, 'nginx', ['-p', dir, '-c', file, '-g', 'daemon off;']);
  await waitPort(http, proc);
  return { name: 'nginx-front', http, https: null, proc };
}

/** Players the origin serves on a stream (its SRS-shaped API: clients less the publisher). */
export async function originPlayers(origin: Peer, stream: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${origin.http}/api/v1/streams/`).catch(() => null);
  if (!r?.ok) return -1;
  const body = (await r.json()) as { streams?: { name: string; clients: number; publish?: { active: boolean } }[] };
  const s = body.streams?.find((x) => x.name === stream);
  if (!s) return 0;
  return s.clients - (s.publish?.active ? 1 : 0);
}
