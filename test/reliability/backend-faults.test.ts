import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../helpers/ffmpeg.js';
import { CliGateway, FlvPublisher, openFds, sleep } from '../helpers/proc.js';
import { keyPairIn } from '../helpers/tls.js';

/** Requests per fault kind, this many at a time: a leak of one socket per request would show as dozens of fds. */
const ROUNDS = 40;
const CONCURRENCY = 10;
/** The same faults over HTTP/2, all streams of one session at once. */
const H2_ROUNDS = 10;
const TIMEOUT_MS = 1000;
/** The gateway's fds may differ from baseline by a few (a pooled keep-alive connection, a timer fd). */
const FD_SLACK = 6;
/** undici keeps an idle upstream connection 4 s; leaks are judged after that has passed. */
const SETTLE_MS = 15_000;
/** A client must learn of an upstream failure within this (the timeout plus a busy machine's slack). */
const CLIENT_BOUND_MS = TIMEOUT_MS + 4000;

interface Outcome {
  status: number;
  body: string;
  /** The response ended with all its bytes (Content-Length met, or the last chunk seen). */
  complete: boolean;
  /** The connection failed or the response was cut short. */
  aborted: boolean;
  ms: number;
}

/** One GET on its own connection, recording whether the body arrived whole or was cut. */
function get(port: number, path: string, timeoutMs = 20_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const start = performance.now();
    let status = 0;
    let complete = false;
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (aborted: boolean) => {
      if (done) return;
      done = true;
      resolve({ status, body: Buffer.concat(chunks).toString(), complete, aborted, ms: performance.now() - start });
    };
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        complete = res.complete;
        finish(!res.complete);
      });
      res.on('aborted', () => finish(true));
      res.on('error', () => finish(true));
      res.on('close', () => finish(!res.complete));
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', () => finish(true));
  });
}

/** One request on an HTTP/2 session; `aborted` when the stream was reset rather than ended. */
function h2Get(session: http2.ClientHttp2Session, path: string): Promise<Outcome & { rstCode: number }> {
  return new Promise((resolve) => {
    const start = performance.now();
    const st = session.request({ ':path': path });
    let status = 0;
    let ended = false;
    const chunks: Buffer[] = [];
    st.on('response', (h) => (status = Number(h[':status'])));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => (ended = true));
    st.on('error', () => {});
    st.on('close', () => {
      const aborted = st.rstCode !== http2.constants.NGHTTP2_NO_ERROR || !ended;
      resolve({ status, body: Buffer.concat(chunks).toString(), complete: !aborted, aborted, ms: performance.now() - start, rstCode: st.rstCode ?? 0 });
    });
  });
}

