import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { inPool } from '../helpers/churn.js';
import { rng } from '../helpers/random.js';

/**
 * Differential test of the front door against Node's parser: the same generated and mutated
 * request heads go to a gateway with its front door and to one without (every request then
 * parsed by Node's llhttp and checked by the request rules). Each pair must be accepted or
 * refused alike: the same status class, and the connection closed after a refusal on both. A
 * head the front door would answer where Node refuses is how one lane's view of a request comes
 * to differ from another's.
 */

const HEADS = 3000;
const CONCURRENCY = 16;
/** Fixed so a failure can be replayed; change it to explore. */
const SEED = 0xd1ff;
/** How long one head may go unanswered (a mutation can leave a head unfinished: then neither answers). */
const ANSWER_MS = 1500;

const PATHS = ['/x', '/dir/a.txt', '/', '/up/x', '/up/', '/live/s.m3u8', '/x?y=1', '/up/../x', '/a/./b', '/%2e%2e/x', '/x%20y', '/api/v1/versions', '/metrics', '/nothing'];
const HOSTS = ['127.0.0.1', 'example.com', 'example.com:8080', '[::1]', 'a_b.example', ''];
const EXTRA = ['User-Agent: curl/8.0', 'Accept: */*', 'Referer: http://127.0.0.1/', 'Origin: http://a.example', 'Connection: keep-alive', 'Connection: close',
  'X-Empty:', 'X-Tab: a\tb', 'X-Latin: caf\xe9', 'Cache-Control: no-cache', 'Accept-Encoding: gzip'];
/** Bytes a mutation inserts or substitutes: controls, separators, the edges of the ranges. */
const BYTES = [0x00, 0x01, 0x08, 0x09, 0x0a, 0x0b, 0x0d, 0x1f, 0x20, 0x22, 0x28, 0x2c, 0x2f, 0x3a, 0x3b, 0x3f, 0x40, 0x5c, 0x7b, 0x7f, 0x80, 0xff, 0x25, 0x2e, 0x23];

/** A well-formed head (request line and header lines, no final blank line). */
function validHead(r: () => number): string[] {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const lines = [`${r() < 0.85 ? 'GET' : 'HEAD'} ${pick(PATHS)} HTTP/1.1`, `Host: ${pick(HOSTS)}`];
  const n = Math.floor(r() * 4);
  for (let i = 0; i < n; i++) lines.splice(1 + Math.floor(r() * lines.length), 0, pick(EXTRA));
  return lines;
}

/** One mutation of a head's lines; the final CRLFCRLF stays, so every head is complete. */
function mutate(lines: string[], r: () => number): string[] {
  const at = (n: number) => Math.floor(r() * n);
  const out = [...lines];
  const li = at(out.length);
  const line = out[li];
  switch (at(10)) {
    case 0: case 1: { // insert a byte
      const p = at(line.length + 1);
      out[li] = line.slice(0, p) + String.fromCharCode(BYTES[at(BYTES.length)]) + line.slice(p);
      break;
    }
    case 2: { // replace a byte
      const p = at(line.length);
      out[li] = line.slice(0, p) + String.fromCharCode(BYTES[at(BYTES.length)]) + line.slice(p + 1);
      break;
    }
    case 3: // delete a byte
      if (line.length > 1) {
        const p = at(line.length);
        out[li] = line.slice(0, p) + line.slice(p + 1);
      }
      break;
    case 4: // duplicate a line (two Hosts, two Connections…)
      out.splice(li, 0, line);
      break;
    case 5: // space before the colon, or a folded continuation
      out[li] = r() < 0.5 ? line.replace(':', ' :') : ` ${line}`;
      break;
    case 6: // the request line's parts
      out[0] = [`GET http://${['evil.example', '127.0.0.1', 'a@b'][at(3)]}/x HTTP/1.1`, 'GET /x HTTP/1.0', 'GET /x HTTP/2.0', 'get /x HTTP/1.1', 'GET  /x HTTP/1.1', 'GET /x HTTP/1.1 ', 'GET * HTTP/1.1', 'OPTIONS * HTTP/1.1'][at(8)];
      break;
    case 7: // drop a line (the Host, say)
      if (out.length > 1) out.splice(1 + at(out.length - 1), 1);
      break;
    case 8: // a bare LF or CR as a line end
      if (li < out.length - 1) out[li] = `${line}${r() < 0.5 ? '\n' : '\r'}${out.splice(li + 1, 1)[0]}`;
      break;
    default: // a header that takes the request off the fast path or to another framing
      out.splice(1, 0, ['Content-Length: 0', 'Transfer-Encoding: chunked', 'Range: bytes=0-1', 'Expect: 100-continue', 'Upgrade: h2c', 'Content-Length: 1, 1'][at(6)]);
  }
  return out;
}

