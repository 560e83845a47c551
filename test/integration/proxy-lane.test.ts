import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { sleep, RSS_BOUND_SCALE } from '../helpers/proc.js';
import { proxyGateway } from './site.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * The front door's proxy lane (src/proxy/lane.ts): plain GET/HEAD for a proxied prefix on raw
 * pooled upstream connections. Upstreams here are raw TCP servers where the framing matters
 * (chunked, close-delimited, stale keep-alive), node:http servers elsewhere.
 */

/** A raw upstream: `answer` gets each request head on a connection and writes what it likes. */
class RawUpstream {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  connections = 0;
  heads: string[] = [];
  answer: (sock: net.Socket, head: string, n: number) => void = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  constructor() {
    this.server = net.createServer((sock) => {
      this.connections++;
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => {});
      let buf = '';
      let n = 0;
      sock.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          this.heads.push(head);
          this.answer(sock, head, n++);
        }
      });
    });
  }
  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request, on its own connection unless an agent is given: a connection the front door hands
 * to Node's server (a POST, /metrics) stays there, and later requests on it would skip the lane.
 */
function request(port: number, path: string, opts: http.RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sends raw bytes on a new connection and reads until the server closes it or `until` holds. */
function raw(port: number, bytes: string, until: (got: string) => boolean = () => false, ms = 5000): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ got, closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (until(got)) finish(false);
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    s.write(bytes);
  });
}

async function laneCount(port: number, name = 'streamgate_proxy_lane_requests_total'): Promise<number> {
  const r = await request(port, '/metrics');
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : 0;
}

const gateway = (routes: string, timeouts = 'timeout 1s; connect_timeout 1s;', top = '') => proxyGateway(`${routes} ${timeouts}`, top);

