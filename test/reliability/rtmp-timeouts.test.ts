import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hub } from '../../src/live/hub.js';
import { DEFAULT_SOURCE_OPTIONS } from '../../src/live/source.js';
import { memoryLogger } from '../../src/log.js';
import { Budget } from '../../src/limits/budget.js';
import { createRtmpServer } from '../../src/ingest/rtmp/server.js';
import { HANDSHAKE_BYTES } from '../../src/ingest/rtmp/handshake.js';
import { MSG_USER_CONTROL } from '../../src/ingest/rtmp/chunk.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { CliGateway, MiB, openFds, percentile, rssOf, sleep, timedGet } from '../helpers/proc.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';
import { loadConfigText } from '../../src/config/index.js';
import { AccessControl } from '../../src/auth/policy.js';

/**
 * Time bounds on the RTMP port for peers that never get anywhere: silent sockets and sockets that
 * stop after the handshake are closed at limits.header_timeout (the handshake and the connect are
 * this protocol's request head, as NGINX's client_header_timeout bounds HTTP's); a connection that
 * connected and then only pings is closed once the idle time passes without a publish or play.
 */

const HEADER_TIMEOUT_MS = 2000;
const SILENT = 400;
const P99_BOUND_MS = 100;

test(`${SILENT} silent connections and ${SILENT / 4} that stop after the handshake: all closed at header_timeout, with one log line each`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-rtmp-silent-'));
  writeFileSync(join(dir, 'index.html'), `<!doctype html><title>ok</title>`);
  const gw = new CliGateway(`listen 127.0.0.1:0; max_connections 5000;
    http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    limits { header_timeout ${HEADER_TIMEOUT_MS}ms; } access_log off;`);
  const socks: net.Socket[] = [];
  try {
    const http = await gw.port('http');
    const rtmp = await gw.port('rtmp');
    const quiet: number[] = [];
    for (let i = 0; i < 40; i++) quiet.push((await timedGet(http, '/index.html')).ms);
    const bound = Math.max(P99_BOUND_MS, 3 * percentile(quiet.slice(10), 99));
    await sleep(200);
    const rss0 = rssOf(gw.pid);
    const fds0 = openFds(gw.pid);
    const closedAt = new Map<net.Socket, number>();
    const start = Date.now();
    const open = async (handshake: boolean) => {
      const s = net.connect(rtmp, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      s.on('close', () => closedAt.set(s, Date.now()));
      socks.push(s);
      await once(s, 'connect');
      // C0+C1, then C2 once S0+S1+S2 are in: a handshake done, and nothing more.
      if (handshake) {
        s.write(Buffer.concat([Buffer.from([3]), Buffer.alloc(HANDSHAKE_BYTES)]));
        s.once('data', () => s.write(Buffer.alloc(HANDSHAKE_BYTES)));
      }
    };
    for (let b = 0; b < SILENT; b += 100) await Promise.all(Array.from({ length: 100 }, () => open(false)));
    await Promise.all(Array.from({ length: SILENT / 4 }, () => open(true)));
    const during: number[] = [];
    let peak = rssOf(gw.pid);
    // While the idle connections are all still open (a loaded machine may take a while to open them).
    while (closedAt.size === 0 && (during.length < 200 || Date.now() - start < HEADER_TIMEOUT_MS)) {
      const r = await timedGet(http, '/index.html');
      assert.equal(r.status, 200);
      during.push(r.ms);
      peak = Math.max(peak, rssOf(gw.pid));
    }
    const openDuring = socks.length - closedAt.size;
    await waitFor('every idle connection closed', () => closedAt.size === socks.length, HEADER_TIMEOUT_MS + 10_000, 50);
    const last = Math.max(...closedAt.values()) - start;
    const first = Math.min(...closedAt.values()) - start;
    await waitFor('descriptors back to baseline', () => openFds(gw.pid) <= fds0, 5000, 100);
    const silentLines = gw.lines.filter((l) => /handshake not finished within 2000 ms, closing/.test(l.text)).length;
    const handshakenLines = gw.lines.filter((l) => /no connect within 2000 ms, closing/.test(l.text)).length;
    const p99 = percentile(during, 99);
    t.diagnostic(`${socks.length} connections (${openDuring} open while measuring): closed between ${first} and ${last} ms; log lines: ${silentLines} silent, ${handshakenLines} handshaken`);
    t.diagnostic(`RSS +${((peak - rss0) / MiB).toFixed(1)} MiB; fds ${fds0} → ${openFds(gw.pid)}; GET p99 ${p99.toFixed(1)} ms over ${during.length} (bound ${bound.toFixed(0)} ms)`);
    assert.equal(gw.child.exitCode, null);
    assert.ok(openDuring > socks.length * 0.9, 'the connections were open while measuring');
    assert.ok(first >= HEADER_TIMEOUT_MS - 100, `none closed before the header timeout (first at ${first} ms)`);
    assert.ok(last < HEADER_TIMEOUT_MS + 3000, `all closed within header_timeout + 3 s (last at ${last} ms)`);
    assert.equal(silentLines, SILENT);
    assert.equal(handshakenLines, SILENT / 4);
    assert.ok(peak - rss0 < 32 * MiB, `RSS growth ${((peak - rss0) / MiB).toFixed(1)} MiB < 32 MiB`);
    assert.ok(p99 < bound, `GET p99 ${p99.toFixed(1)} ms < ${bound.toFixed(0)} ms`);
  } finally {
    for (const s of socks) s.destroy();
    gw.kill();
    await gw.exited;
  }
});

