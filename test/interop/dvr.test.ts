import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { AUDIO_MP3 } from '../../src/media/packet.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { ffmpegArgs, publish, type PublishOptions, run, waitFor } from '../helpers/ffmpeg.js';

/**
 * Recording as a user checks it: ffmpeg publishes generated media over RTMP and over HTTP-FLV,
 * the dvr block writes files, and ffmpeg/ffprobe read them back: they decode without a word at
 * -v error, last as long as what was published, keep audio and video together, and the segment
 * plan cuts at key frames at dvr_duration. Published without -re: the files' timestamps come
 * from the media, not the wall clock.
 */

/** A minute of media: long enough for timestamp drift between the tracks to show (and fast to publish without -re). */
const SECONDS = 60;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function startGateway(dvr: string): Promise<{ gw: Gateway; dir: string; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-dvr-'));
  dirs.push(dir);
  const { log, lines } = memoryLogger();
  // The recordings lie under the web root: the API gives their URLs and the static origin serves them.
  const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    vhost __defaultVhost__ { dvr { enabled on; ${dvr.replaceAll('DIR', dir)} } }`;
  const gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
  return { gw, dir, lines };
}

interface Listed { file: string; url: string | null; state: string; duration: number | null; bytes: number; codecs: string[]; app: string; stream: string }

async function recordings(gw: Gateway, query = ''): Promise<Listed[]> {
  const r = await fetch(`http://127.0.0.1:${gw.port('http')}/api/v1/recordings${query}`);
  assert.equal(r.status, 200);
  return ((await r.json()) as { recordings: Listed[] }).recordings;
}

/** Waits until the stream's files are all finished (the publisher is gone and the files are renamed). */
async function finished(gw: Gateway, n = 1): Promise<Listed[]> {
  let seen: Listed[] = [];
  return waitFor('finished recordings', async () => {
    const list = await recordings(gw);
    seen = list;
    return list.length >= n && list.every((r) => r.state === 'done') && list;
  }, 20_000, 100).catch((e: Error) => {
    throw new Error(`${e.message}: ${seen.map((r) => `${r.file} ${r.state} ${r.duration}`).join(', ')}`);
  });
}

interface Track { first: number; last: number; end: number; firstKey: boolean }

/** ffprobe's packets of a file: per track, the first and last timestamps, where the last one ends, whether it opens on a key frame. */
async function tracks(file: string): Promise<Record<'video' | 'audio', Track | undefined> & { duration: number }> {
  const p = run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_entries', 'packet=codec_type,pts_time,duration_time,flags:format=duration', file]);
  await p.exited;
  const j = JSON.parse(p.stdout().toString()) as { packets: { codec_type: string; pts_time: string; duration_time?: string; flags: string }[]; format: { duration: string } };
  const out: Record<string, Track> = {};
  for (const k of j.packets) {
    const t = Number(k.pts_time);
    const end = t + Number(k.duration_time ?? 0);
    const tr = out[k.codec_type];
    if (!tr) out[k.codec_type] = { first: t, last: t, end, firstKey: k.flags.startsWith('K') };
    else {
      tr.first = Math.min(tr.first, t);
      tr.last = Math.max(tr.last, t);
      tr.end = Math.max(tr.end, end);
    }
  }
  return { video: out.video, audio: out.audio, duration: Number(j.format.duration) };
}

async function decodesCleanly(file: string): Promise<void> {
  const p = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', file, '-f', 'null', '-']);
  assert.equal(await p.exited, 0, p.stderr());
  assert.equal(p.stderr(), '', `${file} decodes without errors`);
}

function assertInSync(name: string, t: { video?: Track; audio?: Track }): void {
  assert.ok(t.video && t.audio, `${name} has both tracks`);
  assert.ok(Math.abs(t.video.first - t.audio.first) <= 0.1, `${name}: first video ${t.video.first} and audio ${t.audio.first} within 0.1 s`);
  assert.ok(Math.abs(t.video.end - t.audio.end) <= 0.1, `${name}: video ends at ${t.video.end}, audio at ${t.audio.end}`);
}

