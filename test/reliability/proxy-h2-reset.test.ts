import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { sleep } from '../helpers/proc.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * An HTTP/2 client that resets its streams (rapid reset, or a player that gives up) must not leave
 * upstream work behind: each reset aborts its upstream request at once, so the upstream's open
 * connections follow the client's open streams, not the number of streams it ever opened. (How
 * many resets a connection may make is the HTTP/2 server's own bound.)
 */

/** Within the server's SETTINGS_MAX_CONCURRENT_STREAMS (128), so every held stream is open at once. */
const STREAMS = 100;

/** A raw upstream that reads requests and never answers: only an abort ends an exchange. */
class SilentUpstream {
  readonly server: net.Server;
  readonly open = new Set<net.Socket>();
  /** Open connections that carry a request (an abort closes them). */
  readonly busy = new Set<net.Socket>();
  requests = 0;
  constructor() {
    this.server = net.createServer((sock) => {
      this.open.add(sock);
      sock.on('close', () => {
        this.open.delete(sock);
        this.busy.delete(sock);
      });
      sock.on('error', () => {});
      sock.on('data', (c: Buffer) => {
        this.busy.add(sock);
        this.requests += c.toString('latin1').split('\r\n\r\n').length - 1;
      });
    });
  }
  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }
  close(): Promise<void> {
    for (const s of this.open) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const up = new SilentUpstream();
let gw: Gateway;
let port: number;
before(async () => {
  const upPort = await up.start();
  const dir = mkdtempSync(join(tmpdir(), 'sg-proxy-h2-'));
  const { log } = memoryLogger();
  gw = await Gateway.start(loadConfigText(`listen off; http_server { listen 127.0.0.1:0; dir ./public;
    https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }
    proxy { route /up/ http://127.0.0.1:${upPort}; timeout 30s; }`, 'test.conf'), { log });
  port = gw.port('https');
});
after(async () => {
  await gw.close();
  await up.close();
});

async function settle(until: () => boolean, ms: number): Promise<number> {
  const start = performance.now();
  while (!until() && performance.now() - start < ms) await sleep(20);
  return performance.now() - start;
}

test(`HTTP/2 streams reset by the client abort their upstream requests at once (${STREAMS} streams, held then reset; then ${STREAMS / 2} rapid resets)`, async (t) => {
  // The gateway relays at most 32 streams of one connection at a time (REFUSED_STREAM beyond, a
  // bound of its own): the held streams are spread over enough connections to all be in flight.
  const sessions = Array.from({ length: Math.ceil(STREAMS / 25) }, () => http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false }));
  for (const c of sessions) c.on('error', () => {});
  const client = sessions[0];
  try {
    // Held: every stream's request reaches the upstream, then the client resets them all.
    const held: http2.ClientHttp2Stream[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const s = sessions[i % sessions.length].request({ ':path': `/up/held-${i}` });
      s.on('error', () => {});
      held.push(s);
    }
    await settle(() => up.requests >= STREAMS, 10_000);
    assert.equal(up.requests, STREAMS, 'each stream reached the upstream');
    const openHeld = up.busy.size;
    for (const s of held) s.close(http2.constants.NGHTTP2_CANCEL);
    const tookHeld = await settle(() => up.busy.size === 0, 5_000);
    const requestsAfter = up.requests;
    await sleep(200);
    // undici re-opens a connection for an aborted request before it sees the abort; that
    // connection carries nothing and closes on the pool's 4 s idle timer.
    t.diagnostic(`held: ${openHeld} upstream requests in flight; all aborted (connections closed) ${tookHeld.toFixed(0)} ms after the resets; idle upstream connections left: ${up.open.size}`);
    assert.equal(up.busy.size, 0, 'every upstream request was aborted (its connection closed)');
    assert.ok(tookHeld < 3000, `aborted at once, not at the 30 s read timeout (${tookHeld.toFixed(0)} ms)`);
    assert.equal(up.requests, requestsAfter, 'nothing was sent again');

    // Rapid: each stream reset as soon as it is sent. Such resets cost the connection twice an
    // ordinary one (its budget is 128): half as many keep the session open.
    const requests0 = up.requests;
    const RAPID = STREAMS / 2;
    for (let i = 0; i < RAPID; i++) {
      const s = client.request({ ':path': `/up/rapid-${i}` });
      s.on('error', () => {});
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    await sleep(300);
    const tookRapid = await settle(() => up.busy.size === 0, 5_000);
    t.diagnostic(`rapid: ${up.requests - requests0} of ${RAPID} reset streams reached the upstream; none in flight ${(300 + tookRapid).toFixed(0)} ms after`);
    assert.equal(up.busy.size, 0, 'no upstream request left running by a reset stream');
    // The session is still good for a real request (the upstream stays silent, so it ends by reset too).
    assert.equal(client.destroyed, false);
  } finally {
    for (const c of sessions) c.destroy();
  }
});
