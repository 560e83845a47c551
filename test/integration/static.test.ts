import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { loadConfigText } from '../../src/config/index.js';
import type http2 from 'node:http2';
import { h2Request, h2Session, keepAlive, keepAliveGets, lane, makeSite, negotiatedAlpn, rawGet, startGateway, tlsGet, type Site, type Started } from './site.js';
import { keyPairIn } from '../helpers/tls.js';

const run = promisify(execFile);

/** The static origin (files, ranges, conditions, MIME, CORS) as a user sees it with curl, fetch, a raw socket and HTTP/2. */
describe('static origin', () => {
  let site: Site;
  /** No mounts: plain GETs of small files can take the fast lane. */
  let a: Started;
  let aTls: number;
  /** vhost http_static mounts: everything goes through the full table. */
  let b: Started;
  let bTls: number;

  before(async () => {
    site = makeSite();
    const https = (name: string) => `https { enabled on; listen 127.0.0.1:0; ${keyPairIn(join(site.base, name))} }`;
    a = await startGateway(`listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; ${https('a')} }`);
    aTls = a.gw.port('https');
    b = await startGateway(`listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; ${https('b')} }
      vhost __defaultVhost__ { http_static { enabled on; mount [vhost]/mnt; dir ${site.mount}; } }
      vhost deeper { http_static { enabled on; mount /mnt/sub; dir ${join(site.root, 'dir')}; } }
      vhost example.test { http_static { enabled on; mount [vhost]/hls; dir ${site.mount}; } }`);
    bTls = b.gw.port('https');
  });
  after(async () => {
    await a?.gw.close();
    await b?.gw.close();
    site?.remove();
  });

  const url = (path: string, port = a.http) => `http://127.0.0.1:${port}${path}`;

  test('Content-Type: the seed types, the common ones, and octet-stream + nosniff for the unknown', async () => {
    const want: Record<string, string> = {
      '/live.m3u8': 'application/vnd.apple.mpegurl',
      '/seg.ts': 'video/MP2T;charset=utf-8',
      '/clip.flv': 'video/x-flv',
      '/page.html': 'text/html;charset=utf-8',
      '/app.js': 'text/javascript;charset=utf-8',
      '/style.css': 'text/css;charset=utf-8',
      '/info.json': 'application/json;charset=utf-8',
      '/hello.txt': 'text/plain;charset=utf-8',
      '/blob.xyz': 'application/octet-stream',
    };
    for (const [path, type] of Object.entries(want)) {
      // Twice: the second answer may come from the fast lane, and must say the same.
      for (let i = 0; i < 2; i++) {
        const r = await fetch(url(path));
        assert.equal(r.status, 200, path);
        assert.equal(r.headers.get('content-type'), type, path);
        assert.equal(r.headers.get('x-content-type-options'), type === 'application/octet-stream' ? 'nosniff' : null, path);
        assert.deepEqual(Buffer.from(await r.arrayBuffer()), site.files[path], path);
      }
    }
  });

  test('GET and HEAD: HEAD has the same headers and Content-Length, and not a byte of body', async () => {
    for (const path of ['/hello.txt', '/data.bin', '/big.bin', '/empty.txt', '/dir/']) {
      const size = path === '/dir/' ? site.files['/dir/index.html'].length : site.files[path].length;
      const get = await rawGet(a.http, path);
      const head = await rawGet(a.http, path, { method: 'HEAD' });
      assert.equal(get.status, 200, path);
      assert.equal(head.status, 200, path);
      assert.equal(get.headers['content-length'], String(size), path);
      assert.equal(head.headers['content-length'], String(size), `HEAD ${path}`);
      assert.equal(get.body.length, size, path);
      assert.equal(head.raw.length - head.raw.indexOf('\r\n\r\n') - 4, 0, `HEAD ${path} sent a body`);
      for (const h of ['content-type', 'etag', 'last-modified', 'accept-ranges']) assert.equal(head.headers[h], get.headers[h], `${h} of ${path}`);
    }
    const big = await fetch(url('/big.bin'));
    assert.ok(Buffer.from(await big.arrayBuffer()).equals(site.files['/big.bin']), 'a file streamed from disk arrives whole');
  });

  test('Range: one range 206, past the end 416 bytes */size, several or malformed ranges the whole file', async () => {
    const data = site.files['/data.bin'];
    const big = site.files['/big.bin'];
    const rows: [string, string, number, string | undefined, Buffer | null][] = [
      // path, Range, status, Content-Range, body (null: the whole file)
      ['/data.bin', 'bytes=0-0', 206, 'bytes 0-0/1000', data.subarray(0, 1)],
      ['/data.bin', 'bytes=0-', 206, 'bytes 0-999/1000', data],
      ['/data.bin', 'bytes=-1', 206, 'bytes 999-999/1000', data.subarray(999)],
      ['/data.bin', 'bytes=10-20', 206, 'bytes 10-20/1000', data.subarray(10, 21)],
      ['/data.bin', 'bytes=990-5000', 206, 'bytes 990-999/1000', data.subarray(990)],
      ['/data.bin', 'bytes=-5000', 206, 'bytes 0-999/1000', data],
      ['/data.bin', 'bytes=999-999', 206, 'bytes 999-999/1000', data.subarray(999)],
      ['/data.bin', 'bytes=1000-', 416, 'bytes */1000', Buffer.alloc(0)],
      ['/data.bin', 'bytes=5000-6000', 416, 'bytes */1000', Buffer.alloc(0)],
      ['/data.bin', 'bytes=-0', 416, 'bytes */1000', Buffer.alloc(0)],
      ['/data.bin', 'bytes=0-1,5-6', 200, undefined, null],
      ['/data.bin', 'bytes=abc', 200, undefined, null],
      ['/data.bin', 'items=0-5', 200, undefined, null],
      ['/data.bin', 'bytes=', 200, undefined, null],
      ['/big.bin', 'bytes=1048570-1048580', 206, `bytes 1048570-1048580/${big.length}`, big.subarray(1048570, 1048581)],
      ['/big.bin', 'bytes=-10', 206, `bytes ${big.length - 10}-${big.length - 1}/${big.length}`, big.subarray(big.length - 10)],
      ['/big.bin', `bytes=${big.length}-`, 416, `bytes */${big.length}`, Buffer.alloc(0)],
      // Nothing to cut from an empty file: NGINX ignores the Range and so do we.
      ['/empty.txt', 'bytes=0-', 200, undefined, null],
      ['/empty.txt', 'bytes=-5', 200, undefined, null],
    ];
    for (const [path, range, status, contentRange, body] of rows) {
      const r = await rawGet(a.http, path, { headers: { Range: range } });
      const what = `${path} Range: ${range}`;
      assert.equal(r.status, status, what);
      assert.equal(r.headers['content-range'], contentRange, what);
      const want = body ?? site.files[path];
      if (status !== 416) {
        assert.equal(r.headers['content-length'], String(want.length), what);
        assert.ok(r.body.equals(want), `${what}: wrong bytes`);
      }
      // HEAD with a Range describes the same part.
      const h = await rawGet(a.http, path, { method: 'HEAD', headers: { Range: range } });
      assert.equal(h.status, status, `HEAD ${what}`);
      assert.equal(h.headers['content-range'], contentRange, `HEAD ${what}`);
    }
    // curl's own range option agrees.
    const { stdout } = await run('curl', ['-s', '-r', '100-199', url('/data.bin')], { encoding: 'buffer' });
    assert.ok(Buffer.from(stdout).equals(data.subarray(100, 200)));
  });

  test('ETag/Last-Modified: If-None-Match and If-Modified-Since give 304, If-Match and If-Unmodified-Since 412, If-Range', async () => {
    const first = await rawGet(a.http, '/data.bin');
    const etag = first.headers.etag;
    const lm = first.headers['last-modified'];
    assert.match(etag, /^"[0-9a-f]+-3e8"$/, 'ETag is "mtime-size" in hex, like NGINX');
    assert.ok(!Number.isNaN(Date.parse(lm)));
    const earlier = new Date(Date.parse(lm) - 60_000).toUTCString();
    const later = new Date(Date.parse(lm) + 60_000).toUTCString();
    const rows: [Record<string, string>, number][] = [
      [{ 'If-None-Match': etag }, 304],
      [{ 'If-None-Match': `W/${etag}` }, 304],
      [{ 'If-None-Match': `"other", ${etag}` }, 304],
      [{ 'If-None-Match': '*' }, 304],
      [{ 'If-None-Match': '"other"' }, 200],
      [{ 'If-Modified-Since': lm }, 304],
      [{ 'If-Modified-Since': later }, 304],
      [{ 'If-Modified-Since': earlier }, 200],
      [{ 'If-Modified-Since': 'not a date' }, 200],
      // RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
      [{ 'If-None-Match': '"other"', 'If-Modified-Since': lm }, 200],
      [{ 'If-Match': etag }, 200],
      [{ 'If-Match': '"other"' }, 412],
      [{ 'If-Unmodified-Since': earlier }, 412],
      [{ 'If-Unmodified-Since': lm }, 200],
      [{ Range: 'bytes=0-9', 'If-Range': etag }, 206],
      [{ Range: 'bytes=0-9', 'If-Range': '"other"' }, 200],
      [{ Range: 'bytes=0-9', 'If-Range': lm }, 206],
      [{ Range: 'bytes=0-9', 'If-Range': earlier }, 200],
    ];
    for (const [headers, status] of rows) {
      const r = await rawGet(a.http, '/data.bin', { headers });
      assert.equal(r.status, status, JSON.stringify(headers));
      if (status === 304) {
        assert.equal(r.body.length, 0);
        assert.equal(r.headers.etag, etag, '304 repeats the ETag');
      }
      if (status === 200) assert.equal(r.body.length, 1000, JSON.stringify(headers));
    }
    // curl -z: a conditional GET from a real client.
    const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', `If-None-Match: ${etag}`, url('/data.bin')]);
    assert.equal(stdout, '304');
  });

  test('other methods: 405 with Allow', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await rawGet(a.http, '/hello.txt', { method, headers: { 'Content-Length': '0' } });
      assert.equal(r.status, 405, method);
      const allow = r.headers.allow.split(/,\s*/);
      assert.ok(allow.includes('GET') && allow.includes('HEAD'), r.headers.allow);
      assert.ok(!allow.includes(method), r.headers.allow);
    }
  });

  test('directories: 301 to the slash form, then index.html; no index is 403; missing is 404', async () => {
    let r = await rawGet(a.http, '/dir');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, '/dir/');
    r = await rawGet(a.http, '/dir?x=1');
    assert.equal(r.headers.location, '/dir/?x=1', 'the query survives the redirect');
    r = await rawGet(a.http, '/dir/');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), site.files['/dir/index.html'].toString());
    assert.equal(r.headers['content-type'], 'text/html;charset=utf-8');
    assert.equal((await rawGet(a.http, '/noindex/')).status, 403);
    assert.equal((await rawGet(a.http, '/noindex')).status, 301);
    assert.equal((await rawGet(a.http, '/missing.txt')).status, 404);
    assert.equal((await rawGet(a.http, '/missing/')).status, 404);
    assert.equal((await rawGet(a.http, '/hello.txt/')).status, 404, 'a file is not a directory');
    assert.equal((await rawGet(a.http, '/a%20b.txt')).body.toString(), 'space\n', 'percent-encoded names are decoded once');
    assert.equal((await rawGet(a.http, '/%252e%252e')).body.toString(), site.files['/%2e%2e'].toString(), '%25 decodes to a literal %');
    assert.equal((await rawGet(a.http, '/inside-link.txt')).body.toString(), 'hello world\n', 'a symlink that stays inside is followed');
    // curl follows the redirect to the index.
    const { stdout } = await run('curl', ['-sL', url('/dir')]);
    assert.equal(stdout, site.files['/dir/index.html'].toString());
  });

  test('the fast lane and the full table give the same answers', async () => {
    const lanes = new Set<string>();
    for (const path of ['/hello.txt', '/live.m3u8', '/seg.ts', '/blob.xyz', '/data.bin']) {
      // A plain GET is answered from memory (the front door, or the fast lane when the cache is
      // cold); a conditional that does not match must take the full table and say the same.
      const replies = await keepAliveGets(a.http, [path, path]);
      replies.push(await rawGet(a.http, path, { headers: { 'If-None-Match': '"no-such-tag"' } }));
      for (const r of replies) {
        lanes.add(lane(r));
        assert.equal(r.status, 200, path);
        assert.ok(r.body.equals(site.files[path]), path);
        for (const h of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'x-content-type-options', 'accept-ranges']) {
          assert.equal(r.headers[h], replies[0].headers[h], `${h} of ${path} (${lane(r)} vs ${lane(replies[0])})`);
        }
      }
    }
    assert.deepEqual([...lanes].sort(), ['fast', 'table'], 'both lanes were exercised');
  });

  test('a keep-alive client repeating one head byte for byte sees a changed file and a reloaded table', async () => {
    // The front door reuses its parse of a repeated head, and the gateway its routing of it.
    const dir = join(site.base, 'memo');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'memo.txt'), 'first');
    const upstream = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const conf = (extra: string) => `listen off; console_dir off; players_dir off; http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } } ${extra}`;
    const g = await startGateway(conf(''));
    const conn = keepAlive(g.http);
    try {
      const first = [await conn.get('/memo.txt'), await conn.get('/memo.txt')];
      assert.deepEqual(first.map((r) => [r.status, r.body.toString()]), [[200, 'first'], [200, 'first']]);
      assert.equal(lane(first[1]), 'fast');
      writeFileSync(join(dir, 'memo.txt'), 'second, longer');
      let body = '';
      // A file is stat'ed again at most every 200 ms, as NGINX's open_file_cache_valid.
      for (let i = 0; i < 40 && body !== 'second, longer'; i++) {
        const r = await conn.get('/memo.txt');
        assert.equal(r.status, 200);
        body = r.body.toString();
        if (body !== 'second, longer') await new Promise((res) => setTimeout(res, 50));
      }
      assert.equal(body, 'second, longer');
      const port = (upstream.address() as AddressInfo).port;
      await g.gw.reload(loadConfigText(conf(`proxy { route /memo.txt http://127.0.0.1:${port}; }`), 'test.conf'));
      const proxied = await conn.get('/memo.txt');
      assert.equal(proxied.status, 200);
      assert.equal(proxied.body.toString(), 'upstream saw /memo.txt');
      await g.gw.reload(loadConfigText(conf(''), 'test.conf'));
      assert.equal((await conn.get('/memo.txt')).body.toString(), 'second, longer');
      // Heads in turn, more of them than the front door keeps: each answer is its own file's.
      for (let i = 1; i <= 6; i++) writeFileSync(join(dir, `f${i}.txt`), `file ${i}`);
      for (let round = 0; round < 3; round++) {
        for (const i of [1, 2, 1, 3, 4, 5, 6, 2]) assert.equal((await conn.get(`/f${i}.txt`)).body.toString(), `file ${i}`);
      }
      // Kept heads pipelined in one chunk are answered from memory, in order, compared by bytes.
      const head = (i: number) => `GET /f${i}.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
      conn.write(head(6) + head(1) + head(6));
      for (const i of [6, 1, 6]) {
        const r = await conn.next();
        assert.equal(r.body.toString(), `file ${i}`);
        assert.equal(lane(r), 'fast');
      }
      // A head too large to be kept (a long cookie), between kept ones: parsed each time, the same answers.
      const big = `GET /f3.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${'c'.repeat(3000)}\r\n\r\n`;
      for (let round = 0; round < 2; round++) {
        conn.write(big);
        const r = await conn.next();
        assert.equal(r.body.toString(), 'file 3');
        assert.equal(lane(r), 'fast');
        assert.equal((await conn.get('/f2.txt')).body.toString(), 'file 2');
      }
      // A kept head followed by part of another: the first from memory; the incomplete one hands
      // the connection to Node's parser, which answers it once the rest arrives.
      conn.write(head(6) + head(2).slice(0, 20));
      const whole = await conn.next();
      assert.equal(whole.body.toString(), 'file 6');
      assert.equal(lane(whole), 'fast');
      await new Promise((r) => setTimeout(r, 30));
      conn.write(head(2).slice(20));
      const rest = await conn.next();
      assert.equal(rest.body.toString(), 'file 2');
      assert.equal(lane(rest), 'table');
    } finally {
      conn.close();
      await g.gw.close();
      await new Promise((r) => upstream.close(r));
    }
  });

  test('HTTPS: the front door answers HTTP/1.1 over TLS and HTTP/2 the same as the full table', async () => {
    const session = await h2Session(aTls);
    try {
      for (const path of ['/hello.txt', '/live.m3u8', '/seg.ts', '/blob.xyz']) {
        const table = await rawGet(a.http, path, { headers: { 'If-None-Match': '"no-such-tag"' } });
        assert.equal(lane(table), 'table');
        // Twice: the first may fill the cache, the second is answered from it.
        for (let i = 0; i < 2; i++) {
          const h2 = await h2Request(session, { ':path': path });
          const h1 = await tlsGet(aTls, path);
          if (i === 1) assert.equal(lane(h1), 'fast', `${path} over TLS from memory`);
          for (const r of [h2, h1]) {
            assert.equal(r.status, 200, path);
            assert.ok(r.body.equals(site.files[path]), path);
            for (const h of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'x-content-type-options', 'accept-ranges']) {
              assert.equal(r.headers[h] ?? undefined, table.headers[h], `${h} of ${path}`);
            }
          }
        }
      }
    } finally {
      session.close();
    }
  });

  test('access log: one combined line per request with method, path, status, bytes, duration and address, in both lanes', async () => {
    const from = a.lines.length;
    // A query of its own: lines of earlier tests may still be on their way out of the log buffer.
    const replies = await keepAliveGets(a.http, ['/hello.txt?log', '/hello.txt?log']);
    const missing = await rawGet(a.http, '/missing.txt?log', { headers: { 'User-Agent': 'probe/1', Referer: 'http://ref.test/' } });
    assert.ok(replies.some((r) => lane(r) === 'fast'), 'the fast lane was exercised');
    const access = () => a.lines.slice(from).filter((l) => /\?log HTTP\/1\.1" \d{3} /.test(l));
    for (let i = 0; i < 40 && access().length < 3; i++) await new Promise((r) => setTimeout(r, 25));
    const lines = access();
    assert.equal(lines.length, 3, lines.join('\n'));
    const combined = /^127\.0\.0\.1 - - \[[^\]]+\] "(GET) (\S+) HTTP\/1\.1" (\d{3}) (\d+) "([^"]*)" "([^"]*)" (\d+\.\d{3})$/;
    const parsed = lines.map((l) => combined.exec(l));
    for (const [i, m] of parsed.entries()) assert.ok(m, `combined format: ${lines[i]}`);
    assert.deepEqual(parsed.map((m) => [m![2], m![3]]), [['/hello.txt?log', '200'], ['/hello.txt?log', '200'], ['/missing.txt?log', '404']]);
    // $body_bytes_sent, as NGINX's combined format counts: the body, not the head, on both lanes.
    assert.equal(Number(parsed[0]![4]), site.files['/hello.txt'].length, `front door: ${parsed[0]![4]}`);
    assert.equal(Number(parsed[1]![4]), site.files['/hello.txt'].length, `repeated head: ${parsed[1]![4]}`);
    assert.ok(missing.body.length > 0);
    assert.equal(Number(parsed[2]![4]), missing.body.length, `Koa lane 404: ${parsed[2]![4]}`);
    assert.deepEqual([parsed[2]![5], parsed[2]![6]], ['http://ref.test/', 'probe/1']);
  });

  test('vhost http_static mounts: [vhost] matched on Host, longest prefix first, http_server.dir last', async () => {
    const get = (path: string, host?: string) => rawGet(b.http, path, { host });
    assert.equal((await get('/mnt/m.txt')).body.toString(), 'from the mount\n');
    assert.equal((await get('/mnt/sub/deep.txt')).status, 404, '/mnt/sub is the longer mount, and it has no deep.txt');
    assert.equal((await get('/mnt/sub/a.txt')).body.toString(), 'a in dir\n', '/mnt/sub (any host) before /mnt');
    assert.equal((await get('/mnt/sub/a.txt', 'example.test')).body.toString(), 'a in dir\n');
    const bare = await get('/mnt');
    assert.equal(bare.status, 301, 'a mount point without its slash is redirected like any directory');
    assert.equal(bare.headers.location, '/mnt/');
    assert.equal((await get('/mnt/')).status, 403, 'the mount has no index.html');
    // [vhost]/hls belongs to example.test only; other hosts get http_server.dir's /hls.
    assert.equal((await get('/hls/m.txt', 'example.test')).body.toString(), 'from the mount\n');
    assert.equal((await get('/hls/m.txt', 'example.test:8080')).body.toString(), 'from the mount\n', 'the port in Host is not part of the name');
    assert.equal((await get('/hls/m.txt', '127.0.0.1')).status, 404);
    assert.equal((await get('/hls/x.txt', '127.0.0.1')).body.toString(), 'root hls x\n');
    assert.equal((await get('/hls/x.txt', 'example.test')).status, 404);
    assert.equal((await get('/hello.txt', 'example.test')).body.toString(), 'hello world\n', 'http_server.dir last');
    assert.equal((await get('/mntx/m.txt')).status, 404, 'a mount prefix matches whole segments only');
  });

  test('HTTPS: ALPN offers h2, HTTP/1.1 still works, and HTTP/2 answers like HTTP/1.1', async () => {
    assert.equal(await negotiatedAlpn(aTls), 'h2');
    const v1 = await run('curl', ['-sk', '--http1.1', '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{size_download}', `https://127.0.0.1:${aTls}/data.bin`]);
    assert.equal(v1.stdout, '1.1 200 1000');
    const v2 = await run('curl', ['-sk', '--http2', '-r', '0-9', '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{size_download}', `https://127.0.0.1:${aTls}/data.bin`]);
    assert.equal(v2.stdout, '2 206 10');

    let s: http2.ClientHttp2Session | undefined;
    try {
      s = await h2Session(aTls);
      const req = (path: string, extra: Record<string, string> = {}) => h2Request(s!, { ':path': path, ...extra });
      let r = await req('/live.m3u8');
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'application/vnd.apple.mpegurl');
      assert.equal(r.headers['cache-control'], 'no-cache');
      assert.ok(r.body.equals(site.files['/live.m3u8']));
      r = await req('/big.bin');
      assert.ok(r.body.equals(site.files['/big.bin']), 'a streamed file over HTTP/2');
      r = await req('/data.bin', { ':method': 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '1000');
      assert.equal(r.body.length, 0);
      r = await req('/data.bin', { range: 'bytes=-1' });
      assert.equal(r.status, 206);
      assert.equal(r.headers['content-range'], 'bytes 999-999/1000');
      assert.ok(r.body.equals(site.files['/data.bin'].subarray(999)));
      r = await req('/data.bin', { range: 'bytes=1000-' });
      assert.equal(r.status, 416);
      assert.equal(r.headers['content-range'], 'bytes */1000');
      const etag = String((await req('/data.bin')).headers.etag);
      r = await req('/data.bin', { 'if-none-match': etag });
      assert.equal(r.status, 304);
      assert.equal(r.body.length, 0);
      r = await req('/blob.xyz');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      r = await req('/hello.txt', { ':method': 'DELETE' });
      assert.equal(r.status, 405);
      assert.match(String(r.headers.allow), /GET/);
      r = await req('/dir');
      assert.equal(r.status, 301);
      assert.equal(r.headers.location, '/dir/');
      r = await req('/dir/');
      assert.equal(r.body.toString(), site.files['/dir/index.html'].toString());
    } finally {
      s?.close();
    }
  });

  test('HTTP/2: vhost mounts are matched on :authority', async () => {
    let s: http2.ClientHttp2Session | undefined;
    try {
      s = await h2Session(bTls);
      const get = (path: string, authority: string) => h2Request(s!, { ':path': path, ':authority': authority });
      assert.equal((await get('/hls/m.txt', 'example.test')).body.toString(), 'from the mount\n');
      assert.equal((await get('/hls/m.txt', `127.0.0.1:${bTls}`)).status, 404);
      assert.equal((await get('/hls/x.txt', `127.0.0.1:${bTls}`)).body.toString(), 'root hls x\n');
      assert.equal((await get('/mnt/sub/a.txt', 'example.test')).body.toString(), 'a in dir\n');
    } finally {
      s?.close();
    }
  });
});
