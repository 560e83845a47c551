import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { SecurityRules } from '../../src/auth/security.js';
import { MAX_JWKS_BYTES } from '../../src/auth/token.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { publish, waitFor, type Proc } from '../helpers/ffmpeg.js';

const V = '__defaultVhost__';
const SECRET = 'hs256-shared-secret-for-tests-0123456789';
const now = () => Math.floor(Date.now() / 1000);

async function hs(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
}

async function start(vhost: string): Promise<{ gw: Gateway; lines: string[]; base: string; rtmp: number }> {
  const { log, lines } = memoryLogger();
  const conf = `listen 127.0.0.1:0; console_dir off; players_dir off;
    http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    vhost ${V} { play { mw_latency 50ms; } hls { hls_fragment 1; } ${vhost} }`;
  const gw = await Gateway.start(loadConfigText(conf, 'token.conf'), { log });
  return { gw, lines, base: `http://127.0.0.1:${gw.port('http')}`, rtmp: gw.port('rtmp') };
}

describe('signed tokens', () => {
  const procs: Proc[] = [];
  const gws: Gateway[] = [];
  after(async () => {
    for (const p of procs) p.kill();
    for (const g of gws) await g.close();
  });

  test('HS256: publish and play need a token for the action and stream; bad ones are refused without saying why', async () => {
    const g = await start(`token { enabled on; require publish play; secret ${SECRET}; }`);
    gws.push(g.gw);
    const good = await hs({ action: 'publish', app: 'live', stream: 'tok', exp: now() + 60 });
    const rtmpPub = publish(`rtmp://127.0.0.1:${g.rtmp}/live/tok?token=${good}`, { seconds: 20 });
    procs.push(rtmpPub);
    await waitFor('tok live', () => g.gw.hub.find({ vhost: V, app: 'live', stream: 'tok' }), 15_000);
    const play = await hs({ action: 'play', app: 'live', stream: '*', exp: now() + 60 });
    const p1 = new FlvPlayer(g.gw.port('http'), `/live/tok.flv?token=${play}`);
    await waitFor('query-token play', () => p1.packets.length > 2);
    p1.socket.destroy();
    const p2 = new FlvPlayer(g.gw.port('http'), '/live/tok.flv', { headers: { Authorization: `Bearer ${play}` } });
    await waitFor('bearer play', () => p2.packets.length > 2);
    p2.socket.destroy();

    const cases: [string, string | null, number][] = [
      ['no token', null, 401],
      ['expired', await hs({ action: 'play', app: 'live', stream: 'tok', exp: now() - 60 }), 403],
      ['wrong stream', await hs({ action: 'play', app: 'live', stream: 'other', exp: now() + 60 }), 403],
      ['wrong action', good, 403],
      ['tampered', play.slice(0, -3) + (play.endsWith('AAA') ? 'BBB' : 'AAA'), 403],
      ['other key', await new SignJWT({ action: 'play', app: 'live', stream: 'tok', exp: now() + 60 }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('another-secret-entirely-0123456789')), 403],
    ];
    for (const [what, token, status] of cases) {
      const r = await fetch(`${g.base}/live/tok.flv${token ? `?token=${token}` : ''}`);
      const text = await r.text();
      assert.equal(r.status, status, what);
      assert.ok(!/exp|signature|stream|action/i.test(text.replace('playing this stream is not allowed', '')), `${what}: no reason in the answer: ${text}`);
    }
    assert.ok(g.lines.some((l) => /denied by token: .*"exp"/.test(l) || /denied by token: token refused \(ERR_JWT_EXPIRED/.test(l)), g.lines.join('\n'));
    assert.ok(g.lines.some((l) => /denied by token: token is for stream "other"/.test(l)));
    assert.ok(!g.lines.some((l) => l.includes(play) || l.includes(SECRET)), 'no token or secret in the log');

    // HTTP-FLV publish without a token: 401; RTMP publish with a play token: Denied.
    const post = await fetch(`${g.base}/live/nope.flv`, { method: 'POST', body: 'FLV' });
    assert.equal(post.status, 401);
    const wrong = publish(`rtmp://127.0.0.1:${g.rtmp}/live/nope?token=${play}`, { seconds: 3 });
    procs.push(wrong);
    assert.notEqual(await wrong.exited, 0);

    // HLS: one token in the playlist URL; the segments it lists carry it.
    const hlsToken = await hs({ action: 'play', app: 'live', stream: 'tok', exp: now() + 60 });
    const playlist = await waitFor('a playlist', async () => {
      const r = await fetch(`${g.base}/live/tok.m3u8?token=${hlsToken}`);
      const t = await r.text();
      return r.status === 200 && t.includes('.ts') ? t : undefined;
    }, 15_000);
    const seg = playlist.split('\n').find((l) => l.endsWith(`token=${hlsToken}`));
    assert.ok(seg, playlist);
    // Another client (another User-Agent: another session) fetches the segment with the URL as listed.
    const s = await fetch(`${g.base}/live/${seg}`, { headers: { 'User-Agent': 'another-player' } });
    assert.equal(s.status, 200);
    assert.equal((await fetch(`${g.base}/live/${seg!.split('?')[0]}`, { headers: { 'User-Agent': 'stranger' } })).status, 401);
    assert.equal((await fetch(`${g.base}/live/tok.m3u8`)).status, 401);
  });

  test('ES256 against a JWKS the test serves', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    let fetched = 0;
    const jwks = http.createServer((_req, res) => {
      fetched++;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    try {
      const g = await start(`token { enabled on; require publish; jwks http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json; }`);
      gws.push(g.gw);
      const sign = (c: Record<string, unknown>) => new SignJWT(c).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
      const good = await sign({ action: '*', app: 'live', stream: 'es', exp: now() + 60 });
      const pub = publish(`${g.base}/live/es.flv?token=${good}`, { seconds: 10 });
      procs.push(pub);
      await waitFor('es live', () => g.gw.hub.find({ vhost: V, app: 'live', stream: 'es' }), 15_000);
      const expired = await sign({ action: 'publish', app: 'live', stream: 'es2', exp: now() - 100 });
      assert.equal((await fetch(`${g.base}/live/es2.flv?token=${expired}`, { method: 'POST', body: 'FLV' })).status, 403);
      const hsToken = await hs({ action: 'publish', app: 'live', stream: 'es3', exp: now() + 60 });
      assert.equal((await fetch(`${g.base}/live/es3.flv?token=${hsToken}`, { method: 'POST', body: 'FLV' })).status, 403, 'an HS256 token is not accepted where a JWKS is configured');
      assert.equal(fetched, 1, 'the JWKS is fetched once and cached');
      // Play is not required here: open.
      const p = new FlvPlayer(g.gw.port('http'), '/live/es.flv');
      await waitFor('open play', () => p.packets.length > 2);
      p.socket.destroy();
    } finally {
      jwks.close();
    }
  });
  test('a JWKS answer past its bound is refused, with or without Content-Length, and the gateway carries on', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'big', alg: 'ES256', use: 'sig' };
    // A real key set padded with a field past the 64 KiB bound: valid JSON, so only the bound refuses it.
    const body = JSON.stringify({ keys: [jwk], pad: 'x'.repeat(MAX_JWKS_BYTES) });
    let sent = 0;
    const jwks = http.createServer((req, res) => {
      sent++;
      if (req.url === '/declared.json') res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
      else {
        res.writeHead(200, { 'Content-Type': 'application/json' }); // chunked: no length up front
        res.end(body);
      }
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    try {
      for (const path of ['/declared.json', '/chunked.json']) {
        const g = await start(`token { enabled on; require publish; jwks http://127.0.0.1:${(jwks.address() as AddressInfo).port}${path}; }`);
        gws.push(g.gw);
        const good = await new SignJWT({ action: '*', app: 'live', stream: 'big', exp: now() + 60 }).setProtectedHeader({ alg: 'ES256', kid: 'big' }).sign(privateKey);
        assert.equal((await fetch(`${g.base}/live/big.flv?token=${good}`, { method: 'POST', body: 'FLV' })).status, 403, path);
        assert.ok(g.lines.some((l) => l.includes('byte bound')), `the log says why (${path})`);
        assert.equal((await fetch(`${g.base}/api/v1/versions`)).status, 200, 'the gateway still serves');
      }
      assert.equal(sent, 2, 'one fetch per gateway');
    } finally {
      jwks.close();
    }
  });
});

describe('security rules, as SRS evaluates them', () => {
  test('disabled allows all; enabled denies unless an allow matches, then deny rules win; IPv4, IPv6, mapped, CIDR', () => {
    const off = new SecurityRules({ enabled: false, rules: [{ allow: false, action: 'play', target: 'all' }] });
    assert.equal(off.check('play', '1.2.3.4'), null);
    const s = new SecurityRules({ enabled: true, rules: [
      { allow: true, action: 'play', target: 'all' },
      { allow: false, action: 'play', target: '10.0.0.0/8' },
      { allow: false, action: 'play', target: '2001:db8::/32' },
      { allow: true, action: 'publish', target: '192.168.1.0/24' },
      { allow: true, action: 'publish', target: '::1' },
      { allow: false, action: 'publish', target: '192.168.1.66' },
    ] });
    assert.equal(s.check('play', '8.8.8.8'), null);
    assert.notEqual(s.check('play', '10.1.2.3'), null);
    assert.notEqual(s.check('play', '::ffff:10.1.2.3'), null, 'IPv4-mapped IPv6 is its IPv4 address');
    assert.notEqual(s.check('play', '2001:db8::5'), null);
    assert.equal(s.check('play', '2001:db9::5'), null);
    assert.equal(s.check('publish', '192.168.1.7'), null);
    assert.equal(s.check('publish', '::ffff:192.168.1.7'), null);
    assert.notEqual(s.check('publish', '192.168.1.66'), null, 'deny after allow');
    assert.notEqual(s.check('publish', '192.168.2.7'), null, 'no allow matches');
    assert.equal(s.check('publish', '::1'), null);
    const none = new SecurityRules({ enabled: true, rules: [] });
    assert.notEqual(none.check('play', '127.0.0.1'), null, 'enabled with no allow rule denies');
  });

  test('at the doors: RTMP publish and FLV/TS play from a denied address are refused', async () => {
    const g = await start('security { enabled on; allow publish 127.0.0.1; allow play all; deny play 127.0.0.0/8; }');
    try {
      const pub = publish(`rtmp://127.0.0.1:${g.rtmp}/live/sec`, { seconds: 10 });
      try {
        await waitFor('sec live', () => g.gw.hub.find({ vhost: V, app: 'live', stream: 'sec' }), 15_000);
        for (const ext of ['flv', 'ts']) assert.equal((await fetch(`${g.base}/live/sec.${ext}`)).status, 403, ext);
        assert.ok(g.lines.some((l) => /play live\/sec from 127\.0\.0\.1 over .* denied by security: a "deny play" rule matches/.test(l)));
      } finally {
        pub.kill();
      }
      const g2 = await start('security { enabled on; allow play all; }');
      try {
        const refused = publish(`rtmp://127.0.0.1:${g2.rtmp}/live/x`, { seconds: 3 });
        assert.notEqual(await refused.exited, 0, 'no allow publish rule: RTMP publish denied');
        assert.equal((await fetch(`${g2.base}/live/x.flv`, { method: 'POST', body: 'FLV' })).status, 403);
      } finally {
        await g2.gw.close();
      }
    } finally {
      await g.gw.close();
    }
  });
});
