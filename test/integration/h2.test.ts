import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeSite, pattern, startGateway, type Site } from './site.js';
import type { Gateway } from '../../src/gateway.js';
import { FlvPublisher, sleep } from '../helpers/proc.js';
import { Decoder } from '../../src/http/h2/hpack.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { keyPairIn } from '../helpers/tls.js';
import { frame, getBlock, PREFACE } from '../helpers/h2-frames.js';

/**
 * HTTPS with HTTP/2 (src/http/h2/): what the gateway answers from memory is written as frames by
 * streamgate's own connection, everything else is relayed to Node's http2 server and Koa. Real
 * clients (curl, nghttp) on a real port; for broken frames, a TLS socket that writes the bytes.
 */

const run = promisify(execFile);
const MID = pattern(300 * 1024, 11);

/** nghttp's `-v` trace: the response header fields of each stream, in order, and the frames received. */
function trace(out: string): { headers: Map<number, [string, string][]>; frames: string[] } {
  const headers = new Map<number, [string, string][]>();
  for (const m of out.matchAll(/recv \(stream_id=(\d+)\) ([^:\s][^:]*|:[a-z]+): (.*)/g)) {
    const id = Number(m[1]);
    headers.set(id, [...(headers.get(id) ?? []), [m[2], m[3]]]);
  }
  return { headers, frames: [...out.matchAll(/recv (\w+) frame/g)].map((m) => m[1]) };
}

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/**
 * Opens h2 over TLS, writes the preface (unless `noPreface`), an empty SETTINGS and `bytes`,
 * and returns every frame the server sends until it closes or `ms` pass.
 */
async function rawH2(port: number, bytes: Buffer, opts: { noPreface?: boolean; ms?: number; later?: { ms: number; bytes: Buffer } } = {}): Promise<Frame[]> {
  const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  await once(s, 'secureConnect');
  assert.equal(s.alpnProtocol, 'h2');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('error', () => {});
  s.write(opts.noPreface ? bytes : Buffer.concat([Buffer.from(PREFACE), frame(4, 0, 0), bytes]));
  const later = opts.later;
  if (later !== undefined) setTimeout(() => s.destroyed || s.write(later.bytes), later.ms);
  await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, opts.ms ?? 1500))]);
  s.destroy();
  const all = Buffer.concat(chunks);
  const frames: Frame[] = [];
  for (let p = 0; p + 9 <= all.length;) {
    const len = all.readUIntBE(p, 3);
    frames.push({ type: all[p + 3], flags: all[p + 4], id: all.readUInt32BE(p + 5) & 0x7fffffff, payload: all.subarray(p + 9, p + 9 + len) });
    p += 9 + len;
  }
  return frames;
}

const goawayCode = (fs: Frame[]) => fs.find((f) => f.type === 7)?.payload.readUInt32BE(4);
const rstCode = (fs: Frame[], id: number) => fs.find((f) => f.type === 3 && f.id === id)?.payload.readUInt32BE(0);

