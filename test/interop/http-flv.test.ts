import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { decode, probe, publish, waitFor } from '../helpers/ffmpeg.js';

const V = '__defaultVhost__';
const FLV_HEADER = Buffer.from('FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00', 'latin1');

/** A publisher's POST with node:http, which (unlike fetch) shows the Connection header. */
function rawPost(port: number, path: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
    });
    req.on('error', reject);
    req.end(FLV_HEADER);
  });
}

async function startGateway(extra = ''): Promise<{ gw: Gateway; port: number; lines: string[] }> {
  const { log, lines } = memoryLogger();
  const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost __defaultVhost__ { play { mw_latency 50ms; } ${extra} }`;
  const gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
  return { gw, port: gw.port('http'), lines };
}

describe('HTTP-FLV publish and play through the hub', () => {
  let gw: Gateway;
  let port: number;
  let lines: string[];
  before(async () => ({ gw, port, lines } = await startGateway()));
  after(() => gw.close());

  test('ffmpeg publishes, ffprobe sees h264 + aac, a late joiner starts on a key frame, unpublish ends players', async () => {
    const url = `http://127.0.0.1:${port}/live/a.flv`;
    const pub = publish(url, { seconds: 6 });
    try {
      await waitFor('stream a to be live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'a' })?.videoHeader);
      const p = await probe(url);
      assert.equal(p.stderr, '', p.stderr);
      const kinds = p.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();
      assert.deepEqual(kinds, ['audio:aac', 'video:h264']);
      assert.equal(p.streams.find((s) => s.codec_type === 'video')?.width, 320);

      // Join mid-stream: metadata, both sequence headers, then a key frame, all at once.
      await new Promise((r) => setTimeout(r, 1500));
      const player = new FlvPlayer(port, '/live/a.flv');
      await waitFor('the join burst', () => player.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header));
      assert.equal(player.status, 200);
      assert.equal(player.headers['content-type'], 'video/x-flv');
      assert.equal(player.headers['content-length'], undefined, 'live FLV has no Content-Length');
      assert.deepEqual(player.header, { hasAudio: true, hasVideo: true });
      const k = player.kinds();
      assert.ok(k.indexOf('video-header') >= 0 && k.indexOf('audio-header') >= 0, k.join(','));
      const firstFrame = player.packets.find((x) => x.pkt.kind === 'video' && !x.pkt.header)!;
      assert.ok(firstFrame.pkt.keyframe, 'the first video frame a joiner gets is a key frame');
      const joinedAt = gw.hub.find({ vhost: V, app: 'live', stream: 'a' })?.lastDts ?? 0;
      assert.ok(joinedAt > 1000, 'joined mid-stream, not at the start');
      // time_jitter full (the default): the joiner's own timeline, from 0 at that key frame.
      assert.equal(firstFrame.pkt.dts, 0);
      assert.ok(player.packets.filter((x) => x.pkt.kind !== 'script').every((x) => x.pkt.dts < 6000), 'every timestamp on that timeline');

      // A second publisher is refused while the first is live.
      const dup = await rawPost(port, '/live/a.flv');
      assert.equal(dup.status, 409);
      assert.equal(dup.connection, 'close', 'the refused publisher is told the connection closes');

      assert.equal(await pub.exited, 0, pub.stderr());
      await player.done;
      assert.ok(player.ended && player.lastChunk, 'the player response ended cleanly (last chunk) when the publisher stopped');
      // Its 0 is the key frame before it joined (GOP 1 s); the publish lasts 6 s.
      assert.ok(player.lastDts() > 5000 - joinedAt, `player kept receiving until the end (last dts ${player.lastDts()}, joined at ${joinedAt})`);
      await waitFor('stream a to be gone', () => !gw.hub.find({ vhost: V, app: 'live', stream: 'a' }));
      assert.ok(lines.some((l) => l.includes('unpublish live/a')));
    } finally {
      pub.kill();
    }
  });

  test('audio-only and video-only streams play, with FLV header flags that match the tracks', async () => {
    const cases = [
      { stream: 'audio', audio: true, video: false },
      { stream: 'video', audio: false, video: true },
    ];
    await Promise.all(cases.map(async (c) => {
      const pub = publish(`http://127.0.0.1:${port}/live/${c.stream}.flv`, { seconds: 4, audio: c.audio, video: c.video });
      try {
        await waitFor(`${c.stream} live`, () => gw.hub.find({ vhost: V, app: 'live', stream: c.stream })?.[c.video ? 'videoHeader' : 'audioHeader']);
        const player = new FlvPlayer(port, `/live/${c.stream}.flv`);
        await waitFor('media', () => player.packets.some((x) => !x.pkt.header && x.pkt.kind !== 'script'));
        assert.deepEqual(player.header, { hasAudio: c.audio, hasVideo: c.video });
        assert.ok(player.packets.every((x) => x.pkt.kind === 'script' || x.pkt.kind === (c.video ? 'video' : 'audio')));
        const d = await decode(`http://127.0.0.1:${port}/live/${c.stream}.flv`, 1);
        assert.equal(d.stderr, '', d.stderr);
        await pub.exited;
        await player.done;
      } finally {
        pub.kill();
      }
    }));
  });

  test('a stream that does not exist is 404 at once, for GET and HEAD', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/live/nothing.flv`);
    assert.equal(r.status, 404);
    assert.match(await r.text(), /stream not found/);
    const h = await fetch(`http://127.0.0.1:${port}/live/nothing.flv`, { method: 'HEAD' });
    assert.equal(h.status, 404);
  });

  test('a player that never reads does not hold back the others', async () => {
    const url = `http://127.0.0.1:${port}/live/stall.flv`;
    const pub = publish(url, { seconds: 6, size: '640x360' });
    try {
      await waitFor('stall live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'stall' })?.videoHeader);
      const stalled = new FlvPlayer(port, '/live/stall.flv', { paused: true });
      const normal = new FlvPlayer(port, '/live/stall.flv');
      const source = gw.hub.find({ vhost: V, app: 'live', stream: 'stall' })!;
      await waitFor('both seated', () => source.playerCount === 2);
      // Sample how far behind the publisher the reading player is, while the other reads nothing.
      let worst = 0;
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const pubDts = source.lastDts;
        if (pubDts > 0 && normal.lastDts() > 0) worst = Math.max(worst, pubDts - normal.lastDts());
      }
      assert.ok(worst < 1000, `the reading player stayed within ${worst} ms of the publisher`);
      await pub.exited;
      await normal.done;
      assert.ok(normal.ended);
      stalled.close();
    } finally {
      pub.kill();
    }
  });

  test('HEAD of a live stream answers headers only', async () => {
    const pub = publish(`http://127.0.0.1:${port}/live/head.flv`, { seconds: 3 });
    try {
      await waitFor('head live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'head' }));
      const r = await fetch(`http://127.0.0.1:${port}/live/head.flv`, { method: 'HEAD' });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'video/x-flv');
      assert.equal(await r.text(), '');
      await pub.exited;
    } finally {
      pub.kill();
    }
  });
});

