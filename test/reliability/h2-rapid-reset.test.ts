import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { openFds, rssOf, sleep } from '../helpers/proc.js';
import { baselineP99, frame, getBlock, normalClient, ownH2Server, PREFACE, rawH2, rssWatch, settings, startCli, verdict } from '../helpers/h2-attack.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * HTTP/2 rapid reset (CVE-2023-44487) against proxied paths: streams opened and cancelled at once,
 * and streams the server is provoked into resetting (WINDOW_UPDATE of 0 on the stream). With
 * nghttp2's budget of 1,000 a connection started ~1,000 upstream requests before its GOAWAY (6
 * connections: 6,030 gateway fds). Twice that here: 12 connections. Each must get GOAWAY
 * ENHANCE_YOUR_CALM having started at most a few hundred upstream requests.
 */

const CONNECTIONS = 12;
/** Streams each connection opens and cancels, in bursts: far past any budget. */
const STREAMS_EACH = 3000;
const BURST = 100;

test('own HTTP/2 relay: streams reset or provoked into an error in the read that opened them never reach Node; one left open does', async (t) => {
  // What a flood's streams cost is what reaches Node's server: each is a Koa request (and, on a
  // proxied path, an upstream request). Node's 'stream' events are counted.
  const seen: string[] = [];
  const node = http2.createServer((req, res) => {
    seen.push(req.url);
    res.end('ok');
  });
  const own = await ownH2Server(node);
  const sock = net.connect(own.port, '127.0.0.1');
  sock.on('error', () => {});
  await once(sock, 'connect');
  let got = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => (got = Buffer.concat([got, c])));
  try {
    const frames: Buffer[] = [PREFACE, settings([])];
    // 50 such streams: each costs two of the reset budget's 128.
    for (let j = 0; j < 50; j++) {
      const id = 2 * j + 1;
      frames.push(frame(1, 4, id, getBlock(`/x/${j}`)));
      frames.push(j % 2 === 0 ? frame(3, 0, id, [0, 0, 0, 8]) : frame(8, 0, id, [0, 0, 0, 0]));
    }
    // One more, complete and kept: it must still be answered.
    frames.push(frame(1, 5, 101, getBlock('/kept')));
    sock.write(Buffer.concat(frames));
    // The kept stream's answer comes back to the client: a HEADERS frame on stream 101.
    const answered = (): boolean => {
      for (let p = 0; p + 9 <= got.length; p += 9 + got.readUIntBE(p, 3)) if (got[p + 3] === 1 && got.readUInt32BE(p + 5) === 101) return true;
      return false;
    };
    // A bound, not a speed check: the suite shares two cores (load averages of 50 seen).
    const until = Date.now() + 10_000;
    while (!answered() && Date.now() < until) await sleep(20);
    await sleep(300);
    t.diagnostic(`Node saw ${seen.length} of 51 streams: ${seen.slice(0, 5).join(' ')}`);
    assert.deepEqual(seen, ['/kept'], 'only the stream the client kept reached Node');
    assert.ok(answered(), 'the kept stream was answered');
  } finally {
    sock.destroy();
    own.close();
    node.close();
  }
});

/**
 * The normal client asks every 10 ms: the flood is over within a few hundred ms, and a p99 must
 * be a percentile of the GETs made while it lasts, not the slowest one or two of 40.
 */
const NORMAL_EVERY_MS = 10;
/**
 * Each connection's frames do at most one turn's work before every other connection's (calm.ts
 * TURN_WORK), and a stream reset in the turn that opened it costs two of the reset budget, so the
 * flood's 12 connections cost the gateway 60-90 ms of CPU in stretches of 10-30 ms. Measured
 * alone at load 3-10, p99 13-74 ms (the same flood before: 130-430 ms); among ten other h2 test
 * files at load 6-8, 139 ms once. The target is 100 ms; the bound leaves room for such a machine.
 */
const P99_BOUND_MS = 150;
/**
 * Node's own session (own_h2 off) takes each read whole in nghttp2, and the streams the flood
 * provokes into an error (WINDOW_UPDATE 0) still reach Koa, and start an upstream connect, before
 * nghttp2 resets them, so its stretches are longer: measured alone at load 3.5-10, p99 15-127 ms;
 * among other test files at load 6-8, 353 ms once. What that path holds, not the target.
 */
