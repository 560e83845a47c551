import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { probe, publish, waitFor, type Proc } from '../helpers/ffmpeg.js';

const V = '__defaultVhost__';

/** A hook server as an operator writes one: records every body; answers by its path. */
class HookServer {
  readonly bodies: (Record<string, any> & { path: string })[] = [];
  readonly server: http.Server;
  private readonly hanging: http.ServerResponse[] = [];
  constructor() {
    this.server = http.createServer((req, res) => {
      let data = '';
      req.on('data', (d) => (data += d));
      req.on('end', () => {
        const body = JSON.parse(data);
        this.bodies.push({ ...body, path: req.url });
        const path = req.url ?? '';
        if (path.startsWith('/allow-json')) return res.end('{"code":0,"data":null}');
        if (path.startsWith('/allow')) return res.end('0');
        if (path.startsWith('/deny-status')) return res.writeHead(403).end('0');
        if (path.startsWith('/deny')) return res.end('{"code":1,"msg":"no"}');
        if (path.startsWith('/garbage')) return res.end('<html>hello</html>');
        if (path.startsWith('/huge')) return res.end('0'.repeat(100_000));
        // /slow-S: hangs for stream S, allows the others.
        if (path.startsWith('/slow') && body.stream === path.slice(6)) return void this.hanging.push(res);
        res.end('0');
      });
    });
  }
  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  events(stream?: string): string[] {
    return this.bodies.filter((b) => stream === undefined || b.stream === stream || b.stream === undefined).map((b) => b.action);
  }
  close(): void {
    for (const r of this.hanging) r.destroy();
    this.server.closeAllConnections();
    this.server.close();
  }
}

async function gateway(hooks: string, extra = ''): Promise<{ gw: Gateway; lines: string[]; http: number; rtmp: number }> {
  const { log, lines } = memoryLogger();
  const conf = `listen 127.0.0.1:0; console_dir off; players_dir off;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost ${V} { play { mw_latency 50ms; } http_hooks { enabled on; hooks_timeout 2s; ${hooks} } ${extra} }`;
  const gw = await Gateway.start(loadConfigText(conf, 'hooks.conf'), { log });
  return { gw, lines, http: gw.port('http'), rtmp: gw.port('rtmp') };
}

const live = (gw: Gateway, stream: string) => gw.hub.find({ vhost: V, app: 'live', stream });

