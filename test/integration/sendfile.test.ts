import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { REALIGN_AFTER, sendfileBuilt } from '../../src/net/sendfile.js';
import { tlsGet } from './site.js';
import { keyPairIn } from '../helpers/tls.js';

const run = promisify(execFile);

/** Above the size from which the file cache keeps a memfd copy for sendfile. */
const BIG = 600 * 1024;
const WHY_SKIPPED = 'the native sendfile addon is not built (npm ci could not compile native/sendfile.c): large files go out with write(2)';

const sha = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/** The memfd copies this process holds open, as the kernel lists them. */
function memfds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:streamgate-body')) n++;
    } catch {
      // The directory listing's own fd, already closed.
    }
  }
  return n;
}

/** The sizes of the memfd copies this process holds open. */
function memfdSizes(): number[] {
  const out: number[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:streamgate-body')) out.push(statSync(`/proc/self/fd/${fd}`).size);
    } catch {
      // The directory listing's own fd, already closed.
    }
  }
  return out;
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

async function start(dir: string, sendfile?: boolean): Promise<{ gw: Gateway; port: number }> {
  const { log } = memoryLogger();
  const conf = `listen off; console_dir off; players_dir off; http_api { enabled off; }
    http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }`;
  const gw = await Gateway.start(loadConfigText(conf, 'test.conf', {}), sendfile === undefined ? { log } : { log, sendfile });
  return { gw, port: gw.port('http') };
}

async function sendfileBytes(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  const m = /^streamgate_sendfile_bytes_total (\d+)$/m.exec(await r.text());
  assert.ok(m, 'the sendfile counter is in /metrics');
  return Number(m[1]);
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Bytes of the status line and headers, blank line included. */
  headLength: number;
}

/**
 * A keep-alive client that writes `requests` (all at once when `pipelined`, else one after the
 * other) and reads the answers by Content-Length. `pauseMs` leaves the answers unread that long
 * after the requests go out, so the server's socket buffer fills.
 */
async function exchange(port: number, requests: { method?: string; path: string; close?: boolean }[], opts: { pipelined?: boolean; pauseMs?: number; timeoutMs?: number } = {}): Promise<Answer[]> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  const chunks: Buffer[] = [];
  let wake: (() => void) | null = null;
  sock.on('data', (c: Buffer) => {
    chunks.push(c);
    wake?.();
  });
  sock.on('error', () => wake?.());
  sock.on('close', () => wake?.());
  const text = (r: { method?: string; path: string; close?: boolean }) => `${r.method ?? 'GET'} ${r.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${r.close ? 'Connection: close\r\n' : ''}\r\n`;
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  const out: Answer[] = [];
  let buf = Buffer.alloc(0);
  /** Waits until `n` bytes are buffered. */
  const need = async (n: number) => {
    while (buf.length < n) {
      if (chunks.length > 0) {
        buf = Buffer.concat([buf, ...chunks.splice(0)]);
        continue;
      }
      if (Date.now() > deadline || sock.destroyed) throw new Error(`answer ${out.length + 1} of ${requests.length} incomplete (${buf.length} of ${n} bytes)`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
      wake = null;
    }
  };
  try {
    if (opts.pipelined) sock.write(requests.map(text).join(''));
    if (opts.pauseMs) {
      sock.pause();
      await new Promise((r) => setTimeout(r, opts.pauseMs));
      sock.resume();
    }
    for (const req of requests) {
      if (!opts.pipelined) sock.write(text(req));
      let end = -1;
      while ((end = buf.indexOf('\r\n\r\n')) < 0) await need(buf.length + 1);
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      const len = req.method === 'HEAD' ? 0 : Number(headers['content-length']);
      await need(end + 4 + len);
      out.push({ status: Number(lines[0].split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + len), headLength: end + 4 });
      buf = buf.subarray(end + 4 + len);
    }
    // Nothing beyond the answers: a body longer than its Content-Length would show here.
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(buf.length + chunks.reduce((n, c) => n + c.length, 0), 0, 'bytes after the last answer');
  } finally {
    sock.destroy();
  }
  return out;
}

