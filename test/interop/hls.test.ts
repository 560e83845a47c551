import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { track } from '../helpers/proc.js';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { sendfileBuilt } from '../../src/net/sendfile.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, ffmpegArgs, probe, publish, run, waitFor } from '../helpers/ffmpeg.js';
import { keepAliveGets, lane, rawExchange, rawGet, parseReply } from '../integration/site.js';

/**
 * Every live stream as HLS, continuous MPEG-TS and ADTS, checked with real ffmpeg/ffprobe the way
 * a person would: fetch the playlist, look at the segments, play the URLs; and an HLS upload from
 * ffmpeg's PUT mode played back.
 */

const V = '__defaultVhost__';
const FPS = 25;

async function startGateway(extra = '', dir = './public'): Promise<{ gw: Gateway; port: number; lines: string[] }> {
  const { log, lines } = memoryLogger();
  const conf = `listen off; http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    vhost __defaultVhost__ { play { mw_latency 50ms; } hls { enabled on; hls_fragment 1; hls_window 3; hls_dispose 6s; } ${extra} }`;
  const gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
  return { gw, port: gw.port('http'), lines };
}

interface Playlist {
  text: string;
  target: number;
  sequence: number;
  segments: { uri: string; duration: number; discontinuity: boolean }[];
  ended: boolean;
}

function parsePlaylist(text: string): Playlist {
  const lines = text.trim().split('\n');
  assert.equal(lines[0], '#EXTM3U');
  const tag = (name: string) => lines.find((l) => l.startsWith(`#${name}:`))?.slice(name.length + 2);
  const segments: Playlist['segments'] = [];
  let duration = -1;
  let discontinuity = false;
  for (const l of lines) {
    if (l.startsWith('#EXTINF:')) duration = Number(l.slice(8, l.indexOf(',')));
    else if (l === '#EXT-X-DISCONTINUITY') discontinuity = true;
    else if (!l.startsWith('#')) {
      segments.push({ uri: l, duration, discontinuity });
      discontinuity = false;
    }
  }
  return { text, target: Number(tag('EXT-X-TARGETDURATION')), sequence: Number(tag('EXT-X-MEDIA-SEQUENCE')), segments, ended: lines.includes('#EXT-X-ENDLIST') };
}

async function playlist(port: number, path: string): Promise<Playlist> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await r.text();
  assert.equal(r.status, 200, text);
  assert.equal(r.headers.get('content-type'), 'application/vnd.apple.mpegurl');
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  return parsePlaylist(text);
}

/** ffprobe's frames of a TS held in memory: media type, key flag, time. */
async function framesOf(ts: Buffer): Promise<{ type: string; key: boolean; t: number }[]> {
  const child = track(spawn('ffprobe', ['-v', 'error', '-show_entries', 'frame=media_type,key_frame,pts_time', '-of', 'csv=p=0', '-i', 'pipe:0']));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.end(ts);
  await new Promise((r) => child.once('close', r));
  assert.equal(err, '', err);
  return out.trim().split('\n').map((l) => {
    const [type, key, t] = l.split(',');
    return { type, key: key === '1', t: Number(t) };
  });
}