describe('publish access rules', () => {
  test('an address outside `allow` needs the secret; with it, publishing works', async () => {
    const { gw, port } = await startGateway('publish { allow 10.0.0.0/8; secret s3cret; }');
    try {
      const body = Buffer.from('FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00', 'latin1');
      const denied = await fetch(`http://127.0.0.1:${port}/live/x.flv`, { method: 'POST', body });
      assert.equal(denied.status, 403);
      const wrong = await fetch(`http://127.0.0.1:${port}/live/x.flv?secret=nope`, { method: 'PUT', body });
      assert.equal(wrong.status, 403);
      const pub = publish(`http://127.0.0.1:${port}/live/x.flv?secret=s3cret`, { seconds: 2, fast: true });
      await waitFor('x live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'x' }));
      assert.equal(await pub.exited, 0, pub.stderr());
    } finally {
      await gw.close();
    }
  });
});

describe('edge pull from an upstream origin', () => {
  test('ten players on the edge make one upstream request; it closes after the last leaves', async () => {
    const origin = await startGateway();
    const edge = await startGateway(`edge { origin http://127.0.0.1:${origin.port}; idle_timeout 300ms; connect_timeout 2s; }`);
    const pub = publish(`http://127.0.0.1:${origin.port}/live/e.flv`, { seconds: 8 });
    try {
      await waitFor('e live on the origin', () => origin.gw.hub.find({ vhost: V, app: 'live', stream: 'e' })?.videoHeader);
      const players = Array.from({ length: 10 }, () => new FlvPlayer(edge.port, '/live/e.flv'));
      await waitFor('all ten playing', () => players.every((p) => p.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header)), 15_000);
      const upstreamPlayers = origin.gw.hub.clients().filter((c) => !c.publish);
      assert.equal(upstreamPlayers.length, 1, 'one upstream connection for ten players');
      assert.equal(edge.gw.hub.find({ vhost: V, app: 'live', stream: 'e' })?.playerCount, 10);
      for (const p of players) assert.deepEqual(p.header, { hasAudio: true, hasVideo: true });
      for (const p of players) p.close();
      await waitFor('the edge to close its upstream', () => origin.gw.hub.clients().filter((c) => !c.publish).length === 0, 5000);
      assert.equal(edge.gw.hub.find({ vhost: V, app: 'live', stream: 'e' }), undefined);

      const missing = await fetch(`http://127.0.0.1:${edge.port}/live/absent.flv`);
      assert.equal(missing.status, 404, 'upstream 404 becomes 404');
    } finally {
      pub.kill();
      await edge.gw.close();
      await origin.gw.close();
    }
  });

  test('when the upstream stream ends, edge players get a clean end of response', async () => {
    const origin = await startGateway();
    const edge = await startGateway(`edge { origin http://127.0.0.1:${origin.port}; idle_timeout 300ms; }`);
    const pub = publish(`http://127.0.0.1:${origin.port}/live/drop.flv`, { seconds: 30 });
    try {
      await waitFor('drop live on the origin', () => origin.gw.hub.find({ vhost: V, app: 'live', stream: 'drop' })?.videoHeader);
      const players = [new FlvPlayer(edge.port, '/live/drop.flv'), new FlvPlayer(edge.port, '/live/drop.flv')];
      await waitFor('both playing', () => players.every((p) => p.packets.length > 3), 15_000);
      pub.kill();
      await Promise.all(players.map((p) => p.done));
      for (const p of players) assert.ok(p.lastChunk, 'the chunked response was terminated, not cut');
      await waitFor('the edge source to go', () => edge.gw.hub.find({ vhost: V, app: 'live', stream: 'drop' }) === undefined);
    } finally {
      pub.kill();
      await edge.gw.close();
      await origin.gw.close();
    }
  });
});
