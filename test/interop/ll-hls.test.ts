import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { SignJWT } from 'jose';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { probe, probeFinishedPlaylist, publish, run, waitFor, type Proc } from '../helpers/ffmpeg.js';
import { encode, enhancedTags, flvBytes } from '../helpers/enhanced-flv.js';
import { assertAppleRules, parseLl, partNumbers, type LlPlaylist } from '../helpers/ll-hls.js';

/**
 * LL-HLS as a player sees it: one publish (H.264 with a 1 s GOP, AAC) cut into 0.333 s parts,
 * Apple's rules checked on every playlist fetched, blocking reloads and preload hints followed,
 * the bounds on held requests pushed past, and ffprobe reading the playlist.
 */

const MAX_HELD = 4;
let gw: Gateway;
let port: number;
let ff: Proc;
const base = () => `http://127.0.0.1:${port}/live/ll`;

async function get(path: string): Promise<{ status: number; text: string; headers: Headers }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, text: await r.text(), headers: r.headers };
}

async function playlist(query = ''): Promise<LlPlaylist> {
  const r = await get(`/live/ll.m3u8${query}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const p = parseLl(r.text);
  assertAppleRules(p);
  return p;
}

async function bytes(uri: string): Promise<{ data: Buffer; type: string | null; cache: string | null }> {
  const r = await fetch(`http://127.0.0.1:${port}/live/${uri}`);
  assert.equal(r.status, 200, uri);
  return { data: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type'), cache: r.headers.get('cache-control') };
}

/** A request sent on a raw socket that is left open: what a held client looks like. */
function held(query: string): { sock: net.Socket; reply: Promise<string> } {
  const sock = net.connect({ host: '127.0.0.1', port });
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
  sock.on('error', () => {});
  const reply = new Promise<string>((resolve) => sock.on('close', () => resolve(got)));
  sock.write(`GET /live/ll.m3u8${query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  return { sock, reply };
}

describe('LL-HLS (fMP4 parts, blocking reloads, preload hints)', () => {
  before(async () => {
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } } limits { hls_held_requests ${MAX_HELD}; }
      vhost __defaultVhost__ { play { mw_latency 0; } hls { enabled on; hls_fragment 1; hls_window 8; hls_ll on; hls_part 0.333; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
    port = gw.port('http');
    ff = publish(`${base()}.flv`, { seconds: 40, fps: 25, gop: 25 });
    await waitFor('three segments', async () => (await get('/live/ll.m3u8')).text.split('#EXTINF').length > 3, 20_000, 200);
  });
  after(async () => {
    ff.kill();
    await gw.close();
  });

  test('playlist: version 9, EXT-X-MAP, PART-INF, SERVER-CONTROL, parts and a preload hint; Apple rules hold', async () => {
    const p = await playlist();
    assert.equal(p.version, 9);
    assert.equal(p.partTarget, 0.333);
    assert.ok(p.map && /^ll-i\d+\.m4s$/.test(p.map), p.text);
    assert.ok(p.hint, 'EXT-X-PRELOAD-HINT');
    const init = await bytes(p.map!);
    assert.equal(init.type, 'video/mp4');
    assert.match(init.cache!, /immutable/);
    assert.equal(init.data.toString('latin1', 4, 8), 'ftyp');
  });

  test('the parts of a segment concatenate to the segment bytes', async () => {
    const p = await playlist();
    const seg = p.segments.filter((s) => s.parts.length > 0).at(-1)!;
    assert.ok(seg, p.text);
    const whole = await bytes(seg.uri);
    assert.equal(whole.type, 'video/iso.segment');
    assert.match(whole.cache!, /immutable/);
    const parts = await Promise.all(seg.parts.map((x) => bytes(x.uri)));
    assert.ok(Buffer.concat(parts.map((x) => x.data)).equals(whole.data));
  });

  test('blocking reloads follow the hint: each answer lists the part asked for and at most one more', async () => {
    let p = await playlist();
    for (let i = 0; i < 6; i++) {
      const [msn, part] = partNumbers(p.hint!);
      p = await playlist(`?_HLS_msn=${msn}&_HLS_part=${part}`);
      const all = [...p.segments.flatMap((s) => s.parts), ...p.tail].map((x) => partNumbers(x.uri));
      const at = all.findIndex(([m, n]) => m === msn && n === part);
      assert.ok(at >= 0, `part ${msn}.${part} listed:\n${p.text}`);
      assert.ok(all.length - 1 - at <= 1, `answer released within one part of ${msn}.${part}:\n${p.text}`);
    }
  });

  test('a preload-hint request waits for the part and gets exactly its bytes', async () => {
    const p = await playlist();
    const hint = p.hint!;
    const streamed = await bytes(hint);
    const [msn, part] = partNumbers(hint);
    await playlist(`?_HLS_msn=${msn}&_HLS_part=${part}`);
    const after = await bytes(hint);
    assert.ok(streamed.data.equals(after.data), 'the streamed part is the part');
  });

  test('delta update: _HLS_skip=YES replaces the oldest segments with EXT-X-SKIP', async () => {
    // CAN-SKIP-UNTIL is six target durations: wait until the window holds more than that.
    await waitFor('a window longer than CAN-SKIP-UNTIL', async () => (await playlist()).segments.length > 7, 15_000, 250);
    const full = await playlist();
    const delta = await playlist('?_HLS_skip=YES');
    assert.ok(delta.skipped > 0, delta.text);
    assert.ok(delta.text.includes(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${delta.skipped}\n#EXT-X-MAP:`), delta.text);
    assert.equal(delta.sequence, full.sequence);
    assert.ok(delta.segments.length < full.segments.length);
  });

  test('directives out of bounds are 400: msn far ahead, a part far ahead, a part without msn, not a number', async () => {
    const p = await playlist();
    const last = p.sequence + p.segments.length - 1;
    assert.equal((await get(`/live/ll.m3u8?_HLS_msn=${last + 3}`)).status, 400);
    assert.equal((await get(`/live/ll.m3u8?_HLS_msn=${last + 1}&_HLS_part=40`)).status, 400);
    assert.equal((await get('/live/ll.m3u8?_HLS_part=1')).status, 400);
    // A part named under a segment that has since ended exists (the segment does): answered, not refused.
    assert.equal((await get(`/live/ll.m3u8?_HLS_msn=${last}&_HLS_part=9`)).status, 200);
    assert.equal((await get('/live/ll.m3u8?_HLS_msn=x')).status, 400);
  });

  test('held requests beyond the bound get 503 with Retry-After; a client that leaves frees its slot', async () => {
    // The publisher paused: nothing releases the held requests but their clients or the timeout.
    ff.child.kill('SIGSTOP');
    try {
      const p = await playlist();
      const q = `?_HLS_msn=${p.sequence + p.segments.length + 1}&_HLS_part=0`;
      const clients = Array.from({ length: MAX_HELD }, () => held(q));
      await new Promise((r) => setTimeout(r, 300));
      const over = await get(`/live/ll.m3u8${q}`);
      assert.equal(over.status, 503);
      assert.equal(over.headers.get('retry-after'), '1');
      clients[0].sock.destroy();
      await new Promise((r) => setTimeout(r, 200));
      const next = held(q);
      const early = await Promise.race([next.reply, new Promise((r) => setTimeout(() => r('held'), 300))]);
      assert.equal(early, 'held', 'the freed slot holds the next request');
      for (const c of [...clients, next]) c.sock.destroy();
    } finally {
      ff.child.kill('SIGCONT');
    }
  });

  test('ffprobe reads the LL-HLS playlist with no error: H.264 320x240 and AAC', async () => {
    const r = await probe(`${base()}.m3u8`, 15);
    assert.equal(r.stderr, '');
    const v = r.streams.find((s) => s.codec_type === 'video');
    assert.equal(v?.codec_name, 'h264');
    assert.equal(v?.width, 320);
    assert.equal(r.streams.find((s) => s.codec_type === 'audio')?.codec_name, 'aac');
  });
});

