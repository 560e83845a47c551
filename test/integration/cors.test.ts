import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { keepAliveGets, makeSite, rawGet, startGateway, type Site, type Started } from './site.js';

/**
 * SRS's answer for reads (any origin, any header), except that Allow-Methods names what the route
 * grants instead of `*`, and the request header Access-Control-Request-Private-Network is not
 * echoed as a response header.
 */
const SRS_CORS: Record<string, string> = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-expose-headers': '*',
  'access-control-allow-credentials': 'false',
};

function corsHeaders(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => k.startsWith('access-control-')));
}

describe('CORS as SRS answers it', () => {
  let site: Site;
  let on: Started;
  let off: Started;
  before(async () => {
    site = makeSite();
    const conf = (cd: string) => `listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; crossdomain ${cd}; https { enabled off; } }`;
    on = await startGateway(conf('on'));
    off = await startGateway(conf('off'));
  });
  after(async () => {
    await on?.gw.close();
    await off?.gw.close();
    site?.remove();
  });

  test('crossdomain on: the headers only when the request has Origin', async () => {
    const plain = await rawGet(on.http, '/hello.txt');
    assert.deepEqual(corsHeaders(plain.headers), {});
    const withOrigin = await rawGet(on.http, '/hello.txt', { headers: { Origin: 'http://example.com' } });
    assert.equal(withOrigin.status, 200);
    assert.deepEqual(corsHeaders(withOrigin.headers), SRS_CORS);
    // Errors carry them too, or a browser could not read why a request failed.
    const missing = await rawGet(on.http, '/missing.txt', { headers: { Origin: 'http://example.com' } });
    assert.equal(missing.status, 404);
    assert.deepEqual(corsHeaders(missing.headers), SRS_CORS);
    const api = await rawGet(on.http, '/api/v1/versions', { headers: { Origin: 'http://example.com' } });
    assert.equal(api.status, 200);
    assert.deepEqual(corsHeaders(api.headers), SRS_CORS);
  });

  test('crossdomain on: the fast lane adds the same headers', async () => {
    const replies = await keepAliveGetsWithOrigin(on.http, '/hello.txt', 3);
    for (const r of replies) assert.deepEqual(corsHeaders(r.headers), SRS_CORS);
  });

  test('crossdomain on: OPTIONS is 200 with an empty body, with or without Origin, on any path', async () => {
    for (const path of ['/hello.txt', '/missing', '/api/v1/versions', '/live/x.flv']) {
      const pre = await rawGet(on.http, path, { method: 'OPTIONS', headers: { Origin: 'http://example.com', 'Access-Control-Request-Method': 'POST' } });
      assert.equal(pre.status, 200, path);
      assert.equal(pre.headers['content-length'], '0', path);
      assert.equal(pre.body.length, 0, path);
      assert.deepEqual(corsHeaders(pre.headers), SRS_CORS, path);
      const bare = await rawGet(on.http, path, { method: 'OPTIONS' });
      assert.equal(bare.status, 200, path);
      assert.deepEqual(corsHeaders(bare.headers), {}, path);
    }
    // What a browser's fetch() gets: a cross-origin read is allowed.
    const r = await fetch(`http://127.0.0.1:${on.http}/hello.txt`, { headers: { Origin: 'http://example.com' } });
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  });

  test('a page on another origin is never granted the API\'s writes without auth, nor told request-header names', async () => {
    for (const method of ['DELETE', 'POST', 'PUT']) {
      const pre = await rawGet(on.http, '/api/v1/clients/abc', { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': method, 'Access-Control-Request-Private-Network': 'true' } });
      assert.equal(pre.status, 200);
      const granted = pre.headers['access-control-allow-methods'].split(/,\s*/);
      assert.ok(!granted.includes(method) && !granted.includes('*'), `${method} granted: ${granted}`);
      assert.equal(pre.headers['access-control-allow-private-network'], undefined, `${method}: private network`);
    }
    for (const path of ['/api/v1/versions', '/hello.txt', '/live/x.flv', '/live/x.m3u8']) {
      const r = await rawGet(on.http, path, { method: 'OPTIONS', headers: { Origin: 'http://a.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Private-Network': 'true' } });
      assert.equal(r.headers['access-control-request-private-network'], undefined, path);
      assert.equal(r.headers['access-control-allow-private-network'], 'true', `${path}: reads stay reachable, as in SRS`);
      assert.ok(!Object.values(r.headers).includes('*') || r.headers['access-control-allow-methods'] !== '*', path);
    }
  });

  test('crossdomain off: no headers, and OPTIONS is 405 without offering OPTIONS in Allow', async () => {
    const r = await rawGet(off.http, '/hello.txt', { headers: { Origin: 'http://example.com' } });
    assert.equal(r.status, 200);
    assert.deepEqual(corsHeaders(r.headers), {});
    for (const r2 of await keepAliveGetsWithOrigin(off.http, '/hello.txt', 3)) assert.deepEqual(corsHeaders(r2.headers), {});
    for (const path of ['/hello.txt', '/api/v1/versions']) {
      const pre = await rawGet(off.http, path, { method: 'OPTIONS', headers: { Origin: 'http://example.com' } });
      assert.equal(pre.status, 405, path);
      assert.deepEqual(corsHeaders(pre.headers), {}, path);
      assert.ok(pre.headers.allow?.split(/,\s*/).includes('GET'), `${path}: Allow ${pre.headers.allow}`);
      assert.ok(!pre.headers.allow.split(/,\s*/).includes('OPTIONS'), `${path}: Allow ${pre.headers.allow}`);
    }
  });
});

/** keepAliveGets with an Origin header: the second and third answers come from the fast lane. */
async function keepAliveGetsWithOrigin(port: number, path: string, n: number) {
  // keepAliveGets sends no extra headers; the target carries none either, so send raw requests.
  const { rawExchange, parseReply } = await import('./site.js');
  const req = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://example.com\r\n\r\n`;
  const last = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://example.com\r\nConnection: close\r\n\r\n`;
  const raw = await rawExchange(port, Buffer.from(req.repeat(n - 1) + last, 'latin1'));
  const out = [];
  let rest = raw;
  for (let i = 0; i < n; i++) {
    const r = parseReply(rest);
    out.push(r);
    const end = rest.indexOf('\r\n\r\n') + 4 + r.body.length;
    rest = rest.subarray(end);
  }
  assert.equal(out.length, n);
  void keepAliveGets;
  return out;
}
