import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { once } from 'node:events';
import Koa from 'koa';
import { SignJWT } from 'jose';
import { errorResponder } from '../../src/http/errors.js';
import { vodHandler } from '../../src/record/vod/handler.js';
import { VodLibrary } from '../../src/record/vod/library.js';
import { publish, run, waitFor } from '../helpers/ffmpeg.js';

/**
 * HLS VOD of recordings as a user checks it: ffmpeg publishes, the dvr block records in 4 s
 * files, and the stream's recordings come back as one VOD playlist that ffmpeg decodes start to
 * end without a word at -v error and as long as what was published; `start`/`end` narrow it to
 * the files of that time; the play policy that guards live playback guards it too.
 */

const SECONDS = 14;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function startGateway(ext: string, extra = ''): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-vod-'));
  dirs.push(dir);
  const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    vhost __defaultVhost__ { dvr { enabled on; dvr_plan segment; dvr_duration 4; dvr_path ${dir}/recordings/[app]/[stream].[timestamp].${ext}; } ${extra} }`;
  return Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
}

interface Listed { state: string; start: number; end: number; duration: number; url: string; vod: string; bytes: number }

async function recorded(gw: Gateway, n: number): Promise<Listed[]> {
  const base = `http://127.0.0.1:${gw.port('http')}`;
  return waitFor('finished recordings', async () => {
    const list = ((await (await fetch(`${base}/api/v1/recordings?stream=vod`)).json()) as { recordings: Listed[] }).recordings;
    return list.length >= n && list.every((r) => r.state === 'done') && list;
  }, 20_000, 100);
}

/** ffprobe's duration of a URL and ffmpeg's decode of it at -v error. */
async function playsWhole(url: string): Promise<number> {
  const d = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', url, '-f', 'null', '-']);
  assert.equal(await d.exited, 0, d.stderr());
  assert.equal(d.stderr(), '', `${url} decodes without errors`);
  const p = run('ffprobe', ['-v', 'error', '-select_streams', 'v', '-count_packets', '-show_entries', 'stream=nb_read_packets', '-of', 'csv=p=0', url]);
  await p.exited;
  return Number(p.stdout().toString().trim().split('\n')[0]) / 25;
}

for (const ext of ['mp4', 'flv'] as const) describe(`HLS VOD of ${ext.toUpperCase()} recordings`, () => {
  test(`several ${ext} files play as one VOD playlist, a time range picks some of them`, async () => {
    const gw = await startGateway(ext);
    try {
      const base = `http://127.0.0.1:${gw.port('http')}`;
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/vod`, { seconds: SECONDS, fast: true, gop: 25 });
      assert.equal(await pub.exited, 0, pub.stderr());
      const list = await recorded(gw, 4);
      const r = await fetch(`${base}/recordings/live/vod.m3u8`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/vnd.apple.mpegurl');
      const text = await r.text();
      assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD\n/);
      assert.ok(text.endsWith('#EXT-X-ENDLIST\n'), text);
      assert.equal(text.split('#EXT-X-DISCONTINUITY\n').length - 1, list.length - 1, `a discontinuity between each of the ${list.length} files`);
      if (ext === 'mp4') {
        assert.equal(text.split('#EXT-X-MAP:').length - 1, list.length, 'each file its own init section');
        assert.match(text, /#EXT-X-BYTERANGE:\d+@\d+\nvod\/[0-9a-f]{16}\.mp4\n/);
      } else {
        assert.match(text, /\nvod\/[0-9a-f]{16}\/0\.ts\n/);
      }
      const frames = await playsWhole(`${base}/recordings/live/vod.m3u8`);
      assert.ok(Math.abs(frames - SECONDS) <= 0.1, `the playlist holds ${frames} s of video for ${SECONDS} s published`);

      // The files of one time: from the first file's start to just before the second's (API times)
      // lists the first file only (published faster than real time, the files' media spans overlap in wall time after that).
      const [first, second] = list;
      const ranged = await (await fetch(`${base}/recordings/live/vod.m3u8?start=${first.start}&end=${new Date(second.start - 1).toISOString()}`)).text();
      assert.equal(ranged.split('#EXTINF:').length - 1, 1, ranged);
      assert.ok(!ranged.includes('#EXT-X-DISCONTINUITY'), ranged);
      assert.equal((await fetch(`${base}/recordings/live/vod.m3u8?start=${Date.now() + 60_000}`)).status, 404, 'nothing recorded then');
      assert.equal((await fetch(`${base}/recordings/live/vod.m3u8?start=yesterday`)).status, 400);
      assert.equal((await fetch(`${base}/recordings/live/other.m3u8`)).status, 404);
      assert.equal((await fetch(`${base}/recordings/live/vod/0123456789abcdef.${ext}`)).status, 404, 'an id the recorder does not list');
      assert.equal((await fetch(`${base}/recordings/live/vod.m3u8`, { method: 'DELETE' })).status, 405);
      // The files lie under the web root at /recordings/ too: the static origin still serves them as files.
      assert.match(second.url, /^\/recordings\/live\/vod\.\d+\.(mp4|flv)$/);
      const file = await fetch(`${base}${second.url}`, { headers: { Range: 'bytes=0-3' } });
      assert.equal(file.status, 206);
      assert.equal(file.headers.get('content-range'), `bytes 0-3/${second.bytes}`);
      // The API's vod URL: that one recording.
      const one = await (await fetch(`${base}${second.vod}`)).text();
      assert.equal(one.split('#EXTINF:').length - 1, 1, one);
      assert.ok(one.endsWith('#EXT-X-ENDLIST\n'));
    } finally {
      await gw.close();
    }
  });
});

describe('HLS VOD: bounds', () => {
  for (const bound of [{ maxConcurrentCuts: 0 }, { maxCutBytes: 1 }]) {
    test(`TS segments cut at once are bounded (${JSON.stringify(bound)}): past the bound a cut is refused with 503 and Retry-After, the playlist still answers`, async () => {
      const gw = await startGateway('flv');
      const app = new Koa();
      const { log } = memoryLogger();
      app.use(errorResponder(log));
      app.use((ctx) => vodHandler({ library: new VodLibrary((f) => gw.recorder.list(f)), access: gw.access, ...bound })(ctx, '__defaultVhost__'));
      const server = app.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/vod`, { seconds: 5, fast: true, gop: 25 });
        assert.equal(await pub.exited, 0, pub.stderr());
        await recorded(gw, 1);
        const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        const text = await (await fetch(`${base}/recordings/live/vod.m3u8`)).text();
        const seg = text.split('\n').find((l) => l.endsWith('.ts'))!;
        const r = await fetch(`${base}/recordings/live/${seg}`);
        assert.equal(r.status, 503);
        assert.equal(r.headers.get('retry-after'), '1');
        // HEAD cuts nothing, so no bound refuses it.
        const head = await fetch(`${base}/recordings/live/${seg}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-type'), 'video/mp2t');
        assert.equal((await fetch(`http://127.0.0.1:${gw.port('http')}/recordings/live/${seg}`)).status, 200, 'under the bound (the gateway\'s own) it is cut');
      } finally {
        server.close();
        await gw.close();
      }
    });
  }
});