describe('HTTPS over HTTP/2', () => {
  let site: Site;
  let gw: Gateway;
  let lines: string[];
  let port: number;
  let http1: number;
  let upstream: http.Server;
  let base: string;

  before(async () => {
    site = makeSite();
    writeFileSync(join(site.root, 'mid.bin'), MID);
    upstream = http.createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => {
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ method: req.method, url: req.url, bodyBytes: n, big: (req.headers['x-big'] as string | undefined)?.length ?? 0 }));
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const up = (upstream.address() as net.AddressInfo).port;
    ({ gw, lines } = await startGateway(`listen off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} } }
      proxy { route /up/ http://127.0.0.1:${up}; }
      limits { max_header_size 65536; }`));
    port = gw.port('https');
    http1 = gw.port('http');
    base = `https://127.0.0.1:${port}`;
  });

  after(async () => {
    await gw.close();
    upstream.close();
    site.remove();
  });

  test('curl: a file from memory, HEAD, a 404, a range (Koa), the same bytes as on disk', async () => {
    const curl = async (...args: string[]) => (await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_version} %{http_code} %{size_download}', ...args])).stdout;
    assert.equal(await curl(`${base}/data.bin`), '2 200 1000');
    // Twice: the first read of a file fills the cache (answered by Koa), the second is from memory.
    const body = await run('curl', ['-sk', '--http2', `${base}/data.bin`], { encoding: 'buffer' });
    assert.ok(body.stdout.equals(site.files['/data.bin']));
    const head = (await run('curl', ['-sk', '--http2', '-I', `${base}/data.bin`])).stdout;
    assert.match(head, /^HTTP\/2 200/);
    assert.match(head, /content-length: 1000/);
    assert.match(head, /etag: "/);
    assert.equal(await curl(`${base}/missing.txt`), '2 404 14');
    // HEAD of an error page: headers only (Node's HEAD stream is never "writable"; it used to be reset).
    const head404 = (await run('curl', ['-sk', '--http2', '-I', `${base}/missing.txt`])).stdout;
    assert.match(head404, /^HTTP\/2 404/);
    assert.match(head404, /content-length: 14/);
    assert.equal(await curl('-r', '10-19', `${base}/data.bin`), '2 206 10');
    assert.equal(await curl('-H', 'If-None-Match: *', `${base}/data.bin`), '2 304 0');
  });

  test('nghttp: the first header of a memory answer is content-type, as on HTTP/1.1 (the fast lane), and Koa answers the rest', async () => {
    await run('curl', ['-sk', '--http2', '-o', '/dev/null', `${base}/hello.txt`]);
    const { stdout } = await run('nghttp', ['-nv', `${base}/hello.txt`, `${base}/dir/`]);
    const { headers } = trace(stdout);
    const [fast, table] = [...headers.values()];
    assert.deepEqual(fast.slice(0, 2), [[':status', '200'], ['content-type', 'text/plain;charset=utf-8']]);
    assert.ok(fast.some(([n]) => n === 'date'));
    assert.ok(table.some(([n, v]) => n === ':status' && v === '200'), `Koa answered /dir/: ${JSON.stringify(table)}`);
    assert.notEqual(table[1][0], 'content-type');
    // Koa, behind the relay, sees the client's address and HTTP/2.
    await waitFor('the access line of /dir/', () => lines.some((l) => l.includes('"GET /dir/ HTTP/2.0" 200')));
    assert.match(lines.find((l) => l.includes('"GET /dir/ HTTP/2.0" 200'))!, /^127\.0\.0\.1 /);
  });

  test('nghttp: big answers over many DATA frames with 1 KB windows, from memory and from disk', async () => {
    await run('curl', ['-sk', '--http2', '-o', '/dev/null', `${base}/mid.bin`]);
    for (const [path, want] of [['/mid.bin', MID], ['/big.bin', site.files['/big.bin']]] as const) {
      const { stdout } = await run('nghttp', ['-w', '10', '-W', '10', `${base}${path}`], { encoding: 'buffer', maxBuffer: 8 * 1024 * 1024 });
      assert.equal(stdout.length, want.length, path);
      assert.ok(stdout.equals(want), `${path}: the bytes as on disk`);
    }
  });

  test('nghttp: 300 requests on one connection with at most 128 at a time, all answered', async () => {
    const { stdout } = await run('nghttp', ['-ns', '-m', '300', '-w', '14', `${base}/hello.txt`], { maxBuffer: 1 << 20 });
    const codes = [...stdout.matchAll(/^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s/gm)].map((m) => m[1]);
    assert.equal(codes.length, 300);
    assert.ok(codes.every((c) => c === '200'));
    const settings = (await run('nghttp', ['-nv', `${base}/hello.txt`])).stdout;
    assert.match(settings, /SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):128/);
  });

  test('HPACK: Huffman-coded fields and the dynamic table across requests reach the access log intact', async () => {
    const agent = `agent-${Date.now()}-Ünï`.replace(/[^\x20-\x7e]/g, 'u');
    const referer = `https://example.test/page?q=${'z'.repeat(50)}`;
    const mark = lines.length;
    // nghttp Huffman-codes literals and indexes them: the 2nd to 4th request send only table indexes.
    await run('nghttp', ['-n', '-H', `user-agent: ${agent}`, '-H', `referer: ${referer}`, `${base}/hello.txt`, `${base}/hello.txt?2`, `${base}/hello.txt?3`, `${base}/hello.txt?4`]);
    await waitFor('four access lines', () => lines.slice(mark).filter((l) => l.includes(agent)).length === 4);
    for (const l of lines.slice(mark).filter((x) => x.includes(agent))) {
      assert.ok(l.includes(referer), l);
      assert.match(l, /"GET \/hello\.txt(\?\d)? HTTP\/2\.0" 200/);
    }
  });

  test('one connection repeating and varying its requests: each answer and access line is its own request\'s (the connection keeps its last 4)', () => repeatedRequests(base, lines));

  test('SETTINGS_HEADER_TABLE_SIZE 0: the next header block starts with a table size update, and no block needs a dynamic table', async () => {
    const settings = frame(4, 0, 0, [0, 1, 0, 0, 0, 0]);
    // From memory twice, then a 404 that Koa answers through the relay.
    const gets = [frame(1, 5, 1, getBlock('/hello.txt')), frame(1, 5, 3, getBlock('/hello.txt')), frame(1, 5, 5, getBlock('/no-such-file.txt'))];
    const fs = await rawH2(port, Buffer.concat([Buffer.from(PREFACE), settings, ...gets]), { noPreface: true, ms: 2000 });
    // In the order they arrive (answers from memory and relayed ones may overtake each other).
    const blocks = fs.filter((f) => f.type === 1);
    assert.deepEqual(blocks.map((f) => f.id).sort(), [1, 3, 5]);
    assert.equal(blocks[0].payload[0], 0x20, 'the first block opens with "table size 0" (RFC 7541 §4.2)');
    assert.ok(blocks.slice(1).every((f) => f.payload[0] !== 0x20), 'and only the first');
    // A decoder that holds no dynamic entries decodes every block the server sent.
    const decoder = new Decoder(0);
    const status = new Map(blocks.map((f) => [f.id, decoder.decode(f.payload).fields.find(([n]) => n === ':status')?.[1]]));
    assert.deepEqual([1, 3, 5].map((id) => status.get(id)), ['200', '200', '404']);
  });

  test('CONTINUATION: a 40 KB header block in, to the fast lane and through the relay to a proxied upstream', async () => {
    const big = pattern(30_000, 5).toString('base64').slice(0, 40_000);
    // nghttp logs a header block as one HEADERS frame of its whole length; past our 16 KB
    // SETTINGS_MAX_FRAME_SIZE it can only have gone out as HEADERS + CONTINUATION.
    const fast = await run('nghttp', ['-v', '-H', `x-big: ${big}`, `${base}/hello.txt`], { maxBuffer: 1 << 22 });
    const sent = Number(/send HEADERS frame <length=(\d+)/.exec(fast.stdout)?.[1]);
    assert.ok(sent > 16384, `a header block of ${sent} octets`);
    assert.ok(fast.stdout.includes('recv (stream_id=13) :status: 200') && fast.stdout.includes('hello world'), 'answered');
    const up = await run('nghttp', ['-H', `x-big: ${big}`, `${base}/up/echo`], { maxBuffer: 1 << 22 });
    assert.equal(JSON.parse(up.stdout).big, big.length);
    // Past max_header_size (64 KB here; curl and nghttp refuse to send that much, having read
    // our SETTINGS_MAX_HEADER_LIST_SIZE): 431, as on HTTP/1.1. A 70,000-octet literal, in 16 KB frames.
    const value = Buffer.alloc(70_000, 'a');
    const block = Buffer.concat([getBlock('/hello.txt'), Buffer.from([0x00, 5]), Buffer.from('x-big'), Buffer.from([0x7f, ((70_000 - 127) & 0x7f) | 0x80, (((70_000 - 127) >> 7) & 0x7f) | 0x80, (70_000 - 127) >> 14]), value]);
    const frames: Buffer[] = [];
    for (let off = 0; off < block.length; off += 16384) {
      const last = off + 16384 >= block.length;
      frames.push(frame(off === 0 ? 1 : 9, (off === 0 ? 1 : 0) | (last ? 4 : 0), 1, block.subarray(off, off + 16384)));
    }
    const fs = await rawH2(port, Buffer.concat(frames));
    assert.ok(fs.some((f) => f.type === 1 && f.id === 1 && f.payload.includes('431')), 'HEADERS with :status 431');
    assert.ok(fs.some((f) => f.type === 0 && f.id === 1 && f.payload.toString().startsWith('431 ')), 'and a body saying so');
    assert.equal(goawayCode(fs), undefined);
  });

  test('relay: a proxied GET and a 300 KB POST through small windows reach the upstream; the embedded API answers', async () => {
    const body = join(site.base, 'post.bin');
    writeFileSync(body, MID);
    const post = await run('nghttp', ['-w', '12', '-W', '12', '-d', body, `${base}/up/post?x=1`]);
    assert.deepEqual(JSON.parse(post.stdout), { method: 'POST', url: '/up/post?x=1', bodyBytes: MID.length, big: 0 });
    const get = await run('curl', ['-sk', '--http2', `${base}/up/thing`]);
    assert.equal(JSON.parse(get.stdout).url, '/up/thing');
    const api = await run('curl', ['-sk', '--http2', '-w', '\n%{http_version} %{http_code}', `${base}/api/v1/versions`]);
    assert.match(api.stdout, /\n2 200$/);
  });

  test('relay: HTTP-FLV over h2 streams live and the process keeps serving', async () => {
    const pub = new FlvPublisher(http1, '/live/h2.flv').play();
    try {
      await waitFor('the stream', () => gw.hub.all().length === 1);
      const flv = await run('curl', ['-sk', '--http2', '--max-time', '2', `${base}/live/h2.flv`], { encoding: 'buffer', maxBuffer: 1 << 24 }).catch((e: { stdout: Buffer }) => e);
      assert.equal(flv.stdout.subarray(0, 3).toString(), 'FLV');
      assert.ok(flv.stdout.length > 1000, `${flv.stdout.length} bytes of live FLV`);
      // A player that resets its stream: the reset reaches Node through the relay and the player is gone.
      const session = http2.connect(base, { rejectUnauthorized: false });
      session.on('error', () => {});
      try {
        const source = gw.hub.all()[0];
        await waitFor('curl to be gone', () => source.playerCount === 0);
        const st = session.request({ ':path': '/live/h2.flv' });
        let got = 0;
        st.on('data', (c: Buffer) => (got += c.length));
        st.on('error', () => {});
        await waitFor('bytes over h2', () => got > 1000 && source.playerCount === 1);
        st.close(http2.constants.NGHTTP2_CANCEL);
        await waitFor('the player removed', () => source.playerCount === 0);
        const again = await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code}', `${base}/hello.txt`]);
        assert.equal(again.stdout, '200');
      } finally {
        session.destroy();
      }
    } finally {
      pub.destroy();
    }
  });

  test('bad frames: GOAWAY or RST_STREAM with the codes of RFC 9113, and others are still served', async () => {
    // Connection errors.
    assert.equal(goawayCode(await rawH2(port, frame(0, 0, 0, [1, 2, 3]))), 1, 'DATA on stream 0: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(6, 0, 0, Buffer.alloc(20_000)))), 6, 'a frame past MAX_FRAME_SIZE: FRAME_SIZE_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(1, 5, 1, [0xe3]))), 9, 'an index beyond the tables: COMPRESSION_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(1, 5, 1, [0x82, 0x84, 0x87, 0x01, 0x81, 0xff]))), 9, 'Huffman padding of 8 bits: COMPRESSION_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(1, 5, 2, getBlock('/hello.txt')))), 1, 'HEADERS on an even stream: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(9, 4, 1, getBlock('/hello.txt')))), 1, 'CONTINUATION without HEADERS: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, Buffer.concat([frame(1, 1, 1, getBlock('/hello.txt')), frame(6, 0, 0, Buffer.alloc(8))]))), 1, 'a PING inside a header block: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(4, 0, 0, [0, 4, 0x80, 0, 0, 0]))), 3, 'INITIAL_WINDOW_SIZE above 2^31-1: FLOW_CONTROL_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(4, 0, 0, [0, 5, 0, 0, 0, 1]))), 1, 'MAX_FRAME_SIZE below 16384: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, frame(8, 0, 0, [0, 0, 0, 0]))), 1, 'WINDOW_UPDATE of 0 on the connection: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n\r\n')]), { noPreface: true })), 1, 'no preface: PROTOCOL_ERROR');
    assert.equal(goawayCode(await rawH2(port, Buffer.concat([Buffer.from(PREFACE), frame(6, 0, 0, Buffer.alloc(8))]), { noPreface: true })), 1, 'first frame not SETTINGS: PROTOCOL_ERROR');

    // Stream errors leave the connection up: the next request on it is answered.
    const after = frame(1, 5, 7, getBlock('/hello.txt'));
    let fs = await rawH2(port, Buffer.concat([frame(1, 4, 1, getBlock('/hello.txt')), frame(8, 0, 1, [0, 0, 0, 0]), after]));
    assert.equal(rstCode(fs, 1), 1, 'WINDOW_UPDATE of 0 on a stream: RST_STREAM PROTOCOL_ERROR');
    assert.ok(fs.some((f) => f.type === 1 && f.id === 7), 'then stream 7 is answered');
    fs = await rawH2(port, Buffer.concat([frame(1, 5, 1, getBlock('/hello.txt')), frame(0, 1, 1, [1]), after]));
    assert.equal(rstCode(fs, 1), 5, 'DATA after END_STREAM: RST_STREAM STREAM_CLOSED');
    assert.ok(fs.some((f) => f.type === 1 && f.id === 7));
    assert.equal(goawayCode(fs), undefined);
    fs = await rawH2(port, Buffer.concat([frame(1, 0x25, 1, Buffer.concat([Buffer.from([0, 0, 0, 1, 16]), getBlock('/hello.txt')])), after]));
    assert.equal(rstCode(fs, 1), 1, 'a stream that depends on itself: RST_STREAM PROTOCOL_ERROR');
    assert.ok(fs.some((f) => f.type === 1 && f.id === 7));

    // PING is answered with its payload; PRIORITY and unknown frame types are ignored.
    fs = await rawH2(port, Buffer.concat([frame(6, 0, 0, Buffer.from('pingpong')), frame(2, 0, 3, [0, 0, 0, 0, 16]), frame(0xfa, 0, 0, [1, 2]), after]));
    const pong = fs.find((f) => f.type === 6);
    assert.equal(pong?.flags, 1);
    assert.equal(pong?.payload.toString(), 'pingpong');
    assert.ok(fs.some((f) => f.type === 1 && f.id === 7));
    assert.ok(fs.some((f) => f.type === 4 && f.flags === 1), 'the client SETTINGS are acknowledged');

    const ok = await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code}', `${base}/hello.txt`]);
    assert.equal(ok.stdout, '200');
  });
});

