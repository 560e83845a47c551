import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MSG_ACK, MSG_WINDOW_ACK_SIZE } from '../../src/ingest/rtmp/chunk.js';
import { CliGateway, sleep } from '../helpers/proc.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';

/**
 * One RTMP connection's bytes must not keep the event loop from every other client: the chunk
 * reader gets at most 16 KiB of a connection a turn (rtmp/conn.ts TURN_BYTES), the rest waits
 * with the socket paused. Pushed far past it: 400,000 small messages (2 MB) in one write, then
 * a GET on a keep-alive connection. The gateway acknowledges what it has read after every slice
 * (the peer asked for a window of one byte), so the client sees how far the flood had got when
 * the GET was answered: without the bound, all of it (libuv hands a socket up to 2 MiB in one go).
 */

const MESSAGES = 400_000;

test(`a GET is answered while one RTMP connection's ${MESSAGES}-message write is still being read`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-rtmp-fair-'));
  writeFileSync(join(dir, 'index.html'), 'ok\n');
  const gw = new CliGateway(`listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } } access_log off;`, dir);
  try {
    const rtmp = new RtmpTestClient(await gw.port('rtmp'));
    await rtmp.ready();
    const window = Buffer.alloc(4);
    window.writeUInt32BE(1);
    rtmp.send([{ csid: 2, type: MSG_WINDOW_ACK_SIZE, streamId: 0, timestamp: 0, payload: window }]);
    const web = net.connect(await gw.port('http'), '127.0.0.1');
    await once(web, 'connect');
    // Acknowledgements carry the bytes the gateway had read when it sent them (§5.4.3).
    const acked = () => rtmp.messages.filter((m) => m.type === MSG_ACK).reduce((n, m) => Math.max(n, m.payload.readUInt32BE(0)), 0);
    let head = '';
    let ackedAtAnswer = -1;
    web.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (ackedAtAnswer < 0) ackedAtAnswer = acked();
    });
    const flood = rtmp.writer.write(Array.from({ length: MESSAGES }, (_, i) => ({ csid: 2, type: MSG_ACK, streamId: 0, timestamp: 0, payload: Buffer.from([0, 0, i >> 8, i & 0xff]) })));
    rtmp.socket.write(flood);
    web.write('GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n');
    // Bounds, not speed checks: a loaded machine is slow at both.
    const until = Date.now() + 20_000;
    while (Date.now() < until && (ackedAtAnswer < 0 || acked() < flood.length)) await sleep(20);
    assert.match(head, /^HTTP\/1\.1 200/, 'the GET was answered');
    assert.ok(acked() >= flood.length, `the whole flood was read (${acked()} of ${flood.length} bytes acknowledged)`);
    t.diagnostic(`the GET's answer came when ${ackedAtAnswer} of the flood's ${flood.length} bytes had been acknowledged`);
    assert.ok(ackedAtAnswer < flood.length / 2, `answered while the flood was still being read (${ackedAtAnswer} of ${flood.length} bytes)`);
    web.destroy();
    rtmp.close();
  } finally {
    gw.kill();
    await gw.exited;
  }
});
