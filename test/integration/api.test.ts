import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { VERSION } from '../../src/version.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { publish, waitFor } from '../helpers/ffmpeg.js';

/** SRS's documented response shapes, field by field ("int", "str", "float", "bool", nested objects, arrays). */
const SHAPES = JSON.parse(readFileSync(new URL('../../../test/fixtures/srs-api-shapes.json', import.meta.url), 'utf8')) as Record<string, unknown>;

/** Checks `value` against SRS's shape; returns every mismatch as "path: expected X, got Y". */
function conform(value: unknown, shape: unknown, path = '$'): string[] {
  if (typeof shape === 'string') {
    const ok = shape === 'int' ? Number.isInteger(value) : shape === 'float' ? typeof value === 'number'
      : shape === 'str' ? typeof value === 'string' : shape === 'bool' ? typeof value === 'boolean' : false;
    return ok ? [] : [`${path}: expected ${shape}, got ${JSON.stringify(value)}`];
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) return [`${path}: expected an array`];
    return value.flatMap((v, i) => conform(v, shape[0], `${path}[${i}]`));
  }
  if (shape && typeof shape === 'object') {
    if (!value || typeof value !== 'object') return [`${path}: expected an object, got ${JSON.stringify(value)}`];
    const out: string[] = [];
    for (const [k, sub] of Object.entries(shape)) {
      const v = (value as Record<string, unknown>)[k];
      // SRS answers null for a track the stream does not have.
      if (v === null && (k === 'video' || k === 'audio')) continue;
      if (!(k in (value as object))) out.push(`${path}.${k}: missing`);
      else out.push(...conform(v, sub, `${path}.${k}`));
    }
    return out;
  }
  return [];
}

async function get(port: number, path: string, init?: RequestInit): Promise<{ status: number; body: any; headers: Headers }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, init);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON; the test says what it expected
  }
  return { status: r.status, body, headers: r.headers };
}