describe('HTTP/2 rapid reset (CVE-2023-44487)', () => {
  test('a client cancelling open streams past the budget gets GOAWAY ENHANCE_YOUR_CALM; one within it is served', async () => {
    const site = makeSite();
    const { gw } = await startGateway(`listen off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} } }`);
    try {
      const port = gw.port('https');
      // A path no memory answers: each stream would be relayed to Node and Koa, but the reset
      // arrives in the same read, so none is. Such a reset costs two of the burst of 128.
      const opened = (n: number) => Buffer.concat(Array.from({ length: n }, (_, i) => Buffer.concat([frame(1, 5, 2 * i + 1, getBlock(`/nothing-${i}.txt`)), frame(3, 0, 2 * i + 1, [0, 0, 0, 8])])));
      let fs = await rawH2(port, opened(60), { ms: 2000, later: { ms: 500, bytes: frame(1, 5, 121, getBlock('/nothing-else.txt')) } });
      assert.equal(goawayCode(fs), undefined, '60 cancelled streams are within the budget');
      assert.ok(fs.some((f) => f.type === 1 && f.id === 121), 'and the next request is answered');
      // None reached Node, so none counted against the streams in flight to it: none refused.
      const refused = fs.filter((f) => f.type === 3 && f.payload.readUInt32BE(0) === 7).length;
      assert.equal(refused, 0, `${refused} of 60 refused`);
      fs = await rawH2(port, opened(100), { ms: 3000 });
      assert.equal(goawayCode(fs), 11, '100 at once: ENHANCE_YOUR_CALM (64 such resets a burst)');
      const { stdout } = await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${port}/hello.txt`]);
      assert.equal(stdout, '200', 'others are still served');
    } finally {
      await gw.close();
      site.remove();
    }
  });
});

/**
 * One HTTP/2 connection asks six kinds of request (more than a connection keeps), three times
 * each: every answer and access line must be its own request's, whatever a kept one memoised.
 */
async function repeatedRequests(base: string, lines: string[]): Promise<void> {
  // Warm the cache, so every answer below comes from memory, where repeated requests are kept.
  for (const p of ['/hello.txt', '/data.bin']) await run('curl', ['-sk', '--http2', '-o', '/dev/null', `${base}${p}`]);
  const session = http2.connect(base, { rejectUnauthorized: false });
  const tag = `kept-${Date.now()}`;
  const mark = lines.length;
  // Six kinds of request, more than the connection keeps, each asked three times in turn.
  const kinds = [0, 1, 2, 3, 4, 5].map((k) => ({
    path: k % 2 === 0 ? `/hello.txt?k=${k}` : '/data.bin',
    agent: `${tag}-agent-${k}`,
    referer: k === 3 ? `https://r.test/${k}` : '',
    origin: k === 1 || k === 4 ? 'https://player.test' : null,
  }));
  try {
    for (let round = 0; round < 3; round++) {
      for (const k of kinds) {
        const headers: http2.OutgoingHttpHeaders = { ':path': k.path, 'user-agent': k.agent };
        if (k.referer) headers.referer = k.referer;
        if (k.origin) headers.origin = k.origin;
        const req = session.request(headers);
        const [res] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
        req.resume();
        await once(req, 'end');
        assert.equal(res[':status'], 200, k.path);
        // CORS comes with Origin only: a kept request's memo must not lend it to another.
        assert.equal(res['access-control-allow-origin'], k.origin ? '*' : undefined, `${k.agent} ${k.path}`);
      }
    }
  } finally {
    session.close();
  }
  await waitFor('18 access lines', () => lines.slice(mark).filter((l) => l.includes(tag)).length === 18);
  const mine = lines.slice(mark).filter((l) => l.includes(tag));
  for (const k of kinds) {
    const of = mine.filter((l) => l.includes(`"${k.agent}"`));
    assert.equal(of.length, 3, k.agent);
    for (const l of of) {
      assert.ok(l.includes(`"GET ${k.path} HTTP/2.0" 200`), l);
      assert.ok(l.includes(` "${k.referer || '-'}" "${k.agent}" `), l);
      // From memory, in the turn that read it: 0.000, as on HTTP/1.1.
      assert.ok(l.endsWith(' 0.000'), l);
    }
  }
}

describe("Node's own HTTP/2 (https.own_h2 off)", () => {
  test('repeated and varied requests on one connection: each answer and access line is its own request\'s', async () => {
    const site = makeSite();
    const { gw, lines } = await startGateway(`listen off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} own_h2 off; } }`);
    try {
      await repeatedRequests(`https://127.0.0.1:${gw.port('https')}`, lines);
    } finally {
      await gw.close();
      site.remove();
    }
  });

  test('a stream reset in the same packet as its HEADERS, on a file answered from memory, does not end the process', async () => {
    const site = makeSite();
    const { gw } = await startGateway(`listen off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} own_h2 off; } }`);
    try {
      const base = `https://127.0.0.1:${gw.port('https')}`;
      for (let i = 0; i < 2; i++) await run('curl', ['-sk', '--http2', '-o', '/dev/null', `${base}/hello.txt`]);
      // HEADERS without END_STREAM, then WINDOW_UPDATE 0: nghttp2 resets the stream before Node emits it.
      await rawH2(gw.port('https'), Buffer.concat([frame(1, 4, 1, getBlock('/hello.txt')), frame(8, 0, 1, [0, 0, 0, 0])]), { ms: 500 });
      const { stdout } = await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code}', `${base}/hello.txt`]);
      assert.equal(stdout, '200');
    } finally {
      await gw.close();
      site.remove();
    }
  });
});

