import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { isLoopback } from '../../src/net/acme/http.js';
import { keyPairIn } from '../helpers/tls.js';

function get(port: number, path: string, opts: { method?: string; host?: string; agent?: http.Agent } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: opts.agent ?? false, headers: { Host: opts.host ?? `www.example.test:${port}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject).end();
  });
}

async function start(redirect: 'on' | 'off'): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-redirect-'));
  return Gateway.start(loadConfigText(`listen off; access_log off; limits { shutdown_timeout 1s; }
    http_server { listen 127.0.0.1:0; dir ./public; https_redirect ${redirect};
      https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }`, 'redirect.conf'), { log: memoryLogger().log });
}

describe('https_redirect', () => {
  let on: Gateway;
  let off: Gateway;
  before(async () => {
    on = await start('on');
    off = await start('off');
  });
  after(async () => {
    await on?.close();
    await off?.close();
  });

  test('on: a remote client gets a 301 to the same URL on HTTPS, on every connection, keep-alive too', async () => {
    // Every test client is on loopback, which keeps plain HTTP; this one stands in for a remote peer.
    on.certs.isLocalPeer = () => false;
    try {
      const port = on.port('http');
      const sport = on.port('https');
      const r = await get(port, '/index.html?x=1');
      assert.equal(r.status, 301);
      assert.equal(r.headers.location, `https://www.example.test:${sport}/index.html?x=1`);
      const head = await get(port, '/', { method: 'HEAD' });
      assert.equal(head.status, 301);
      assert.equal(head.body, '');
      // A kept-alive connection asking twice (the front door's memoised path) is redirected both times.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < 2; i++) assert.equal((await get(port, '/', { agent })).status, 301);
      agent.destroy();
      // IPv6 literal Host keeps its brackets.
      assert.equal((await get(port, '/', { host: `[::1]:${port}` })).headers.location, `https://[::1]:${sport}/`);
    } finally {
      on.certs.isLocalPeer = isLoopback;
    }
  });

  test('on: ACME challenges, live stream paths and loopback clients stay on HTTP', async () => {
    const port = on.port('http');
    on.certs.isLocalPeer = () => false;
    try {
      for (const path of ['/live/demo.flv', '/live/demo.m3u8', '/live/demo.ts', '/live/demo.aac', '/live/demo.mp3', '/.well-known/acme-challenge/some-token']) {
        const r = await get(port, path);
        assert.notEqual(r.status, 301, path);
        assert.equal(r.headers.location, undefined, path);
      }
    } finally {
      on.certs.isLocalPeer = isLoopback;
    }
    assert.equal((await get(port, '/')).status, 200, 'loopback client');
  });

  test('off: plain HTTP is served as before', async () => {
    off.certs.isLocalPeer = () => false;
    assert.equal((await get(off.port('http'), '/')).status, 200);
    off.certs.isLocalPeer = isLoopback;
  });
});
