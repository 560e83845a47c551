import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { FlvPublisher, rawExchange, sleep, timedGet } from '../helpers/proc.js';

const V = '__defaultVhost__';
const MAX_HEADER = 8 * 1024;
const MAX_URL = 1024;
const MAX_API_BODY = 4096;
const MAX_PLAYERS = 3;
const MAX_STREAMS = 2;
const MAX_CONNECTIONS = 20;

/** POST with node:http so the exact status and body are visible. */
function post(port: number, path: string, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    // The gateway may answer 413 and close before the whole body is sent: that is the point.
    req.on('error', (e) => (e as NodeJS.ErrnoException).code === 'EPIPE' || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e));
    req.end(body);
  });
}

describe('limits: oversized input and capacity bounds answer with a status, never a hang or a crash', () => {
  let gw: Gateway;
  let port: number;
  before(async () => {
    const m = memoryLogger();
    const conf = `listen off; max_connections ${MAX_CONNECTIONS};
      http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      limits { max_header_size ${MAX_HEADER}; max_url_length ${MAX_URL}; max_api_body ${MAX_API_BODY}; max_streams ${MAX_STREAMS}; }
      vhost __defaultVhost__ { play { mw_latency 50ms; max_players ${MAX_PLAYERS}; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'limits.conf'), { log: m.log });
    port = gw.port('http');
  });
  after(() => gw.close());

  test(`a request head over max_header_size (${MAX_HEADER} bytes) is answered 431`, async (t) => {
    const big = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(MAX_HEADER * 2)}\r\n\r\n`;
    const r = await rawExchange(port, big);
    t.diagnostic(`head of ${big.length} bytes: ${r.status} in ${r.ms.toFixed(1)} ms, connection closed: ${r.closed}`);
    assert.equal(r.status, 431);
    assert.ok(r.closed, 'the connection is closed after a 431');
    // Just under the bound is fine.
    const ok = await rawExchange(port, `GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Big: ${'a'.repeat(MAX_HEADER - 200)}\r\n\r\n`);
    assert.equal(ok.status, 404);
  });

  test(`a request-target over max_url_length (${MAX_URL} bytes) is answered 414, on every lane`, async (t) => {
    for (const path of [`/${'a'.repeat(MAX_URL)}`, `/live/${'s'.repeat(MAX_URL)}.flv`, `/api/v1/${'x'.repeat(MAX_URL)}`, `/index.html?${'q'.repeat(MAX_URL)}`]) {
      const r = await timedGet(port, path);
      assert.equal(r.status, 414, path.slice(0, 20));
      assert.match(r.body, /too long/);
    }
    const r = await timedGet(port, `/${'a'.repeat(MAX_URL - 10)}`);
    t.diagnostic(`URL of ${MAX_URL + 1} bytes: 414; ${MAX_URL - 9} bytes: ${r.status}`);
    assert.equal(r.status, 404);
  });

  test(`an API body over max_api_body (${MAX_API_BODY} bytes) is answered 413, declared or chunked`, async (t) => {
    const declared = await post(port, '/rtc/v1/publish/', Buffer.alloc(MAX_API_BODY * 4, 'x'), { 'Content-Type': 'application/json' });
    assert.equal(declared.status, 413);
    assert.match(declared.body, /BODY_TOO_LARGE|too large/);
    const chunked = await post(port, '/rtc/v1/publish/', Buffer.from(`{"sdp":"${'v'.repeat(MAX_API_BODY * 4)}"}`), { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    assert.equal(chunked.status, 413);
    t.diagnostic(`${MAX_API_BODY * 4}-byte bodies: ${declared.status} (Content-Length), ${chunked.status} (chunked)`);
    // Within the bound the body is read and the request goes on to the (absent) WebRTC backend.
    const small = await post(port, '/rtc/v1/publish/', Buffer.from('{"sdp":"v=0"}'), { 'Content-Type': 'application/json' });
    assert.equal(small.status, 501);
  });

  test(`the player after max_players (${MAX_PLAYERS}) is refused with 503 and a clear body; a seat frees when one leaves`, async (t) => {
    const pub = new FlvPublisher(port, '/live/cap.flv').play();
    const players: FlvPlayer[] = [];
    try {
      await waitFor('cap live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'cap' }));
      for (let i = 0; i < MAX_PLAYERS; i++) players.push(new FlvPlayer(port, '/live/cap.flv'));
      await waitFor('players seated', () => gw.hub.find({ vhost: V, app: 'live', stream: 'cap' })?.playerCount === MAX_PLAYERS);
      const refused = await timedGet(port, '/live/cap.flv');
      t.diagnostic(`player ${MAX_PLAYERS + 1}: ${refused.status} "${refused.body.trim()}"`);
      assert.equal(refused.status, 503);
      assert.match(refused.body, new RegExp(`at most ${MAX_PLAYERS} players per stream`));
      players[0].close();
      await waitFor('a seat to free', () => gw.hub.find({ vhost: V, app: 'live', stream: 'cap' })?.playerCount === MAX_PLAYERS - 1);
      const again = new FlvPlayer(port, '/live/cap.flv');
      players.push(again);
      await waitFor('the new player to get media', () => again.packets.some((p) => p.pkt.kind === 'video' && !p.pkt.header));
      assert.equal(again.status, 200);
    } finally {
      for (const p of players) p.close();
      pub.destroy();
    }
  });

  test(`the publisher after max_streams (${MAX_STREAMS}) is refused with 503 and a clear body`, async (t) => {
    const pubs = Array.from({ length: MAX_STREAMS }, (_, i) => new FlvPublisher(port, `/live/ms${i}.flv`).play());
    try {
      await waitFor('streams live', () => gw.hub.all().length === MAX_STREAMS);
      const extra = new FlvPublisher(port, '/live/one-too-many.flv');
      const status = await extra.response;
      extra.destroy();
      t.diagnostic(`publisher ${MAX_STREAMS + 1}: ${status}`);
      assert.equal(status, 503);
      assert.equal(gw.hub.find({ vhost: V, app: 'live', stream: 'one-too-many' }), undefined);
      // The body says why: read it with a plain POST of an FLV header.
      const r = await post(port, '/live/another.flv', Buffer.from('FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00', 'latin1'));
      assert.equal(r.status, 503);
      assert.match(r.body, /at most 2 streams/);
    } finally {
      for (const p of pubs) p.destroy();
    }
    await waitFor('streams gone', () => gw.hub.all().length === 0);
    const p = new FlvPublisher(port, '/live/after.flv');
    await waitFor('a new stream is accepted once the others left', () => gw.hub.find({ vhost: V, app: 'live', stream: 'after' }));
    p.destroy();
  });

  test(`the connection after max_connections (${MAX_CONNECTIONS}) busy ones is answered 503, and serving resumes when they close`, async (t) => {
    await waitFor('no connections left over', () => gw.traffic().connections === 0);
    const held: net.Socket[] = [];
    try {
      // Busy connections: each is in the middle of an upload (an idle or silent one would be
      // reclaimed for the newcomer instead: see the next test).
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        await once(s, 'connect');
        // Expect: 100-continue, so the interim answer says the server has read the head.
        s.write(`PUT /live/held${i}.ts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n`);
        await once(s, 'data');
        s.write('abc');
        held.push(s);
      }
      await waitFor('connections counted', () => gw.traffic().connections === MAX_CONNECTIONS);
      const over = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 3000);
      t.diagnostic(`connection ${MAX_CONNECTIONS + 1}: status ${over.status || '(none)'}, closed ${over.closed}, ${over.error ?? ''} "${over.body.toString().trim()}"`);
      assert.equal(over.status, 503, `connection ${MAX_CONNECTIONS + 1} is told why, not silently dropped (got ${over.status || over.error || 'nothing'})`);
      assert.match(over.body.toString(), /max_connections|too many connections/);
      assert.ok(over.closed);
    } finally {
      for (const s of held) s.destroy();
    }
    await waitFor('held connections closed', () => gw.traffic().connections === 0);
    await sleep(50);
    const r = await timedGet(port, '/nothing-here');
    assert.equal(r.status, 404);
  });
});
