import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { encodeAmf0 } from '../../src/ingest/rtmp/amf0.js';
import { ChunkWriter, MSG_COMMAND_AMF0, MSG_DATA_AMF0, MSG_SET_CHUNK_SIZE, type OutMessage } from '../../src/ingest/rtmp/chunk.js';
import { HANDSHAKE_BYTES } from '../../src/ingest/rtmp/handshake.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';
import { FlvPublisher, rawExchange, sleep } from '../helpers/proc.js';
import { rng } from '../helpers/random.js';

/**
 * Malformed media on the two other ingest paths: RTMP publishers whose chunk stream is random,
 * cut short, bit-flipped or spliced after a valid handshake (and handshakes that are garbage),
 * and HLS PUT uploads whose HTTP framing lies. The process must stay up, every fuzzed connection
 * must end, and a healthy stream published meanwhile must keep playing in time.
 */

const V = '__defaultVhost__';
const RTMP_INPUTS = 150;
const HANDSHAKE_INPUTS = 30;
const PUT_INPUTS = 150;
const CONCURRENCY = 8;
const SEED = 0x7e57f022;
/** How long a fuzzed connection may stay open after its input before it counts as hung. */
const PER_INPUT_BOUND_MS = 3000;
const LAG_BOUND_MS = 2000;

/** What ffmpeg sends after the handshake: chunk size, connect, createStream, publish, metadata, media. */
function validSession(stream: string, frames: number): Buffer {
  const w = new ChunkWriter();
  const size = Buffer.alloc(4);
  size.writeUInt32BE(4096);
  const msgs: OutMessage[] = [{ csid: 2, type: MSG_SET_CHUNK_SIZE, streamId: 0, timestamp: 0, payload: size }];
  const out = [w.write(msgs)];
  w.chunkSize = 4096;
  const cmd = (name: string, txn: number, streamId: number, ...args: Parameters<typeof encodeAmf0>) =>
    ({ csid: 3, type: MSG_COMMAND_AMF0, streamId, timestamp: 0, payload: encodeAmf0(name, txn, ...args) });
  out.push(w.write([
    cmd('connect', 1, 0, { app: 'live', tcUrl: 'rtmp://127.0.0.1/live', flashVer: 'FMLE/3.0' }),
    cmd('createStream', 2, 0, null),
    cmd('publish', 3, 1, null, stream, 'live'),
    { csid: 4, type: MSG_DATA_AMF0, streamId: 1, timestamp: 0, payload: encodeAmf0('@setDataFrame', 'onMetaData', { width: 320, height: 240 }) },
  ]));
  for (let i = 0; i < frames; i++) {
    const key = i % 10 === 0;
    const body = Buffer.alloc(key ? 3000 : 600, i);
    body[0] = key ? 0x17 : 0x27;
    body[1] = i === 0 ? 0 : 1;
    out.push(w.write([{ csid: 6, type: 9, streamId: 1, timestamp: i * 40, payload: body }]));
  }
  return Buffer.concat(out);
}

function mutate(base: Buffer, r: () => number): Buffer {
  const at = (n: number) => Math.floor(r() * n);
  switch (at(4)) {
    case 0: {
      const b = Buffer.alloc(1 + at(20_000));
      for (let i = 0; i < b.length; i++) b[i] = at(256);
      return b;
    }
    case 1:
      return base.subarray(0, at(base.length));
    case 2: {
      const b = Buffer.from(base);
      for (let i = 1 + at(20); i > 0; i--) b[at(b.length)] ^= 1 << at(8);
      return b;
    }
    default: {
      const other = validSession('other', 10);
      return Buffer.concat([base.subarray(0, at(base.length)), other.subarray(at(other.length))]);
    }
  }
}

/** Runs `n` inputs `CONCURRENCY` at a time. */
async function pool(n: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < n) await one(next++);
  }));
}

