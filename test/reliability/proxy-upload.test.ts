import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { keyPairIn } from '../helpers/tls.js';
import { RSS_BOUND_SCALE } from '../helpers/proc.js';

/**
 * Proxy framing, as an upstream that records what it received sees it: a chunked upload arrives
 * chunked on every lane (HTTP/1.1, HTTP/1.1 with Expect: 100-continue, HTTP/2, curl), streamed
 * (its first bytes upstream before the client sends its last) with the gateway's memory flat; and
 * the upstream's trailers reach the clients that read them.
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** One upload as the upstream saw it. */
interface Seen {
  head: string;
  bytes: number;
  /** performance.now() at the first body byte. */
  firstAt: number;
}

/** A raw upstream: decodes chunked (or Content-Length) request bodies, answers chunked with a trailer. */
class RecordingUpstream {
  readonly server: net.Server;
  readonly seen: Seen[] = [];
  private readonly sockets = new Set<net.Socket>();
  constructor() {
    this.server = net.createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => {});
      this.serve(sock);
    });
  }

  private serve(sock: net.Socket): void {
    let head: string | null = null;
    let pending: Buffer = Buffer.alloc(0);
    let cur: Seen | null = null;
    // Chunked decoding: bytes left in the current chunk, or -1 while a size line is awaited.
    let left = -1;
    let length = -1;
    const answer = () => {
      const body = String(cur!.bytes);
      sock.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Received\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\nX-Received: ${body}\r\nContent-Type: text/evil\r\n\r\n`);
      head = null;
      cur = null;
    };
    sock.on('data', (c: Buffer) => {
      let b: Buffer = pending.length > 0 ? Buffer.concat([pending, c]) : c;
      pending = Buffer.alloc(0);
      while (b.length > 0) {
        if (head === null) {
          const end = b.indexOf('\r\n\r\n');
          if (end < 0) return void (pending = b);
          head = b.toString('latin1', 0, end);
          cur = { head, bytes: 0, firstAt: 0 };
          this.seen.push(cur);
          b = b.subarray(end + 4);
          const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
          // No length and not chunked: no body (RFC 9112 §6.3).
          length = cl ? Number(cl[1]) : /\r\ntransfer-encoding: *chunked/i.test(head) ? -1 : 0;
          left = -1;
          if (length === 0) answer();
          continue;
        }
        if (length >= 0) {
          const n = Math.min(length, b.length);
          if (cur!.bytes === 0 && n > 0) cur!.firstAt = performance.now();
          cur!.bytes += n;
          length -= n;
          b = b.subarray(n);
          if (length === 0) answer();
          continue;
        }
        if (left < 0) {
          const eol = b.indexOf('\r\n');
          if (eol < 0) return void (pending = b);
          const size = parseInt(b.toString('latin1', 0, eol), 16);
          if (size === 0) {
            // The last chunk and an empty trailer section.
            if (b.length < eol + 4) return void (pending = b);
            b = b.subarray(eol + 4);
            answer();
            continue;
          }
          left = size;
          b = b.subarray(eol + 2);
          continue;
        }
        if (left === 0) {
          if (b.length < 2) return void (pending = b);
          b = b.subarray(2);
          left = -1;
          continue;
        }
        const n = Math.min(left, b.length);
        if (cur!.bytes === 0) cur!.firstAt = performance.now();
        cur!.bytes += n;
        left -= n;
        b = b.subarray(n);
      }
    });
  }

  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** `total` bytes in 1 MiB blocks, made as they are asked for. */
function* blocks(total: number): Generator<Buffer> {
  const block = Buffer.alloc(MiB, 0x5a);
  for (let sent = 0; sent < total; sent += MiB) yield sent + MiB <= total ? block : block.subarray(0, total - sent);
}

/** Writes a generator's blocks to a writable with backpressure; resolves with performance.now() before the last write. */
async function pump(w: NodeJS.WritableStream & { write(b: Buffer): boolean }, total: number): Promise<number> {
  let lastAt = 0;
  for (const b of blocks(total)) {
    lastAt = performance.now();
    if (!w.write(b)) await once(w, 'drain');
  }
  w.end();
  return lastAt;
}

/** RSS sampled every 50 ms while `run` goes: the peak growth in MiB. */
async function peakGrowth<T>(run: () => Promise<T>): Promise<{ value: T; grewMiB: number }> {
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const value = await run();
    return { value, grewMiB: (peak - rss0) / MiB };
  } finally {
    clearInterval(sample);
  }
}

describe('proxy framing: chunked uploads stream on every lane; trailers reach those who read them', () => {
  const up = new RecordingUpstream();
  let gw: Gateway;
  let httpPort: number;
  let httpsPort: number;
  before(async () => {
    const upPort = await up.start();
    const dir = mkdtempSync(join(tmpdir(), 'sg-proxy-upload-'));
    const { log } = memoryLogger();
    gw = await Gateway.start(loadConfigText(`listen off; http_server { listen 127.0.0.1:0; dir ./public;
      https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} } }
      proxy { route /up/ http://127.0.0.1:${upPort}; timeout 20s; }`, 'test.conf'), { log });
    httpPort = gw.port('http');
    httpsPort = gw.port('https');
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  /** An HTTP/1.1 chunked upload of `total` bytes; resolves with the answer, its trailers and when the last block was written. */
  function h1Upload(total: number, headers: http.OutgoingHttpHeaders = {}): Promise<{ body: string; trailers: NodeJS.Dict<string>; lastAt: number }> {
    return new Promise((resolve, reject) => {
      let lastAt = 0;
      const req = http.request({ host: '127.0.0.1', port: httpPort, path: '/up/upload', method: 'POST', agent: false, headers: { 'Transfer-Encoding': 'chunked', ...headers } }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ body, trailers: res.trailers, lastAt }));
      });
      req.on('error', reject);
      const go = () => void pump(req, total).then((t) => (lastAt = t), reject);
      if (headers.Expect !== undefined) req.once('continue', go);
      else go();
    });
  }

  // 1 GiB on the plain lane; the other lanes share its streaming, and a quarter of that keeps the
  // suite's time in bounds on a shared machine while still being several times the RSS bound.
  for (const [name, headers, total] of [['HTTP/1.1', {}, GiB], ['HTTP/1.1 with Expect: 100-continue', { Expect: '100-continue' }, GiB / 4]] as const) {
    test(`${name}: a ${total / MiB} MiB chunked upload arrives chunked and streamed, gateway memory flat`, async (t) => {
      const n0 = up.seen.length;
      const { value: r, grewMiB } = await peakGrowth(() => h1Upload(total, headers));
      const seen = up.seen[n0];
      assert.equal(r.body, String(total), 'every byte arrived');
      assert.match(seen.head, /\r\ntransfer-encoding: chunked/i, 'chunked upstream, as the client sent it');
      assert.doesNotMatch(seen.head, /\r\ncontent-length:/i);
      assert.ok(seen.firstAt < r.lastAt, 'the upstream had the first bytes before the client wrote the last');
      t.diagnostic(`${name}: ${total / MiB} MiB up, RSS (gateway, client and upstream in one process) +${grewMiB.toFixed(1)} MiB at peak`);
      assert.ok(grewMiB < 96 * RSS_BOUND_SCALE, `RSS grew ${grewMiB.toFixed(1)} MiB`);
    });
  }

  test('HTTP/2: a 256 MiB upload of unknown length arrives chunked and streamed, gateway memory flat', async (t) => {
    const n0 = up.seen.length;
    const client = http2.connect(`https://127.0.0.1:${httpsPort}`, { rejectUnauthorized: false });
    try {
      const { value: r, grewMiB } = await peakGrowth(async () => {
        const s = client.request({ ':method': 'POST', ':path': '/up/upload-h2' });
        let body = '';
        s.setEncoding('latin1');
        s.on('data', (c: string) => (body += c));
        const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => s.once('trailers', resolve));
        const lastAt = await pump(s, GiB / 4);
        await once(s, 'end');
        return { body, lastAt, trailers: await trailers };
      });
      const seen = up.seen[n0];
      assert.equal(r.body, String(GiB / 4));
      assert.match(seen.head, /\r\ntransfer-encoding: chunked/i);
      assert.ok(seen.firstAt < r.lastAt, 'the upstream had the first bytes before the client wrote the last');
      assert.equal(r.trailers['x-received'], String(GiB / 4), 'the upstream\'s trailer, on HTTP/2');
      assert.equal(r.trailers['content-type'], undefined, 'a field that may not be a trailer is dropped');
      t.diagnostic(`HTTP/2: 256 MiB up, RSS +${grewMiB.toFixed(1)} MiB at peak`);
      assert.ok(grewMiB < 96 * RSS_BOUND_SCALE, `RSS grew ${grewMiB.toFixed(1)} MiB`);
    } finally {
      client.close();
    }
  });

  test('curl: a small chunked POST that arrives whole with its head still goes upstream chunked', async () => {
    for (const args of [['--data-binary', '@-', '-H', 'Transfer-Encoding: chunked'], ['-T', '-', '-X', 'POST']]) {
      const n0 = up.seen.length;
      const curl = spawn('curl', ['-sS', ...args, `http://127.0.0.1:${httpPort}/up/curl`]);
      let out = '';
      curl.stdout.on('data', (c: Buffer) => (out += c.toString()));
      curl.stdin.end('x'.repeat(5000));
      await once(curl, 'close');
      assert.equal(out, '5000', args.join(' '));
      assert.match(up.seen[n0].head, /\r\ntransfer-encoding: chunked/i, args.join(' '));
      assert.doesNotMatch(up.seen[n0].head, /\r\ncontent-length:/i, args.join(' '));
    }
  });

  test('trailers: relayed to an HTTP/1.1 client that sent TE: trailers, on the raw lane and the undici path; not to others', async () => {
    const get = (headers: http.OutgoingHttpHeaders, method = 'GET') => new Promise<{ body: string; trailers: NodeJS.Dict<string>; rawTrailers: string[] }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: httpPort, path: '/up/t', method, agent: false, headers }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ body, trailers: res.trailers, rawTrailers: res.rawTrailers }));
      });
      req.on('error', reject);
      req.end(method === 'POST' ? 'hi' : undefined);
    });
    const n0 = up.seen.length;
    // A plain GET takes the raw lane; a POST the undici path.
    const lane = await get({ TE: 'trailers' });
    assert.equal(lane.body, '0');
    assert.deepEqual(lane.rawTrailers, ['X-Received', '0'], 'the trailer, and not the Content-Type a trailer may not carry');
    assert.match(up.seen[n0].head, /\r\nTE: trailers\r\n/i, 'the upstream is told trailers are read');
    const undici = await get({ TE: 'trailers', 'Content-Length': '2' }, 'POST');
    assert.equal(undici.body, '2');
    assert.equal(undici.trailers['x-received'], '2');
    assert.equal(undici.trailers['content-type'], undefined);
    for (const [headers, method] of [[{}, 'GET'], [{ 'Content-Length': '2' }, 'POST']] as const) {
      const none = await get(headers, method);
      assert.deepEqual(none.rawTrailers, [], `${method} without TE: trailers gets none`);
    }
  });
});
