import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { track, RSS_BOUND_SCALE } from '../helpers/proc.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { proxyGateway } from './site.js';
import { keyPairIn } from '../helpers/tls.js';

/** A real upstream on a loopback port that counts its connections and lets each test answer. */
class Upstream {
  readonly server: http.Server;
  connections = 0;
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_req, res) => res.end('ok');
  constructor() {
    this.server = http.createServer((req, res) => this.handler(req, res));
    this.server.on('connection', () => this.connections++);
    this.server.keepAliveTimeout = 30_000;
  }
  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, path: string, opts: http.RequestOptions & { body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const gateway = (routes: string, extra = '') => proxyGateway(`${routes} ${extra}`);

describe('reverse proxy to a real upstream', () => {
  const up = new Upstream();
  let upPort: number;
  let gw: Gateway;
  let port: number;
  let lines: string[];
  before(async () => {
    upPort = await up.start();
    ({ gw, port, lines } = await gateway(`route /api/ http://127.0.0.1:${upPort}; route /app/ http://127.0.0.1:${upPort}/base host=upstream;`, 'timeout 1s; connect_timeout 1s;'));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('a thousand sequential requests reuse a few upstream connections', async () => {
    up.handler = (_req, res) => res.end('{"code":0}');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = up.connections;
    for (let i = 0; i < 1000; i++) {
      const r = await request(port, `/api/v1/n${i}`, { agent });
      assert.equal(r.status, 200);
      assert.equal(r.body, '{"code":0}');
    }
    agent.destroy();
    const opened = up.connections - before;
    assert.ok(opened <= 2, `1000 requests opened ${opened} upstream connections`);
  });

  test('X-Forwarded-* are set, hop-by-hop headers dropped, Host kept, and the path passed as sent', async () => {
    let seen: http.IncomingHttpHeaders = {};
    let url = '';
    up.handler = (req, res) => {
      seen = req.headers;
      url = req.url ?? '';
      res.writeHead(200, { 'Keep-Alive': 'timeout=5', 'X-Up': 'yes', Connection: 'X-Up-Hop', 'X-Up-Hop': 'gone' });
      res.end('ok');
    };
    const r = await request(port, '/api/v1/streams/?count=10', {
      headers: { Host: 'example.test:8080', 'X-Forwarded-For': '203.0.113.7', Connection: 'keep-alive, X-Secret-Hop', 'X-Secret-Hop': '1', TE: 'trailers', 'X-Keep': 'me' },
    });
    assert.equal(r.status, 200);
    assert.equal(url, '/api/v1/streams/?count=10');
    assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], 'example.test:8080');
    assert.equal(seen.host, 'example.test:8080', 'the client Host is preserved, as Caddy does');
    assert.equal(seen['x-secret-hop'], undefined, 'a header named in Connection is hop-by-hop');
    assert.equal(seen.te, 'trailers', 'TE is hop-by-hop, but the gateway relays trailers and so offers them itself');
    assert.equal(seen['x-keep'], 'me');
    assert.equal(r.headers['x-up'], 'yes');
    assert.equal(r.headers['x-up-hop'], undefined);
    assert.notEqual(r.headers['keep-alive'], 'timeout=5', "the upstream's Keep-Alive is not the client's");
  });

  test('host=upstream sends the upstream host, and the route URL path is prepended', async () => {
    let host = '';
    let url = '';
    up.handler = (req, res) => {
      host = req.headers.host ?? '';
      url = req.url ?? '';
      res.end('x');
    };
    await request(port, '/app/x?y=1', { headers: { Host: 'client.test' } });
    assert.equal(host, `127.0.0.1:${upPort}`);
    assert.equal(url, '/base/app/x?y=1');
  });

  test('a chunked response reaches the client chunk by chunk (server-sent events)', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    up.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: first\n\n');
      void released.then(() => res.end('data: last\n\n'));
    };
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/events' }, resolve).on('error', reject);
    });
    assert.equal(res.headers['content-type'], 'text/event-stream');
    // The upstream sends the last event only after the client saw the first: no buffering in between.
    const [first] = (await once(res, 'data')) as [Buffer];
    assert.equal(first.toString(), 'data: first\n\n');
    release();
    let rest = '';
    for await (const c of res) rest += c;
    assert.equal(rest, 'data: last\n\n');
  });

  test('a request body streams to the upstream before the client has finished sending it', async () => {
    let gotFirst!: () => void;
    const firstArrived = new Promise<void>((r) => (gotFirst = r));
    up.handler = (req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => {
        if (n === 0) gotFirst();
        n += c.length;
      });
      req.on('end', () => res.end(String(n)));
    };
    const reply = new Promise<Reply>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/api/upload', method: 'POST' }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1000, 1));
      void firstArrived.then(() => req.end(Buffer.alloc(500, 2)));
    });
    const r = await reply;
    assert.equal(r.status, 200);
    assert.equal(r.body, '1500');
  });

  test('a 1 GiB download and a 1 GiB upload keep the gateway memory flat', async (t) => {
    const GiB = 1024 * 1024 * 1024;
    const block = Buffer.alloc(1024 * 1024, 7);
    up.handler = (req, res) => {
      if (req.method === 'POST') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
        return;
      }
      res.writeHead(200, { 'Content-Length': GiB });
      let sent = 0;
      const pump = () => {
        while (sent < GiB) {
          sent += block.length;
          if (!res.write(block)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    };
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
    try {
      const got = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/api/big' }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
        }).on('error', reject);
      });
      assert.equal(got, GiB);
      const echoed = await new Promise<string>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/api/big', method: 'POST', headers: { 'Content-Length': GiB } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        let sent = 0;
        const pump = () => {
          while (sent < GiB) {
            sent += block.length;
            if (!req.write(block)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      assert.equal(echoed, String(GiB));
    } finally {
      clearInterval(sample);
    }
    const grew = (peak - rss0) / 1024 / 1024;
    t.diagnostic(`rss growth over 2 GiB proxied: ${grew.toFixed(1)} MiB`);
    assert.ok(grew < 96 * RSS_BOUND_SCALE, `RSS grew ${grew.toFixed(1)} MiB while proxying 2 GiB`);
  });

  test('an upstream that does not answer is 504 after the timeout, naming the upstream', async () => {
    up.handler = () => {};
    const r = await request(port, '/api/slow');
    assert.equal(r.status, 504);
    assert.equal(r.headers['content-type'], 'application/json');
    const body = JSON.parse(r.body) as { code: number; error: string; message: string };
    assert.equal(body.code, 504);
    assert.equal(body.error, 'UPSTREAM_TIMEOUT');
    assert.match(body.message, new RegExp(`127\\.0\\.0\\.1:${upPort}`));
  });

  test('garbage from the upstream is 502', async () => {
    const bad = net.createServer((s) => s.once('data', () => s.end('THIS IS NOT HTTP\r\n\r\n')));
    bad.listen(0, '127.0.0.1');
    await once(bad, 'listening');
    const badPort = (bad.address() as net.AddressInfo).port;
    const g = await gateway(`route /x/ http://127.0.0.1:${badPort};`);
    try {
      const r = await request(g.port, '/x/y');
      assert.equal(r.status, 502);
      assert.match(r.body, new RegExp(`502 upstream failed: http://127\\.0\\.0\\.1:${badPort}`));
    } finally {
      await g.gw.close();
      bad.close();
    }
  });

  test('the client hanging up aborts the upstream request and logs one line', async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    up.handler = (req, res) => {
      res.writeHead(200);
      res.write('partial');
      res.on('close', () => upstreamClosed());
      void req;
    };
    const before = lines.length;
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/hang' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.on('timeout', reject);
    });
    await closed;
    await waitFor('the log line', () => lines.slice(before).some((l) => l.includes('client closed the connection')));
    const fresh = lines.slice(before).join('\n');
    assert.doesNotMatch(fresh, /\n\s+at /, 'no stack trace');
  });

  test('a WebSocket passes through to a real echo server', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    wss.on('connection', (ws, req) => {
      ws.send(`hello ${req.url} via ${req.headers['x-forwarded-for']}`);
      ws.on('message', (m) => ws.send(`echo ${m.toString()}`));
    });
    const wsPort = (wss.address() as net.AddressInfo).port;
    const g = await gateway(`route /ws/ http://127.0.0.1:${wsPort};`);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws/chat`);
      const messages: string[] = [];
      ws.on('message', (m) => messages.push(m.toString()));
      await once(ws, 'open');
      ws.send('ping');
      await waitFor('echo', () => messages.length >= 2);
      assert.deepEqual(messages, ['hello /ws/chat via 127.0.0.1', 'echo ping']);
      ws.close();
      await once(ws, 'close');
    } finally {
      await g.gw.close();
      for (const c of wss.clients) c.terminate();
      wss.close();
    }
  });

  test('HTTP/2 clients are proxied over HTTPS too', async () => {
    up.handler = (req, res) => res.end(`h2 ${req.headers['x-forwarded-proto']} ${req.headers.host}`);
    const dir = mkdtempSync(join(tmpdir(), 'sg-proxy-'));
    const { log } = memoryLogger();
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public;
      https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }
      proxy { route /api/ http://127.0.0.1:${upPort}; }`;
    const g = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
    try {
      const client = http2.connect(`https://127.0.0.1:${g.port('https')}`, { rejectUnauthorized: false });
      const s = client.request({ ':path': '/api/h2' });
      let body = '';
      s.setEncoding('utf8');
      s.on('data', (c) => (body += c));
      const [headers] = (await once(s, 'response')) as [http2.IncomingHttpHeaders];
      await once(s, 'end');
      client.close();
      assert.equal(headers[':status'], 200);
      assert.equal(body, `h2 https 127.0.0.1:${g.port('https')}`);
    } finally {
      await g.close();
    }
  });

  test('/metrics counts proxied requests and upstream errors', async () => {
    const r = await request(port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.body, /streamgate_http_requests_total\{route="proxy:\/api\/",status="200"\} \d+/);
    assert.match(r.body, new RegExp(`streamgate_upstream_errors_total\\{upstream="http://127\\.0\\.0\\.1:${upPort}",kind="timeout"\\} 1`));
  });
});