describe('malformed RTMP and HLS PUT input: the process and other streams carry on', () => {
  let gw: Gateway;
  let http: number;
  let rtmp: number;
  let lines: string[];
  let healthy: FlvPublisher;
  let player: FlvPlayer;
  let worstLag = 0;
  let lagTimer: NodeJS.Timeout;
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);

  before(async () => {
    const m = memoryLogger();
    lines = m.lines;
    const conf = `listen 127.0.0.1:0; access_log off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'fuzz.conf'), { log: m.log });
    http = gw.port('http');
    rtmp = gw.port('rtmp');
    process.on('uncaughtException', onUncaught);
    healthy = new FlvPublisher(http, '/live/healthy.flv', { keyframeBytes: 5000, frameBytes: 800 }).play();
    player = new FlvPlayer(http, '/live/healthy.flv');
    await waitFor('the healthy stream to play', () => player.packets.some((p) => p.pkt.kind === 'video' && !p.pkt.header));
    const source = gw.hub.find({ vhost: V, app: 'live', stream: 'healthy' })!;
    lagTimer = setInterval(() => {
      if (source.lastDts > 0 && player.lastDts() > 0) worstLag = Math.max(worstLag, source.lastDts - player.lastDts());
    }, 100);
  });

  after(async () => {
    clearInterval(lagTimer);
    process.off('uncaughtException', onUncaught);
    player?.close();
    healthy?.destroy();
    await gw?.close();
  });

  test(`${HANDSHAKE_INPUTS} garbage handshakes and ${RTMP_INPUTS} fuzzed RTMP publishes (seed ${SEED.toString(16)}): each connection ends, nothing else is hurt`, async (t) => {
    const r = rng(SEED);
    let hungHandshakes = 0;
    await pool(HANDSHAKE_INPUTS, async () => {
      const junk = Buffer.alloc(1 + HANDSHAKE_BYTES + Math.floor(r() * 3000));
      for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(r() * 256);
      if (junk[0] === 3) junk[0] = 0x47; // a valid version byte would make it a (random) C1, not garbage
      const res = await rawExchange(rtmp, junk, PER_INPUT_BOUND_MS);
      if (!res.closed) hungHandshakes++;
    });
    let closedByServer = 0;
    let hung = 0;
    await pool(RTMP_INPUTS, async (i) => {
      const input = mutate(validSession(`fz${i}`, 30), r);
      const c = new RtmpTestClient(rtmp);
      try {
        await c.ready();
        c.socket.write(input);
        // A session that still parses may stay open (a truncated one is a publisher that went
        // quiet; flipped media bytes are still media): the client hangs up, and the hub must let go.
        const closed = await Promise.race([c.closed.then(() => true), sleep(300).then(() => false)]);
        if (closed) closedByServer++;
      } catch {
        hung++;
      } finally {
        c.close();
      }
    });
    await waitFor('every fuzzed publisher gone from the hub', () => gw.hub.all().every((s) => s.name.stream === 'healthy'), 10_000);
    t.diagnostic(`handshakes: ${HANDSHAKE_INPUTS} garbage, ${hungHandshakes} left open; RTMP: ${RTMP_INPUTS} fuzzed sessions, ${closedByServer} closed by the gateway, ${hung} handshakes failed; healthy player worst lag ${worstLag} ms; ${lines.filter((l) => /rtmp/i.test(l) && /error|bad|closing|closed/i.test(l)).length} log lines about them; uncaught ${uncaught.length}`);
    assert.equal(hungHandshakes, 0, 'a garbage handshake is closed');
    assert.equal(hung, 0, 'the gateway still completes handshakes');
    assert.deepEqual(uncaught, []);
    assert.ok(worstLag < LAG_BOUND_MS, `the healthy stream kept up (worst lag ${worstLag} ms)`);
  });

  test(`${PUT_INPUTS} HLS PUT uploads with lying framing: answered or cut, never a 5xx or a hang; a clean upload still plays back`, async (t) => {
    const r = rng(SEED ^ 0xffff);
    const statuses: Record<string, number> = {};
    await pool(PUT_INPUTS, async (i) => {
      const name = `/live/put${i}.${r() < 0.5 ? 'ts' : 'm3u8'}`;
      const body = Buffer.alloc(Math.floor(r() * 50_000), i & 0xff);
      let head = `PUT ${name} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`;
      let bytes: Buffer;
      switch (Math.floor(r() * 4)) {
        case 0: // Content-Length claims less than is sent: the rest reads as a garbage next request
          bytes = Buffer.concat([Buffer.from(`${head.replace('Connection: close\r\n', '')}Content-Length: ${Math.floor(body.length / 3)}\r\n\r\n`), body]);
          break;
        case 1: { // chunked, then the client stops mid-chunk (and hangs up after a moment)
          const cut = body.subarray(0, Math.floor(body.length / 2));
          bytes = Buffer.concat([Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`), cut]);
          break;
        }
        case 2: { // chunked with a size line that is not hex
          head += 'Transfer-Encoding: chunked\r\n\r\n';
          bytes = Buffer.concat([Buffer.from(`${head}zz${Math.floor(r() * 1e6)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
          break;
        }
        default: { // a clean upload of random bytes, bit-flipped framing after it
          bytes = Buffer.concat([Buffer.from(`${head}Content-Length: ${body.length}\r\n\r\n`), body]);
          break;
        }
      }
      // An upload the client leaves unfinished waits for its bytes (request_timeout bounds it);
      // the client gives up after a moment, and the gateway must let the upload go.
      const res = await rawExchange(http, bytes, 500);
      const key = res.status ? String(res.status) : res.closed ? 'cut' : 'left unfinished';
      statuses[key] = (statuses[key] ?? 0) + 1;
    });
    // A well-formed upload after all that is stored and served back byte for byte.
    const playlist = Buffer.from('#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nclean0.ts\n');
    const put = await rawExchange(http, Buffer.concat([Buffer.from(`PUT /live/clean.m3u8 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: ${playlist.length}\r\n\r\n`), playlist]), 5000);
    const get = await fetch(`http://127.0.0.1:${http}/live/clean.m3u8`);
    const back = Buffer.from(await get.arrayBuffer());
    t.diagnostic(`${PUT_INPUTS} uploads: ${JSON.stringify(statuses)}; clean upload ${put.status}, read back ${get.status}; healthy player worst lag ${worstLag} ms; uncaught ${uncaught.length}`);
    assert.ok(Object.keys(statuses).every((s) => !/^5/.test(s) || s === '507'), JSON.stringify(statuses));
    assert.ok([200, 201, 204].includes(put.status), `clean upload: ${put.status}`);
    assert.equal(get.status, 200);
    assert.ok(back.equals(playlist));
    assert.deepEqual(uncaught, []);
    assert.ok(worstLag < LAG_BOUND_MS, `the healthy stream kept up (worst lag ${worstLag} ms)`);
  });
});