describe('fMP4 HLS without LL', () => {
  let g: Gateway;
  let pub: Proc;
  after(async () => {
    pub?.kill();
    await g?.close();
  });

  test('version 7, EXT-X-MAP, .m4s segments, no parts; ffmpeg decodes it with no error', async () => {
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; } hls { enabled on; hls_fragment 1; hls_window 6; hls_fmp4 on; } }`;
    g = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
    const url = `http://127.0.0.1:${g.port('http')}/live/f`;
    pub = publish(`${url}.flv`, { seconds: 20, fps: 25, gop: 25 });
    const text = await waitFor('two segments', async () => {
      const r = await fetch(`${url}.m3u8`);
      const t = await r.text();
      return r.status === 200 && t.split('#EXTINF').length > 2 && t;
    }, 20_000, 200);
    const p = parseLl(text);
    assertAppleRules(p);
    assert.equal(p.version, 7);
    assert.equal(p.partTarget, null);
    assert.ok(!text.includes('#EXT-X-PART'), text);
    assert.ok(p.segments.every((s) => /^f-\d+\.m4s$/.test(s.uri)), text);
    const d = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-i', `${url}.m3u8`, '-t', '3', '-f', 'null', '-']);
    const timer = setTimeout(d.kill, 25_000);
    await d.exited;
    clearTimeout(timer);
    assert.equal(d.stderr(), '');
  });
});

