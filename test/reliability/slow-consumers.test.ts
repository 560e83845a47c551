import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlvPlayer } from '../helpers/flv-player.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { CliGateway, FlvPublisher, MiB, rssOf, sleep } from '../helpers/proc.js';

const STALLED = 100;
const READERS = 3;
/** About 10 Mbit/s: the stalled players' buffers fill within seconds, as they would on a busy site. */
const STREAM = { keyframeBytes: 200_000, frameBytes: 40_000, fps: 25 };
const WATCH_MS = 10_000;
/** RSS growth of the gateway allowed while 100 players read nothing (their batches are shared). */
const RSS_GROWTH_BOUND = 96 * MiB;
const LAG_BOUND_MS = 1000;

test(`${STALLED} players that never read: the gateway's RSS stays bounded and ${READERS} normal players keep up`, async (t) => {
  const testStart = Date.now();
  const gw = new CliGateway(`listen off; max_connections 1000; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    access_log off; vhost __defaultVhost__ { play { mw_latency 100ms; } }`);
  const players: FlvPlayer[] = [];
  let pub: FlvPublisher | undefined;
  try {
    const port = await gw.port('http');
    pub = new FlvPublisher(port, '/live/busy.flv', STREAM).play();
    const readers = Array.from({ length: READERS }, () => new FlvPlayer(port, '/live/busy.flv'));
    players.push(...readers);
    await waitFor('readers to play', () => readers.every((p) => p.lastDts() > 0), 10_000);
    await sleep(1000);
    const baseline = rssOf(gw.pid);

    for (let i = 0; i < STALLED; i++) players.push(new FlvPlayer(port, '/live/busy.flv', { paused: true }));
    let peak = baseline;
    let worstLag = 0;
    const pubDts = () => Math.round(((pub!.stream.frame - 1) * 1000) / STREAM.fps);
    const until = Date.now() + WATCH_MS;
    while (Date.now() < until) {
      await sleep(250);
      peak = Math.max(peak, rssOf(gw.pid));
      for (const r of readers) worstLag = Math.max(worstLag, pubDts() - r.lastDts());
    }
    // What the gateway wrote (or queued) for each stalled player, from its own API.
    const api = await (await fetch(`http://127.0.0.1:${port}/api/v1/clients/?count=1000`)).json() as { clients: { type: string; send_bytes: number }[] };
    const plays = api.clients.filter((c) => c.type === 'flv-play');
    const stalledSent = plays.slice(READERS).map((c) => c.send_bytes);
    const mbit = (pub.stream.frame * (STREAM.frameBytes + STREAM.keyframeBytes / STREAM.fps) * 8) / (pub.stream.frame / STREAM.fps) / 1e6;
    t.diagnostic(`stream about ${mbit.toFixed(1)} Mbit/s for ${(WATCH_MS / 1000).toFixed(0)} s; the API lists ${plays.length} players; written to each stalled one before the backlog bound: ${(Math.min(...stalledSent) / MiB).toFixed(1)} to ${(Math.max(...stalledSent) / MiB).toFixed(1)} MiB`);
    t.diagnostic(`gateway RSS: ${(baseline / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB with the stalled players (+${((peak - baseline) / MiB).toFixed(1)} MiB, bound +${RSS_GROWTH_BOUND / MiB} MiB)`);
    t.diagnostic(`normal players: worst lag behind the publisher ${worstLag} ms (bound ${LAG_BOUND_MS} ms)`);
    assert.ok(peak - baseline < RSS_GROWTH_BOUND, `RSS grew ${((peak - baseline) / MiB).toFixed(1)} MiB`);
    assert.ok(worstLag < LAG_BOUND_MS, `normal players stayed within ${worstLag} ms`);
    for (const r of readers) assert.ok(!r.ended && !r.error, 'a normal player was not disconnected');
  } finally {
    for (const p of players) p.close();
    pub?.destroy();
    const t0 = Date.now();
    gw.signal('SIGTERM');
    const exit = await Promise.race([gw.exited, sleep(15_000).then(() => null)]);
    if (!exit) gw.kill();
    t.diagnostic(`SIGTERM to exit: ${Date.now() - t0} ms; test body ${Date.now() - testStart} ms`);
  }
});