describe('HTTP/2 idle timer (keepalive_timeout)', () => {
  test('a session busy with answers from memory outlives the timeout after a relayed request; an idle one is closed', async () => {
    const site = makeSite();
    const { gw } = await startGateway(`listen off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} } }
      limits { keepalive_timeout 1s; }`);
    const session = http2.connect(`https://127.0.0.1:${gw.port('https')}`, { rejectUnauthorized: false });
    try {
      let goaway = false;
      let closedAt = 0;
      session.on('goaway', () => (goaway = true));
      session.on('close', () => (closedAt = Date.now()));
      session.on('error', () => {});
      const get = (path: string) => new Promise<number>((resolve) => {
        const r = session.request({ ':path': path });
        let status = 0;
        r.on('response', (h) => (status = Number(h[':status'])));
        r.resume();
        r.on('end', () => resolve(status));
        r.on('error', () => resolve(0));
      });
      assert.equal(await get('/missing'), 404, 'relayed to Koa');
      const t0 = Date.now();
      while (Date.now() - t0 < 3000) {
        assert.equal(await get('/hello.txt'), 200);
        await sleep(200);
      }
      assert.equal(await get('/missing'), 404, 'relayed again, 3 s later');
      assert.ok(!goaway && closedAt === 0, 'no GOAWAY while in use');
      const idleFrom = Date.now();
      await waitFor('the idle session to be closed', () => closedAt > 0, 5000);
      assert.ok(closedAt - idleFrom >= 900, `closed after ${closedAt - idleFrom} ms idle`);
    } finally {
      session.destroy();
      await gw.close();
      site.remove();
    }
  });
});

