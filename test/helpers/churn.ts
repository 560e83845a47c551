import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { FlvPlayer } from './flv-player.js';
import { CliGateway, FlvPublisher, MiB, openFds, rssOf, sleep, timedGet } from './proc.js';

/**
 * Publish/unpublish and player join/leave churn against the gateway in its own process, shared
 * by the reliability test (reduced counts) and the soak run (five rounds of 1,000 publish and 10,000 player cycles).
 */
export interface ChurnPlan {
  publishCycles: number;
  /** Publishers at once (each cycle publishes a stream of its own). */
  publishWidth: number;
  playerCycles: number;
  /** Players at once. */
  playerWidth: number;
  /** Allowed growth of the gateway's RSS over its warmed-up baseline. */
  rssBoundMiB: number;
  /** Rounds of the cycles above: growth after the first round is what a leak shows as. */
  rounds: number;
  /** Allowed growth of the gateway's RSS from the end of the first round to the end of the last. */
  lateRssBoundMiB: number;
  /** Allowed difference of the gateway's open fds from its baseline. */
  fdSlack: number;
}

/** A light stream (one 1 s GOP of about 16 kB) so the figures measure churn, not bandwidth. */
const STREAM = { fps: 25, gop: 25, keyframeBytes: 4000, frameBytes: 400 };
/** Any one cycle that takes longer than this is a hang, and fails the run. */
const CYCLE_BOUND_MS = 10_000;
/** How long the gateway gets to close its side of connections the clients closed. */
const SETTLE_MS = 10_000;

/** Runs `n` calls of `fn`, `width` at a time. */
export async function inPool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) await fn(next++);
  }));
}

/** Resolves when `cond` holds, rejects after `ms` with `what`. */
async function until(what: string, cond: () => boolean, ms = CYCLE_BOUND_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(2);
  }
}

async function apiCount(port: number, what: 'streams' | 'clients'): Promise<number> {
  const r = await timedGet(port, `/api/v1/${what}/?count=10000`);
  assert.equal(r.status, 200, `/api/v1/${what}/ answered ${r.status}`);
  return (JSON.parse(r.body) as Record<string, unknown[]>)[what].length;
}

/**
 * One publish cycle: POST a short synthetic FLV and end it. Every fourth publisher hangs up
 * mid-stream instead of ending its body; every tenth stream has a player, who must see a clean end.
 */
async function publishCycle(port: number, i: number): Promise<void> {
  const path = `/live/churn-p${i}.flv`;
  const pub = new FlvPublisher(port, path, STREAM);
  pub.burst(STREAM.gop);
  let player: FlvPlayer | null = null;
  try {
    if (i % 10 === 0) {
      // The publisher's head and the player's request travel on different connections: retry the
      // player until the stream is mounted.
      for (let tries = 0; tries < 200; tries++) {
        player = new FlvPlayer(port, path);
        await until(`player of ${path} to get an answer`, () => player!.status !== 0 || player!.error !== null);
        if (player.status === 200) break;
        player.close();
        await player.done;
        player = null;
        await sleep(5);
      }
      assert.ok(player, `a player could join ${path}`);
      await until(`player of ${path} to get a frame`, () => player!.packets.some((p) => p.pkt.kind === 'video' && !p.pkt.header));
    }
    if (i % 4 === 3) {
      pub.destroy();
      await pub.response;
    } else {
      const status = await pub.end();
      assert.equal(status, 200, `publish ${path} answered ${status}`);
    }
    if (player) {
      await Promise.race([player.done, sleep(CYCLE_BOUND_MS)]);
      assert.ok(player.lastChunk, `the player of ${path} saw a clean end of response`);
    }
  } finally {
    pub.destroy();
    player?.close();
  }
}

/**
 * One player cycle against the live stream, leaving at a different moment by `i`: right after
 * sending the request, after the response head, after the first frame, or as a reader that
 * never read.
 */
async function playerCycle(port: number, path: string, i: number): Promise<void> {
  const kind = i % 4;
  const p = new FlvPlayer(port, path, { paused: kind === 3 });
  try {
    if (kind === 0) {
      await until('connect', () => !p.socket.connecting || p.error !== null);
      await sleep(1);
    } else if (kind === 1 || kind === 3) {
      if (kind === 3) p.resume();
      await until('the response head', () => p.status !== 0 || p.error !== null);
      assert.equal(p.status, 200);
      if (kind === 3) p.socket.pause();
    } else {
      await until('a frame', () => p.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header) || p.error !== null);
      assert.equal(p.error, null);
    }
  } finally {
    p.close();
    await p.done;
  }
}

export interface ChurnFigures {
  publishCycles: number;
  playerCycles: number;
  seconds: number;
  rss0MiB: number;
  rss1MiB: number;
  rssMiB: number;
  fds0: number;
  fds: number;
}

