import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { track } from '../helpers/proc.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, makeSite, rawGet, startGateway, type RawReply, type Site, type Started } from '../integration/site.js';
import { waitFor } from '../helpers/ffmpeg.js';

/**
 * streamgate and NGINX serve the same directory; every request of the table must get the same
 * status, Content-Length and Content-Range from both. NGINX is the reference a user replacing
 * it will compare against, byte range by byte range.
 */

const NGINX = '/usr/sbin/nginx';

interface Case {
  what: string;
  method?: 'GET' | 'HEAD';
  path: string;
  /** Headers; `ETAG` and `LASTMOD` are replaced by each server's own validators for the file. */
  headers?: Record<string, string>;
}

const OLD_DATE = 'Mon, 01 Jan 2001 00:00:00 GMT';

const CASES: Case[] = [
  { what: 'plain GET', path: '/hello.txt' },
  { what: 'binary GET', path: '/data.bin' },
  { what: 'large file GET', path: '/big.bin' },
  { what: 'empty file', path: '/empty.txt' },
  { what: 'HEAD', method: 'HEAD', path: '/data.bin' },
  { what: 'HEAD of a large file', method: 'HEAD', path: '/big.bin' },
  { what: 'missing file', path: '/nope.txt' },
  { what: 'directory without slash', path: '/dir' },
  { what: 'directory index', path: '/dir/' },
  { what: 'percent-encoded name', path: '/a%20b.txt' },
  { what: 'query string ignored', path: '/hello.txt?x=1' },
  { what: 'first byte', path: '/data.bin', headers: { Range: 'bytes=0-0' } },
  { what: 'first 100 bytes', path: '/data.bin', headers: { Range: 'bytes=0-99' } },
  { what: 'middle', path: '/data.bin', headers: { Range: 'bytes=100-199' } },
  { what: 'suffix', path: '/data.bin', headers: { Range: 'bytes=-10' } },
  { what: 'open end', path: '/data.bin', headers: { Range: 'bytes=990-' } },
  { what: 'end past the size', path: '/data.bin', headers: { Range: 'bytes=900-5000' } },
  { what: 'suffix longer than the file', path: '/data.bin', headers: { Range: 'bytes=-5000' } },
  { what: 'start past the end', path: '/data.bin', headers: { Range: 'bytes=1000-' } },
  { what: 'range on a large file', path: '/big.bin', headers: { Range: 'bytes=1048576-1048675' } },
  { what: 'range on an empty file', path: '/empty.txt', headers: { Range: 'bytes=0-10' } },
  { what: 'range with HEAD', method: 'HEAD', path: '/data.bin', headers: { Range: 'bytes=0-99' } },
  { what: 'unknown range unit', path: '/data.bin', headers: { Range: 'items=0-1' } },
  { what: 'If-None-Match own ETag', path: '/hello.txt', headers: { 'If-None-Match': 'ETAG' } },
  { what: 'If-None-Match other ETag', path: '/hello.txt', headers: { 'If-None-Match': '"other"' } },
  { what: 'If-None-Match *', path: '/hello.txt', headers: { 'If-None-Match': '*' } },
  { what: 'If-Modified-Since Last-Modified', path: '/hello.txt', headers: { 'If-Modified-Since': 'LASTMOD' } },
  { what: 'If-Modified-Since long ago', path: '/hello.txt', headers: { 'If-Modified-Since': OLD_DATE } },
  { what: 'If-Match other ETag', path: '/hello.txt', headers: { 'If-Match': '"other"' } },
  { what: 'If-Match own ETag', path: '/hello.txt', headers: { 'If-Match': 'ETAG' } },
  { what: 'If-Unmodified-Since long ago', path: '/hello.txt', headers: { 'If-Unmodified-Since': OLD_DATE } },
  { what: 'If-Range own ETag', path: '/data.bin', headers: { Range: 'bytes=0-9', 'If-Range': 'ETAG' } },
  { what: 'If-Range other ETag', path: '/data.bin', headers: { Range: 'bytes=0-9', 'If-Range': '"other"' } },
  { what: 'If-Range own date', path: '/data.bin', headers: { Range: 'bytes=0-9', 'If-Range': 'LASTMOD' } },
];

describe('static files: the same answers as NGINX', { skip: existsSync(NGINX) ? false : 'nginx is not installed (bash .ci/run installs nginx-light)' }, () => {
  let site: Site;
  let gw: Started;
  let ngx: ChildProcess;
  let ngxPort: number;

  before(async () => {
    site = makeSite();
    gw = await startGateway(`listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled off; } }`);
    const dir = mkdtempSync(join(tmpdir(), 'sg-ngx-'));
    ngxPort = await freePort();
    writeFileSync(join(dir, 'nginx.conf'), `daemon off; master_process off; worker_processes 1; error_log stderr; pid ${dir}/nginx.pid;
      events { worker_connections 64; }
      http { access_log off; include /etc/nginx/mime.types; client_body_temp_path ${dir}; proxy_temp_path ${dir};
        fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
        server { listen 127.0.0.1:${ngxPort}; root ${site.root}; } }`);
    ngx = track(spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'], { stdio: 'ignore' }));
    await waitFor('nginx to listen', async () => (await rawGet(ngxPort, '/hello.txt').catch(() => null))?.status === 200);
  });

  after(async () => {
    ngx?.kill('SIGTERM');
    await gw?.gw.close();
    site?.remove();
  });

  test(`${CASES.length} requests: same status, Content-Range and (for 200, 206, 304) Content-Length`, async (t) => {
    const validators = async (port: number, path: string) => {
      const r = await rawGet(port, path, { method: 'HEAD' });
      return { ETAG: r.headers.etag ?? '', LASTMOD: r.headers['last-modified'] ?? '' };
    };
    const ask = async (port: number, c: Case): Promise<RawReply> => {
      const v = await validators(port, c.path.split('?')[0]);
      const headers = Object.fromEntries(Object.entries(c.headers ?? {}).map(([k, x]) => [k, x === 'ETAG' || x === 'LASTMOD' ? v[x] : x]));
      return rawGet(port, c.path, { method: c.method ?? 'GET', headers });
    };
    const differences: string[] = [];
    for (const c of CASES) {
      const [ours, theirs] = [await ask(gw.http, c), await ask(ngxPort, c)];
      // Error pages and redirects carry each server's own short body: their lengths are not compared.
      const view = (r: RawReply) => ({ status: r.status, length: [200, 206, 304].includes(r.status) ? r.headers['content-length'] ?? '-' : '(own page)', range: r.headers['content-range'] ?? '-' });
      const a = view(ours);
      const b = view(theirs);
      if (JSON.stringify(a) !== JSON.stringify(b)) differences.push(`${c.what} (${c.method ?? 'GET'} ${c.path} ${JSON.stringify(c.headers ?? {})}): streamgate ${JSON.stringify(a)}, nginx ${JSON.stringify(b)}`);
      // Same bytes for every answer with a body.
      if ((c.method ?? 'GET') === 'GET' && ours.status < 300 && b.status === a.status) assert.ok(ours.body.equals(theirs.body), `${c.what}: body`);
    }
    t.diagnostic(`${CASES.length} requests compared, ${differences.length} differences`);
    assert.deepEqual(differences, []);
  });
});