for (const ext of ['flv', 'mp4'] as const) describe(`dvr: ffmpeg publishes, the ${ext.toUpperCase()} files play`, () => {
  test(`RTMP, segment plan, ${ext}: cuts at key frames every dvr_duration, the files add up to the published span`, async () => {
    const { gw, dir } = await startGateway(`dvr_plan segment; dvr_duration 4; dvr_path DIR/[app]/[stream]/[timestamp].${ext};`);
    try {
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/seg`, { seconds: SECONDS, fast: true, gop: 25 });
      assert.equal(await pub.exited, 0, pub.stderr());
      const list = await finished(gw, SECONDS / 4);
      const files = readdirSync(join(dir, 'live', 'seg')).sort();
      assert.equal(files.length, SECONDS / 4, `${SECONDS} s in 4 s segments: ${files.join(', ')}`);
      assert.ok(files.every((f) => f.endsWith(`.${ext}`)), 'no .tmp left once the stream ended');
      let total = 0;
      for (const [i, f] of files.entries()) {
        const path = join(dir, 'live', 'seg', f);
        await decodesCleanly(path);
        const t = await tracks(path);
        assertInSync(f, t);
        assert.ok(t.video!.firstKey, `${f} opens on a key frame`);
        assert.ok(t.video!.first <= 0.05, `${f} starts at 0 (time_jitter full), got ${t.video!.first}`);
        const len = t.video!.end - t.video!.first;
        if (i < files.length - 1) assert.ok(Math.abs(len - 4) <= 0.1, `${f}: a segment of dvr_duration (key frames every second), got ${len}`);
        total += len;
      }
      assert.ok(Math.abs(total - SECONDS) <= 0.1, `the segments add up to ${total} s for ${SECONDS} s published`);
      assert.deepEqual(list.map((r) => r.codecs.join('+')), files.map(() => 'h264+aac'));
      assert.ok(list.every((r) => statSync(r.file).size === r.bytes), 'the API lists each file with its size');
    } finally {
      await gw.close();
    }
  });

  test(`HTTP-FLV, session plan, ${ext}: one file as long as the publish, seekable to its middle; the API filters by stream`, async () => {
    const { gw, dir } = await startGateway(`dvr_plan session; dvr_path DIR/[app]-[stream]-[2006][01][02].${ext};`);
    try {
      const pub = publish(`http://127.0.0.1:${gw.port('http')}/live/sess.flv`, { seconds: SECONDS, fast: true });
      assert.equal(await pub.exited, 0, pub.stderr());
      const [rec] = await finished(gw);
      const files = readdirSync(dir);
      assert.equal(files.length, 1, files.join(', '));
      assert.match(files[0], new RegExp(`^live-sess-\\d{8}\\.${ext}$`));
      const path = join(dir, files[0]);
      await decodesCleanly(path);
      const t = await tracks(path);
      assertInSync(files[0], t);
      assert.ok(Math.abs(t.duration - SECONDS) <= 0.1, `ffprobe says ${t.duration} s for ${SECONDS} s published`);
      assert.ok(Math.abs(rec.duration! - SECONDS) <= 0.1, `the API says ${rec.duration} s`);
      // A seek to the middle lands on the key frame there (one every second), as a player's would.
      const s = run('ffprobe', ['-v', 'error', '-read_intervals', `${SECONDS / 2}%+#1`, '-select_streams', 'v', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', path]);
      await s.exited;
      const at = Number(s.stdout().toString().trim());
      assert.ok(at >= SECONDS / 2 - 1 && at <= SECONDS / 2 + 0.05, `a seek to ${SECONDS / 2} s reads from ${at} s`);
      assert.equal((await recordings(gw, '?app=live&stream=sess')).length, 1);
      assert.equal(rec.url, `/${files[0]}`);
      const got = await fetch(`http://127.0.0.1:${gw.port('http')}${rec.url}`, { headers: { Range: 'bytes=0-3' } });
      assert.equal(got.status, 206, 'served from the web root with Range');
      assert.equal(got.headers.get('content-range'), `bytes 0-3/${rec.bytes}`);
      assert.equal((await recordings(gw, '?stream=other')).length, 0);
    } finally {
      await gw.close();
    }
  });
});

/** ffmpeg's publish arguments with MP3 (libmp3lame) for AAC, as old encoders and some hardware boxes send. */
function mp3Args(url: string, o: PublishOptions): string[] {
  const args = ffmpegArgs(url, o);
  args[args.indexOf('aac')] = 'libmp3lame';
  return args;
}

/** The codecs ffprobe finds in the HLS VOD playlist of a stream's recordings. */
async function vodCodecs(gw: Gateway, stream: string): Promise<string[]> {
  const v = run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', `http://127.0.0.1:${gw.port('http')}/recordings/live/${stream}.m3u8`]);
  assert.equal(await v.exited, 0, v.stderr());
  return [...new Set(v.stdout().toString().trim().split('\n').filter(Boolean))].sort();
}

async function publishMp3(args: string[]): Promise<void> {
  const pub = run('ffmpeg', args);
  assert.equal(await pub.exited, 0, pub.stderr());
}

describe('dvr: MP3 audio and the publisher\'s metadata in FLV', () => {
  test('RTMP with MP3 audio, FLV: decodes cleanly, in sync, as long as published; the file carries the publisher\'s onMetaData with its own duration; its VOD plays', async () => {
    const { gw, dir } = await startGateway('dvr_plan session; dvr_path DIR/[stream].flv;');
    try {
      await publishMp3(mp3Args(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/mp3`, { seconds: SECONDS, fast: true, size: '480x270' }));
      const [rec] = await finished(gw);
      assert.deepEqual(rec.codecs, ['h264', 'mp3']);
      const path = join(dir, 'mp3.flv');
      await decodesCleanly(path);
      const t = await tracks(path);
      assertInSync('mp3.flv', t);
      assert.ok(Math.abs(t.duration - SECONDS) <= 0.1, `ffprobe says ${t.duration} s for ${SECONDS} s published`);
      // ffprobe reads onMetaData's fields as format tags (strings) and its width/height/duration as such.
      const p = run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_entries', 'format_tags:format=duration', path]);
      await p.exited;
      const f = (JSON.parse(p.stdout().toString()) as { format: { duration: string; tags?: Record<string, string> } }).format;
      assert.match(f.tags?.encoder ?? '', /^Lavf/, `the publisher's encoder field is copied: ${JSON.stringify(f.tags)}`);
      assert.equal(f.tags?.width ?? '480', '480');
      assert.ok(Math.abs(Number(f.duration) - SECONDS) <= 0.1);
      const raw = (await import('node:fs')).readFileSync(path);
      const meta = raw.subarray(13, 13 + 11 + raw.readUIntBE(14, 3)).toString('latin1');
      assert.ok(meta.includes('encoder') && meta.includes('width') && meta.includes('framerate'), 'the publisher\'s fields are in the file\'s onMetaData');
      assert.equal(meta.split('duration').length - 1, 1, 'one duration: the file\'s');
      assert.ok(!meta.includes('filesize'), 'no filesize of the publisher\'s');
      assert.deepEqual(await vodCodecs(gw, 'mp3'), ['h264', 'mp3'], 'TS segments carry the MP3 track');
    } finally {
      await gw.close();
    }
  });
});

/** ffprobe's streams of a file: codec, sample rate, channels. */
async function streams(file: string): Promise<{ codec_name: string; sample_rate?: string; channels?: number }[]> {
  const p = run('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_entries', 'stream=codec_name,sample_rate,channels', file]);
  assert.equal(await p.exited, 0, p.stderr());
  return (JSON.parse(p.stdout().toString()) as { streams: { codec_name: string }[] }).streams;
}

describe('dvr: MP3 audio in MP4', () => {
  test('RTMP with H.264 + MP3, MP4: both tracks (h264, mp3), decodes cleanly, in sync, as long as published; the API says mp3; its VOD plays both', async () => {
    const { gw, dir } = await startGateway('dvr_plan session; dvr_path DIR/[stream].mp4;');
    try {
      await publishMp3(mp3Args(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/mp3mp4`, { seconds: SECONDS, fast: true }));
      const [rec] = await finished(gw);
      assert.deepEqual(rec.codecs, ['h264', 'mp3']);
      const path = join(dir, 'mp3mp4.mp4');
      assert.deepEqual((await streams(path)).map((s) => [s.codec_name, s.sample_rate, s.channels]), [['h264', undefined, undefined], ['mp3', '44100', 1]]);
      await decodesCleanly(path);
      const t = await tracks(path);
      assertInSync('mp3mp4.mp4', t);
      assert.ok(Math.abs(t.duration - SECONDS) <= 0.1, `ffprobe says ${t.duration} s for ${SECONDS} s published`);
      assert.ok(Math.abs(t.audio!.end - t.audio!.first - SECONDS) <= 0.1, `the audio lasts ${t.audio!.end - t.audio!.first} s`);
      assert.deepEqual(await vodCodecs(gw, 'mp3mp4'), ['h264', 'mp3'], 'the byte-range VOD of the file carries the MP3 track');
    } finally {
      await gw.close();
    }
  });

  test('MP3 that starts 400 ms after the video (its first frame after the first key frame): the MP4 still has both tracks, the audio from 0.4 s', async () => {
    const { gw, dir, lines } = await startGateway('dvr_plan session; dvr_path DIR/[stream].mp4;');
    try {
      const args = mp3Args(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/late`, { seconds: 10, fast: true });
      args.splice(args.indexOf('sine=frequency=440:sample_rate=44100') - 3, 0, '-itsoffset', '0.4');
      await publishMp3(args);
      const [rec] = await finished(gw);
      assert.deepEqual(rec.codecs, ['h264', 'mp3']);
      const path = join(dir, 'late.mp4');
      await decodesCleanly(path);
      const t = await tracks(path);
      assert.ok(t.video && t.audio, `both tracks: ${lines.join('\n')}`);
      assert.ok(t.video.first <= 0.05 && Math.abs(t.audio.first - 0.4) <= 0.05, `video from ${t.video.first} s, audio from ${t.audio.first} s`);
      assert.ok(Math.abs(t.video.end - t.audio.end) <= 0.1, `video ends at ${t.video.end}, audio at ${t.audio.end}`);
    } finally {
      await gw.close();
    }
  });

  test('RTMP with MP3 alone (22.05 kHz, MPEG-2), MP4: one mp3 track, decodes cleanly, as long as published', async () => {
    const { gw, dir, lines } = await startGateway('dvr_plan session; dvr_path DIR/[stream].mp4;');
    try {
      const args = mp3Args(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/radio`, { seconds: SECONDS, fast: true, video: false });
      args.splice(args.indexOf('-f', args.indexOf('libmp3lame')), 0, '-ar', '22050');
      await publishMp3(args);
      const [rec] = await finished(gw);
      assert.deepEqual(rec.codecs, ['mp3']);
      const path = join(dir, 'radio.mp4');
      assert.deepEqual((await streams(path)).map((s) => [s.codec_name, s.sample_rate, s.channels]), [['mp3', '22050', 1]]);
      await decodesCleanly(path);
      const t = await tracks(path);
      assert.equal(t.video, undefined);
      assert.ok(t.audio && Math.abs(t.audio.end - t.audio.first - SECONDS) <= 0.1, `the audio lasts ${t.audio && t.audio.end - t.audio.first} s`);
      assert.ok(Math.abs(t.duration - SECONDS) <= 0.1, `ffprobe says ${t.duration} s for ${SECONDS} s published`);
      assert.ok(!lines.some((l) => l.includes('cannot hold its codecs')), lines.join('\n'));
    } finally {
      await gw.close();
    }
  });

  /** FLV bytes of H.264 (unless audio only) and MP3 from ffmpeg, with each MP3 frame (after the tag's sound byte) through `edit`. */
  function mp3Flv(seconds: number, video: boolean, edit: (frame: Buffer, i: number) => Buffer): Buffer {
    const r = spawnSync('ffmpeg', mp3Args('pipe:1', { seconds, fast: true, video }), { maxBuffer: 64 * 1024 * 1024 });
    assert.equal(r.status, 0, r.stderr.toString());
    const flv = r.stdout;
    const out: Buffer[] = [flv.subarray(0, 13)];
    let n = 0;
    for (let at = 13; at + 11 <= flv.length;) {
      const size = flv.readUIntBE(at + 1, 3);
      const tag = flv.subarray(at, at + 11 + size);
      let body = tag.subarray(11);
      if (tag[0] === 8 && (body[0] >> 4) === AUDIO_MP3) body = Buffer.concat([body.subarray(0, 1), edit(body.subarray(1), n++)]);
      const head = Buffer.from(tag.subarray(0, 11));
      head.writeUIntBE(body.length, 1, 3);
      const prev = Buffer.alloc(4);
      prev.writeUInt32BE(11 + body.length);
      out.push(head, body, prev);
      at += 11 + size + 4;
    }
    return Buffer.concat(out);
  }

  test('a broken MP3 publisher (HTTP-FLV): a first frame with a reserved rate leaves a video-only MP4, or none without video; broken later frames are left out; the process goes on', async () => {
    const { gw, dir, lines } = await startGateway('dvr_plan session; dvr_path DIR/[stream].mp4;');
    try {
      const reserved = (f: Buffer) => Buffer.concat([f.subarray(0, 2), Buffer.from([f[2] | 0x0c]), f.subarray(3)]);
      // Every 5th frame after the first: cut short, free format, no sync word, in turn.
      const later = (f: Buffer, i: number) => (i === 0 || i % 5 ? f : [f.subarray(0, 40), Buffer.concat([f.subarray(0, 2), Buffer.from([f[2] & 0x0f]), f.subarray(3)]), Buffer.from(f).fill(0, 0, 2)][i % 3]);
      const post = async (stream: string, body: Buffer) => {
        const r = await fetch(`http://127.0.0.1:${gw.port('http')}/live/${stream}.flv`, { method: 'POST', body });
        assert.equal(r.status, 200, await r.text());
      };
      await post('firstbad', mp3Flv(10, true, (f, i) => (i === 0 ? reserved(f) : f)));
      await post('laterbad', mp3Flv(10, true, later));
      await post('radiobad', mp3Flv(10, false, (f, i) => (i === 0 ? reserved(f) : f)));
      const list = await finished(gw, 2);
      assert.deepEqual(list.map((r) => r.file.slice(dir.length + 1)).sort(), ['firstbad.mp4', 'laterbad.mp4']);
      assert.deepEqual((await streams(join(dir, 'firstbad.mp4'))).map((s) => s.codec_name), ['h264'], 'video only, as before MP3 went into MP4');
      assert.deepEqual(list.map((r) => r.codecs.join('+')).sort(), ['h264', 'h264+mp3'], 'the API lists what each file holds');
      assert.equal(lines.filter((l) => l.includes('live/firstbad is recorded without its audio: MP4 cannot hold it (h264, mp3)')).length, 1, lines.join('\n'));
      assert.deepEqual((await streams(join(dir, 'laterbad.mp4'))).map((s) => s.codec_name), ['h264', 'mp3']);
      for (const f of ['firstbad.mp4', 'laterbad.mp4']) await decodesCleanly(join(dir, f));
      assert.ok(lines.some((l) => l.includes('live/radiobad is not recorded: MP4 cannot hold its codecs (mp3)')), lines.join('\n'));
      assert.equal((await fetch(`http://127.0.0.1:${gw.port('http')}/api/v1/recordings`)).status, 200, 'still serving');
    } finally {
      await gw.close();
    }
  });
});

describe('dvr: on_dvr', () => {
  test('SRS\'s on_dvr body once per finished file, after on_publish, with the publisher\'s fields', async () => {
    const calls: Record<string, unknown>[] = [];
    const hooks = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        calls.push(JSON.parse(body) as Record<string, unknown>);
        res.end('0');
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hooks.address() as { port: number }).port}`;
    const { gw, dir } = await startGateway(`dvr_plan segment; dvr_duration 4; dvr_path DIR/[stream].[timestamp].flv; }
      http_hooks { enabled on; on_publish ${url}/pub; on_dvr ${url}/dvr;`);
    try {
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/hooked`, { seconds: 9, fast: true, gop: 25 });
      assert.equal(await pub.exited, 0, pub.stderr());
      await finished(gw, 3);
      const dvr = await waitFor('three on_dvr calls', () => {
        const d = calls.filter((c) => c.action === 'on_dvr');
        return d.length >= 3 && d;
      }, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(calls.filter((c) => c.action === 'on_dvr').length, 3, 'once per file');
      assert.equal(calls[0].action, 'on_publish');
      const files = readdirSync(dir).map((f) => join(dir, f)).sort();
      assert.deepEqual(dvr.map((c) => c.file).sort(), files);
      for (const c of dvr) {
        assert.equal(c.cwd, process.cwd());
        assert.equal(c.app, 'live');
        assert.equal(c.stream, 'hooked');
        assert.equal(c.stream_url, '/live/hooked');
        assert.equal(c.client_id, calls[0].client_id, 'the publisher\'s client id, as in its on_publish');
        assert.equal(c.ip, '127.0.0.1');
        assert.equal(typeof c.stream_id, 'string');
      }
    } finally {
      await gw.close();
      hooks.close();
    }
  });
});