describe('the proxy lane', () => {
  const up = new RawUpstream();
  let gw: Gateway;
  let port: number;
  let lines: string[];
  before(async () => {
    const upPort = await up.start();
    ({ gw, port, lines } = await gateway(`route /api/ http://127.0.0.1:${upPort}; route /p/ http://127.0.0.1:${upPort}/base host=upstream;`));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('plain GET and HEAD take the lane, conditions included; a POST does not, and is answered alike', async () => {
    up.answer = (s, head) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${head.length}\r\n\r\n${head}`);
    const n0 = await laneCount(port);
    const get = await request(port, '/api/v1/x?y=1', { headers: { 'X-Keep': 'me', 'If-None-Match': '"v1"' } });
    assert.equal(get.status, 200);
    assert.match(get.body, /^GET \/api\/v1\/x\?y=1 HTTP\/1\.1\r\n/);
    assert.match(get.body, /\r\nX-Keep: me(\r\n|$)/);
    assert.match(get.body, /\r\nIf-None-Match: "v1"(\r\n|$)/, 'conditions go upstream as ordinary headers');
    assert.match(get.body, /\r\nX-Forwarded-For: 127\.0\.0\.1(\r\n|$)/);
    const base = await request(port, '/p/a', { headers: { Host: 'client.test' } });
    assert.match(base.body, /^GET \/base\/p\/a HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/, 'route base path and host=upstream');
    const head = await request(port, '/api/v1/x', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(await laneCount(port), n0 + 3);
    const post = await request(port, '/api/v1/x', { method: 'POST', headers: { 'Content-Length': '0' } });
    assert.equal(post.status, 200);
    assert.match(post.body, /^POST \/api\/v1\/x HTTP\/1\.1\r\n/i);
    assert.equal(await laneCount(port), n0 + 3, 'a request with a body stays on the long path');
  });

  test("the gateway's traffic totals count the bytes the lane reads and writes on a client connection", async () => {
    up.answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(1000));
    const before = gw.traffic();
    const ask = 'GET /api/traffic HTTP/1.1\r\nHost: x\r\n\r\n';
    // Three answers on one keep-alive connection, the next request sent once the last answer is whole.
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      const n = got.split('HTTP/1.1 200 OK').length - 1;
      if (got.endsWith('x'.repeat(1000)) && n < 3) s.write(ask);
    });
    s.write(ask);
    await waitFor('three answers', () => got.split('HTTP/1.1 200 OK').length - 1 === 3 && got.endsWith('x'.repeat(1000)), 5000);
    const during = gw.traffic();
    s.end();
    await waitFor('the connection closed', () => gw.traffic().connections === during.connections - 1, 5000);
    const after = gw.traffic();
    assert.equal(after.sendBytes, during.sendBytes, 'a closed connection keeps its count');
    // Exactly: bytes the lane writes on the socket's handle are counted once, as Node's own writes.
    assert.equal(during.sendBytes - before.sendBytes, got.length, 'every byte the client read, counted once');
    assert.equal(during.recvBytes - before.recvBytes, ask.length * 3, 'the requests read, counted once');
  });

  test('requests pipelined past the front door\'s buffer are answered in order, each with its own answer', async () => {
    // The upstream holds the first answer back, so the client's requests pile up while it is in
    // flight: the front door pauses the socket (past max_header_size waiting), and what arrives
    // meanwhile waits in Node's stream until the answer is over.
    up.answer = (s, head) => {
      const path = head.slice(4, head.indexOf(' ', 4));
      setTimeout(() => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`), path === '/api/pipe/0' ? 500 : 0);
    };
    const n = 600;
    let ask = '';
    for (let i = 0; i < n; i++) ask += `GET /api/pipe/${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
    assert.ok(ask.length > 16 * 1024, 'more than a head buffer waits');
    // In twelve parts: the last ones arrive while the socket is paused.
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    const part = Math.ceil(ask.length / 12);
    for (let at = 0; at < ask.length; at += part) {
      s.write(ask.slice(at, at + part));
      await sleep(20);
    }
    await waitFor('every answer', () => got.endsWith(`/api/pipe/${n - 1}`), 20_000);
    const bodies = [...got.matchAll(/\r\n\r\n(\/api\/pipe\/\d+)/g)].map((m) => m[1]);
    assert.equal(bodies.length, n);
    bodies.forEach((b, i) => assert.equal(b, `/api/pipe/${i}`));
    const closed = once(s, 'close').then(() => true);
    assert.equal(await Promise.race([closed, sleep(100).then(() => false)]), false, 'the connection stays open');
    s.destroy();
  });

  test('chunked: relayed as it comes, trailers dropped, and the connection carries the next request', async () => {
    up.answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n5;ext=1\r\nhello\r\n');
      setTimeout(() => s.write('6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n'), 30);
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const gwConnections = await connectionsOf(port);
    for (let i = 0; i < 3; i++) {
      const r = await request(port, `/api/chunked${i}`, { agent });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'hello world');
      assert.equal(r.headers['transfer-encoding'], 'chunked');
      assert.equal(r.headers['x-trailer'], undefined);
    }
    agent.destroy();
    assert.ok((await connectionsOf(port)) - gwConnections <= 2, 'one client connection carried the three answers');
    // The wire: our framing is what the client reads, ending in a clean last chunk.
    const w = await raw(port, 'GET /api/c HTTP/1.1\r\nHost: x\r\n\r\n', (g) => g.endsWith('0\r\n\r\n'));
    assert.match(w.got, /\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n$/);
    assert.equal(w.closed, false);
  });

  test('close-delimited: re-chunked for a keep-alive client, streamed as it comes, raw for a closing one', async () => {
    let release!: () => void;
    up.answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: one\n\n');
      const gate = new Promise<void>((r) => (release = r));
      void gate.then(() => s.end('data: two\n\n'));
    };
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/sse' }, resolve).on('error', reject);
    });
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    const [first] = (await once(res, 'data')) as [Buffer];
    assert.equal(first.toString(), 'data: one\n\n', 'the first event arrives while the upstream still holds the rest');
    release();
    let rest = '';
    for await (const c of res) rest += c;
    assert.equal(rest, 'data: two\n\n');
    up.answer = (s) => s.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close');
    const w = await raw(port, 'GET /api/close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.ok(w.closed);
    assert.match(w.got, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(w.got, /\r\nConnection: close\r\n/);
    assert.doesNotMatch(w.got, /Transfer-Encoding/i);
    assert.ok(w.got.endsWith('\r\n\r\nuntil the close'));
  });

  test('HEAD, 204 and 304 carry no body even when the upstream announces a length; a 103 is passed over', async () => {
    up.answer = (s, head) => {
      if (head.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nETag: "a"\r\n\r\n');
      else if (head.includes('If-None-Match: "a"')) s.write('HTTP/1.1 304 Not Modified\r\nETag: "a"\r\n\r\n');
      else if (head.includes('/api/early')) s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate');
      else s.write('HTTP/1.1 204 No Content\r\n\r\n');
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const h = await request(port, '/api/h', { method: 'HEAD', agent });
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], '100');
    const c = await request(port, '/api/h', { agent, headers: { 'If-None-Match': '"a"' } });
    assert.equal(c.status, 304);
    assert.equal(c.headers.etag, '"a"');
    const e = await request(port, '/api/h', { agent });
    assert.equal(e.status, 204);
    assert.equal(e.body, '');
    const early = await request(port, '/api/early', { agent });
    assert.equal(early.status, 200, 'a 1xx before the answer is passed over');
    assert.equal(early.body, 'late');
    agent.destroy();
  });

  test('a pooled connection the upstream closed as it was picked: the request is sent again on a fresh one', async () => {
    // The second request on each upstream connection meets a reset instead of an answer, as when a
    // server's keep-alive timer fires just as the request arrives.
    up.answer = (s, _head, n) => {
      if (n === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
      else s.resetAndDestroy();
    };
    const retries0 = await laneCount(port, 'streamgate_proxy_lane_retries_total');
    const a = await request(port, '/api/stale1');
    assert.equal(a.body, 'first');
    const b = await request(port, '/api/stale2');
    assert.equal(b.status, 200);
    assert.equal(b.body, 'first', 'answered by a fresh connection');
    assert.ok((await laneCount(port, 'streamgate_proxy_lane_retries_total')) > retries0);
    // An upstream that closes idle connections cleanly: the pool drops them before reuse.
    up.answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      s.setTimeout(50, () => s.end());
    };
    for (let i = 0; i < 5; i++) {
      const r = await request(port, `/api/idle${i}`);
      assert.equal(r.status, 200);
      await sleep(120);
    }
  });

  test('garbage, broken chunking and a bad length from the upstream: 502 or a cut response, one log line each', async () => {
    const before = lines.length;
    up.answer = (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc');
    assert.equal((await request(port, '/api/twolengths')).status, 502);
    up.answer = (s) => s.write('HTTP/1.1 200 OK\r\nX-Bad: a\nInjected: 1\r\nContent-Length: 2\r\n\r\nok');
    assert.equal((await request(port, '/api/barelf')).status, 502);
    up.answer = (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n');
    const w = await raw(port, 'GET /api/badchunk HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(w.closed, 'the client connection is cut');
    assert.doesNotMatch(w.got, /0\r\n\r\n$/, 'no clean end');
    const fresh = lines.slice(before);
    assert.equal(fresh.filter((l) => l.includes('[warn] proxy')).length, 3, fresh.join('\n'));
  });

  test('a slow client pauses the upstream: memory stays bounded and every byte arrives', async (t) => {
    const total = 256 * 1024 * 1024;
    const block = Buffer.alloc(1024 * 1024, 3);
    let pushed = 0;
    up.answer = (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${total}\r\n\r\n`);
      const pump = () => {
        while (pushed < total) {
          pushed += block.length;
          if (!s.write(block)) return void s.once('drain', pump);
        }
      };
      pump();
    };
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const got = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/api/huge' }, (res) => {
          res.pause();
          // The client reads nothing for a while: the upstream must be held back, not buffered.
          setTimeout(() => {
            t.diagnostic(`upstream pushed ${(pushed / 1024 / 1024).toFixed(0)} MiB while the client read nothing`);
            assert.ok(pushed < 64 * 1024 * 1024, `the upstream pushed ${pushed} bytes into a paused client`);
            let n = 0;
            res.on('data', (c: Buffer) => (n += c.length));
            res.on('end', () => resolve(n));
            res.resume();
          }, 800);
        }).on('error', reject);
      });
      assert.equal(got, total);
    } finally {
      clearInterval(sample);
    }
    const grew = (peak - rss0) / 1024 / 1024;
    t.diagnostic(`rss growth: ${grew.toFixed(1)} MiB for ${total / 1024 / 1024} MiB relayed`);
    assert.ok(grew < 96 * RSS_BOUND_SCALE, `RSS grew ${grew.toFixed(1)} MiB`);
  });

  test('every client gets its own bytes, in order, while clients read at different speeds (the lane reuses its read buffers)', async (t) => {
    // Each answer's bytes depend on the request and the offset (a period of 65,521 bytes, prime, so
    // no read or write size lines up with it): a piece of another answer, a piece repeated or a
    // piece read over before it reached the client all change the digest. Bodies are large enough
    // (40 MiB) to fill the kernel's buffers of a client that stops reading, so the lane's writes
    // to it queue in Node while the lane reads on.
    const SIZE = 40 * 1024 * 1024 + 17;
    const PERIOD = 65_521;
    const patternOf = (id: number) => {
      const b = Buffer.allocUnsafe(PERIOD + 256 * 1024);
      for (let i = 0; i < b.length; i++) b[i] = (id * 131 + (i % PERIOD) * 7 + ((i % PERIOD) >> 9)) & 0xff;
      return b;
    };
    const pieces = (id: number, each: (piece: Buffer) => boolean | undefined) => {
      const p = patternOf(id);
      let at = 0;
      return () => {
        while (at < SIZE) {
          const n = Math.min(SIZE - at, 3000 + ((at / 3000) % 7) * 1500);
          const off = at % PERIOD;
          at += n;
          if (each(p.subarray(off, off + n)) === false) return false;
        }
        return true;
      };
    };
    const expected = (id: number) => {
      const h = createHash('sha256');
      pieces(id, (piece) => {
        h.update(piece);
        return undefined;
      })();
      return h.digest('hex');
    };
    up.answer = (s, head) => {
      const id = Number(/GET \/api\/pattern\/(\d+)/.exec(head)?.[1] ?? 0);
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`);
      // One piece per turn, so the lane reads them one by one (reads smaller than its buffer):
      // a write to a stalled client then queues less than a socket's high-water mark, and the
      // lane goes on reading while those bytes wait.
      const pump = pieces(id, (piece) => {
        s.write(piece);
        return false;
      });
      const go = () => {
        if (s.destroyed) return;
        if (s.writableLength > 256 * 1024) return void s.once('drain', go);
        if (!pump()) setImmediate(go);
      };
      go();
    };
    const ids = [1, 2, 3, 4];
    const fetchOne = (id: number) => new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: `/api/pattern/${id}`, agent: false }, (res) => {
        const h = createHash('sha256');
        let got = 0;
        let nextStop = 1024 * 1024;
        res.on('data', (c: Buffer) => {
          h.update(c);
          got += c.length;
          // The slow half stops reading now and then, long enough for the kernel's buffers to fill.
          if (id % 2 === 0 && got >= nextStop) {
            nextStop += 8 * 1024 * 1024;
            res.pause();
            setTimeout(() => res.resume(), 250);
          }
        });
        res.on('end', () => resolve(h.digest('hex')));
        res.on('error', reject);
      }).on('error', reject);
    });
    const got = await Promise.all(ids.map((id) => fetchOne(id)));
    for (const [i, id] of ids.entries()) assert.equal(got[i], expected(id), `answer ${id} arrived with other bytes`);
    t.diagnostic(`${ids.length} answers of ${SIZE} bytes, each byte where it belongs`);
  });

  test('the client hanging up mid-body closes that upstream connection instead of pooling it', async () => {
    let upstreamGone!: () => void;
    const gone = new Promise<void>((r) => (upstreamGone = r));
    up.answer = (s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial');
      s.once('close', () => upstreamGone());
    };
    const before = lines.length;
    await raw(port, 'GET /api/hang HTTP/1.1\r\nHost: x\r\n\r\n', (g) => g.includes('partial'));
    await gone;
    await waitFor('the log line', () => lines.slice(before).some((l) => l.includes('client closed the connection; upstream request aborted')));
    const r = await request(port, '/metrics');
    assert.match(r.body, /streamgate_http_requests_total\{route="proxy:\/api\/",status="499"\} \d+/);
  });
});

/** Open client connections, as /metrics counts them (the scrape's own included). */
async function connectionsOf(port: number): Promise<number> {
  const r = await request(port, '/metrics');
  return Number(/^streamgate_connections (\d+)$/m.exec(r.body)?.[1] ?? 0);
}

/** A node:http upstream on a loopback port that keeps its open connections in view. */
async function httpUpstream(handler: http.RequestListener): Promise<{ port: number; conns: Set<net.Socket>; close(): void }> {
  const conns = new Set<net.Socket>();
  const server = http.createServer(handler);
  server.on('connection', (s: net.Socket) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** An upstream whose /api/slow sends "first, " and holds "last" until `release()`; anything else is "quick". */
async function gatedUpstream(): Promise<{ upstream: Awaited<ReturnType<typeof httpUpstream>>; release: () => void }> {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const upstream = await httpUpstream((req, res) => {
    if (req.url === '/api/slow') {
      res.write('first, ');
      void gate.then(() => res.end('last'));
    } else {
      res.end('quick');
    }
  });
  return { upstream, release };
}

describe('the proxy lane against node:http upstreams', () => {
  test('a silent upstream on a reused pooled connection (after an answer relayed in pieces) is a 504 after the read timeout', async () => {
    const upstream = await httpUpstream((req, res) => {
      // The last piece is larger than a socket's write buffer mark: the lane waits for 'drain' on it.
      if (req.url === '/api/big') {
        res.setHeader('Content-Length', 80_000);
        res.write('x'.repeat(40_000));
        setTimeout(() => res.end('x'.repeat(40_000)), 50);
      }
      // Never answered.
    });
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${upstream.port};`, 'timeout 1s; connect_timeout 1s;');
    try {
      assert.equal((await request(port, '/api/big')).body.length, 80_000);
      const silent = await Promise.race([request(port, '/api/hang'), new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
      assert.equal(upstream.conns.size, 1, 'the second request reused the pooled connection');
      assert.equal(silent?.status, 504, 'the upstream read timeout (1 s) answers, not the client giving up');
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  test('a reload retires the old pool: the answer in flight completes, its connection then closes', async () => {
    const { upstream, release } = await gatedUpstream();
    const { port: upPort, conns: upConns } = upstream;
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${upPort};`, 'timeout 5s;');
    try {
      const slow = request(port, '/api/slow');
      await waitFor('the slow answer to start', () => upConns.size === 1);
      await gw.reload(gw.config);
      release();
      const r = await slow;
      assert.equal(r.body, 'first, last', 'the response in flight across the reload is whole');
      await waitFor('the retired connection to close', () => upConns.size === 0);
      assert.equal((await request(port, '/api/again')).body, 'quick', 'the new pool serves');
      assert.equal(upConns.size, 1);
      await gw.close();
      await waitFor('shutdown to close the idle pooled connection', () => upConns.size === 0);
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  test('shutdown closes an idle keep-alive connection at once and lets a proxied answer in flight finish whole', async () => {
    const { upstream, release } = await gatedUpstream();
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${upstream.port};`, 'timeout 5s;');
    try {
      const slow = request(port, '/api/slow');
      await waitFor('the slow answer to start', () => upstream.conns.size === 1);
      // A keep-alive client that had its answer and now waits between requests.
      const idle = net.connect(port, '127.0.0.1');
      let got = '';
      idle.on('data', (d: Buffer) => (got += d.toString('latin1')));
      const idleClosed = once(idle, 'close');
      idle.write('GET /api/quick HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await waitFor('the idle client\'s answer', () => got.endsWith('quick'));
      const closing = gw.close();
      await idleClosed;
      release();
      assert.equal((await slow).body, 'first, last', 'the answer in flight at shutdown is whole');
      await closing;
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  test('a client that never reads a proxied answer is closed after request_timeout, and so is its upstream connection', async (t) => {
    const block = Buffer.alloc(256 * 1024, 1);
    const upstream = await httpUpstream((_req, res) => {
      const pump = () => {
        while (res.write(block));
        res.once('drain', pump);
      };
      pump();
    });
    const { port: upPort, conns: upConns } = upstream;
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${upPort};`, 'timeout 500ms;', 'limits { request_timeout 1500ms; }');
    try {
      const start = performance.now();
      // A client that reads nothing: it would not even see the close, so the upstream side tells.
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.pause();
      s.write('GET /api/endless HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('the upstream to be asked', () => upConns.size === 1);
      await waitFor('the upstream connection to close', () => upConns.size === 0, 10_000);
      const ms = performance.now() - start;
      t.diagnostic(`a client reading nothing was given up after ${ms.toFixed(0)} ms (request_timeout 1.5 s, proxy timeout 0.5 s)`);
      assert.ok(ms >= 1400 && ms < 6000, `given up after ${ms.toFixed(0)} ms`);
      s.destroy();
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  test('over TLS with HTTP/1.1 the lane forwards X-Forwarded-Proto https', async () => {
    const upstream = await httpUpstream((req, res) => res.end(`${req.headers['x-forwarded-proto']} ${req.headers['x-forwarded-host']}`));
    const upPort = upstream.port;
    const dir = mkdtempSync(join(tmpdir(), 'sg-lane-'));
    const { log } = memoryLogger();
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public;
      https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }
      proxy { route /api/ http://127.0.0.1:${upPort}; }`;
    const gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
    try {
      const sport = gw.port('https');
      const n0 = await laneCount(gw.port('http'));
      const body = await new Promise<string>((resolve, reject) => {
        https.get({ host: '127.0.0.1', port: sport, path: '/api/tls', rejectUnauthorized: false }, (res) => {
          let b = '';
          res.on('data', (c) => (b += c));
          res.on('end', () => resolve(b));
        }).on('error', reject);
      });
      assert.equal(body, `https 127.0.0.1:${sport}`);
      assert.equal(await laneCount(gw.port('http')), n0 + 1);
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  test('headers a Connection header names are hop-by-hop: dropped on the way up and on the way down', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const upstream = await httpUpstream((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { Connection: 'keep-alive, X-Up-Hop', 'X-Up-Hop': 'secret', 'X-Up-Kept': 'yes', 'Content-Length': '2' });
      res.end('ok');
    });
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${upstream.port};`);
    try {
      const before = await laneCount(port);
      const r = await request(port, '/api/hop', { headers: { Connection: 'keep-alive, X-Down-Hop', 'X-Down-Hop': 'secret', 'X-Down-Kept': 'yes' } });
      assert.equal(await laneCount(port), before + 1, 'the request took the lane');
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-up-hop'], undefined, 'the client does not see the upstream\'s hop-by-hop header');
      assert.equal(r.headers['x-up-kept'], 'yes');
      assert.equal(seen.length, 1);
      assert.equal(seen[0]['x-down-hop'], undefined, 'the upstream does not see the client\'s hop-by-hop header');
      assert.equal(seen[0]['x-down-kept'], 'yes');
    } finally {
      await gw.close();
      upstream.close();
    }
  });

  test("the upstream's Keep-Alive timeout hint: a pooled connection is given up a second before the upstream would close it", async () => {
    let hint = '';
    let connections = 0;
    const upstream = http.createServer((_req, res) => {
      // An explicit Connection header keeps Node from adding its own Keep-Alive line.
      res.writeHead(200, { Connection: 'keep-alive', ...(hint ? { 'Keep-Alive': hint } : {}), 'Content-Length': '2' });
      res.end('ok');
    });
    upstream.keepAliveTimeout = 30_000;
    upstream.on('connection', () => connections++);
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${(upstream.address() as net.AddressInfo).port};`, 'timeout 10s; connect_timeout 1s;');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const twoApart = async (ms: number): Promise<number> => {
      const before = connections;
      assert.equal((await request(port, '/api/a', { agent })).body, 'ok');
      await sleep(ms);
      assert.equal((await request(port, '/api/b', { agent })).body, 'ok');
      return connections - before;
    };
    try {
      assert.equal(await twoApart(0), 1, 'the first request opens the pool\'s connection');
      // No hint: the pool keeps an idle connection 4 s, so 1.5 s apart the second request reuses it.
      assert.equal(await twoApart(1500), 0);
      // timeout=2: kept only 1 s, so 1.5 s apart the second request opens a new one.
      hint = 'timeout=2';
      assert.equal(await twoApart(0), 0);
      assert.equal(await twoApart(1500), 1, 'past the hint less a second, a fresh connection');
      // timeout=1: nothing left to keep; every request opens its own.
      hint = 'timeout=1';
      await twoApart(0);
      assert.equal(await twoApart(0), 2);
    } finally {
      agent.destroy();
      await gw.close();
      upstream.closeAllConnections();
      upstream.close();
    }
  });

  test('a repeated head reuses its prepared upstream request until a reload changes the route', async () => {
    const seen: string[] = [];
    const upstream = await httpUpstream((req, res) => {
      seen.push(`${req.headers.host} ${req.headers['x-forwarded-for']}`);
      res.end('ok');
    });
    const conf = (host: string) => loadConfigText(`listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      proxy { route /api/ http://127.0.0.1:${upstream.port} host=${host}; }`, 'test.conf');
    const gw = await Gateway.start(conf('one.test'), { log: memoryLogger().log });
    const port = gw.port('http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await laneCount(port);
      for (let i = 0; i < 3; i++) assert.equal((await request(port, '/api/same', { agent })).body, 'ok');
      await gw.reload(conf('two.test'));
      assert.equal((await request(port, '/api/same', { agent })).body, 'ok');
      assert.equal(await laneCount(port), before + 4, 'all four took the lane');
      assert.deepEqual(seen, ['one.test 127.0.0.1', 'one.test 127.0.0.1', 'one.test 127.0.0.1', 'two.test 127.0.0.1']);
    } finally {
      agent.destroy();
      await gw.close();
      upstream.close();
    }
  });

  test('a header value with a bare LF is never forwarded as two lines', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const upstream = await httpUpstream((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    const upPort = upstream.port;
    const { gw, port } = await gateway(`route /api/ http://127.0.0.1:${upPort};`);
    try {
      const w = await raw(port, 'GET /api/lf HTTP/1.1\r\nHost: x\r\nX-A: b\nX-Injected: 1\r\n\r\n', (g) => g.includes('\r\n\r\n'));
      assert.ok(seen.every((h) => h['x-injected'] === undefined), 'the upstream never saw the injected header');
      assert.match(w.got, /^HTTP\/1\.1 (400|200)/);
      assert.equal((await request(port, '/api/after')).body, 'ok', 'the gateway keeps serving');
    } finally {
      await gw.close();
      upstream.close();
    }
  });
});