describe('LL-HLS behind signed tokens', () => {
  let g: Gateway;
  let pub: Proc;
  after(async () => {
    pub?.kill();
    await g?.close();
  });

  test('the playlist token is carried into EXT-X-MAP, EXT-X-PART and EXT-X-PRELOAD-HINT URIs; init, parts and segments need it', async () => {
    const secret = 'hs256-shared-secret-for-tests-0123456789';
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 0; } hls { enabled on; hls_fragment 1; hls_ll on; } token { enabled on; require play; secret ${secret}; } }`;
    g = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
    const base = `http://127.0.0.1:${g.port('http')}/live`;
    pub = publish(`${base}/tok.flv`, { seconds: 20, fps: 25, gop: 25 });
    const token = await new SignJWT({ action: 'play', app: 'live', stream: 'tok', exp: Math.floor(Date.now() / 1000) + 60 })
      .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
    const text = await waitFor('an LL playlist', async () => {
      const r = await fetch(`${base}/tok.m3u8?token=${token}`);
      const t = await r.text();
      return r.status === 200 && t.includes('#EXT-X-PART:') && t;
    }, 15_000, 200);
    const p = parseLl(text);
    const uris = [p.map!, p.hint!, ...p.segments.flatMap((s) => [s.uri, ...s.parts.map((x) => x.uri)])];
    for (const u of uris) assert.ok(u.endsWith(`?token=${token}`), `${u} carries the token`);
    // Another session (User-Agent) with the URLs as listed: allowed; without the token: refused.
    for (const u of [p.map!, p.segments[0].uri, p.segments.at(-1)!.parts[0]?.uri ?? p.segments[0].uri]) {
      assert.equal((await fetch(`${base}/${u}`, { headers: { 'User-Agent': 'another-player' } })).status, 200, u);
      assert.equal((await fetch(`${base}/${u.split('?')[0]}`, { headers: { 'User-Agent': 'stranger' } })).status, 401, u);
    }
  });
});

describe('HEVC and AV1 from Enhanced FLV into LL-HLS', () => {
  let g: Gateway;
  before(async () => {
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 0; } hls { enabled on; hls_fragment 1; hls_window 20; hls_dispose 4s; hls_ll on; } }`;
    g = await Gateway.start(loadConfigText(conf, 'test.conf'), { log: memoryLogger().log });
  });
  after(async () => {
    await g?.close();
  });

  for (const codec of ['hevc', 'av1'] as const) {
    test(`${codec}: published over HTTP-FLV (libx265/libaom), the fMP4 playlist reads in ffprobe with no error, every frame there`, async () => {
      const enc = await encode(codec, { seconds: 3, gop: 25 });
      const body = flvBytes(enhancedTags(enc));
      const port = g.port('http');
      const r = await fetch(`http://127.0.0.1:${port}/live/${codec}.flv`, { method: 'POST', body });
      assert.equal(r.status, 200);
      const url = `http://127.0.0.1:${port}/live/${codec}.m3u8`;
      await probeFinishedPlaylist(url, `${codec},${enc.width},${enc.height},${enc.samples.length}`);
      assertAppleRules(parseLl(await (await fetch(url)).text()));
    });
  }
});