describe('HLS VOD: the play policy', () => {
  test('a vhost that refuses play refuses its recordings too (playlist and segments)', async () => {
    const gw = await startGateway('mp4', 'security { enabled on; allow publish all; deny play all; }');
    try {
      const base = `http://127.0.0.1:${gw.port('http')}`;
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/vod`, { seconds: 5, fast: true, gop: 25 });
      assert.equal(await pub.exited, 0, pub.stderr());
      await recorded(gw, 1);
      assert.equal((await fetch(`${base}/recordings/live/vod.m3u8`)).status, 403);
      const [rec] = gw.recorder.list({ stream: 'vod' });
      const { idOf } = await import('../../src/record/vod/library.js');
      assert.equal((await fetch(`${base}/recordings/live/vod/${idOf(rec.file)}.mp4`)).status, 403);
    } finally {
      await gw.close();
    }
  });

  test('where play needs a signed token: 401 without one; with one, every URI of the playlist carries it and plays', async () => {
    const secret = 'vod-token-secret-0123456789abcdef';
    const gw = await startGateway('mp4', `token { enabled on; require play; secret ${secret}; }`);
    try {
      const base = `http://127.0.0.1:${gw.port('http')}`;
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/vod`, { seconds: 5, fast: true, gop: 25 });
      assert.equal(await pub.exited, 0, pub.stderr());
      await recorded(gw, 1);
      assert.equal((await fetch(`${base}/recordings/live/vod.m3u8`)).status, 401);
      const token = await new SignJWT({ action: 'play', app: 'live', stream: 'vod', exp: Math.floor(Date.now() / 1000) + 120 })
        .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
      const text = await (await fetch(`${base}/recordings/live/vod.m3u8?token=${token}`)).text();
      const uris = [...text.matchAll(/URI="([^"]+)"/g)].map((m) => m[1]).concat(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')));
      assert.ok(uris.length >= 2 && uris.every((u) => u.endsWith(`?token=${token}`)), text);
      // Another viewer (another User-Agent: another session) with no token is refused a segment.
      assert.equal((await fetch(`${base}/recordings/live/${uris[0].split('?')[0]}`, { headers: { 'User-Agent': 'other' } })).status, 401);
      const frames = await playsWhole(`${base}/recordings/live/vod.m3u8?token=${token}`);
      assert.ok(Math.abs(frames - 5) <= 0.1, `${frames} s`);
    } finally {
      await gw.close();
    }
  });
});