const NODE_SESSION_P99_BOUND_MS = 400;

async function flood(t: TestContext, ownH2: boolean): Promise<void> {
  let upstreamRequests = 0;
  const upstream = http.createServer((req, res) => {
    upstreamRequests++;
    // A slow upstream: what the attack wants is the work it starts.
    const timer = setTimeout(() => res.end('late\n'), 2000);
    req.on('close', () => clearTimeout(timer));
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const up = (upstream.address() as AddressInfo).port;
  const { gw, https } = await startCli((d) => `listen off; access_log off; max_connections 5000;
    http_server { listen 127.0.0.1:0; dir ${d}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(d)} own_h2 ${ownH2 ? 'on' : 'off'}; } }
    proxy { route /up/ http://127.0.0.1:${up}; }`);
  try {
    const baseline = await baselineP99(https, '/hello.txt', 2000, NORMAL_EVERY_MS);
    await sleep(300);
    const rssBefore = rssOf(gw.pid);
    const fdsBefore = openFds(gw.pid);
    const watch = rssWatch(gw.pid);
    const normal = normalClient(https, '/hello.txt', NORMAL_EVERY_MS);
    // The normal client's process and session are up before the attack starts, and it keeps asking
    // for a second after: an attack cut off within a few hundred ms would otherwise leave it no
    // window to measure in.
    await sleep(1000);
    const ends: { code: number | undefined; closed: boolean }[] = [];
    const attacker = async (n: number) => {
      const a = await rawH2(https, Buffer.concat([PREFACE, settings([])]));
      let closed = false;
      void a.closed.then(() => (closed = true));
      for (let i = 0; i < STREAMS_EACH && !closed && a.goaway() === undefined; i += BURST) {
        const frames: Buffer[] = [];
        for (let j = i; j < i + BURST; j++) {
          const id = 2 * j + 1;
          frames.push(frame(1, 4, id, getBlock(`/up/${n}/${j}`)));
          // Odd streams cancelled by the client, even ones provoked into a stream error.
          frames.push(j % 2 === 0 ? frame(3, 0, id, [0, 0, 0, 8]) : frame(8, 0, id, [0, 0, 0, 0]));
        }
        a.sock.write(Buffer.concat(frames));
        await sleep(5);
      }
      // The GOAWAY may take seconds to come back on a machine at load 50.
      await Promise.race([a.closed, sleep(8000)]);
      ends.push({ code: a.goaway(), closed });
      a.sock.destroy();
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => attacker(i)));
    await sleep(1000);
    watch.stop();
    const latencies = await normal.stop();
    const perConnection = upstreamRequests / CONNECTIONS;
    t.diagnostic(`GOAWAY codes ${ends.map((e) => e.code ?? '-').join(',')}; upstream requests ${upstreamRequests} (${perConnection.toFixed(0)} a connection)`);
    if (ownH2) {
      assert.ok(ends.every((e) => e.code === 11), 'every attacking connection got GOAWAY ENHANCE_YOUR_CALM');
    } else {
      // Node's session (nghttp2) ends a flood with GOAWAY INTERNAL_ERROR, or closes it outright.
      assert.ok(ends.every((e) => e.code !== undefined || e.closed), 'every attacking connection was closed by the gateway');
    }
    // Cancelled in the read that opened them, the flood's streams never reach the proxy (0
    // measured, on both paths); at most the 32 a connection may have in flight to Node could.
    assert.ok(perConnection <= 32, `${perConnection} upstream requests a connection`);
    await verdict(t, gw, { rssBefore, rssPeak: watch.peak(), fdsBefore, latencies, failures: normal.failures(), baselineP99: baseline, rssBoundMiB: 64, fdSlack: 6, p99BoundMs: ownH2 ? P99_BOUND_MS : NODE_SESSION_P99_BOUND_MS });
  } finally {
    gw.kill();
    upstream.close();
    upstream.closeAllConnections();
  }
}

test(`own_h2 on: ${CONNECTIONS} connections of rapid reset (cancelled and provoked) on a proxied path: GOAWAY early, few upstream requests, others keep their p99`, (t) => flood(t, true));

test(`own_h2 off (Node's session): the same ${CONNECTIONS} connections: closed, few upstream requests, others keep their p99`, (t) => flood(t, false));
