import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type http2 from 'node:http2';
import { h2Request, h2Session, makeSite, rawExchange, parseReply, SECRET, startGateway, type RawReply, type Site, type Started } from '../integration/site.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * Path attacks against the static origin: traversal by dot-segments, encodings and mount edges.
 * Every attempt is sent byte for byte over a socket (fetch and node:http would normalise the
 * very paths under test), to http_server.dir with the fast lane on and to a vhost mount through
 * the full table. Each answer must be a 4xx or a file from inside a root, and no byte of the
 * secret files placed next to the roots may ever come back.
 */

/** Ways to write "..". */
const DOTDOTS = ['..', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '%252e%252e', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae', '..%00', '%ef%bc%8e%ef%bc%8e'];
/** Ways to write "/". */
const SEPS = ['/', '%2f', '%2F', '%5c', '\\', '%252f', '%c0%af'];

function attacks(base: string): string[] {
  const out: string[] = [];
  for (const dd of DOTDOTS) {
    for (const sep of SEPS) {
      const up = (n: number) => `${dd}${sep}`.repeat(n);
      out.push(`/${up(1)}secret.txt`);
      out.push(`/dir/${up(2)}secret.txt`);
      out.push(`/${up(8)}etc${sep}passwd`);
    }
  }
  out.push(
    // absolute paths and request targets that are not origin-form
    `/${base}/secret.txt`,
    `/${base.replace(/\//g, '%2f')}%2fsecret.txt`,
    `${base}/secret.txt`,
    '//etc/passwd',
    '/etc/passwd',
    'secret.txt',
    '../secret.txt',
    'http://127.0.0.1/../secret.txt',
    'http://127.0.0.1/%2e%2e/secret.txt',
    // NUL, raw and encoded
    '/secret.txt%00.html',
    '/hello.txt%00/../../secret.txt',
    '/hello.txt\x00/../secret.txt',
    '/%00../secret.txt',
    // symlinks that lead out of the root (file, directory, absolute), plain and encoded
    '/escape.txt',
    '/escdir/key.txt',
    '/escdir/',
    '/escdir',
    '/abs-escape.txt',
    '/%65scape.txt',
    '/escdir%2fkey.txt',
    '/./escape.txt',
    '/dir/../escape.txt',
    // mixed
    '/dir/..%2f..%2fsecret.txt',
    '/dir/%2e%2e/%2e%2e/secret.txt',
    '/./../secret.txt',
    '/dir/./../../secret.txt',
    '/hello.txt/../../secret.txt',
    '/..;/secret.txt',
    '/%2e%2e;/secret.txt',
    '/..%252f..%252fsecret.txt',
    '/..\\..\\secret.txt',
    '/.%2e/.%2e/secret.txt',
    '/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/..%2f..%2fprivate%2fkey.txt',
    '/dir/....//....//secret.txt',
    '/...../secret.txt',
    '/%u002e%u002e/secret.txt',
    '/%%32%65%%32%65/secret.txt',
    '/%2e%2e%5csecret.txt',
    '/.%00./secret.txt',
    '/hello.txt?/../../secret.txt',
    '/hello.txt#/../../secret.txt',
    '/%2E%2e/%2e%2E/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
  );
  return out;
}

const PASSWD = (() => {
  try {
    return readFileSync('/etc/passwd', 'utf8').split('\n')[0];
  } catch {
    return 'root:x:0:0:';
  }
})();

describe('path traversal', () => {
  let site: Site;
  let fast: Started;
  let table: Started;
  let tableTls: number;
  /** Every file a response may legitimately carry: those inside the two roots. */
  let inside: Buffer[];

  before(async () => {
    site = makeSite();
    const mountFiles = ['m.txt', join('sub', 'deep.txt')].map((f) => readFileSync(join(site.mount, f)));
    inside = [...Object.values(site.files), ...mountFiles];
    fast = await startGateway(`listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled off; } }`);
    table = await startGateway(`listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ${site.root};
        https { enabled on; listen 127.0.0.1:0; ${keyPairIn(join(site.base, 'tls'))} } }
      vhost __defaultVhost__ { http_static { enabled on; mount [vhost]/mnt; dir ${site.mount}; } }
      vhost example.test { http_static { enabled on; mount [vhost]/hls; dir ${site.mount}; } }`);
    tableTls = table.gw.port('https');
  });
  after(async () => {
    await fast?.gw.close();
    await table?.gw.close();
    site?.remove();
  });

  /** Checks one answer; returns the bytes of secret it carried (0, or the test fails). */
  const judge = (what: string, status: number, headers: Record<string, unknown>, body: Buffer, raw: Buffer): number => {
    const text = raw.toString('latin1');
    const leaked = text.includes(SECRET) || text.includes(PASSWD) ? body.length || raw.length : 0;
    assert.equal(leaked, 0, `${what}: the secret came back`);
    if (status >= 400 && status < 500) return 0;
    assert.ok([200, 206, 301, 304].includes(status), `${what}: status ${status}`);
    if (status === 301) {
      const loc = String(headers.location ?? '');
      assert.match(loc, /^\/(?!\/)/, `${what}: a redirect stays on this site (Location ${loc})`);
    } else if (body.length > 0) {
      assert.ok(inside.some((f) => f.equals(body)), `${what}: ${status} with a body that is no file inside the root: ${JSON.stringify(body.toString('latin1').slice(0, 80))}`);
    }
    return 0;
  };

  const send = async (port: number, target: string, host: string, method = 'GET'): Promise<RawReply | null> => {
    const raw = await rawExchange(port, Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, 'latin1'));
    // A request the HTTP parser refuses outright may be answered 400 or just closed: both are fine.
    return raw.length === 0 ? null : parseReply(raw, method === 'HEAD');
  };

  /** A bounded number of requests in flight, so hundreds of attempts finish in well under a second each. */
  async function inBatches<T>(items: T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
    for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(f));
  }

  test('hundreds of attempts over HTTP/1.1: 4xx or a file from inside the root, never a byte of the secret', async (t) => {
    const base = site.base.replace(/^\//, '');
    const list = attacks(base);
    const jobs: { port: number; target: string; host: string; method: string; where: string }[] = [];
    for (const target of list) {
      for (const method of ['GET', 'HEAD']) {
        jobs.push({ port: fast.http, target, host: '127.0.0.1', method, where: 'http_server.dir (fast lane on)' });
      }
      // Through the full table: the same paths under the vhost mounts.
      const mounted = target.startsWith('/') ? target.slice(1) : target;
      jobs.push({ port: table.http, target: `/mnt/${mounted}`, host: '127.0.0.1', method: 'GET', where: '[vhost]/mnt' });
      jobs.push({ port: table.http, target: `/hls/${mounted}`, host: 'example.test', method: 'GET', where: 'example.test /hls' });
      jobs.push({ port: table.http, target, host: 'example.test', method: 'GET', where: 'http_server.dir behind mounts' });
    }
    // Warm the file cache so the fast lane is live while the attacks run, and again half way.
    await send(fast.http, '/hello.txt', '127.0.0.1');
    let attempts = 0;
    let fourxx = 0;
    let leaked = 0;
    await inBatches(jobs, 16, async (j) => {
      const r = await send(j.port, j.target, j.host, j.method);
      attempts++;
      if (r === null) return;
      if (r.status >= 400 && r.status < 500) fourxx++;
      leaked += judge(`${j.method} ${JSON.stringify(j.target)} Host ${j.host} (${j.where})`, r.status, r.headers, r.body, r.raw);
    });
    assert.ok(list.length >= 200, `${list.length} distinct attacks`);
    assert.ok(fourxx >= attempts * 0.9, `${fourxx} of ${attempts} refused`);
    t.diagnostic(`traversal: ${attempts} attempts (${list.length} paths), ${fourxx} refused with 4xx, ${leaked} bytes leaked`);
  });

  test('symlinks out of the root are refused, even when asked for twice in a row (the fast lane\'s case)', async () => {
    for (const path of ['/escape.txt', '/abs-escape.txt', '/escdir/key.txt']) {
      for (let i = 0; i < 3; i++) {
        const r = await send(fast.http, path, '127.0.0.1');
        assert.ok(r && (r.status === 403 || r.status === 404), `${path}: ${r?.status}`);
        assert.ok(!r!.raw.includes(SECRET));
      }
    }
    const r = await send(table.http, '/mnt/escape.txt', '127.0.0.1');
    assert.ok(r && r.status === 403, `mount symlink: ${r?.status}`);
    // A link that stays inside the root is followed.
    assert.equal((await send(fast.http, '/inside-link.txt', '127.0.0.1'))?.body.toString(), 'hello world\n');
  });

  test('a directory redirect never points off-site (//host is a protocol-relative URL)', async () => {
    for (const target of ['//dir', '///dir', '//dir?x=1', '/mnt//sub']) {
      const r = await send(table.http, target, '127.0.0.1');
      assert.ok(r, target);
      if (r.status === 301) assert.match(r.headers.location, /^\/(?!\/)/, `${target} → ${r.headers.location}`);
    }
  });

  test('the same attempts over HTTP/2', async (t) => {
    const base = site.base.replace(/^\//, '');
    let s: http2.ClientHttp2Session | undefined;
    let attempts = 0;
    let refused = 0;
    try {
      s = await h2Session(tableTls);
      const session = s;
      const list = attacks(base).filter((x) => x.startsWith('/'));
      await inBatches(list, 16, async (target) => {
        for (const [path, authority] of [[target, 'example.test'], [`/mnt${target}`, '127.0.0.1']]) {
          let r;
          try {
            r = await h2Request(session, { ':path': path, ':authority': authority });
          } catch {
            // node:http2 refuses to send some of these (a NUL in a header): nothing reached the server.
            refused++;
            continue;
          }
          attempts++;
          judge(`HTTP/2 ${JSON.stringify(path)} :authority ${authority}`, r.status, r.headers as Record<string, unknown>, r.body, r.body);
        }
      });
    } finally {
      s?.close();
    }
    assert.ok(attempts >= 200, `${attempts} HTTP/2 attempts`);
    t.diagnostic(`traversal over HTTP/2: ${attempts} attempts, ${refused} not sendable, 0 bytes leaked`);
  });
});