/** A GET of `path` with extra literal fields (names and values as raw bytes, never indexed). */
function fieldsBlock(path: string, extra: [string, string][]): Buffer {
  const lit = (n: string, v: string) => Buffer.concat([Buffer.from([0x00, n.length]), Buffer.from(n, 'latin1'), Buffer.from([v.length]), Buffer.from(v, 'latin1')]);
  return Buffer.concat([getBlock(path), ...extra.map(([n, v]) => lit(n, v))]);
}

/** The :status of a stream's response, decoding every header block in order (Node's encoder uses the dynamic table). */
const statusOf = (fs: Frame[], id: number) => {
  const decoder = new Decoder();
  let status: string | undefined;
  for (const f of fs.filter((x) => x.type === 1)) {
    const s = decoder.decode(f.payload).fields.find(([n]) => n === ':status')?.[1];
    if (f.id === id && status === undefined) status = s;
  }
  return status;
};

for (const ownH2 of ['on', 'off'] as const) {
  describe(`RFC 9113 field rules, stream ids and targets (own_h2 ${ownH2})`, () => {
    let site: Site;
    let gw: Gateway;
    let port: number;
    before(async () => {
      site = makeSite();
      ({ gw } = await startGateway(`listen off;
        http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} own_h2 ${ownH2}; } }`));
      port = gw.port('https');
    });
    after(async () => {
      await gw.close();
      site.remove();
    });

    test('an upper-case field name is a stream error PROTOCOL_ERROR (§8.2.1); the next stream is served', async () => {
      const fs = await rawH2(port, Buffer.concat([frame(1, 5, 1, fieldsBlock('/hello.txt', [['X-Upper', 'v']])), frame(1, 5, 3, getBlock('/hello.txt'))]));
      assert.equal(rstCode(fs, 1), 1);
      assert.equal(statusOf(fs, 3), '200');
    });

    test('dot-segments are removed before routing; climbing above / and a second host are a 400, as on HTTP/1.1', async () => {
      const fs = await rawH2(port, Buffer.concat([
        frame(1, 5, 1, getBlock('/dir/../hello.txt')),
        frame(1, 5, 3, getBlock('/../hello.txt')),
        frame(1, 5, 5, getBlock('/%2e%2e/hello.txt')),
        frame(1, 5, 7, fieldsBlock('/hello.txt', [['host', 'other.example']])),
        frame(1, 5, 9, getBlock('/dir/./a.txt')),
      ]), { ms: 2500 });
      assert.equal(statusOf(fs, 1), '200', '/dir/../hello.txt is /hello.txt');
      assert.ok(fs.some((f) => f.type === 0 && f.id === 1 && f.payload.toString() === 'hello world\n'));
      assert.equal(statusOf(fs, 3), '400', '/../ climbs above the root');
      assert.equal(statusOf(fs, 5), '400', 'so does its encoded form');
      assert.equal(statusOf(fs, 7), '400', 'a Host that differs from :authority is a second host');
      assert.equal(statusOf(fs, 9), '200');
      assert.equal(goawayCode(fs), undefined);
    });

    if (ownH2 === 'on') {
      // nghttp2 (own_h2 off) drops such fields silently and ignores reused ids: Node gives no way to see either.
      test('a value with CR, LF or NUL, a name with a space or a non-token: stream error PROTOCOL_ERROR (§8.2.1)', async () => {
        const bad: [string, string][] = [['x-a', 'a\rb'], ['x-a', 'a\nb'], ['x-a', 'a\0b'], ['x a', 'v'], ['x(a)', 'v'], ['x-a', 'a\x7fb']];
        const frames = bad.map((f, i) => frame(1, 5, 2 * i + 1, fieldsBlock('/hello.txt', [f])));
        const fs = await rawH2(port, Buffer.concat([...frames, frame(1, 5, 99, getBlock('/hello.txt'))]));
        bad.forEach((f, i) => assert.equal(rstCode(fs, 2 * i + 1), 1, JSON.stringify(f)));
        assert.equal(statusOf(fs, 99), '200', 'the connection goes on');
      });

      test('a reused or decreasing stream id is a connection error PROTOCOL_ERROR (§5.1.1)', async () => {
        let fs = await rawH2(port, Buffer.concat([frame(1, 5, 1, getBlock('/hello.txt')), frame(1, 5, 1, getBlock('/hello.txt'))]));
        assert.equal(goawayCode(fs), 1, 'stream 1 twice');
        assert.equal(rstCode(fs, 1), undefined, 'not RST_STREAM');
        fs = await rawH2(port, Buffer.concat([frame(1, 5, 5, getBlock('/hello.txt')), frame(1, 5, 3, getBlock('/hello.txt'))]));
        assert.equal(goawayCode(fs), 1, 'stream 3 after stream 5');
        assert.equal(fs.find((f) => f.type === 7)!.payload.readUInt32BE(0), 5, 'the GOAWAY names stream 5 as the last');
      });
    }
  });
}

