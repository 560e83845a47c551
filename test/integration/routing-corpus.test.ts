import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { normalizePath } from '../../src/http/request-rules.js';
import { rawExchange } from '../helpers/proc.js';
import { h2Request, h2Session } from './site.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * The routing corpus: every row of the table, prefixes that overlap, dot-segments, encoded paths,
 * vhosts and methods, sent through every lane — HTTP/1.1 on the front door, HTTP/1.1 on Node's
 * parser alone (front door off), HTTP/2 on streamgate's own connection and on Node's http2 — and
 * each must be logged with the same route: the lanes answer in their own ways, but ask one table.
 */

interface Case {
  method: string;
  path: string;
  host: string;
  route: string;
}

const CORPUS: Case[] = [
  { method: 'GET', path: '/x.txt', host: '127.0.0.1', route: 'static' },
  { method: 'HEAD', path: '/x.txt', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/missing', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/', host: '127.0.0.1', route: 'static' },
  { method: 'POST', path: '/x.txt', host: '127.0.0.1', route: 'static' },
  { method: 'OPTIONS', path: '/x.txt', host: '127.0.0.1', route: 'cors' },
  { method: 'OPTIONS', path: '/up/a', host: '127.0.0.1', route: 'cors' },
  { method: 'GET', path: '/api/v1/versions', host: '127.0.0.1', route: 'api' },
  { method: 'GET', path: '/api', host: '127.0.0.1', route: 'api' },
  { method: 'GET', path: '/rtc/v1/play/', host: '127.0.0.1', route: 'api' },
  { method: 'GET', path: '/api/v2/x', host: '127.0.0.1', route: 'proxy:/api/v2/' },
  { method: 'GET', path: '/apix', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/metrics', host: '127.0.0.1', route: 'metrics' },
  { method: 'GET', path: '/metrics/x', host: '127.0.0.1', route: 'static' },
  // Overlapping prefixes: the longest wins.
  { method: 'GET', path: '/up/a', host: '127.0.0.1', route: 'proxy:/up/' },
  { method: 'GET', path: '/up/deep/a', host: '127.0.0.1', route: 'proxy:/up/deep/' },
  { method: 'HEAD', path: '/up/deep/a', host: '127.0.0.1', route: 'proxy:/up/deep/' },
  { method: 'POST', path: '/up/a', host: '127.0.0.1', route: 'proxy:/up/' },
  { method: 'GET', path: '/up', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/upx/a', host: '127.0.0.1', route: 'static' },
  // Dot-segments are removed before the table is asked; encoded dots count as dots.
  { method: 'GET', path: '/up/deep/../a', host: '127.0.0.1', route: 'proxy:/up/' },
  { method: 'GET', path: '/up/../x.txt', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/up/%2e%2e/x.txt', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/a/./b/../../up/a', host: '127.0.0.1', route: 'proxy:/up/' },
  { method: 'GET', path: '/api/../x.txt', host: '127.0.0.1', route: 'static' },
  // Encoded paths are routed as sent (no decoding before the table): %2F is not a slash.
  { method: 'GET', path: '/up%2Fa', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/%75p/a', host: '127.0.0.1', route: 'static' },
  // The stream origin; nothing live goes on to the files.
  { method: 'GET', path: '/live/none.flv', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/live/s.m3u8', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/hls/on-disk.m3u8', host: '127.0.0.1', route: 'static' },
  // Pages and vhost mounts.
  { method: 'GET', path: '/console/', host: '127.0.0.1', route: 'console' },
  { method: 'GET', path: '/players/', host: '127.0.0.1', route: 'players' },
  { method: 'GET', path: '/players/vendor/hls.js', host: '127.0.0.1', route: 'players' },
  { method: 'GET', path: '/consolex', host: '127.0.0.1', route: 'static' },
  { method: 'GET', path: '/mnt/m.txt', host: '127.0.0.1', route: 'static:/mnt' },
  { method: 'GET', path: '/mnt', host: '127.0.0.1', route: 'static:/mnt' },
  { method: 'GET', path: '/hls/m.txt', host: 'example.test', route: 'static:/hls' },
  { method: 'GET', path: '/hls/m.txt', host: 'example.test:8080', route: 'static:/hls' },
  { method: 'GET', path: '/hls/m.txt', host: 'other.test', route: 'static' },
];

interface Lane {
  name: string;
  gw: Gateway;
  lines: string[];
  send(c: Case): Promise<number>;
}

/** The route the access log gave the last request for this method and URL. */
function loggedRoute(l: Lane, c: Case, from: number): string | undefined {
  l.gw.log.flush();
  let route: string | undefined;
  for (const line of l.lines.slice(from)) {
    if (!line.startsWith('{')) continue;
    const j = JSON.parse(line) as { method: string; url: string; route: string };
    // The log shows the target as routed: dot-segments removed.
    if (j.method === c.method && (j.url === c.path || j.url === normalizePath(c.path))) route = j.route;
  }
  return route;
}

describe('routing corpus: every lane asks one table', () => {
  const lanes: Lane[] = [];
  let upstream: http.Server;

  before(async () => {
    upstream = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('up\n'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const base = mkdtempSync(join(tmpdir(), 'sg-corpus-'));
    const root = join(base, 'root');
    const mnt = join(base, 'mnt');
    mkdirSync(join(root, 'hls'), { recursive: true });
    mkdirSync(mnt);
    writeFileSync(join(root, 'x.txt'), 'x\n');
    writeFileSync(join(root, 'hls', 'on-disk.m3u8'), '#EXTM3U\n');
    writeFileSync(join(mnt, 'm.txt'), 'm\n');
    for (const [name, frontDoor, ownH2] of [['front door + own HTTP/2', true, 'on'], ['Node parser + Node http2', false, 'off']] as const) {
      const { log, lines } = memoryLogger();
      const conf = `listen off; access_log json; max_connections 5000;
        http_server { listen 127.0.0.1:0; dir ${root}; crossdomain on; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(base)} own_h2 ${ownH2}; } }
        proxy { route /up/ ${up}/; route /up/deep/ ${up}/deep/; route /api/v2/ ${up}/v2/; }
        vhost __defaultVhost__ { http_static { enabled on; mount /mnt; dir ${mnt}; } }
        vhost example.test { http_static { enabled on; mount [vhost]/hls; dir ${mnt}; } }`;
      const gw = await Gateway.start(loadConfigText(conf, 'corpus.conf'), { log, frontDoor });
      const h1: Lane = {
        name: `HTTP/1.1, ${frontDoor ? 'front door' : "Node's parser"}`, gw, lines,
        send: async (c) => {
          const body = c.method === 'POST' ? 'Content-Length: 2\r\n\r\nhi' : '\r\n';
          return (await rawExchange(gw.port('http'), `${c.method} ${c.path} HTTP/1.1\r\nHost: ${c.host}\r\nOrigin: http://o.test\r\nConnection: close\r\n${body}`, 3000)).status;
        },
      };
      const h2: Lane = {
        name: `HTTP/2, ${ownH2 === 'on' ? "streamgate's own" : "Node's http2"}`, gw, lines,
        send: async (c) => {
          const session = await h2Session(gw.port('https'));
          try {
            return (await h2Request(session, { ':method': c.method, ':path': c.path, ':authority': c.host, origin: 'http://o.test' })).status;
          } finally {
            session.close();
          }
        },
      };
      lanes.push(h1, h2);
      void name;
    }
  });
  after(async () => {
    for (const gw of new Set(lanes.map((l) => l.gw))) await gw.close();
    upstream.close();
  });

  test(`${CORPUS.length} requests × 4 lanes: the same route on each, the one the table names`, async (t) => {
    const wrong: string[] = [];
    for (const c of CORPUS) {
      const seen: string[] = [];
      for (const l of lanes) {
        const from = l.lines.length;
        const status = await l.send(c);
        let route: string | undefined;
        for (let i = 0; i < 20 && route === undefined; i++) {
          route = loggedRoute(l, c, from);
          if (route === undefined) await new Promise((r) => setTimeout(r, 25));
        }
        seen.push(`${l.name}: ${route} (${status})`);
        if (route !== c.route) wrong.push(`${c.method} ${c.path} Host ${c.host} on ${l.name}: ${route ?? 'not logged'} (status ${status}), table says ${c.route}`);
      }
      t.diagnostic(`${c.method} ${c.path} [${c.host}] → ${c.route}: ${seen.join('; ')}`);
    }
    assert.deepEqual(wrong, []);
  });
});