describe('a user proxy prefix that covers /metrics', () => {
  test('/metrics stays the gateway\'s own on every lane; the rest of the prefix is proxied', async () => {
    const up = new Upstream();
    up.handler = (req, res) => res.end(`upstream saw ${req.url}`);
    const upPort = await up.start();
    const { gw, port } = await gateway(`route /m http://127.0.0.1:${upPort};`);
    try {
      // A plain GET (the front door's lane), one with a Range (Node's parser, then the undici
      // shortcut), and a POST (the Koa table): the table puts /metrics ahead of user routes.
      for (const opts of [{}, { headers: { Range: 'bytes=0-10' } }, { method: 'POST', body: 'x' }] as const) {
        const r = await request(port, '/metrics', opts);
        assert.equal(r.status, 200, JSON.stringify(opts));
        assert.match(r.body, /^# HELP streamgate_/m, JSON.stringify(opts));
      }
      for (const opts of [{}, { headers: { Range: 'bytes=0-10' } }] as const) {
        const r = await request(port, '/more', opts);
        assert.equal(r.body, 'upstream saw /more', JSON.stringify(opts));
      }
    } finally {
      await gw.close();
      await up.close();
    }
  });
});

describe('reverse proxy with its upstream down', () => {
  test('refused connection is 502 with a body naming the upstream, and the gateway keeps serving', async () => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const dead = (s.address() as net.AddressInfo).port;
    s.close();
    const { gw, port, lines } = await gateway(`route /api/ http://127.0.0.1:${dead};`);
    try {
      const r = await request(port, '/api/v1/versions');
      assert.equal(r.status, 502);
      assert.deepEqual(JSON.parse(r.body), { code: 502, error: 'UPSTREAM_REFUSED', message: `upstream refused the connection: http://127.0.0.1:${dead}` });
      const page = await request(port, '/');
      assert.equal(page.status, 200);
      assert.ok(lines.some((l) => l.includes('ECONNREFUSED')), 'one log line names the failure');
    } finally {
      await gw.close();
    }
  });
});