for (const ownH2 of ['on', 'off'] as const) {
  test(`own_h2 ${ownH2}: a live player over HTTP/2 is seen with its address by the API and the access log, which logs its body bytes`, async () => {
    const site = makeSite();
    const { gw, lines } = await startGateway(`listen off;
      http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} own_h2 ${ownH2}; } }`);
    const pub = new FlvPublisher(gw.port('http'), '/live/addr.flv').play();
    const base = `https://127.0.0.1:${gw.port('https')}`;
    const session = http2.connect(base, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      await waitFor('the stream', () => gw.hub.all().length === 1);
      const st = session.request({ ':path': '/live/addr.flv' });
      let got = 0;
      st.on('data', (c: Buffer) => (got += c.length));
      st.on('error', () => {});
      await waitFor('live bytes over h2', () => got > 20_000);
      const api = await run('curl', ['-sk', '--http2', `${base}/api/v1/clients/`]);
      const players = (JSON.parse(api.stdout) as { clients: { ip: string; type: string }[] }).clients.filter((c) => !/publish/.test(c.type));
      assert.equal(players.length, 1, api.stdout);
      assert.equal(players[0].ip, '127.0.0.1', 'the player\'s address, not the relay\'s nothing');
      const mark = lines.length;
      st.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor('the access line', () => lines.slice(mark).some((l) => l.includes('"GET /live/addr.flv HTTP/2.0"')));
      const line = lines.slice(mark).find((l) => l.includes('"GET /live/addr.flv HTTP/2.0"'))!;
      assert.match(line, /^127\.0\.0\.1 /);
      const bytes = Number(/HTTP\/2\.0" \d+ (\d+) /.exec(line)![1]);
      // Body bytes sent: not 0 (no Content-Length on a live stream), not more than the player could have been sent.
      assert.ok(bytes >= 20_000 && bytes <= got + 1024 * 1024, `${bytes} bytes logged, ${got} received`);
    } finally {
      session.destroy();
      pub.destroy();
      await gw.close();
      site.remove();
    }
  });
}
