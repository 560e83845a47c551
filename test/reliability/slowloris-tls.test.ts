import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { FlvPublisher, sleep } from '../helpers/proc.js';
import { keyPairIn } from '../helpers/tls.js';

/** Connections of each slow kind held against the HTTPS port. */
const EACH = 50;
const HEADER_TIMEOUT_MS = 1000;
const KEEPALIVE_TIMEOUT_MS = 2000;
/** Closing may lag a timeout by Node's sweep, and by this process: the gateway shares its event loop with 200 TLS clients. */
const SLACK_MS = 6000;

interface Slow {
  kind: string;
  socket: net.Socket;
  /** The timeout that must close it. */
  boundMs: number;
  /** When the timeout that must close it started (ms since epoch). */
  openedAt: number;
  closedAt: number;
}

test(`HTTPS port: ${EACH} each of silent TCP, dribbled HTTP/1.1 heads, silent h2 and idle keep-alive are closed by their timeouts; players are not`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-tls-slow-'));
  const { log } = memoryLogger();
  const conf = `listen off; access_log off; max_connections 5000;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }
    limits { header_timeout ${HEADER_TIMEOUT_MS}ms; keepalive_timeout ${KEEPALIVE_TIMEOUT_MS}ms; }
    vhost __defaultVhost__ { play { mw_latency 50ms; } }`;
  const gw = await Gateway.start(loadConfigText(conf, 'slowloris-tls.conf'), { log });
  const port = gw.port('https');
  const tlsOpts = { host: '127.0.0.1', port, rejectUnauthorized: false };
  const slow: Slow[] = [];
  let dribble: NodeJS.Timeout | undefined;
  const pub = new FlvPublisher(gw.port('http'), '/live/tls.flv').play();
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    await waitFor('the stream', () => gw.hub.all().length === 1);
    // Players on both protocols must outlive every idle timer: their connections are busy.
    let h1Bytes = 0;
    let h1Closed = false;
    const h1 = https.get({ ...tlsOpts, path: '/live/tls.flv', agent: false }, (res) => {
      res.on('data', (c: Buffer) => (h1Bytes += c.length));
      res.on('close', () => (h1Closed = true));
    });
    h1.on('error', () => (h1Closed = true));
    const h2 = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    sessions.push(h2);
    let h2Bytes = 0;
    let h2Closed = false;
    h2.on('error', () => {});
    const h2s = h2.request({ ':path': '/live/tls.flv' });
    h2s.on('data', (c: Buffer) => (h2Bytes += c.length));
    h2s.on('close', () => (h2Closed = true));

    const watch = (kind: string, socket: net.Socket, boundMs: number) => {
      const s: Slow = { kind, socket, boundMs, openedAt: 0, closedAt: 0 };
      socket.on('error', () => {});
      socket.on('close', () => (s.closedAt = Date.now()));
      // Reading is what lets the client notice the server's close.
      socket.resume();
      slow.push(s);
      return s;
    };
    const now = () => Date.now();
    const startedAt = Date.now();
    const opened: Promise<unknown>[] = [];
    for (let i = 0; i < EACH; i++) {
      // TCP and never a ClientHello: the TLS handshake timeout, from the connect.
      const silent = watch('silent TCP', net.connect(port, '127.0.0.1'), HEADER_TIMEOUT_MS);
      opened.push(once(silent.socket, 'connect').then(() => (silent.openedAt = now())));
      // TLS, then an HTTP/1.1 head a byte at a time: header_timeout, from the head's first byte.
      const head = watch('dribbled HTTP/1.1 head', tls.connect({ ...tlsOpts, ALPNProtocols: ['http/1.1'] }), HEADER_TIMEOUT_MS);
      opened.push(once(head.socket, 'secureConnect').then(() => {
        head.socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        head.openedAt = now();
      }));
      // TLS with h2 chosen, then not even the connection preface: the idle session timeout.
      const h2silent = watch('silent h2', tls.connect({ ...tlsOpts, ALPNProtocols: ['h2'] }), KEEPALIVE_TIMEOUT_MS);
      opened.push(once(h2silent.socket, 'secureConnect').then(() => (h2silent.openedAt = now())));
      // One complete HTTP/1.1 request, then idle: keepalive_timeout, from the answer.
      const idle = watch('idle HTTP/1.1 keep-alive', tls.connect({ ...tlsOpts, ALPNProtocols: ['http/1.1'] }), KEEPALIVE_TIMEOUT_MS);
      opened.push(once(idle.socket, 'secureConnect').then(async () => {
        idle.socket.write('GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n');
        await once(idle.socket, 'data');
        idle.openedAt = now();
      }));
    }
    await Promise.all(opened);
    dribble = setInterval(() => {
      for (const s of slow) if (s.kind === 'dribbled HTTP/1.1 head' && !s.socket.destroyed) s.socket.write('a');
    }, 200);

    // Meanwhile a normal HTTPS user is served.
    const normal = await new Promise<number>((resolve) => {
      https.get({ ...tlsOpts, path: '/index.html', agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', () => resolve(0));
    });
    assert.notEqual(normal, 0, 'a normal HTTPS request is answered during the attack');

    const longest = KEEPALIVE_TIMEOUT_MS + SLACK_MS;
    await waitFor('every slow connection to be closed', () => slow.every((s) => s.closedAt > 0), longest + 2000).catch(() => {});
    const byKind = new Map<string, number[]>();
    for (const s of slow) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s.closedAt ? s.closedAt - s.openedAt : Infinity]);
    for (const [kind, ms] of byKind) {
      const worst = Math.max(...ms);
      const bound = slow.find((s) => s.kind === kind)!.boundMs;
      t.diagnostic(`${EACH} × ${kind}: all closed ${worst === Infinity ? 'NOT' : `within ${worst} ms`} (timeout ${bound} ms)`);
      assert.ok(worst <= bound + SLACK_MS, `${kind}: the last one closed after ${worst} ms, bound ${bound} + ${SLACK_MS} ms`);
    }

    // The players, busy the whole time, are still playing past every idle timeout.
    const [b1, b2] = [h1Bytes, h2Bytes];
    await sleep(500);
    t.diagnostic(`players after ${Date.now() - startedAt} ms: HTTP/1.1 over TLS ${h1Bytes} bytes, HTTP/2 ${h2Bytes} bytes`);
    assert.ok(!h1Closed && h1Bytes > b1, 'the HTTP/1.1-over-TLS player still receives');
    assert.ok(!h2Closed && h2Bytes > b2, 'the HTTP/2 player still receives');
    h1.destroy();
  } finally {
    clearInterval(dribble);
    for (const s of slow) s.socket.destroy();
    for (const s of sessions) s.destroy();
    pub.destroy();
    await gw.close();
  }
});
