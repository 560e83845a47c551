import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { MSG_VIDEO } from '../../src/ingest/rtmp/chunk.js';
import { probe, publish, run, waitFor } from '../helpers/ffmpeg.js';
import { openFds, sleep, timedGet } from '../helpers/proc.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';

/**
 * RTMP play before publish: the player waits for the publisher (SRS and nginx-rtmp keep it; rtmpdump
 * and GStreamer's rtmp2src give up on an immediate StreamNotFound), up to the vhost's
 * wait_publisher, and gets Play.Start and media when a real encoder (ffmpeg) starts 2 s later.
 * Without a publisher it gets StreamNotFound once the wait is over. HTTP-FLV keeps its 404 at once.
 */

const WAIT_MS = 6000;

describe('RTMP play before publish', () => {
  let gw: Gateway;
  let rtmp: number;
  let http: number;
  let lines: string[];
  before(async () => {
    const m = memoryLogger();
    lines = m.lines;
    gw = await Gateway.start(loadConfigText(`listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; wait_publisher ${WAIT_MS}ms; } }
      vhost short.example { play { wait_publisher 1s; } }`, 'wait.conf'), { log: m.log });
    rtmp = gw.port('rtmp');
    http = gw.port('http');
  });
  after(() => gw.close());

  test('a player that connects 2 s before ffmpeg publishes gets Play.Start and the stream; HTTP-FLV answers 404 meanwhile', async (t) => {
    const c = new RtmpTestClient(rtmp);
    let pub;
    try {
      await c.play('live', 'late');
      await waitFor('the player waiting', () => gw.hub.clients().length === 0 && lines.some((l) => /play of live\/late waits for its publisher/.test(l)), 5000);
      const flv = await timedGet(http, '/live/late.flv');
      assert.equal(flv.status, 404, 'HTTP-FLV does not wait');
      await sleep(2000);
      assert.deepEqual(c.statuses, [], 'nothing said while waiting');
      assert.ok(!c.isClosed);
      const startedAt = Date.now();
      pub = publish(`rtmp://127.0.0.1:${rtmp}/live/late`, { seconds: 4 });
      await c.until('Play.Start', () => c.statuses.includes('NetStream.Play.Start'), 8000);
      await c.until('video', () => c.messages.filter((m) => m.type === MSG_VIDEO).length >= 10, 8000);
      t.diagnostic(`Play.Start ${Date.now() - startedAt} ms after ffmpeg was started; statuses ${c.statuses.join(',')}`);
      assert.deepEqual(c.statuses.slice(0, 2), ['NetStream.Play.Reset', 'NetStream.Play.Start']);
      const first = c.messages.find((m) => m.type === MSG_VIDEO)!;
      assert.equal(first.payload[0], 0x17, 'the first video is the AVC sequence header');
      assert.equal(first.payload[1], 0);
      assert.equal(await pub.exited, 0, pub.stderr());
    } finally {
      pub?.kill();
      c.close();
    }
  });

  test('rtmpdump started 2 s before the publisher records the stream', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-rtmpdump-'));
    const out = join(dir, 'late.flv');
    const dump = run('rtmpdump', ['-r', `rtmp://127.0.0.1:${rtmp}/live/late2`, '-v', '-o', out, '-m', '20']);
    let pub;
    try {
      await waitFor('rtmpdump waiting', () => lines.some((l) => /play of live\/late2 waits for its publisher/.test(l)), 10_000);
      await sleep(2000);
      pub = publish(`rtmp://127.0.0.1:${rtmp}/live/late2`, { seconds: 4 });
      assert.equal(await pub.exited, 0, pub.stderr());
      const code = await Promise.race([dump.exited, sleep(15_000).then(() => 'timeout')]);
      const size = readFileSync(out).length;
      t.diagnostic(`rtmpdump exited ${code}; recorded ${size} bytes`);
      assert.notEqual(code, 'timeout', 'rtmpdump ends with the stream');
      assert.doesNotMatch(dump.stderr(), /StreamNotFound/);
      const p = await probe(out);
      assert.deepEqual(p.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(), ['audio:aac', 'video:h264'], p.stderr);
    } finally {
      pub?.kill();
      dump.kill();
    }
  });

  test('no publisher: StreamNotFound once wait_publisher (1 s) has passed, then the connection closes; nothing is left behind', async () => {
    const fds0 = openFds();
    const c = new RtmpTestClient(rtmp);
    try {
      await c.open('live', `rtmp://short.example/live`);
      const at = Date.now();
      c.command('play', 1, null, 'nobody', -2);
      await c.closed;
      const waited = Date.now() - at;
      assert.deepEqual(c.statuses, ['NetStream.Play.StreamNotFound']);
      assert.ok(waited >= 900 && waited < 4000, `StreamNotFound after ${waited} ms`);
      assert.equal(lines.filter((l) => /play of live\/nobody: no publisher within 1000 ms/.test(l)).length, 1);
      assert.equal(gw.budgets.unauthorized.held, 0, 'the waiting player gave back its charge');
      await waitFor('descriptors back', () => openFds() <= fds0, 3000);
    } finally {
      c.close();
    }
  });
});