/** Runs `n` calls of `fn`, `width` at a time. */
async function pool<T>(n: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

test('backend faults: down → 502, slow → 504, reset mid-body → aborted response, garbage → 502; no fd leaked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-faults-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>still here</title>');

  // A port that was bound and released: nothing listens there.
  const gone = net.createServer();
  const downPort = await listen(gone);
  await new Promise<void>((r) => gone.close(() => r()));

  // Slow: accepts, reads the request, never answers.
  const slowSockets = new Set<net.Socket>();
  const slow = net.createServer((s) => {
    slowSockets.add(s);
    s.on('close', () => slowSockets.delete(s));
    s.on('error', () => {});
    s.resume();
  });
  const slowPort = await listen(slow);

  // Reset: promises 200 kB, sends 16 kB, then resets the connection (RST, not FIN).
  const reset = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': 200_000 });
    res.write(Buffer.alloc(16_384, 7), () => setTimeout(() => req.socket.resetAndDestroy(), 20));
  });
  const resetPort = await listen(reset);

  // The same over chunked encoding: the client must not take the cut for a clean end.
  const resetChunked = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write('data: one\n\n', () => setTimeout(() => req.socket.resetAndDestroy(), 20));
  });
  const resetChunkedPort = await listen(resetChunked);

  // Garbage: not HTTP at all.
  const garbage = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end('SSH-2.0-OpenSSH_9.2 \x00\xff\xfe not http\r\n\r\n'));
  });
  const garbagePort = await listen(garbage);

  // A healthy upstream the other users keep using meanwhile.
  const healthy = http.createServer((_req, res) => res.end('healthy'));
  const healthyPort = await listen(healthy);

  const gw = new CliGateway(`listen off; access_log off;
    http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }
    proxy {
      route /down/ http://127.0.0.1:${downPort};
      route /slow/ http://127.0.0.1:${slowPort};
      route /reset/ http://127.0.0.1:${resetPort};
      route /reset-chunked/ http://127.0.0.1:${resetChunkedPort};
      route /garbage/ http://127.0.0.1:${garbagePort};
      route /ok/ http://127.0.0.1:${healthyPort};
      timeout ${TIMEOUT_MS}ms; connect_timeout ${TIMEOUT_MS}ms;
    }`);
  let others: Promise<Outcome[]> | null = null;
  let stop = false;
  try {
    const port = await gw.port('http');
    const fds0 = openFds(gw.pid);

    // Other users keep going through the whole attack, one request at a time.
    others = (async () => {
      const seen: Outcome[] = [];
      for (let i = 0; !stop && i < 2000; i++) {
        seen.push(await get(port, i % 2 ? '/ok/x' : '/index.html', 10_000));
        await sleep(20);
      }
      return seen;
    })();

    const kinds: { path: string; upstream: number; check: (o: Outcome) => void }[] = [
      {
        path: '/down/x', upstream: downPort, check: (o) => {
          assert.equal(o.status, 502);
          assert.equal(o.body, `502 upstream refused the connection: http://127.0.0.1:${downPort}\n`);
        },
      },
      {
        path: '/slow/x', upstream: slowPort, check: (o) => {
          assert.equal(o.status, 504);
          assert.equal(o.body, `504 upstream timed out: http://127.0.0.1:${slowPort}\n`);
          assert.ok(o.ms >= TIMEOUT_MS - 50, `504 after ${o.ms.toFixed(0)} ms, before the ${TIMEOUT_MS} ms timeout`);
        },
      },
      {
        path: '/reset/x', upstream: resetPort, check: (o) => {
          assert.equal(o.status, 200, 'the head was relayed before the reset');
          assert.ok(o.aborted && !o.complete, 'the client sees the response cut short, not a clean end');
          assert.ok(o.body.length < 200_000);
        },
      },
      {
        path: '/reset-chunked/x', upstream: resetChunkedPort, check: (o) => {
          assert.equal(o.status, 200);
          assert.ok(o.aborted && !o.complete, 'no last chunk: the client sees a cut, not a clean end');
        },
      },
      {
        path: '/garbage/x', upstream: garbagePort, check: (o) => {
          assert.equal(o.status, 502);
          assert.equal(o.body, `502 upstream failed: http://127.0.0.1:${garbagePort}\n`);
        },
      },
    ];
    for (const k of kinds) {
      const outcomes = await pool(ROUNDS, CONCURRENCY, () => get(port, k.path));
      for (const o of outcomes) {
        k.check(o);
        assert.ok(o.ms < CLIENT_BOUND_MS, `${k.path}: the client waited ${o.ms.toFixed(0)} ms`);
      }
      const worst = Math.max(...outcomes.map((o) => o.ms));
      t.diagnostic(`${k.path}: ${ROUNDS} requests → ${outcomes[0].status}${outcomes[0].aborted ? ' (cut short)' : ''}, slowest ${worst.toFixed(0)} ms, gateway fds ${openFds(gw.pid)}`);
    }

    // Over HTTP/2 the faults share one session with a live player: a failed stream must stay one
    // failed stream. (An upstream reset mid-body to an HTTP/2 client used to crash the process.)
    const pub = new FlvPublisher(port, '/live/faults.flv').play();
    const session = http2.connect(`https://127.0.0.1:${await gw.port('https')}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      let liveBytes = 0;
      const live = session.request({ ':path': '/live/faults.flv' });
      live.on('data', (c: Buffer) => (liveBytes += c.length));
      live.on('error', () => {});
      for (let tries = 0; liveBytes === 0 && tries < 200; tries++) await sleep(25);
      assert.ok(liveBytes > 0, 'the HTTP/2 player gets the live stream');
      for (const k of kinds) {
        const before = liveBytes;
        const outcomes = await Promise.all(Array.from({ length: H2_ROUNDS }, () => h2Get(session, k.path)));
        for (const o of outcomes) {
          k.check(o);
          assert.ok(o.ms < CLIENT_BOUND_MS, `HTTP/2 ${k.path}: the client waited ${o.ms.toFixed(0)} ms`);
        }
        assert.ok(!session.destroyed && !live.destroyed, `HTTP/2 ${k.path}: the session and its live stream survive`);
        for (let tries = 0; liveBytes === before && tries < 200; tries++) await sleep(25);
        assert.ok(liveBytes > before, `HTTP/2 ${k.path}: the live stream keeps flowing`);
        const o = outcomes[0];
        t.diagnostic(`HTTP/2 ${k.path}: ${H2_ROUNDS} streams → ${o.status}${o.aborted ? ` (reset, code ${o.rstCode})` : ''}; live player still receiving`);
      }
    } finally {
      session.close();
      pub.destroy();
    }
    assert.equal(gw.child.exitCode, null, 'the gateway survived the HTTP/2 faults');

    stop = true;
    const seen = await others;
    others = null;
    const failed = seen.filter((o) => o.status !== 200 || o.aborted);
    t.diagnostic(`other users meanwhile: ${seen.length} requests, ${failed.length} failed`);
    assert.ok(seen.length > 10, 'the other users were served during the faults');
    assert.equal(failed.length, 0, 'requests to healthy routes all succeeded');

    // The gateway gave up on every slow upstream connection rather than keeping it open.
    await waitFor('slow upstream connections to close', () => slowSockets.size === 0, SETTLE_MS);

    let fds = openFds(gw.pid);
    const until = Date.now() + SETTLE_MS;
    while (fds > fds0 + FD_SLACK && Date.now() < until) {
      await sleep(250);
      fds = openFds(gw.pid);
    }
    const line = `backend faults: ${kinds.length * ROUNDS} failed upstream exchanges; gateway fds ${fds0} before, ${fds} after`;
    t.diagnostic(line);
    console.log(line);
    assert.ok(fds <= fds0 + FD_SLACK, `fds grew from ${fds0} to ${fds} (slack ${FD_SLACK})`);

    // One line per failure and nothing worse: no stack traces in the log.
    assert.doesNotMatch(gw.log(), /\n\s+at |\[error\]/);
    assert.match(gw.log(), /ECONNREFUSED/);
    assert.equal(gw.child.exitCode, null, 'the gateway is still running');
    const after = await get(port, '/index.html');
    assert.equal(after.status, 200);
  } finally {
    stop = true;
    await others;
    gw.kill();
    await gw.exited;
    for (const s of slowSockets) s.destroy();
    for (const s of [slow, reset, resetChunked, garbage, healthy]) {
      (s as http.Server).closeAllConnections?.();
      s.close();
    }
  }
});