describe('reverse proxy in front of NGINX serving files', () => {
  test('ranges, validators and 304 pass through unchanged', async (t) => {
    const { existsSync, writeFileSync, mkdirSync } = await import('node:fs');
    const { spawn } = await import('node:child_process');
    if (!existsSync('/usr/sbin/nginx')) return t.skip('nginx is not installed (bash .ci/run installs nginx-light)');
    const dir = mkdtempSync(join(tmpdir(), 'sg-ngx-'));
    mkdirSync(join(dir, 'www'));
    const body = Buffer.alloc(100_000, 'a');
    body.write('HEAD', 0);
    writeFileSync(join(dir, 'www', 'seg.ts'), body);
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const ngxPort = (probe.address() as net.AddressInfo).port;
    probe.close();
    writeFileSync(join(dir, 'nginx.conf'), `daemon off; master_process off; worker_processes 1; error_log stderr; pid ${dir}/nginx.pid;
      events { worker_connections 64; }
      http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
        server { listen 127.0.0.1:${ngxPort}; root ${dir}/www; } }`);
    const ngx = track(spawn('/usr/sbin/nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', 'stderr'], { stdio: 'ignore' }));
    const g = await gateway(`route /files/ http://127.0.0.1:${ngxPort}/;`);
    try {
      // The route keeps the request path (no prefix stripping, like Caddy): nginx sees /files/seg.ts.
      mkdirSync(join(dir, 'www', 'files'));
      writeFileSync(join(dir, 'www', 'files', 'seg.ts'), body);
      await waitFor('nginx', async () => (await request(ngxPort, '/seg.ts').catch(() => ({ status: 0 }))).status === 200);
      const direct = await request(ngxPort, '/files/seg.ts', { headers: { Range: 'bytes=0-3' } });
      const via = await request(g.port, '/files/seg.ts', { headers: { Range: 'bytes=0-3' } });
      assert.equal(via.status, 206);
      assert.equal(via.body, 'HEAD');
      assert.equal(via.headers['content-range'], direct.headers['content-range']);
      assert.equal(via.headers.etag, direct.headers.etag);
      const cond = await request(g.port, '/files/seg.ts', { headers: { 'If-None-Match': direct.headers.etag as string } });
      assert.equal(cond.status, 304);
      assert.equal(cond.body, '');
      const whole = await request(g.port, '/files/seg.ts');
      assert.equal(whole.headers['content-length'], '100000');
      assert.equal(whole.body.length, 100_000);
    } finally {
      await g.gw.close();
      ngx.kill('SIGTERM');
      await once(ngx, 'exit');
    }
  });
});
