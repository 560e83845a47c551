import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { FlvPublisher, sleep } from '../helpers/proc.js';

const REQUEST_TIMEOUT_MS = 1500;
const EACH = 20;
const BIG_BYTES = 32 * 1024 * 1024;
/** Closing may lag the timeout on a busy 2-core machine. */
const SLACK_MS = 5000;

test(`stalled bodies and clients that stop reading are closed after request_timeout; steady slow ones are not`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-slow-transfer-'));
  writeFileSync(join(dir, 'index.html'), 'ok\n');
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(BIG_BYTES, 0x42));
  const { log } = memoryLogger();
  const conf = `listen off; access_log off;
    http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    limits { request_timeout ${REQUEST_TIMEOUT_MS}ms; keepalive_timeout 30s; }
    vhost __defaultVhost__ { play { mw_latency 50ms; } }`;
  const gw = await Gateway.start(loadConfigText(conf, 'slow-transfer.conf'), { log });
  const port = gw.port('http');
  const stalled: { kind: string; socket: net.Socket; at: number }[] = [];
  const pub = new FlvPublisher(port, '/live/steady.flv').play();
  let player: FlvPlayer | null = null;
  try {
    await waitFor('the stream', () => gw.hub.all().length === 1);
    const p = new FlvPlayer(port, '/live/steady.flv');
    player = p;
    await waitFor('the player to get frames', () => p.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header));
    const connsBefore = gw.traffic().connections;

    const open = async (kind: string, first: string, second?: string) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.write(first);
      if (second !== undefined) {
        // The second request of a keep-alive connection: Node forgets server.timeout there.
        await once(socket, 'data');
        socket.write(second);
      }
      stalled.push({ kind, socket, at: Date.now() });
    };
    for (let i = 0; i < EACH; i++) {
      // An API body announced and never sent.
      await open('stalled API body', 'POST /rtc/v1/publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"sdp":');
      // The same after a first request on the connection.
      await open('stalled body, 2nd request', 'GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n',
        'POST /rtc/v1/publish/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
      // A download nobody reads: the socket buffers fill and nothing moves.
      await open('download never read', 'GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n');
      stalled[stalled.length - 1].socket.pause();
    }
    assert.equal(gw.traffic().connections, connsBefore + 3 * EACH, 'every stalled connection is open on the gateway');

    // A steady slow reader: 4 MiB at a time with pauses shorter than the timeout, for longer than the timeout.
    const steady = new Promise<{ bytes: number; complete: boolean }>((resolve) => {
      let bytes = 0;
      http.get({ host: '127.0.0.1', port, path: '/big.bin', agent: false }, (res) => {
        let since = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          since += c.length;
          if (since >= 4 * 1024 * 1024 && bytes < BIG_BYTES) {
            since = 0;
            res.pause();
            setTimeout(() => res.resume(), REQUEST_TIMEOUT_MS / 3);
          }
        });
        res.on('end', () => resolve({ bytes, complete: res.complete }));
        res.on('close', () => resolve({ bytes, complete: res.complete }));
      }).on('error', () => resolve({ bytes, complete: false }));
    });

    const started = Math.max(...stalled.map((s) => s.at));
    await waitFor('the stalled connections to be closed', () => gw.traffic().connections <= connsBefore + 1, REQUEST_TIMEOUT_MS + SLACK_MS + 2000, 50).catch(() => {});
    const closedMs = Date.now() - started;
    const left = gw.traffic().connections - connsBefore - 1;
    t.diagnostic(`${3 * EACH} stalled connections (request_timeout ${REQUEST_TIMEOUT_MS} ms): ${left <= 0 ? 'all closed' : `${left} still open`} ${closedMs} ms after the last was opened`);
    assert.ok(left <= 0, `${left} stalled connections still open`);
    assert.ok(closedMs < REQUEST_TIMEOUT_MS + SLACK_MS, `closed after ${closedMs} ms`);

    // The clients that did read see an answer or a close, not a hang: the body ones get EOF.
    for (const s of stalled.filter((x) => x.kind !== 'download never read')) {
      s.socket.resume();
      if (!s.socket.destroyed) await Promise.race([once(s.socket, 'close'), sleep(2000)]);
      assert.ok(s.socket.destroyed, `${s.kind}: the client saw its connection closed`);
    }

    const d = await steady;
    t.diagnostic(`steady slow reader: ${d.bytes} of ${BIG_BYTES} bytes, complete ${d.complete}; live player: ${player.packets.length} packets, ended ${player.ended}`);
    assert.ok(d.complete && d.bytes === BIG_BYTES, 'a slow but steady download is not cut');
    assert.ok(!player.ended && player.error === null, 'a live player is not cut');
    assert.equal(gw.hub.all().length, 1, 'the publisher, sending all along, is still live');
  } finally {
    for (const s of stalled) s.socket.destroy();
    player?.close();
    pub.destroy();
    await gw.close();
  }
});