describe('http_hooks with real clients', () => {
  let hooks: HookServer;
  let base: string;
  const gws: Gateway[] = [];
  const procs: Proc[] = [];
  before(async () => {
    hooks = new HookServer();
    base = await hooks.start();
  });
  after(async () => {
    for (const p of procs) p.kill();
    for (const g of gws) await g.close();
    hooks.close();
  });

  test('every event of an RTMP publish and an HTTP-FLV play, in order, with SRS\'s fields', async () => {
    const g = await gateway(`on_connect ${base}/allow; on_publish ${base}/allow ${base}/allow-json; on_unpublish ${base}/allow;
      on_play ${base}/allow; on_stop ${base}/allow; on_close ${base}/allow;`);
    gws.push(g.gw);
    const pub = publish(`rtmp://127.0.0.1:${g.rtmp}/live/ev?k=v`, { seconds: 4 });
    procs.push(pub);
    await waitFor('ev live', () => live(g.gw, 'ev'), 15_000);
    const player = new FlvPlayer(g.http, '/live/ev.flv?who=me', { headers: { Referer: 'http://page.example/watch' } });
    await waitFor('media', () => player.packets.length > 2);
    player.socket.destroy();
    await pub.exited;
    await waitFor('on_close', () => hooks.bodies.some((b) => b.action === 'on_close'), 10_000);
    await waitFor('on_stop', () => hooks.bodies.some((b) => b.action === 'on_stop'), 10_000);
    const byAction = (a: string) => hooks.bodies.filter((b) => b.action === a);
    const pubs = byAction('on_publish');
    assert.deepEqual(pubs.map((b) => b.path), ['/allow', '/allow-json'], 'every URL of the event, in order');
    const p = pubs[0];
    for (const k of ['server_id', 'service_id', 'client_id']) assert.equal(typeof p[k], 'string', k);
    assert.deepEqual({ ip: p.ip, vhost: p.vhost, app: p.app, stream: p.stream, param: p.param, tcUrl: p.tcUrl, stream_url: p.stream_url },
      { ip: '127.0.0.1', vhost: V, app: 'live', stream: 'ev', param: '?k=v', tcUrl: `rtmp://127.0.0.1:${g.rtmp}/live`, stream_url: '/live/ev' });
    assert.ok('stream_id' in p);
    const c = byAction('on_connect')[0];
    assert.deepEqual({ app: c.app, tcUrl: c.tcUrl, client_id: c.client_id }, { app: 'live', tcUrl: p.tcUrl, client_id: p.client_id }, 'on_connect and on_publish name one client');
    const play = byAction('on_play')[0];
    assert.deepEqual({ stream: play.stream, param: play.param, pageUrl: play.pageUrl, ip: play.ip }, { stream: 'ev', param: '?who=me', pageUrl: 'http://page.example/watch', ip: '127.0.0.1' });
    assert.equal(play.stream_id, live(g.gw, 'ev')?.id ?? play.stream_id);
    assert.equal(byAction('on_stop')[0].client_id, play.client_id);
    const close = byAction('on_close')[0];
    assert.equal(close.client_id, p.client_id);
    assert.ok(close.recv_bytes > 10_000 && typeof close.send_bytes === 'number');
    const order = hooks.bodies.filter((b) => b.client_id === p.client_id).map((b) => b.action);
    assert.equal(order[0], 'on_connect');
    assert.ok(order.indexOf('on_unpublish') > order.lastIndexOf('on_publish'), `on_unpublish after on_publish: ${order}`);
  });

  test('the client_id the hooks are told is the id the API lists and kicks, as on SRS', async () => {
    const g = await gateway(`on_publish ${base}/allow; on_play ${base}/allow;`);
    gws.push(g.gw);
    const pub = publish(`rtmp://127.0.0.1:${g.rtmp}/live/ids`, { seconds: 20 });
    procs.push(pub);
    await waitFor('ids live', () => live(g.gw, 'ids'), 15_000);
    const player = new FlvPlayer(g.http, '/live/ids.flv');
    await waitFor('media', () => player.packets.length > 2);
    const of = (a: string) => hooks.bodies.find((b) => b.action === a && b.stream === 'ids')?.client_id as string;
    const api = `http://127.0.0.1:${g.http}/api/v1/clients`;
    const listed = ((await (await fetch(`${api}?count=100`)).json()) as { clients: { id: string; type: string; url: string }[] }).clients;
    const byId = (id: string) => listed.find((c) => c.id === id);
    assert.equal(byId(of('on_publish'))?.url, '/live/ids', `the publisher under its hook id: ${JSON.stringify(listed)}`);
    assert.equal(byId(of('on_play'))?.type, 'flv-play', `the player under its hook id: ${JSON.stringify(listed)}`);
    const kicked = await fetch(`${api}/${of('on_play')}`, { method: 'DELETE' });
    assert.equal(kicked.status, 200);
    let gone = false;
    void player.done.then(() => (gone = true));
    await waitFor('the kicked player\'s connection to end', () => gone, 5_000);
    assert.ok(live(g.gw, 'ids'), 'the publisher is still live');
    pub.kill();
  });

  test('denials: RTMP publish Denied, HTTP-FLV publish 403, and play refused on FLV, TS, HLS and RTMP', async () => {
    hooks.bodies.length = 0;
    const g = await gateway(`on_publish ${base}/allow; on_play ${base}/deny;`, 'hls { hls_fragment 1; }');
    gws.push(g.gw);
    const bad = await gateway(`on_publish ${base}/deny-status;`);
    gws.push(bad.gw);
    const refused = publish(`rtmp://127.0.0.1:${bad.rtmp}/live/no`, { seconds: 3 });
    procs.push(refused);
    assert.notEqual(await refused.exited, 0, 'ffmpeg gives up on an RTMP publish that is denied');
    assert.equal(live(bad.gw, 'no'), undefined);
    const post = await fetch(`http://127.0.0.1:${bad.http}/live/no.flv`, { method: 'POST', body: Buffer.from('FLV\x01\x05\0\0\0\x09\0\0\0\0', 'latin1') });
    assert.equal(post.status, 403);
    assert.ok(bad.lines.some((l) => /hook on_publish .*\/deny-status denied .*status 403/.test(l)), bad.lines.join('\n'));

    const pub = publish(`rtmp://127.0.0.1:${g.rtmp}/live/shown`, { seconds: 20 });
    procs.push(pub);
    await waitFor('shown live', () => live(g.gw, 'shown'), 15_000);
    await waitFor('a segment', () => g.gw.hub.find({ vhost: V, app: 'live', stream: 'shown' }) && fetch(`http://127.0.0.1:${g.http}/live/shown.m3u8`).then((r) => r.status !== 404), 15_000);
    for (const ext of ['flv', 'ts', 'm3u8', 'aac']) {
      const r = await fetch(`http://127.0.0.1:${g.http}/live/shown.${ext}`);
      assert.equal(r.status, 403, ext);
      await r.body?.cancel();
    }
    const rtmpPlay = await probe(`rtmp://127.0.0.1:${g.rtmp}/live/shown`, 5);
    assert.equal(rtmpPlay.streams.length, 0, 'no RTMP play either');
    pub.kill();
  });

  test('garbage, a refused connection and an oversized answer deny; a hanging hook delays nobody else', async () => {
    for (const url of [`${base}/garbage`, 'http://127.0.0.1:9/nothing-listens', `${base}/huge`]) {
      const g = await gateway(`on_publish ${url};`);
      gws.push(g.gw);
      const post = await fetch(`http://127.0.0.1:${g.http}/live/x.flv`, { method: 'POST', body: 'FLV' });
      assert.equal(post.status, 403, url);
      assert.ok(g.lines.some((l) => l.includes('hook on_publish') && l.includes('denied')), g.lines.join('\n'));
    }
    const g = await gateway(`on_publish ${base}/slow-stuck; on_play ${base}/allow;`);
    gws.push(g.gw);
    const stuck = publish(`rtmp://127.0.0.1:${g.rtmp}/live/stuck`, { seconds: 10 });
    procs.push(stuck);
    await waitFor('the stuck hook called', () => hooks.bodies.some((b) => b.stream === 'stuck'), 10_000);
    const other = publish(`http://127.0.0.1:${g.http}/live/other.flv`, { seconds: 10 });
    procs.push(other);
    await waitFor('other live', () => live(g.gw, 'other'), 10_000);
    const player = new FlvPlayer(g.http, '/live/other.flv');
    await waitFor('other plays', () => player.packets.length > 2, 10_000);
    player.socket.destroy();
    // Both happened while the stuck hook was still unanswered (its timeout is 2 s).
    assert.equal(live(g.gw, 'stuck'), undefined, 'stuck is not live while its hook hangs');
    await waitFor('the timeout line', () => g.lines.some((l) => /hook on_publish .*slow-stuck denied .*no answer within 2000 ms/.test(l)), 10_000);
    other.kill();
    stuck.kill();
  });

  test('HLS: on_play once per viewer session, not per segment; HLS PUT: on_publish once per uploader', async () => {
    hooks.bodies.length = 0;
    const g = await gateway(`on_publish ${base}/allow; on_play ${base}/allow; on_stop ${base}/allow;`, 'hls { hls_fragment 1; }');
    gws.push(g.gw);
    const pub = publish(`http://127.0.0.1:${g.http}/live/hv.flv`, { seconds: 20 });
    procs.push(pub);
    const playlist = await waitFor('a playlist with segments', async () => {
      const r = await fetch(`http://127.0.0.1:${g.http}/live/hv.m3u8`, { headers: { 'User-Agent': 'viewer-a' } });
      const t = await r.text();
      return r.status === 200 && t.includes('.ts') ? t : undefined;
    }, 20_000);
    const segs = playlist.split('\n').filter((l) => l.endsWith('.ts'));
    for (let i = 0; i < 3; i++) {
      for (const s of segs) assert.equal((await fetch(`http://127.0.0.1:${g.http}/live/${s}`, { headers: { 'User-Agent': 'viewer-a' } })).status, 200);
      assert.equal((await fetch(`http://127.0.0.1:${g.http}/live/hv.m3u8`, { headers: { 'User-Agent': 'viewer-a' } })).status, 200);
    }
    await fetch(`http://127.0.0.1:${g.http}/live/hv.m3u8`, { headers: { 'User-Agent': 'viewer-b' } });
    const plays = hooks.bodies.filter((b) => b.action === 'on_play' && b.stream === 'hv');
    assert.equal(plays.length, 2, `one on_play per viewer session: ${plays.length}`);

    for (const name of ['up.m3u8', 'up0.ts', 'up1.ts']) {
      const r = await fetch(`http://127.0.0.1:${g.http}/live/${name}`, { method: 'PUT', body: 'x', headers: { 'User-Agent': 'uploader' } });
      assert.equal(r.status, 201, name);
    }
    const ups = hooks.bodies.filter((b) => b.action === 'on_publish' && String(b.stream).startsWith('up'));
    assert.equal(ups.length, 1, 'one on_publish for the uploader');
    pub.kill();
  });

  test('on_hls: one notification per segment cut, between the stream\'s on_publish and on_unpublish', async () => {
    hooks.bodies.length = 0;
    const g = await gateway(`on_publish ${base}/allow; on_unpublish ${base}/allow; on_hls ${base}/allow;`, 'hls { hls_fragment 1; }');
    gws.push(g.gw);
    const pub = publish(`http://127.0.0.1:${g.http}/live/seg.flv?k=1`, { seconds: 4 });
    procs.push(pub);
    await pub.exited;
    await waitFor('on_unpublish', () => hooks.bodies.some((b) => b.action === 'on_unpublish' && b.stream === 'seg'), 10_000);
    const mine = hooks.bodies.filter((b) => b.stream === 'seg');
    const actions = mine.map((b) => b.action);
    assert.equal(actions[0], 'on_publish');
    assert.equal(actions[actions.length - 1], 'on_unpublish');
    const segs = mine.filter((b) => b.action === 'on_hls');
    assert.ok(segs.length >= 2, `segments: ${segs.length}`);
    const first = segs[0];
    assert.deepEqual({ client_id: first.client_id, param: first.param, app: first.app, m3u8_url: first.m3u8_url, url: first.url },
      { client_id: mine[0].client_id, param: '?k=1', app: 'live', m3u8_url: 'live/seg.m3u8', url: `seg-${first.seq_no}.ts` });
    assert.ok(first.duration > 0 && typeof first.stream_id === 'string' && first.stream_id !== '');
    for (let i = 1; i < segs.length; i++) assert.equal(segs[i].seq_no, segs[i - 1].seq_no + 1, 'in order');
  });
});
