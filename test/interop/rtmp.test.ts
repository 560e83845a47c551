import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlvDemuxer } from '../../src/media/flv/demuxer.js';
import { decodeAmf0All, EcmaArray } from '../../src/ingest/rtmp/amf0.js';
import { CliGateway, MiB, rawExchange, rssOf, sleep, SyntheticStream } from '../helpers/proc.js';
import { decode, probe, publish, run } from '../helpers/ffmpeg.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';

/**
 * RTMP ingest and play against real ffmpeg/ffprobe, with the gateway as an operator runs it
 * (a child process on ephemeral loopback ports, learnt from its "listening on" lines).
 */

interface Running {
  gw: CliGateway;
  http: number;
  rtmp: number;
}

async function startGateway(vhostExtra = ''): Promise<Running> {
  const gw = new CliGateway(`listen 127.0.0.1:0;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost __defaultVhost__ { play { mw_latency 50ms; wait_publisher 1s; } ${vhostExtra} }`);
  return { gw, http: await gw.port('http'), rtmp: await gw.port('rtmp') };
}

async function stop(r: Running): Promise<void> {
  r.gw.signal('SIGTERM');
  const timer = setTimeout(() => r.gw.kill(), 10_000);
  await r.gw.exited;
  clearTimeout(timer);
}

interface ApiClient {
  id: string;
  type: string;
  url: string;
  tcUrl: string;
  publish: boolean;
  name: string;
}
interface ApiStream {
  name: string;
  app: string;
  video: { codec: string } | null;
  audio: { codec: string } | null;
}

async function api<T>(port: number, what: 'streams' | 'clients'): Promise<T[]> {
  const body = (await (await fetch(`http://127.0.0.1:${port}/api/v1/${what}/`)).json()) as Record<string, T[]>;
  return body[what];
}

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

const live = (r: Running, stream: string) =>
  until(`${stream} to be live with both tracks`, async () => (await api<ApiStream>(r.http, 'streams')).find((s) => s.name === stream && s.video && s.audio));

const codecs = (streams: { codec_type: string; codec_name: string }[]) => streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();

/** Log lines (with their arrival time) from index `from` on that match `re`. */
const linesMatching = (gw: CliGateway, re: RegExp, from = 0) => gw.lines.slice(from).filter((l) => re.test(l.text));