interface Verdict {
  status: number;
  closed: boolean;
}

/** Sends one head and reads the answer's status line; 0 when none came within ANSWER_MS. */
function probe(port: number, head: Buffer): Promise<Verdict> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    let status = 0;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ status, closed });
    };
    const timer = setTimeout(() => finish(false), ANSWER_MS);
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      if (m && status === 0) {
        status = Number(m[1]);
        // A refusal must close the connection; an answer may keep it: give the close a moment.
        if (status >= 400) setTimeout(() => finish(false), 200);
        else finish(false);
      }
    });
    sock.write(head);
  });
}

describe('differential: the front door accepts and refuses exactly what Node\'s parser does', () => {
  const gws: Gateway[] = [];
  let upstream: http.Server;

  before(async () => {
    upstream = http.createServer((_req, res) => res.end('up\n'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const dir = mkdtempSync(join(tmpdir(), 'sg-diff-'));
    writeFileSync(join(dir, 'x'), 'x\n');
    for (const frontDoor of [true, false]) {
      const conf = `listen off; access_log off; max_connections 5000;
        http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
        proxy { route /up/ http://127.0.0.1:${(upstream.address() as AddressInfo).port}/; }`;
      gws.push(await Gateway.start(loadConfigText(conf, 'diff.conf'), { log: memoryLogger().log, frontDoor }));
    }
  });
  after(async () => {
    for (const g of gws) await g.close();
    upstream.close();
  });

  test(`${HEADS} generated and mutated heads (seed ${SEED.toString(16)}): same status class and same close on both`, async (t) => {
    const r = rng(SEED);
    const heads: Buffer[] = [];
    for (let i = 0; i < HEADS; i++) {
      let lines = validHead(r);
      // A fifth stay valid; the rest get one to three mutations.
      const n = r() < 0.2 ? 0 : 1 + Math.floor(r() * 3);
      for (let k = 0; k < n; k++) lines = mutate(lines, r);
      heads.push(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
    }
    const [front, node] = gws.map((g) => g.port('http'));
    const diffs: string[] = [];
    const classes = new Map<string, number>();
    await inPool(HEADS, CONCURRENCY, async (i) => {
      const [a, b] = await Promise.all([probe(front, heads[i]), probe(node, heads[i])]);
      const key = `${Math.floor(a.status / 100)}xx`;
      classes.set(key, (classes.get(key) ?? 0) + 1);
      const refusedA = a.status === 0 || a.status >= 400;
      const same = Math.floor(a.status / 100) === Math.floor(b.status / 100) && (!refusedA || a.status !== 400 || a.closed === b.closed);
      if (!same) diffs.push(`#${i} ${JSON.stringify(heads[i].toString('latin1'))}: front door ${a.status}${a.closed ? ' closed' : ''}, Node ${b.status}${b.closed ? ' closed' : ''}`);
    });
    t.diagnostic(`status classes: ${JSON.stringify(Object.fromEntries(classes))}`);
    for (const d of diffs.slice(0, 15)) t.diagnostic(d);
    assert.equal(diffs.length, 0, `${diffs.length} of ${HEADS} heads answered differently`);
  });
});