describe('live HLS, TS and AAC from an HTTP-FLV publish', () => {
  let gw: Gateway;
  let port: number;
  before(async () => ({ gw, port } = await startGateway()));
  after(() => gw.close());

  test('segments start on key frames and last what the playlist says; the window slides; ffmpeg reads it all; ENDLIST at the end', async () => {
    const pub = publish(`http://127.0.0.1:${port}/live/h.flv`, { seconds: 8, fps: FPS, gop: FPS });
    try {
      // A playlist asked for right after the publish starts waits for the first segment rather than 404.
      await waitFor('h live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'h' }));
      const early = await playlist(port, '/live/h.m3u8');
      assert.ok(early.segments.length >= 1, early.text);

      const first = await waitFor('three segments', async () => {
        const p = await playlist(port, '/live/h.m3u8');
        return p.segments.length >= 3 ? p : undefined;
      }, 10_000);
      assert.match(first.text, /^#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:\d+\n#EXT-X-MEDIA-SEQUENCE:\d+\n/);
      assert.ok(!first.ended);
      // Reads the live window to its end (ENDLIST), in parallel with the checks below.
      const reader = decode(`http://127.0.0.1:${port}/live/h.m3u8`, 30);
      const responses = await Promise.all(first.segments.map((s) => fetch(`http://127.0.0.1:${port}/live/${s.uri}`)));
      const bodies = await Promise.all(responses.map(async (r) => Buffer.from(await r.arrayBuffer())));
      for (const [ext, type] of [['ts', 'video/mp2t'], ['aac', 'audio/aac']]) {
        const h = await fetch(`http://127.0.0.1:${port}/live/h.${ext}`, { method: 'HEAD' });
        assert.equal(h.status, 200);
        assert.equal(h.headers.get('content-type'), type);
      }
      // The API lists this test's fetches as an HLS viewer (ffmpeg's reader is another), with the segment bytes it fetched.
      const api = (await (await fetch(`http://127.0.0.1:${port}/api/v1/clients/`)).json()) as { clients: { type: string; name: string; send_bytes: number }[] };
      const fetched = bodies.reduce((n, b) => n + b.length, 0);
      assert.ok(api.clients.some((c) => c.type === 'hls-play' && c.name === 'h' && c.send_bytes >= fetched), JSON.stringify(api.clients));
      // Live .ts and .aac while the stream is on.
      const [ts, aac] = await Promise.all([decode(`http://127.0.0.1:${port}/live/h.ts`, 1.5), decode(`http://127.0.0.1:${port}/live/h.aac`, 1.5)]);
      assert.equal(ts.stderr, '', `live .ts: ${ts.stderr}`);
      assert.equal(aac.stderr, '', `live .aac: ${aac.stderr}`);

      for (const [i, s] of first.segments.entries()) {
        assert.match(s.uri, /^h-\d+\.ts$/, 'relative SRS-style names');
        const r = responses[i];
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('content-type'), 'video/mp2t');
        assert.match(r.headers.get('cache-control') ?? '', /max-age=\d{3,}/, 'segments never change: cacheable');
        const body = bodies[i];
        assert.equal(body.length % 188, 0);
        const frames = await framesOf(body);
        const video = frames.filter((f) => f.type === 'video');
        assert.ok(video[0].key, `${s.uri} starts on a key frame`);
        assert.ok(frames.some((f) => f.type === 'audio'), `${s.uri} has audio`);
        // A segment holds whole seconds of 25 fps video here (GOP 1 s, fragment 1 s).
        assert.ok(Math.abs(video.length / FPS - s.duration) <= 0.09, `${s.uri}: ${video.length} frames vs EXTINF ${s.duration}`);
        assert.ok(Math.round(s.duration) <= first.target, 'EXTINF within the target duration');
      }

      const later = await waitFor('the window to slide', async () => {
        const p = await playlist(port, '/live/h.m3u8');
        return p.sequence > first.sequence ? p : undefined;
      }, 8000);
      assert.ok(later.segments.reduce((n, s) => n + s.duration, 0) < 3 + 1.5, 'the window holds about hls_window seconds');
      assert.equal(later.segments[0].uri, `h-${later.sequence}.ts`, 'MEDIA-SEQUENCE names the first segment');

      assert.equal(await pub.exited, 0, pub.stderr());
      const end = await waitFor('ENDLIST', async () => {
        const p = await playlist(port, '/live/h.m3u8');
        return p.ended ? p : undefined;
      }, 5000);
      assert.ok(end.segments.length >= 2);
      const read = await reader;
      assert.equal(read.stderr, '', `ffmpeg -i h.m3u8: ${read.stderr}`);
      assert.equal(read.code, 0);
    } finally {
      pub.kill();
    }
  });

  test('an encoder back within the grace continues the playlist after EXT-X-DISCONTINUITY; ENDLIST, once added, stays until the playlist is disposed', async () => {
    const url = `http://127.0.0.1:${port}/live/re.flv`;
    const seen: Playlist[] = [];
    let watching = true;
    // Every version the URL serves, as a player polling it would see them.
    const watcher = (async () => {
      while (watching) {
        const r = await fetch(`http://127.0.0.1:${port}/live/re.m3u8`);
        if (r.status === 200) seen.push(parsePlaylist(await r.text()));
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const one = publish(url, { seconds: 3, fps: FPS, gop: FPS });
    assert.equal(await one.exited, 0, one.stderr());
    const two = publish(url, { seconds: 3, fps: FPS, gop: FPS });
    try {
      assert.equal(await two.exited, 0, two.stderr());
      // The version where the second publish's first segment joined the first publish's.
      const joined = await waitFor('segments of the second publish', () => seen.find((p) => p.segments.findIndex((s) => s.discontinuity) > 0), 8000);
      const at = joined.segments.findIndex((s) => s.discontinuity);
      const num = (u: string) => Number(/-(\d+)\.ts$/.exec(u)![1]);
      assert.equal(num(joined.segments[at].uri), num(joined.segments[at - 1].uri) + 1, 'numbering continues across the discontinuity');
      const ended = await waitFor('ENDLIST after the grace', async () => {
        const p = await playlist(port, '/live/re.m3u8');
        return p.ended ? p : undefined;
      }, 8000);
      // A publisher after ENDLIST: the ended playlist is what the URL serves until it is disposed.
      const three = publish(url, { seconds: 6, fps: FPS, gop: FPS });
      try {
        const fresh = await waitFor('a fresh playlist once the ended one is disposed', async () => {
          const p = await playlist(port, '/live/re.m3u8');
          return !p.ended && p.segments.length > 0 ? p : undefined;
        }, 12_000);
        assert.ok(num(fresh.segments[0].uri) > num(ended.segments.at(-1)!.uri), 'numbered above the ended playlist');
        assert.ok(!fresh.segments.some((s) => s.discontinuity), 'a new playlist, not a continuation');
        await waitFor('the poller to see it too', () => seen.length > 0 && !seen[seen.length - 1].ended, 3000);
      } finally {
        three.kill();
      }
    } finally {
      two.kill();
      watching = false;
      await watcher;
    }
    // RFC 8216 §6.2.1 as a player polling the URL saw it: before ENDLIST, only appends; after it,
    // the same text until a playlist with none of its segments replaced it.
    const firstEnd = seen.findIndex((p) => p.ended);
    assert.ok(firstEnd > 0, 'ENDLIST was seen');
    assert.ok(seen.slice(0, firstEnd).every((p) => !p.ended));
    const endedText = seen[firstEnd].text;
    const after = seen.slice(firstEnd);
    const change = after.findIndex((p) => p.text !== endedText);
    assert.ok(change > 0, 'a fresh playlist followed');
    const oldUris = new Set(seen.slice(0, firstEnd + 1).flatMap((p) => p.segments.map((s) => s.uri)));
    for (const p of after.slice(change)) assert.ok(p.segments.every((s) => !oldUris.has(s.uri)), 'the fresh playlist shares no segment with the ended one');
    for (let i = 1; i < firstEnd; i++) assert.ok(seen[i].sequence >= seen[i - 1].sequence, 'MEDIA-SEQUENCE never goes back');
  });

  test('audio-only: .aac and HLS (cut by time) play; video-only: .aac is 404 naming the missing track', async () => {
    const a = publish(`http://127.0.0.1:${port}/live/radio.flv`, { seconds: 4, video: false });
    const v = publish(`http://127.0.0.1:${port}/live/mute.flv`, { seconds: 4, audio: false });
    try {
      await waitFor('radio live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'radio' })?.audioHeader);
      await waitFor('mute live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'mute' })?.videoHeader);
      const [aac, m3u8] = await Promise.all([
        decode(`http://127.0.0.1:${port}/live/radio.aac`, 1),
        waitFor('two audio segments', async () => {
          const p = await playlist(port, '/live/radio.m3u8');
          return p.segments.length >= 2 ? p : undefined;
        }, 6000),
      ]);
      assert.equal(aac.stderr, '', aac.stderr);
      const segRes = await fetch(`http://127.0.0.1:${port}/live/${m3u8.segments[0].uri}`);
      assert.equal(segRes.status, 200, m3u8.text);
      const seg = Buffer.from(await segRes.arrayBuffer());
      const frames = await framesOf(seg);
      assert.ok(frames.length > 0 && frames.every((f) => f.type === 'audio'));
      assert.ok(Math.abs(m3u8.segments[0].duration - 1) < 0.1, `audio segments cut by time: ${m3u8.segments[0].duration}`);

      const none = await fetch(`http://127.0.0.1:${port}/live/mute.aac`);
      assert.equal(none.status, 404);
      assert.match(await none.text(), /stream live\/mute has no AAC audio/);
      const mp3 = await fetch(`http://127.0.0.1:${port}/live/radio.mp3`);
      assert.equal(mp3.status, 404);
      assert.match(await mp3.text(), /has no MP3 audio/);
      await Promise.all([a.exited, v.exited]);
    } finally {
      a.kill();
      v.kill();
    }
  });

  test('MP3 audio: .mp3 passes the frames through, HLS carries it as MPEG audio', async () => {
    const args = ffmpegArgs(`http://127.0.0.1:${port}/live/mp3.flv`, { seconds: 8, video: false }).map((a) => (a === 'aac' ? 'libmp3lame' : a));
    const pub = run('ffmpeg', args);
    try {
      await waitFor('mp3 live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'mp3' })?.audioCodec === 2);
      const d = await decode(`http://127.0.0.1:${port}/live/mp3.mp3`, 1);
      assert.equal(d.stderr, '', d.stderr);
      // The API reads rate and channels from the MP3 frame header, as ffprobe does (lavfi's sine is mono).
      const api = (await (await fetch(`http://127.0.0.1:${port}/api/v1/streams/`)).json()) as { streams: { name: string; audio: { codec: string; sample_rate: number; channel: number } }[] };
      assert.deepEqual(api.streams.find((x) => x.name === 'mp3')?.audio, { codec: 'MP3', sample_rate: 44100, channel: 1, profile: '' });
      const p = await waitFor('an mp3 segment', async () => {
        const x = await playlist(port, '/live/mp3.m3u8');
        return x.segments.length >= 1 ? x : undefined;
      }, 6000);
      const seg = Buffer.from(await (await fetch(`http://127.0.0.1:${port}/live/${p.segments[0].uri}`)).arrayBuffer());
      const frames = await framesOf(seg);
      assert.ok(frames.length > 10 && frames.every((f) => f.type === 'audio'));
      const aac = await fetch(`http://127.0.0.1:${port}/live/mp3.aac`);
      assert.equal(aac.status, 404);
      assert.match(await aac.text(), /has no AAC audio/);
      await pub.exited;
    } finally {
      pub.kill();
    }
  });

  test('a stream that does not exist: playlist, .ts and .aac are 404 at once', async () => {
    for (const ext of ['m3u8', 'ts', 'aac', 'mp3']) {
      const started = Date.now();
      const r = await fetch(`http://127.0.0.1:${port}/live/absent.${ext}`);
      assert.equal(r.status, 404, ext);
      assert.ok(Date.now() - started < 1000, `${ext} answered at once`);
    }
    const post = await fetch(`http://127.0.0.1:${port}/live/absent.m3u8`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.match(post.headers.get('allow') ?? '', /PUT, DELETE/);
  });
});

describe('HLS PUT ingest', () => {
  test('ffmpeg -f hls -method PUT uploads; ffprobe plays the upload back; DELETE removes', async () => {
    const { gw, port } = await startGateway();
    try {
      const up = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${FPS}`, '-f', 'lavfi', '-i', 'sine',
        '-t', '4', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-g', String(FPS), '-c:a', 'aac',
        '-f', 'hls', '-method', 'PUT', '-hls_time', '1', '-http_persistent', '1', `http://127.0.0.1:${port}/live/up.m3u8`]);
      assert.equal(await up.exited, 0, up.stderr());
      assert.equal(up.stderr(), '');
      const p = await playlist(port, '/live/up.m3u8');
      assert.ok(p.segments.length >= 3, p.text);
      assert.ok(p.ended, 'ffmpeg wrote ENDLIST at the end');
      const seg = await fetch(`http://127.0.0.1:${port}/live/${p.segments[0].uri}`);
      assert.equal(seg.status, 200);
      assert.equal(seg.headers.get('content-type'), 'video/mp2t');
      const etag = seg.headers.get('etag')!;
      const again = await fetch(`http://127.0.0.1:${port}/live/${p.segments[0].uri}`, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304);

      const pr = await probe(`http://127.0.0.1:${port}/live/up.m3u8`);
      assert.equal(pr.stderr, '', pr.stderr);
      assert.deepEqual(pr.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort(), ['audio:aac', 'video:h264']);
      const full = await decode(`http://127.0.0.1:${port}/live/up.m3u8`, 10);
      assert.equal(full.stderr, '', full.stderr);

      const del = await fetch(`http://127.0.0.1:${port}/live/${p.segments[0].uri}`, { method: 'DELETE' });
      assert.equal(del.status, 204);
      assert.equal((await fetch(`http://127.0.0.1:${port}/live/${p.segments[0].uri}`)).status, 404);
    } finally {
      await gw.close();
    }
  });

  test('uploads follow the publish rules: outside `allow` needs the secret', async () => {
    const { gw, port } = await startGateway('publish { allow 10.0.0.0/8; secret s3cret; }');
    try {
      const body = '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-ENDLIST\n';
      const denied = await fetch(`http://127.0.0.1:${port}/live/sec.m3u8`, { method: 'PUT', body });
      assert.equal(denied.status, 403);
      assert.equal((await fetch(`http://127.0.0.1:${port}/live/sec.m3u8`)).status, 404, 'nothing stored');
      const ok = await fetch(`http://127.0.0.1:${port}/live/sec.m3u8?secret=s3cret`, { method: 'PUT', body });
      assert.equal(ok.status, 201);
      const got = await fetch(`http://127.0.0.1:${port}/live/sec.m3u8`);
      assert.equal(await got.text(), body);
      assert.equal(got.headers.get('content-type'), 'application/vnd.apple.mpegurl');
      assert.equal((await fetch(`http://127.0.0.1:${port}/live/sec.m3u8`, { method: 'DELETE' })).status, 403);
    } finally {
      await gw.close();
    }
  });
});

describe('live streams and uploads are not shadowed by files', () => {
  test('a file at the same path is served until the stream is live, then the live playlist and TS win in both lanes', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sg-hls-'));
    mkdirSync(join(root, 'live'));
    writeFileSync(join(root, 'live', 'sh.m3u8'), 'FILE ON DISK\n');
    writeFileSync(join(root, 'live', 'sh.ts'), 'FILE ON DISK\n');
    const { gw, port } = await startGateway('', root);
    try {
      const before = await keepAliveGets(port, ['/live/sh.m3u8', '/live/sh.m3u8']);
      assert.equal(before[1].body.toString(), 'FILE ON DISK\n');
      assert.equal(lane(before[1]), 'fast', 'the second GET came from the file cache');
      const pub = publish(`http://127.0.0.1:${port}/live/sh.flv`, { seconds: 4, fps: FPS, gop: FPS });
      try {
        await waitFor('sh live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'sh' })?.videoHeader);
        const live = await keepAliveGets(port, ['/live/sh.m3u8', '/live/sh.m3u8']);
        for (const r of live) assert.match(r.body.toString(), /#EXTINF/, 'the live playlist, not the file');
        // A plain GET is answered from memory by the front door (headers in its order), one with
        // a Range by the full table: the same status, type, caching and bytes either way.
        const seg = parsePlaylist(live[1].body.toString()).segments[0].uri;
        for (const path of ['/live/sh.m3u8', `/live/${seg}`]) {
          const [plain] = await keepAliveGets(port, [path]);
          const table = await rawGet(port, path, { headers: { Range: 'bytes=0-' } });
          assert.equal(lane(plain), 'fast', `${path} from the front door`);
          assert.equal(lane(table), 'table', `${path} from the full table`);
          for (const h of ['content-type', 'content-length', 'cache-control']) assert.equal(plain.headers[h], table.headers[h], `${h} of ${path}`);
          assert.equal(plain.status, 200);
          assert.equal(table.status, 200);
          if (path.endsWith('.ts')) assert.ok(plain.body.equals(table.body), 'the same segment bytes');
        }
        const viewers = (await (await fetch(`http://127.0.0.1:${port}/api/v1/clients/`)).json()) as { clients: { type: string; url: string }[] };
        assert.ok(viewers.clients.some((c) => c.type === 'hls-play' && c.url === '/live/sh.m3u8'), 'the viewer is listed as hls-play');
        // An upload at the live playlist's URL wins in both lanes while it is stored (as on the full table).
        const uploaded = '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-ENDLIST\n';
        assert.ok((await fetch(`http://127.0.0.1:${port}/live/sh.m3u8`, { method: 'PUT', body: uploaded })).ok);
        const over = await keepAliveGets(port, ['/live/sh.m3u8', '/live/sh.m3u8']);
        for (const r of over) assert.equal(r.body.toString(), uploaded, 'the upload, not the live playlist');
        assert.ok((await fetch(`http://127.0.0.1:${port}/live/sh.m3u8`, { method: 'DELETE' })).ok);
        const again = await keepAliveGets(port, ['/live/sh.m3u8', '/live/sh.m3u8']);
        assert.match(again[1].body.toString(), /#EXTINF/, 'the live playlist once the upload is gone');
        assert.equal(lane(again[1]), 'fast');
        const ts = await fetch(`http://127.0.0.1:${port}/live/sh.ts`, { method: 'HEAD' });
        assert.equal(ts.headers.get('content-type'), 'video/mp2t');
        assert.equal(ts.headers.get('content-length'), null, 'a live stream, not the 13-byte file');
        await pub.exited;
      } finally {
        pub.kill();
      }
    } finally {
      await gw.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('an upload larger than the per-file bound is refused with 413: declared, before its body is read; chunked, once it passes the bound', async () => {
    const { gw, port } = await startGateway();
    try {
      const head = `PUT /live/big.ts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`;
      const r = parseReply(await rawExchange(port, Buffer.from(head, 'latin1')));
      assert.equal(r.status, 413);
      assert.match(r.body.toString(), /at most \d+ bytes/);
      assert.equal(r.headers.connection, 'close');
      assert.equal((await fetch(`http://127.0.0.1:${port}/live/big.ts`)).status, 404);

      // Chunked, so the size shows only while reading: refused as soon as it passes the bound.
      const streamed = await new Promise<{ status?: number; body?: string; error?: string }>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/live/big.ts', method: 'PUT', agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode, body }));
        });
        req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code }));
        const mib = Buffer.alloc(1 << 20);
        let sent = 0;
        const pump = () => {
          while (sent < 40) {
            sent++;
            if (!req.write(mib)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      assert.equal(streamed.status, 413, JSON.stringify(streamed));
      assert.match(streamed.body ?? '', /at most 33554432 bytes/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/live/big.ts`)).status, 404);
    } finally {
      await gw.close();
    }
  });
});

describe('live HLS segments by sendfile', () => {
  /** The memfd copies this process holds open, as the kernel lists them. */
  const memfds = () => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:streamgate-body');
    } catch {
      return false;
    }
  }).length;
  const sendfileBytes = async (port: number) => Number(/^streamgate_sendfile_bytes_total (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1] ?? NaN);

  test('a segment goes out zero-copy from a memfd copy, byte for byte what the full path serves; the copies close when the stream is disposed', { skip: sendfileBuilt ? false : 'the native sendfile addon is not built: segments go out with write(2)' }, async () => {
    const { log } = memoryLogger();
    const gw = await Gateway.start(loadConfigText(`listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; } hls { enabled on; hls_fragment 1; hls_window 3; hls_dispose 1; } }`, 'test.conf'), { log });
    const port = gw.port('http');
    const before = memfds();
    const pub = publish(`http://127.0.0.1:${port}/live/z.flv`, { seconds: 4, fps: FPS, gop: FPS, size: '640x360' });
    try {
      await waitFor('z live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'z' }));
      const list = await waitFor('two segments', async () => {
        const p = await playlist(port, '/live/z.m3u8');
        return p.segments.length >= 2 ? p : undefined;
      }, 10_000);
      const path = `/live/${list.segments[0].uri}`;
      const sent0 = await sendfileBytes(port);
      const [fast, again] = await keepAliveGets(port, [path, path]);
      // A condition sends the request to the full table, which answers from the same bytes in memory.
      const full = await rawGet(port, path, { headers: { 'If-None-Match': '"nothing"' } });
      assert.equal(lane(fast), 'fast');
      assert.equal(lane(full), 'table');
      assert.ok(fast.body.length >= 32 * 1024, `segment of ${fast.body.length} bytes: big enough for sendfile`);
      assert.ok(fast.body.equals(full.body) && again.body.equals(full.body), 'the same bytes by sendfile and by the full path');
      assert.equal(Number(fast.headers['content-length']), full.body.length);
      assert.ok(await sendfileBytes(port) - sent0 >= 2 * fast.body.length, 'both front-door answers went out by sendfile');
      assert.equal(await pub.exited, 0, pub.stderr());
      // hls_dispose 1 s after the publisher left, the stream and its segments' copies are gone.
      await waitFor('the copies to close', () => memfds() <= before, 8_000);
      assert.equal((await fetch(`http://127.0.0.1:${port}${path}`)).status, 404);
    } finally {
      pub.kill();
      await gw.close();
    }
  });
});