describe('embedded SRS-compatible API', () => {
  let gw: Gateway;
  let port: number;
  before(async () => {
    const { log } = memoryLogger();
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      limits { max_api_body 4k; }
      vhost __defaultVhost__ { play { mw_latency 50ms; } publish { allow 127.0.0.1; secret hunter2-secret; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'test.conf'), { log });
    port = gw.port('http');
  });
  after(() => gw.close());

  test('versions and summaries answer in SRS envelopes with SRS field types', async () => {
    const v = await get(port, '/api/v1/versions');
    assert.equal(v.status, 200);
    assert.deepEqual(conform(v.body, SHAPES['/api/v1/versions']), []);
    assert.equal(v.body.code, 0);
    assert.equal(v.body.data.version, VERSION);
    assert.equal(v.body.pid, String(process.pid));

    const s = await get(port, '/api/v1/summaries');
    assert.deepEqual(conform(s.body, SHAPES['/api/v1/summaries']), []);
    assert.equal(s.body.data.self.pid, process.pid);
    assert.ok(s.body.data.self.mem_kbyte > 1000, 'RSS in KiB');
    assert.ok(s.body.data.system.conn_srs >= 1, 'this connection is counted');
    assert.ok(s.body.data.system.srs_send_bytes > 0, 'bytes sent so far');
  });

  test('lists are empty, not missing, before anything is live', async () => {
    const s = await get(port, '/api/v1/streams/');
    assert.deepEqual(s.body.streams, []);
    const c = await get(port, '/api/v1/clients/');
    assert.deepEqual(c.body.clients, []);
    const v = await get(port, '/api/v1/vhosts/');
    assert.deepEqual(conform(v.body, SHAPES['/api/v1/vhosts/']), []);
    assert.equal(v.body.vhosts[0].name, '__defaultVhost__');
  });

  test('a live stream, its publisher and a player show up with codecs; DELETE kicks the player, then the publisher', async () => {
    const pub = publish(`http://127.0.0.1:${port}/live/api.flv`, { seconds: 30, size: '640x360' });
    let player: FlvPlayer | null = null;
    try {
      await waitFor('the stream', () => gw.hub.find({ vhost: '__defaultVhost__', app: 'live', stream: 'api' })?.audioHeader);
      player = new FlvPlayer(port, '/live/api.flv');
      await waitFor('the player to get media', () => player!.packets.length > 3);

      const s = await get(port, '/api/v1/streams/');
      assert.deepEqual(conform(s.body, SHAPES['/api/v1/streams/']), []);
      assert.equal(s.body.streams.length, 1);
      const st = s.body.streams[0];
      assert.equal(st.name, 'api');
      assert.equal(st.app, 'live');
      assert.equal(st.url, '/live/api');
      assert.equal(st.publish.active, true);
      assert.equal(st.clients, 2, 'publisher + player');
      assert.deepEqual({ codec: st.video.codec, width: st.video.width, height: st.video.height }, { codec: 'H264', width: 640, height: 360 });
      assert.match(st.video.profile, /^(High|Main|Baseline|Constrained Baseline)$/);
      assert.match(st.video.level, /^\d(\.\d)?$/);
      assert.deepEqual(st.audio, { codec: 'AAC', sample_rate: 44100, channel: 1, profile: 'LC' });

      const one = await get(port, `/api/v1/streams/${st.id}`);
      assert.equal(one.body.stream.id, st.id);

      const c = await get(port, '/api/v1/clients/');
      assert.deepEqual(conform(c.body, SHAPES['/api/v1/clients/']), []);
      const publisher = c.body.clients.find((x: any) => x.publish);
      const viewer = c.body.clients.find((x: any) => !x.publish);
      assert.equal(publisher.type, 'flv-publish');
      assert.equal(viewer.type, 'flv-play');
      assert.equal(viewer.stream, st.id, "a client's stream is the stream's id, as in SRS");
      assert.equal(viewer.ip, '127.0.0.1');
      assert.equal(st.publish.cid, publisher.id);

      const kicked = await get(port, `/api/v1/clients/${viewer.id}`, { method: 'DELETE' });
      assert.equal(kicked.status, 200);
      assert.equal(kicked.body.code, 0);
      await player.done;
      const after1 = await get(port, `/api/v1/clients/${viewer.id}`);
      assert.equal(after1.status, 404);

      await get(port, `/api/v1/clients/${publisher.id}`, { method: 'DELETE' });
      await waitFor('the stream to end', () => gw.hub.all().length === 0);
      const s2 = await get(port, '/api/v1/streams/');
      assert.deepEqual(s2.body.streams, []);
    } finally {
      player?.socket.destroy();
      pub.kill();
    }
  });

  test('the config view shows listeners and routes and never the publish secret', async () => {
    const r = await get(port, '/api/v1/config');
    assert.equal(r.status, 200);
    const text = JSON.stringify(r.body);
    assert.doesNotMatch(text, /hunter2/);
    assert.ok(r.body.data.listeners.some((l: any) => l.role === 'http' && l.port === port));
    assert.ok(r.body.data.routes.some((x: any) => x.path === '/api/' && /embedded/.test(x.to)));
    assert.equal(r.body.data.vhosts.find((v: any) => v.name === '__defaultVhost__').publish_secret_set, true);
  });

  test('every resource the /api/v1/ index lists answers GET and HEAD; a malformed id is 400 whatever the method', async () => {
    const idx = await get(port, '/api/v1/');
    assert.equal(idx.status, 200);
    const names = Object.keys(idx.body.urls);
    assert.deepEqual(names.slice(0, 6), ['versions', 'summaries', 'streams', 'clients', 'vhosts', 'config']);
    for (const n of names) {
      const r = await get(port, `/api/v1/${n}/`);
      assert.equal(r.status, 200, n);
      assert.equal(r.body.code, 0, n);
      assert.equal(r.headers.get('cache-control'), 'no-store', n);
      const h = await fetch(`http://127.0.0.1:${port}/api/v1/${n}`, { method: 'HEAD' });
      assert.equal(h.status, 200, `HEAD ${n}`);
    }
    for (const method of ['GET', 'DELETE', 'POST']) {
      const bad = await get(port, '/api/v1/clients/%ff', { method });
      assert.equal(bad.status, 400, method);
      assert.equal(bad.body.error, 'BAD_REQUEST');
    }
    const all = await get(port, '/api/v1/clients/', { method: 'DELETE' });
    assert.equal(all.status, 405, 'DELETE of the whole list kicks nobody');
    assert.equal(all.headers.get('allow'), 'GET, HEAD, OPTIONS');
    assert.equal((await get(port, '/api/v1/Streams/')).status, 404, 'paths are case-sensitive, as SRS\'s');
  });

  test('unknown APIs are 404 JSON; wrong methods 405 with Allow; /rtc/ without a backend says to proxy it', async () => {
    const nf = await get(port, '/api/v1/nothing');
    assert.equal(nf.status, 404);
    assert.equal(nf.body.error, 'API_NOT_FOUND');
    const m = await get(port, '/api/v1/streams/', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    assert.equal(m.status, 405);
    assert.match(m.headers.get('allow') ?? '', /GET/);
    const rtc = await get(port, '/rtc/v1/play/', { method: 'POST', body: JSON.stringify({ streamurl: 'webrtc://x/live/a', sdp: 'v=0' }), headers: { 'Content-Type': 'application/json' } });
    assert.equal(rtc.status, 501);
    assert.equal(rtc.body.error, 'RTC_NO_BACKEND');
    assert.match(rtc.body.message, /proxy \/rtc\//);
    const bad = await get(port, '/rtc/v1/play/', { method: 'POST', body: '{"sdp": ', headers: { 'Content-Type': 'application/json' } });
    assert.equal(bad.status, 400);
    const big = await get(port, '/rtc/v1/play/', { method: 'POST', body: JSON.stringify({ sdp: 'x'.repeat(10_000) }), headers: { 'Content-Type': 'application/json' } });
    assert.equal(big.status, 413);
    assert.equal(big.body.error, 'BODY_TOO_LARGE');
  });
});
