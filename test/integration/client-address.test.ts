import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Gateway } from '../../src/gateway.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { makeSite, startGateway, type Site } from './site.js';

/**
 * A listener on every address (`listen PORT;`, as the shipped configs) is dual-stack where the
 * machine has IPv6: an IPv4 client then arrives as `::ffff:127.0.0.1`. Logs and the upstream's
 * X-Forwarded-For name it as NGINX and SRS do, `127.0.0.1`, on every lane.
 */
let gw: Gateway;
let site: Site;
let lines: string[];
let port: number;
const forwarded: string[] = [];
const upstream = http.createServer((req, res) => {
  forwarded.push(String(req.headers['x-forwarded-for']));
  req.resume();
  req.on('end', () => res.end('ok'));
});

before(async () => {
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const up = (upstream.address() as AddressInfo).port;
  site = makeSite();
  ({ gw, lines } = await startGateway(`listen off; http_server { listen 0; dir ${site.root}; https { enabled off; } }
    proxy { route /up/ http://127.0.0.1:${up}; }`));
  port = gw.port('http');
});

after(async () => {
  await gw.close();
  upstream.close();
  site.remove();
});

function request(method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, headers: { 'user-agent': `addr-test ${path}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('an IPv4 client of an all-address listener is 127.0.0.1 in the access log and X-Forwarded-For, on every lane', async () => {
  // The front door (a file twice: read, then from memory), the proxy lane, undici (a body), Koa (the API, a 404).
  const asks: [string, string, string?][] = [['GET', '/hello.txt'], ['GET', '/hello.txt'], ['GET', '/up/a'], ['POST', '/up/b', 'x=1'], ['GET', '/api/v1/versions'], ['GET', '/no-such-file']];
  const codes: number[] = [];
  for (const [m, p, b] of asks) codes.push(await request(m, p, b));
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 404]);
  await waitFor('six access lines', () => lines.filter((l) => l.includes('"addr-test ')).length === asks.length);
  for (const l of lines.filter((x) => x.includes('"addr-test '))) assert.ok(l.startsWith('127.0.0.1 - - ['), l);
  assert.deepEqual(forwarded, ['127.0.0.1', '127.0.0.1']);
});