test('a connection that connects and then only pings is closed when the idle time passes without publish or play', async (t) => {
  const IDLE_MS = 1200;
  const m = memoryLogger();
  const hub = new Hub({ sourceOptions: () => DEFAULT_SOURCE_OPTIONS, takeover: () => false, maxStreams: 0 });
  const pool = new Budget('unauthorized', 16 * MiB);
  // The listener alone, for an idle time shorter than the gateway's 30 s. Nothing here publishes;
  // the default policy (no hooks) answers the connect.
  const vhost = loadConfigText('', 'defaults').vhosts[0];
  const server = createRtmpServer({
    hub,
    log: m.log,
    access: new AccessControl({ vhost: () => vhost, log: m.log, serverId: 'test', serviceId: 'test' }),
    vhostFor: () => '__defaultVhost__',
    pool,
    limits: () => ({ headerTimeoutMs: 5000, connectionMemoryBytes: MiB, idleTimeoutMs: IDLE_MS, waitPublisherMs: () => 0 }),
  } as Parameters<typeof createRtmpServer>[0]);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const c = new RtmpTestClient(port);
  let pinger: NodeJS.Timeout | undefined;
  try {
    await c.open('live');
    const connectedAt = Date.now();
    // A ping request every 200 ms: bytes keep flowing, so the socket's idle timer never fires.
    pinger = setInterval(() => c.send([{ csid: 2, type: MSG_USER_CONTROL, streamId: 0, timestamp: 0, payload: Buffer.from([0, 6, 0, 0, 0, 1]) }]), 200);
    await c.closed;
    const after = Date.now() - connectedAt;
    t.diagnostic(`closed ${after} ms after connect; pool holds ${pool.held} bytes`);
    assert.ok(after >= IDLE_MS - 100 && after < IDLE_MS + 2000, `closed ${after} ms after connect`);
    assert.ok(c.messages.filter((x) => x.type === MSG_USER_CONTROL && x.payload.readUInt16BE(0) === 7).length >= 3, 'the pings were answered meanwhile');
    assert.equal(m.lines.filter((l) => /neither published nor played within 1200 ms of connecting, closing/.test(l)).length, 1, m.lines.join('\n'));
    await waitFor('the pool emptied', () => pool.held === 0, 2000);
  } finally {
    clearInterval(pinger);
    c.close();
    server.close();
  }
});