export async function runChurn(t: TestContext, plan: ChurnPlan): Promise<ChurnFigures> {
  // Every publish cycle is a new stream name; its HLS playlist and segments are kept for
  // hls_dispose after it ends (a minute by default). One second here, so what is measured is
  // what the hub and outputs keep for good, not a minute of ended playlists.
  // The gateway runs as `npm start` runs it, its young generation at 16 MiB semi-spaces: Node 24's
  // default grows them up to 64 MiB under this load, garbage waiting for a scavenge that read as
  // RSS growth (measured: 166 MiB over two rounds on Node 24 by default, 77 MiB pinned, 58 MiB on
  // Node 20), so both versions are held to the same bound and a real leak still shows.
  const gw = new CliGateway(`listen off; access_log off;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost __defaultVhost__ { play { mw_latency 50ms; } hls { hls_dispose 1; } }`);
  let live: FlvPublisher | null = null;
  try {
    const port = await gw.port('http');
    live = new FlvPublisher(port, '/live/churn.flv', STREAM).play();
    let tries = 0;
    while ((await apiCount(port, 'streams')) !== 1 && tries++ < 100) await sleep(20);

    // Warm up (JIT, pools, buffers) before the baseline, so the baseline is the steady state.
    await inPool(Math.min(200, plan.playerCycles), plan.playerWidth, (i) => playerCycle(port, '/live/churn.flv', i));
    await inPool(Math.min(20, plan.publishCycles), plan.publishWidth, (i) => publishCycle(port, 1_000_000 + i));
    await sleep(1000);
    const rss0 = rssOf(gw.pid);
    const fds0 = openFds(gw.pid);
    const started = performance.now();
    const rssAfter: number[] = [];
    for (let round = 0; round < plan.rounds; round++) {
      const t0 = performance.now();
      await inPool(plan.publishCycles, plan.publishWidth, (i) => publishCycle(port, round * plan.publishCycles + i));
      const pubS = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      await inPool(plan.playerCycles, plan.playerWidth, (i) => playerCycle(port, '/live/churn.flv', i));
      const playS = (performance.now() - t1) / 1000;
      rssAfter.push(rssOf(gw.pid));
      t.diagnostic(`round ${round + 1}: ${plan.publishCycles} publish/unpublish cycles (${plan.publishWidth} at a time) in ${pubS.toFixed(1)} s, `
        + `${plan.playerCycles} player join/leave cycles (${plan.playerWidth} at a time) in ${playS.toFixed(1)} s; gateway RSS ${(rssAfter[round] / MiB).toFixed(1)} MiB`);
    }
    const seconds = (performance.now() - started) / 1000;

    // Only the long-lived publisher is left.
    let streams = -1;
    let clients = -1;
    const settleEnd = Date.now() + SETTLE_MS;
    let fds = openFds(gw.pid);
    for (;;) {
      [streams, clients] = [await apiCount(port, 'streams'), await apiCount(port, 'clients')];
      fds = openFds(gw.pid);
      if ((streams === 1 && clients === 1 && Math.abs(fds - fds0) <= plan.fdSlack) || Date.now() > settleEnd) break;
      await sleep(200);
    }
    const rss = rssOf(gw.pid);
    assert.equal(streams, 1, 'only the long-lived stream is listed');
    assert.equal(clients, 1, 'only its publisher is listed');
    assert.ok(Math.abs(fds - fds0) <= plan.fdSlack, `gateway fds ${fds0} before the churn, ${fds} after (slack ${plan.fdSlack})`);
    assert.ok(rss - rss0 < plan.rssBoundMiB * MiB, `gateway RSS grew ${((rss - rss0) / MiB).toFixed(1)} MiB (bound ${plan.rssBoundMiB} MiB)`);
    // The first round lifts the heap to its working size; a leak keeps growing in the next ones.
    const lateGrowth = rss - rssAfter[0];
    assert.ok(lateGrowth < plan.lateRssBoundMiB * MiB, `gateway RSS grew ${(lateGrowth / MiB).toFixed(1)} MiB after the first round (bound ${plan.lateRssBoundMiB} MiB)`);

    // The last publisher leaves: the hub is empty.
    assert.equal(await live.end(), 200);
    live = null;
    tries = 0;
    while (((await apiCount(port, 'streams')) !== 0 || (await apiCount(port, 'clients')) !== 0) && tries++ < 100) await sleep(20);
    assert.equal(await apiCount(port, 'streams'), 0, 'no stream left in the hub');
    assert.equal(await apiCount(port, 'clients'), 0, 'no client left in the hub');
    assert.doesNotMatch(gw.log(), /\n\s+at |\[error\]/, 'no stack trace or error in the log');

    const figures = { publishCycles: plan.rounds * plan.publishCycles, playerCycles: plan.rounds * plan.playerCycles, seconds, rss0MiB: rss0 / MiB, rss1MiB: rssAfter[0] / MiB, rssMiB: rss / MiB, fds0, fds };
    const line = `churn: ${figures.publishCycles} publish and ${figures.playerCycles} player cycles in ${seconds.toFixed(1)} s; gateway RSS ${figures.rss0MiB.toFixed(1)} → ${figures.rss1MiB.toFixed(1)} (round 1) → ${figures.rssMiB.toFixed(1)} MiB, fds ${fds0} → ${fds}, hub 0 streams 0 clients after`;
    t.diagnostic(line);
    console.log(line);
    return figures;
  } finally {
    live?.destroy();
    gw.kill();
    await gw.exited;
  }
}