describe('sendfile: large cached files, zero-copy where the addon is built', () => {
  let dir: string;
  const files: Record<string, Buffer> = {};
  /** The default gateway (sendfile on when built) and one with the write(2) fallback forced. */
  let direct: { gw: Gateway; port: number };
  let fallback: { gw: Gateway; port: number };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-sendfile-'));
    files['/big.ts'] = randomBytes(BIG);
    files['/odd.bin'] = randomBytes(BIG + 4097);
    files['/small.m3u8'] = Buffer.from('#EXTM3U\n#EXT-X-VERSION:3\n');
    for (const [p, b] of Object.entries(files)) writeFileSync(join(dir, p), b);
    direct = await start(dir);
    process.env.STREAMGATE_NO_SENDFILE = '1';
    try {
      fallback = await start(dir);
    } finally {
      delete process.env.STREAMGATE_NO_SENDFILE;
    }
  });
  after(async () => {
    await direct?.gw.close();
    await fallback?.gw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the addon is built and a large file goes out through it (the CI run measures sendfile, not the fallback)', async (t) => {
    if (!sendfileBuilt) return t.skip(WHY_SKIPPED);
    const before = await sendfileBytes(direct.port);
    // Twice: the first request fills the cache, the second is the front door's.
    for (let i = 0; i < 2; i++) await exchange(direct.port, [{ path: '/big.ts' }]);
    assert.ok((await sendfileBytes(direct.port)) - before >= BIG, 'at least one whole body went out by sendfile');
    assert.equal(await sendfileBytes(fallback.port), 0, 'STREAMGATE_NO_SENDFILE=1 turns it off');
  });

  test('the API\'s send total counts the bytes sendfile wrote, which no socket counter sees', async (t) => {
    if (!sendfileBuilt) return t.skip(WHY_SKIPPED);
    const { log } = memoryLogger();
    const gw = await Gateway.start(loadConfigText(`listen off; console_dir off; players_dir off; http_api { enabled on; }
      http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }`, 'test.conf', {}), { log });
    const port = gw.port('http');
    const sent = async (): Promise<number> => {
      const r = (await (await fetch(`http://127.0.0.1:${port}/api/v1/summaries`)).json()) as { data: { system: { srs_send_bytes: number } } };
      return r.data.system.srs_send_bytes;
    };
    try {
      const before = await sent();
      const bySendfile = await sendfileBytes(port);
      for (let i = 0; i < 3; i++) await exchange(port, [{ path: '/big.ts' }]);
      assert.ok((await sendfileBytes(port)) - bySendfile >= BIG, 'a body went out by sendfile');
      assert.ok((await sent()) - before >= 3 * BIG, 'all three bodies are in the send total');
    } finally {
      await gw.close();
    }
  });

  test('curl gets the same bytes, length and ETag with sendfile and with the write(2) fallback', async () => {
    for (const path of ['/big.ts', '/odd.bin', '/small.m3u8']) {
      const want = sha(files[path]);
      for (const s of [direct, fallback]) {
        for (let i = 0; i < 3; i++) {
          const { stdout } = await run('curl', ['-sS', '--fail', '-D', '-', '-o', '-', `http://127.0.0.1:${s.port}${path}`], { encoding: 'buffer', maxBuffer: 8 << 20 });
          const end = stdout.indexOf('\r\n\r\n');
          const head = stdout.subarray(0, end).toString('latin1');
          const body = stdout.subarray(end + 4);
          assert.equal(sha(body), want, `${path} #${i}`);
          assert.match(head, new RegExp(`\\r\\ncontent-length: ${files[path].length}\\r\\n`, 'i'), path);
        }
      }
    }
  });

  test('200 requests on one keep-alive connection, then 24 pipelined with HEADs between: every body intact, in order', async () => {
    for (const s of [direct, fallback]) {
      // 120 MB on one connection: the deadline is for a stall, not a speed bound (a loaded CI machine is slow).
      const seq = await exchange(s.port, Array.from({ length: 200 }, (_, i) => ({ path: i % 5 === 4 ? '/small.m3u8' : '/big.ts' })), { timeoutMs: 60_000 });
      seq.forEach((a, i) => assert.equal(sha(a.body), sha(files[i % 5 === 4 ? '/small.m3u8' : '/big.ts']), `keep-alive #${i}`));
      const order = ['/big.ts', '/odd.bin', '/small.m3u8', '/big.ts'];
      const reqs = Array.from({ length: 24 }, (_, i) => ({ path: order[i % 4], method: i % 6 === 5 ? 'HEAD' : 'GET' }));
      const piped = await exchange(s.port, reqs, { pipelined: true });
      piped.forEach((a, i) => {
        assert.equal(a.status, 200);
        assert.equal(a.headers['content-length'], String(files[reqs[i].path].length), `pipelined #${i}`);
        if (reqs[i].method === 'GET') assert.equal(sha(a.body), sha(files[reqs[i].path]), `pipelined #${i}`);
      });
    }
  });

  test('a reader that stops reading: the socket buffer fills mid-body, the rest goes through Node, bytes intact', async (t) => {
    const before = sendfileBuilt ? await sendfileBytes(direct.port) : 0;
    // 12 × 600 KB: more than the kernel buffers take from a peer that reads nothing.
    const reqs = Array.from({ length: 12 }, () => ({ path: '/big.ts' }));
    for (const s of [direct, fallback]) {
      const got = await exchange(s.port, reqs, { pipelined: true, pauseMs: 400 });
      got.forEach((a, i) => assert.equal(sha(a.body), sha(files['/big.ts']), `answer ${i}`));
    }
    if (!sendfileBuilt) return t.skip(WHY_SKIPPED);
    const sent = (await sendfileBytes(direct.port)) - before;
    assert.ok(sent > 0, 'some went out by sendfile');
    assert.ok(sent < 12 * BIG, `some went out through Node after EAGAIN (sendfile sent ${sent} of ${12 * BIG})`);
  });

  test('clients that vanish mid-body (close, reset) break nothing: the server keeps serving, no fd left behind', async () => {
    // Warm: the entries and their memfds exist before the count.
    await exchange(direct.port, [{ path: '/big.ts' }, { path: '/odd.bin' }]);
    const fds = openFds();
    for (let i = 0; i < 20; i++) {
      const sock = net.connect({ host: '127.0.0.1', port: direct.port });
      sock.on('error', () => {});
      sock.write('GET /big.ts HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(8));
      await new Promise<void>((r) => sock.once('data', () => r()));
      if (i % 2 === 0) sock.resetAndDestroy();
      else sock.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    const [a] = await exchange(direct.port, [{ path: '/odd.bin' }]);
    assert.equal(sha(a.body), sha(files['/odd.bin']));
    assert.ok(openFds() <= fds + 2, `open fds ${fds} → ${openFds()}`);
  });

  test('a file replaced on disk: the new bytes with their own length and ETag; 40 changes leave one memfd', async () => {
    const path = join(dir, 'changing.ts');
    let body = randomBytes(BIG);
    writeFileSync(path, body);
    const base = memfds();
    let etag = '';
    for (let i = 0; i < 40; i++) {
      const old = body;
      // The size changes every time: a change is never hidden by an equal size and mtime second.
      body = randomBytes(BIG + i + 1);
      writeFileSync(path, body);
      // Past the stat cache's 200 ms: a request now gets the old entry while one stat revalidates
      // (stale while revalidating), then the new one.
      await new Promise((r) => setTimeout(r, 210));
      let fresh: Answer | null = null;
      for (let tries = 0; fresh === null && tries < 50; tries++) {
        const [a] = await exchange(direct.port, [{ path: '/changing.ts' }]);
        assert.equal(a.body.length, Number(a.headers['content-length']), `change ${i}: length`);
        if (sha(a.body) === sha(body)) fresh = a;
        else assert.equal(sha(a.body), sha(old), `change ${i}: the old bytes or the new, never a mix`);
      }
      assert.ok(fresh, `change ${i}: the new bytes arrive`);
      assert.notEqual(fresh.headers.etag, etag, `change ${i}: new ETag`);
      etag = fresh.headers.etag;
    }
    if (sendfileBuilt) assert.equal(memfds(), base + 1, 'one memfd for the one file, however often it changed');
  });

  test('a file rewritten in place with its size and mtime kept: the cached bytes, which match the ETag sent, never a mix', async () => {
    const path = join(dir, 'inplace.ts');
    const first = randomBytes(BIG);
    writeFileSync(path, first);
    // A whole second, so that setting it again below gives the identical mtime (a Date has no nanoseconds).
    const mtime = new Date(1_700_000_000_000);
    utimesSync(path, mtime, mtime);
    const warm = await exchange(direct.port, [{ path: '/inplace.ts' }, { path: '/inplace.ts' }]);
    assert.equal(sha(warm[1].body), sha(first));
    // The stat cache cannot tell (same inode, size, mtime): what sendfile reads must still be the
    // bytes the ETag and Content-Length describe, not the disk's new ones.
    writeFileSync(path, randomBytes(BIG), { flag: 'r+' });
    utimesSync(path, mtime, mtime);
    await new Promise((r) => setTimeout(r, 210));
    const after = await exchange(direct.port, [{ path: '/inplace.ts' }, { path: '/inplace.ts' }, { path: '/inplace.ts' }]);
    for (const a of after) {
      assert.equal(a.headers.etag, warm[1].headers.etag);
      assert.equal(sha(a.body), sha(first));
    }
  });

  test('a reload that serves another directory closes the old one\'s memfds; the new one is served', async (t) => {
    if (!sendfileBuilt) return t.skip(WHY_SKIPPED);
    const other = await start(dir);
    const second = mkdtempSync(join(tmpdir(), 'sg-sendfile-2-'));
    try {
      const next = randomBytes(BIG);
      writeFileSync(join(second, 'big.ts'), next);
      const base = memfds();
      await exchange(other.port, [{ path: '/big.ts' }, { path: '/big.ts' }]);
      assert.equal(memfds(), base + 1);
      await other.gw.reload(loadConfigText(`listen off; console_dir off; players_dir off; http_api { enabled off; }
        http_server { listen 127.0.0.1:0; dir ${second}; https { enabled off; } }`, 'test.conf', {}));
      assert.equal(memfds(), base, 'the old root let go of its copy');
      const got = await exchange(other.port, [{ path: '/big.ts' }, { path: '/big.ts' }]);
      for (const a of got) assert.equal(sha(a.body), sha(next));
    } finally {
      await other.gw.close();
      rmSync(second, { recursive: true, force: true });
    }
  });

  test('the copy holds the body at the page offset its head leaves; a head of another length is sent from the same copy, intact, and many in a row move the copy to theirs', async (t) => {
    if (!sendfileBuilt) return t.skip(WHY_SKIPPED);
    const other = await start(dir);
    try {
      const before = memfdSizes();
      // The copies made since `before` (the other gateways here hold copies of the same file).
      const madeSince = (): number[] => {
        const now = memfdSizes();
        for (const n of before) now.splice(now.indexOf(n), 1);
        return now;
      };
      // The first fills the cache by the full table, the second is the front door's: it makes the copy.
      const [, sent] = await exchange(other.port, [{ path: '/odd.bin' }, { path: '/odd.bin' }]);
      assert.equal(sha(sent.body), sha(files['/odd.bin']));
      const made = madeSince();
      // Body byte i lies at (head + i) mod 4096 in its page, as in the response: page-sized reads copy whole pages.
      assert.deepEqual(made, [(sent.headLength % 4096) + files['/odd.bin'].length], `head of ${sent.headLength} bytes`);
      const bySendfile = await sendfileBytes(other.port);
      // Connection: close makes the head 5 bytes shorter: the same copy, read from the body's offset.
      const [closing] = await exchange(other.port, [{ path: '/odd.bin', close: true }]);
      assert.equal(closing.headers.connection, 'close');
      assert.notEqual(closing.headLength, sent.headLength);
      assert.equal(sha(closing.body), sha(files['/odd.bin']));
      assert.ok((await sendfileBytes(other.port)) - bySendfile >= files['/odd.bin'].length, 'it went out by sendfile');
      assert.equal(memfdSizes().length, before.length + 1, 'no second copy for the other head');
      // Once heads of that other length keep coming, the copy is made again at their offset.
      for (let i = 0; i < REALIGN_AFTER; i++) {
        const [a] = await exchange(other.port, [{ path: '/odd.bin', close: true }]);
        assert.equal(sha(a.body), sha(files['/odd.bin']), `close #${i}`);
      }
      const realigned = madeSince();
      assert.deepEqual(realigned, [(closing.headLength % 4096) + files['/odd.bin'].length], 'one copy, at the new offset');
      // A mix where the copy's own offset keeps coming does not move it back and forth.
      for (let i = 0; i < REALIGN_AFTER; i++) {
        for (const a of await exchange(other.port, [{ path: '/odd.bin' }, { path: '/odd.bin', close: true }])) assert.equal(sha(a.body), sha(files['/odd.bin']), `mixed #${i}`);
      }
      assert.deepEqual(madeSince(), realigned, 'still at the offset of the closing heads');
    } finally {
      await other.gw.close();
    }
  });

  test('over TLS (HTTP/1.1 on the HTTPS listener) the front door writes through TLS, never sendfile on the raw fd', async () => {
    const keys = mkdtempSync(join(tmpdir(), 'sg-sendfile-tls-'));
    const { log } = memoryLogger();
    // No key or cert at these paths: the gateway generates a self-signed pair there.
    const gw = await Gateway.start(loadConfigText(`listen off; console_dir off; players_dir off; http_api { enabled off; }
      http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(keys)} } }`, 'test.conf', {}), { log });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await tlsGet(gw.port('https'), '/big.ts');
        assert.equal(r.status, 200);
        assert.equal(sha(r.body), sha(files['/big.ts']), `TLS #${i}`);
      }
      assert.equal(await sendfileBytes(gw.port('http')), 0);
    } finally {
      await gw.close();
      rmSync(keys, { recursive: true, force: true });
    }
  });

  test('shutdown closes every memfd', async (t) => {
    if (!sendfileBuilt) return t.skip(WHY_SKIPPED);
    const other = await start(dir);
    const base = memfds();
    await exchange(other.port, [{ path: '/big.ts' }, { path: '/big.ts' }, { path: '/odd.bin' }, { path: '/odd.bin' }]);
    assert.equal(memfds(), base + 2);
    await other.gw.close();
    assert.equal(memfds(), base);
  });
});