describe('RTMP: ffmpeg publishes, ffmpeg and HTTP-FLV players play', () => {
  let r: Running;
  before(async () => {
    r = await startGateway();
  });
  after(() => stop(r));

  test('publish, play over RTMP and HTTP-FLV (h264 + aac, clean decode, full duration), API entries, refused duplicate, republish', async () => {
    const url = `rtmp://127.0.0.1:${r.rtmp}/live/a`;
    const pub = publish(url, { seconds: 6 });
    const dir = mkdtempSync(join(tmpdir(), 'sg-rtmp-'));
    const rec = join(dir, 'rec.flv');
    let recorder;
    // A client that never finishes its handshake, checked at the end (the bound is 10 s).
    const mute = net.connect(r.rtmp, '127.0.0.1', () => mute.write(Buffer.concat([Buffer.from([3]), Buffer.alloc(1536)])));
    let muteClosed = false;
    mute.on('data', () => undefined).on('error', () => undefined).on('close', () => {
      muteClosed = true;
    });
    try {
      await live(r, 'a');
      // An RTMP player that records from now until the publisher leaves.
      recorder = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', url, '-c', 'copy', '-f', 'flv', rec]);
      const [overRtmp, overHttp] = await Promise.all([probe(url), probe(`http://127.0.0.1:${r.http}/live/a.flv`)]);
      assert.equal(overRtmp.stderr, '', overRtmp.stderr);
      assert.deepEqual(codecs(overRtmp.streams), ['audio:aac', 'video:h264']);
      assert.equal(overRtmp.streams.find((s) => s.codec_type === 'video')?.width, 320);
      assert.equal(overHttp.stderr, '', overHttp.stderr);
      assert.deepEqual(codecs(overHttp.streams), ['audio:aac', 'video:h264']);

      const clients = await until('the RTMP player in the API', async () => {
        const cs = await api<ApiClient>(r.http, 'clients');
        return cs.some((c) => c.type === 'rtmp-play') ? cs : undefined;
      });
      const publisher = clients.find((c) => c.type === 'fmle-publish');
      assert.ok(publisher, JSON.stringify(clients));
      assert.equal(publisher.publish, true);
      assert.equal(publisher.url, '/live/a');
      assert.equal(publisher.tcUrl, `rtmp://127.0.0.1:${r.rtmp}/live`);
      const player = clients.find((c) => c.type === 'rtmp-play')!;
      assert.equal(player.publish, false);
      assert.equal(player.name, 'a');

      // A second publisher to the live stream is refused; the first one is undisturbed.
      const mark = r.gw.lines.length;
      const dup = publish(url, { seconds: 2, fast: true });
      assert.notEqual(await dup.exited, 0, 'the duplicate publisher fails');
      assert.match(dup.stderr(), /BadName|already being published/, dup.stderr());
      assert.equal(linesMatching(r.gw, /publish live\/a refused: stream is already being published/, mark).length, 1, r.gw.log());

      assert.equal(await pub.exited, 0, pub.stderr());
      assert.equal(await recorder.exited, 0, `the RTMP player ends cleanly with the stream: ${recorder.stderr()}`);
      assert.equal(recorder.stderr(), '');
      const dur = run('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', rec]);
      await dur.exited;
      const seconds = Number(dur.stdout().toString().trim());
      assert.ok(seconds > 3.5, `the recording holds ${seconds} s of a 6 s stream joined about 1 s in`);
      const check = await decode(rec, 30);
      assert.equal(check.stderr, '', `decoding what came over RTMP reports no errors: ${check.stderr}`);
      await until('a to be gone', async () => !(await api<ApiStream>(r.http, 'streams')).some((s) => s.name === 'a'));
      assert.ok(linesMatching(r.gw, /unpublish live\/a \(unpublished by the client/).length === 1, r.gw.log());

      // Republish after unpublish works.
      const again = publish(url, { seconds: 2 });
      await live(r, 'a');
      const p = await probe(url);
      assert.deepEqual(codecs(p.streams), ['audio:aac', 'video:h264']);
      assert.equal(await again.exited, 0, again.stderr());

      await until('the handshake timeout', async () => muteClosed, 15_000);
      assert.equal(linesMatching(r.gw, /handshake not finished within 10000 ms/).length, 1, r.gw.log());
    } finally {
      pub.kill();
      recorder?.kill();
      mute.destroy();
    }
  });

  test('a stream that is not live: an RTMP play waits wait_publisher (1 s) for it, then fails with StreamNotFound', async () => {
    const c = new RtmpTestClient(r.rtmp);
    try {
      await c.play('live', 'nothing');
      await c.closed;
      assert.deepEqual(c.statuses, ['NetStream.Play.StreamNotFound']);
    } finally {
      c.close();
    }
  });

  test('bad input closes only the offending connection, with one log line; a live stream keeps playing', async () => {
    const pub = publish(`rtmp://127.0.0.1:${r.rtmp}/live/keep`, { seconds: 7 });
    const bad: RtmpTestClient[] = [];
    try {
      await live(r, 'keep');
      const watcher = new FlvPlayer(r.http, '/live/keep.flv');
      // A player that stops reading once playing: its backlog is its own problem.
      const stalled = new RtmpTestClient(r.rtmp);
      bad.push(stalled);
      await stalled.play('live', 'keep');
      await stalled.until('Play.Start', () => stalled.statuses.includes('NetStream.Play.Start'));
      stalled.socket.pause();
      assert.ok((await api<ApiClient>(r.http, 'clients')).some((c) => c.type === 'rtmp-play' && c.name === 'keep'));

      // 1. Not RTMP at all (an HTTP request on the RTMP port).
      let mark = r.gw.lines.length;
      const http = await rawExchange(r.rtmp, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 3000);
      assert.ok(http.closed, 'a non-RTMP handshake is closed');
      assert.equal(linesMatching(r.gw, /unsupported RTMP version byte 71/, mark).length, 1);

      // 2. A chunk header that refers to a chunk stream never opened.
      mark = r.gw.lines.length;
      const unknown = new RtmpTestClient(r.rtmp);
      bad.push(unknown);
      await unknown.ready();
      unknown.socket.write(Buffer.from([0x45, 0, 0, 0, 0, 0, 10, 9]));
      await unknown.closed;
      assert.equal(linesMatching(r.gw, /starts with a type-1 header/, mark).length, 1, r.gw.log());

      // 3. Truncated AMF in a command.
      mark = r.gw.lines.length;
      const amf = new RtmpTestClient(r.rtmp);
      bad.push(amf);
      await amf.open('live');
      amf.send([{ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: Buffer.from([2, 0, 50, 0x61, 0x62]) }]);
      await amf.closed;
      assert.equal(linesMatching(r.gw, /truncated AMF0/, mark).length, 1, r.gw.log());

      // 4. A publisher that goes bad mid-stream: media first, then an absurd message size.
      mark = r.gw.lines.length;
      const mid = new RtmpTestClient(r.rtmp);
      bad.push(mid);
      await mid.publish('live', 'bad');
      assert.deepEqual(mid.statuses, ['NetStream.Publish.Start']);
      const syn = new SyntheticStream({ keyframeBytes: 5000, frameBytes: 800 });
      const flv = new FlvDemuxer();
      mid.metadata({ width: 320, height: 240, videocodecid: 7, audiocodecid: 10 });
      for (const p of flv.push(syn.start())) mid.media(p.kind === 'audio' ? 8 : 9, p.dts, p.data);
      for (let i = 0; i < 30; i++) for (const p of flv.push(syn.next())) mid.media(p.kind === 'audio' ? 8 : 9, p.dts, p.data);
      await live(r, 'bad');
      const absurd = Buffer.from([0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0]);
      mid.socket.write(absurd);
      await mid.closed;
      const about = linesMatching(r.gw, /live\/bad/, mark).map((l) => l.text);
      assert.equal(about.filter((l) => l.includes('[warn]')).length, 1, about.join('\n'));
      assert.ok(about.some((l) => /\[warn\].*over the 8388608-byte bound/.test(l)), about.join('\n'));
      assert.ok(about.some((l) => /unpublish live\/bad \(malformed RTMP/.test(l)), about.join('\n'));
      await until('bad to be gone', async () => !(await api<ApiStream>(r.http, 'streams')).some((s) => s.name === 'bad'));

      // Meanwhile the other stream kept flowing to its player.
      const before = watcher.lastDts();
      await sleep(1000);
      assert.ok(watcher.lastDts() > before, `the watcher still receives media (${before} → ${watcher.lastDts()})`);
      assert.equal(await pub.exited, 0, pub.stderr());
      await watcher.done;
      assert.ok(watcher.lastChunk, 'the HTTP-FLV player saw a clean end');
      // What an HTTP-FLV player gets from an RTMP publish: header flags for both tracks (from
      // onMetaData, before any media), and the metadata as FLV's onMetaData, @setDataFrame stripped.
      assert.deepEqual(watcher.header, { hasAudio: true, hasVideo: true });
      const meta = watcher.packets.find((p) => p.pkt.kind === 'script');
      assert.ok(meta, watcher.kinds().slice(0, 5).join(','));
      const [name, props] = decodeAmf0All(meta.pkt.data);
      assert.equal(name, 'onMetaData');
      assert.ok(props instanceof EcmaArray && props.props.width === 320, JSON.stringify(props));
      assert.ok(watcher.lastDts() > 5500, `the watcher got the stream to its end (${watcher.lastDts()} ms)`);
      assert.ok(rssOf(r.gw.pid) < 300 * MiB, `gateway RSS ${Math.round(rssOf(r.gw.pid) / MiB)} MiB`);
    } finally {
      pub.kill();
      for (const c of bad) c.close();
    }
  });
});

describe('RTMP play of an HTTP-FLV publish', () => {
  test('a stream published over HTTP plays over RTMP; an RTMP player kicked through the API is disconnected', async () => {
    const r = await startGateway();
    const pub = publish(`http://127.0.0.1:${r.http}/live/h.flv`, { seconds: 4 });
    const player = new RtmpTestClient(r.rtmp);
    try {
      await live(r, 'h');
      const p = await probe(`rtmp://127.0.0.1:${r.rtmp}/live/h`);
      assert.equal(p.stderr, '', p.stderr);
      assert.deepEqual(codecs(p.streams), ['audio:aac', 'video:h264']);

      await player.play('live', 'h');
      await player.until('media', () => player.messages.some((m) => m.type === 9));
      assert.deepEqual(player.statuses, ['NetStream.Play.Reset', 'NetStream.Play.Start']);
      // What comes first after Play.Start: |RtmpSampleAccess, onMetaData, the sequence headers, then a key frame.
      const media = player.messages.filter((m) => m.type === 8 || m.type === 9 || m.type === 18);
      assert.equal(decodeAmf0All(media[0].payload)[0], '|RtmpSampleAccess');
      assert.equal(decodeAmf0All(media[1].payload)[0], 'onMetaData');
      const firstVideo = media.find((m) => m.type === 9)!;
      assert.equal(firstVideo.payload[0], 0x17, 'AVC key frame');
      assert.equal(firstVideo.payload[1], 0, 'the AVC sequence header comes first');

      const me = (await api<ApiClient>(r.http, 'clients')).find((c) => c.type === 'rtmp-play');
      assert.ok(me);
      const del = await fetch(`http://127.0.0.1:${r.http}/api/v1/clients/${me.id}`, { method: 'DELETE' });
      assert.equal(del.status, 200);
      await player.closed;
      assert.equal(await pub.exited, 0, 'the publisher did not notice');
    } finally {
      pub.kill();
      player.close();
      await stop(r);
    }
  });
});

describe('RTMP publish access rules', () => {
  test('outside `allow` a publisher needs the secret, in the stream name or in the tcUrl', async () => {
    // 127.0.0.1 is not in 10.0.0.0/8, so loopback is treated like any outside address here.
    const r = await startGateway('publish { allow 10.0.0.0/8; secret s3cret; }');
    const base = `rtmp://127.0.0.1:${r.rtmp}/live`;
    try {
      const [none, wrong] = [publish(`${base}/x`, { seconds: 1, fast: true }), publish(`${base}/x?secret=nope`, { seconds: 1, fast: true })];
      assert.notEqual(await none.exited, 0);
      assert.notEqual(await wrong.exited, 0);
      assert.match(none.stderr(), /Denied|not allowed/, none.stderr());
      assert.equal(linesMatching(r.gw, /publish live\/x refused: publishing is not allowed/).length, 2, r.gw.log());

      const inName = publish(`${base}/x?secret=s3cret`, { seconds: 1, fast: true });
      const inTcUrl = publish(`${base}/y`, { seconds: 1, fast: true, format: ['-rtmp_app', 'live', '-rtmp_playpath', 'y', '-rtmp_tcurl', `${base}?secret=s3cret`, '-f', 'flv'] });
      // ffmpeg splits rtmp://HOST/live?secret=…/z into app "live?secret=…" and stream "z".
      const inApp = publish(`${base}?secret=s3cret/z`, { seconds: 1, fast: true });
      assert.equal(await inName.exited, 0, inName.stderr());
      assert.equal(await inTcUrl.exited, 0, inTcUrl.stderr());
      assert.equal(await inApp.exited, 0, inApp.stderr());
      assert.equal(linesMatching(r.gw, /^.*\[info\] publish live\/(x|y|z) from 127\.0\.0\.1 over RTMP/).length, 3, r.gw.log());
    } finally {
      await stop(r);
    }
  });

  test('loopback may publish without a secret by default', async () => {
    const r = await startGateway();
    try {
      const p = publish(`rtmp://127.0.0.1:${r.rtmp}/live/d`, { seconds: 1, fast: true });
      assert.equal(await p.exited, 0, p.stderr());
    } finally {
      await stop(r);
    }
  });
});

describe('RTMP and shutdown', () => {
  test('SIGTERM ends RTMP players cleanly, closes publishers and idle connections, and the gateway exits', async () => {
    const r = await startGateway();
    const url = `rtmp://127.0.0.1:${r.rtmp}/live/s`;
    const pub = publish(url, { seconds: 30 });
    const idle = new RtmpTestClient(r.rtmp);
    let player;
    try {
      await live(r, 's');
      await idle.open('live');
      player = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', url, '-c', 'copy', '-f', 'null', '-']);
      await until('the RTMP player', async () => (await api<ApiClient>(r.http, 'clients')).some((c) => c.type === 'rtmp-play'));
      const t0 = Date.now();
      r.gw.signal('SIGTERM');
      const exit = await r.gw.exited;
      assert.equal(exit.code, 0, r.gw.log());
      assert.ok(exit.at - t0 < 5000, `exited ${exit.at - t0} ms after SIGTERM`);
      assert.equal(await player.exited, 0, `the player saw the end of the stream, not an error: ${player.stderr()}`);
      assert.equal(player.stderr(), '');
      await idle.closed;
      assert.notEqual(await pub.exited, 0, 'the encoder is disconnected');
    } finally {
      pub.kill();
      player?.kill();
      idle.close();
      r.gw.kill();
    }
  });
});
