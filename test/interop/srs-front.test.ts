import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { buildTable } from '../../src/routing/build.js';
import { decide } from '../../src/routing/table.js';
import type { Proxy } from '../../src/proxy/index.js';
import type { FileRoot } from '../../src/static/fileserver.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { publish, waitFor } from '../helpers/ffmpeg.js';
import { pattern } from '../integration/site.js';

/**
 * The SRS-front layout (config/srs-front.conf): streamgate in front of an origin that serves HLS
 * files and live FLV. A streamgate origin stands in for SRS: files on its disk where SRS writes
 * HLS, and a live stream published to it. Through the front, playlists and segments are the
 * origin's, byte for byte and header for header, and FLV players share one upstream request.
 */

const V = '__defaultVhost__';
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

describe('the SRS-front layout: HLS files and live FLV through the front', () => {
  let dir: string;
  let origin: Gateway;
  let front: Gateway;
  let lines: string[];
  let op: number;
  let fp: number;
  const segment = pattern(512 * 1024 + 5, 11);
  const playlist = '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\ndisk-1.ts\n';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-front-'));
    mkdirSync(join(dir, 'www/live'), { recursive: true });
    writeFileSync(join(dir, 'www/live/disk.m3u8'), playlist);
    writeFileSync(join(dir, 'www/live/disk-1.ts'), segment);
    origin = await Gateway.start(loadConfigText(`listen off; http_server { listen 127.0.0.1:0; dir ${join(dir, 'www')}; https { enabled off; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; } hls { hls_fragment 1; hls_window 6; } }`, 'origin.conf'), { log: memoryLogger().log });
    op = origin.port('http');
    // What config/srs-front.conf says, on loopback ports (its HTTPS needs a key pair on disk).
    const m = memoryLogger();
    lines = m.lines;
    front = await Gateway.start(loadConfigText(`listen off; http_server { listen 127.0.0.1:0; dir ${dir}; crossdomain on; https { enabled off; } }
      http_api { enabled off; }
      vhost __defaultVhost__ { edge { origin http://127.0.0.1:${op}; idle_timeout 300ms; connect_timeout 2s; proxy_hls on; } publish { allow 127.0.0.1; } }`, 'front.conf'), { log: m.log });
    fp = front.port('http');
  });
  after(async () => {
    await front?.close();
    await origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('config/srs-front.conf routes HLS files to the origin and FLV to the edge pull', () => {
    const cfg = loadConfigText(readFileSync(join(REPO, 'config/srs-front.conf'), 'utf8'), 'config/srs-front.conf');
    const v = cfg.vhosts.find((x) => x.name === V)!;
    assert.equal(v.edge.proxyHls, true);
    assert.equal(v.edge.origin?.origin, 'http://127.0.0.1:8080');
    // The table the shipped file builds (its proxies and roots are not started here).
    const t = buildTable(cfg, { fileRoot: () => ({}) as FileRoot, proxy: () => ({}) as Proxy });
    assert.equal(decide(t.entries, 'GET', '/live/x.m3u8', 'any').entry.name, 'edge:hls');
    assert.equal(decide(t.entries, 'HEAD', '/live/x-1.ts', 'any').entry.name, 'edge:hls');
    assert.equal(decide(t.entries, 'GET', '/live/x.flv', 'any').entry.answer, 'stream');
    // Writes are not a read of the origin's files: they stay with the front's own rules.
    assert.notEqual(decide(t.entries, 'PUT', '/live/x.m3u8', 'any').entry.name, 'edge:hls');
  });

  test("files on the origin's disk: the same bytes and validators through the front, nothing cached", async () => {
    const [a, b] = await Promise.all([get(op, '/live/disk.m3u8'), get(fp, '/live/disk.m3u8')]);
    assert.equal(b.status, 200);
    assert.equal(b.body.toString(), playlist);
    for (const h of ['content-type', 'cache-control', 'etag', 'last-modified']) assert.equal(b.headers.get(h), a.headers.get(h), h);
    const seg = await get(fp, '/live/disk-1.ts');
    assert.equal(seg.status, 200);
    assert.equal(sha(seg.body), sha(segment));
    assert.equal(seg.headers.get('content-length'), String(segment.length));
    const head = await get(fp, '/live/disk-1.ts', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    // The origin rewrites its playlist: the front's next answer is the new one (no copy kept here).
    const next = `${playlist}#EXTINF:2.000,\ndisk-2.ts\n`;
    writeFileSync(join(dir, 'www/live/disk.m3u8'), next);
    await waitFor('the new playlist through the front', async () => (await get(fp, '/live/disk.m3u8')).body.toString() === next, 3000);
    const missing = await get(fp, '/live/absent.m3u8');
    assert.equal(missing.status, 404, "the origin's 404");
    // The front door's proxy lane carried them (plain GET/HEAD on a keep-alive pool).
    const metrics = (await get(fp, '/metrics')).body.toString();
    assert.ok(Number(/^streamgate_proxy_lane_requests_total (\d+)$/m.exec(metrics)?.[1] ?? 0) >= 4, metrics);
  });

  test("a live stream: its playlist and segments are the origin's, and FLV players share one upstream request", async () => {
    const pub = publish(`http://127.0.0.1:${op}/live/e.flv`, { seconds: 20 });
    const players: FlvPlayer[] = [];
    try {
      await waitFor('e live on the origin', () => origin.hub.find({ vhost: V, app: 'live', stream: 'e' })?.videoHeader, 15_000);
      const list = await waitFor('a live playlist through the front', async () => {
        const r = await get(fp, '/live/e.m3u8');
        return r.status === 200 && /\.ts/.test(r.body.toString()) ? r.body.toString() : null;
      }, 15_000);
      assert.match(list, /^#EXTM3U/);
      const name = list.split('\n').find((l) => l.endsWith('.ts'))!;
      const [a, b] = await Promise.all([get(op, `/live/${name}`), get(fp, `/live/${name}`)]);
      assert.equal(b.status, 200);
      assert.equal(sha(b.body), sha(a.body), 'the segment through the front is the origin\'s');
      assert.equal(b.headers.get('content-type'), a.headers.get('content-type'));
      for (let i = 0; i < 5; i++) players.push(new FlvPlayer(fp, '/live/e.flv'));
      await waitFor('five players playing through the front', () => players.every((p) => p.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header)), 15_000);
      // The origin's players: the front's one FLV request (its HLS fetches list as an hls-play session).
      const upstream = origin.hub.clients().filter((c) => !c.publish && c.type !== 'hls-play');
      assert.equal(upstream.length, 1, `one upstream FLV request for five players: ${origin.hub.clients().map((c) => c.type).join(', ')}`);
      assert.equal(front.hub.find({ vhost: V, app: 'live', stream: 'e' })?.playerCount, 5);
      assert.ok(!lines.some((l) => l.includes('[error]')), lines.join('\n'));
    } finally {
      for (const p of players) p.close();
      pub.kill();
    }
  });
});
