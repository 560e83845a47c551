import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import tls from 'node:tls';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { makeSite, startGateway } from '../integration/site.js';
import { rng } from '../helpers/random.js';
import { keyPairIn } from '../helpers/tls.js';
import { frame, getBlock, PREFACE } from '../helpers/h2-frames.js';

const run = promisify(execFile);

/** Connections, each a preface and a few frames: some well formed, most not. */
const INPUTS = 400;
const SEED = 0x4832;
const PARALLEL = 8;

const PATHS = ['/hello.txt', '/data.bin', '/missing', '/api/v1/versions', '/big.bin', '/dir/', '/live/none.flv'];

test(`${INPUTS} fuzzed HTTP/2 connections (seed ${SEED.toString(16)}): no crash, each one closed or answered, the port keeps serving`, async (t) => {
  const site = makeSite();
  const { gw, lines } = await startGateway(`listen off; access_log off;
    http_server { listen 127.0.0.1:0; dir ${site.root}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(site.base)} } }
    limits { header_timeout 1s; keepalive_timeout 2s; }`);
  const port = gw.port('https');
  const r = rng(SEED);
  const int = (n: number) => Math.floor(r() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

  /** One input: frames that a client could send, each one possibly broken. */
  const input = (): Buffer => {
    const parts: Buffer[] = [PREFACE];
    if (r() < 0.9) parts.push(frame(4, 0, 0, Buffer.alloc(0)));
    let id = 1;
    for (let i = 0, n = 1 + int(8); i < n; i++) {
      const pick = r();
      if (pick < 0.3) {
        // A request, sometimes with END_STREAM, sometimes with its block damaged.
        const block = getBlock(PATHS[int(PATHS.length)]);
        if (r() < 0.3) block[int(block.length)] = int(256);
        parts.push(frame(1, 4 | (r() < 0.7 ? 1 : 0), id, block));
        id += 2;
      } else if (pick < 0.45) {
        parts.push(frame(0, int(2) | (r() < 0.2 ? 8 : 0), int(id + 2), bytes(int(64))));
      } else if (pick < 0.55) {
        parts.push(frame(8, 0, int(id + 2), bytes(r() < 0.8 ? 4 : int(8))));
      } else if (pick < 0.65) {
        parts.push(frame(3, 0, int(id + 2), bytes(r() < 0.8 ? 4 : int(8))));
      } else if (pick < 0.75) {
        const settings = Buffer.alloc(6 * int(4));
        for (let o = 0; o < settings.length; o += 6) {
          settings.writeUInt16BE(1 + int(7), o);
          settings.writeUInt32BE(r() < 0.5 ? int(70_000) : (r() * 2 ** 32) >>> 0, o + 2);
        }
        parts.push(frame(4, r() < 0.1 ? 1 : 0, r() < 0.9 ? 0 : 1, r() < 0.1 ? bytes(5) : settings));
      } else if (pick < 0.85) {
        parts.push(frame(int(12), int(256), int(id + 2), bytes(int(40))));
      } else {
        // CONTINUATION, HPACK noise, PING.
        parts.push(frame(r() < 0.5 ? 9 : 1, int(2) ? 4 : 0, id, bytes(int(30))));
        if (r() < 0.5) id += 2;
      }
    }
    if (r() < 0.1) parts.push(bytes(int(30)));
    return Buffer.concat(parts);
  };

  const outcomes = new Map<string, number>();
  const one = async (data: Buffer) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    s.on('error', () => {});
    await once(s, 'secureConnect');
    let got = 0;
    s.on('data', (c: Buffer) => (got += c.length));
    s.write(data);
    const closing = once(s, 'close').then(() => true);
    let closed = await Promise.race([closing, new Promise<boolean>((res) => setTimeout(() => res(false), 400))]);
    // On a loaded machine the first bytes can take longer than that: silence must last 3 s to count.
    if (!closed && got === 0) closed = await Promise.race([closing, once(s, 'data').then(() => false), new Promise<boolean>((res) => setTimeout(() => res(false), 3000))]);
    const k = `${closed ? 'closed' : 'open'}:${got > 0 ? 'answered' : 'silent'}`;
    outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    s.destroy();
  };
  try {
    const inputs = Array.from({ length: INPUTS }, input);
    for (let i = 0; i < inputs.length; i += PARALLEL) await Promise.all(inputs.slice(i, i + PARALLEL).map(one));
    t.diagnostic(`outcomes: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    // Every connection hears at least our SETTINGS.
    assert.equal([...outcomes.keys()].filter((k) => k.endsWith('silent')).length, 0);
    const base = `https://127.0.0.1:${port}`;
    const ok = await run('curl', ['-sk', '--http2', '-o', '/dev/null', '-w', '%{http_code}', `${base}/hello.txt`]);
    assert.equal(ok.stdout, '200');
    const big = await run('nghttp', ['-w', '12', `${base}/big.bin`], { encoding: 'buffer', maxBuffer: 8 << 20 });
    assert.ok(big.stdout.equals(site.files['/big.bin']), 'a large relayed download is whole');
    assert.ok(!lines.some((l) => /\[error\]/.test(l)), lines.filter((l) => /\[error\]/.test(l)).slice(0, 3).join('\n'));
  } finally {
    await gw.close();
    site.remove();
  }
});
