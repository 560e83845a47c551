import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlvDemuxer } from '../src/media/flv/demuxer.js';
import { CliGateway, MiB, rssOf, sleep, SyntheticStream } from '../test/helpers/proc.js';
import { RtmpTestClient } from '../test/helpers/rtmp-client.js';

/**
 * An RTMP player that stops reading while a heavy stream (about 5 MB/s) plays: it must be
 * dropped (backlog bound, then the stall timeout, about 20 s), while a reading player keeps up
 * and the gateway's memory stays flat. Too slow for `npm test`; run with `npm run soak`.
 */
test('a stalled RTMP player is dropped; a reading one keeps up; RSS stays bounded', async () => {
  const gw = new CliGateway(`listen 127.0.0.1:0;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost __defaultVhost__ { play { mw_latency 50ms; } }`);
  const rtmp = await gw.port('rtmp');
  const http = await gw.port('http');
  const players = async () => {
    const body = (await (await fetch(`http://127.0.0.1:${http}/api/v1/clients/`)).json()) as { clients: { type: string }[] };
    return body.clients.filter((c) => c.type === 'rtmp-play').length;
  };
  const pub = new RtmpTestClient(rtmp);
  const stalled = new RtmpTestClient(rtmp);
  const reader = new RtmpTestClient(rtmp);
  let timer: NodeJS.Timeout | undefined;
  try {
    await pub.publish('live', 'heavy');
    assert.deepEqual(pub.statuses, ['NetStream.Publish.Start']);
    const syn = new SyntheticStream({ fps: 25, gop: 25, keyframeBytes: 400_000, frameBytes: 180_000 });
    const flv = new FlvDemuxer();
    const send = (b: Buffer) => {
      for (const p of flv.push(b)) pub.media(p.kind === 'audio' ? 8 : 9, p.dts, p.data);
    };
    send(syn.start());
    timer = setInterval(() => send(syn.next()), 40);
    await stalled.play('live', 'heavy');
    await stalled.until('Play.Start', () => stalled.statuses.includes('NetStream.Play.Start'));
    stalled.socket.pause();
    await reader.play('live', 'heavy');
    await reader.until('media', () => reader.messages.some((m) => m.type === 9));
    const started = Date.now();
    let peak = 0;
    assert.equal(await players(), 2);
    // A paused socket does not see the server close it; the server's client list does.
    while ((await players()) === 2 && Date.now() - started < 60_000) {
      await sleep(500);
      peak = Math.max(peak, rssOf(gw.pid));
      // Drop what the reader got so far; only the timestamps matter.
      reader.messages.splice(0, Math.max(0, reader.messages.length - 50));
    }
    const after = Date.now() - started;
    assert.ok(after < 45_000, `the stalled player was dropped after ${after} ms`);
    const lastVideo = [...reader.messages].reverse().find((m) => m.type === 9);
    assert.ok(lastVideo && lastVideo.timestamp > syn.frame * 40 - 2000, `the reader is within 2 s of the publisher (${lastVideo?.timestamp} vs ${syn.frame * 40})`);
    assert.ok(!reader.isClosed);
    await gw.waitLine(/play of live\/heavy dropped: the player stopped reading/, 2000);
    assert.ok(peak < 400 * MiB, `peak RSS ${Math.round(peak / MiB)} MiB`);
    console.log(`stalled player dropped after ${after} ms; peak gateway RSS ${Math.round(peak / MiB)} MiB`);
  } finally {
    clearInterval(timer);
    for (const c of [pub, stalled, reader]) c.close();
    gw.signal('SIGTERM');
    await gw.exited;
  }
});
