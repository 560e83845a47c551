import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSelfSigned } from '../../src/net/selfsigned.js';
import { FlvPlayer } from '../helpers/flv-player.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { CliGateway, FlvPublisher, sleep } from '../helpers/proc.js';
import { h2Request, h2Session } from '../integration/site.js';

const BIG_BYTES = 24 * 1024 * 1024;

/** The SHA-256 fingerprint of the certificate a new TLS connection is shown. */
function peerFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.on('error', reject);
  });
}

function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/**
 * A download that stops reading after `pauseAt` bytes until `gate` resolves, so it is certainly
 * in flight (socket buffers full) when the reload happens. Resolves with what arrived.
 */
function gatedDownload(port: number, path: string, pauseAt: number, gate: Promise<void>): { reached: Promise<void>; done: Promise<{ status: number; bytes: number; sha: string; complete: boolean }> } {
  let reachedResolve!: () => void;
  const reached = new Promise<void>((r) => (reachedResolve = r));
  const done = new Promise<{ status: number; bytes: number; sha: string; complete: boolean }>((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let paused = false;
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        if (!paused && bytes >= pauseAt) {
          paused = true;
          res.pause();
          reachedResolve();
          void gate.then(() => res.resume());
        }
      });
      const end = () => resolve({ status: res.statusCode ?? 0, bytes, sha: hash.digest('hex'), complete: res.complete });
      res.once('end', end);
      res.once('close', () => (res.complete ? undefined : resolve({ status: res.statusCode ?? 0, bytes, sha: '', complete: false })));
    });
    req.on('error', () => resolve({ status: 0, bytes, sha: '', complete: false }));
  });
  return { reached, done };
}

test('SIGHUP reloads config and certificates without dropping players or in-flight requests; a broken config is rejected', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-reload-'));
  const [a, b] = [join(dir, 'a'), join(dir, 'b')];
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, 'index.html'), 'site A\n');
  writeFileSync(join(b, 'index.html'), 'site B\n');
  const big = Buffer.alloc(BIG_BYTES);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(a, 'big.bin'), big);
  const bigSha = createHash('sha256').update(big).digest('hex');
  const key = join(dir, 'server.key');
  const cert = join(dir, 'server.crt');
  const first = generateSelfSigned();
  writeFileSync(key, first.key, { mode: 0o600 });
  writeFileSync(cert, first.cert);

  // An upstream whose answer is held mid-body until the reload is done.
  let releaseUpstream!: () => void;
  const upstreamGate = new Promise<void>((r) => (releaseUpstream = r));
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('first half, ');
    void upstreamGate.then(() => res.end('second half'));
  });
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const upPort = (upstream.address() as net.AddressInfo).port;

  const conf = (root: string, crossdomain: 'on' | 'off', extra = '') => `listen off; access_log off;
http_server {
    listen 127.0.0.1:0;
    dir ${root};
    crossdomain ${crossdomain};
    https { enabled on; listen 127.0.0.1:0; key ${key}; cert ${cert}; }
}
proxy { route /up/ http://127.0.0.1:${upPort}; timeout 30s; }
vhost __defaultVhost__ { play { mw_latency 50ms; } }
${extra}`;
  const gw = new CliGateway(conf(a, 'on'));
  const pub: FlvPublisher[] = [];
  const players: FlvPlayer[] = [];
  try {
    const port = await gw.port('http');
    const sport = await gw.port('https');

    // Before: site A, CORS on, the first certificate.
    const before = await get(port, '/index.html', { Origin: 'http://example.test' });
    assert.equal(before.body, 'site A\n');
    assert.equal(before.headers['access-control-allow-origin'], '*');
    assert.equal(await peerFingerprint(sport), fingerprintOf(first.cert));

    // What must survive the reload: two live players, a paused big download, a proxied response
    // held mid-body, and an HTTP/2 session.
    pub.push(new FlvPublisher(port, '/live/reload.flv').play());
    await waitFor('the stream to be live', async () => (await get(port, '/api/v1/streams/')).body.includes('"reload"'));
    for (let i = 0; i < 2; i++) players.push(new FlvPlayer(port, '/live/reload.flv'));
    await waitFor('players to get frames', () => players.every((p) => p.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header)));
    let releaseDownload!: () => void;
    const downloadGate = new Promise<void>((r) => (releaseDownload = r));
    const download = gatedDownload(port, '/big.bin', 1024 * 1024, downloadGate);
    await download.reached;
    const proxied = get(port, '/up/slow').catch((e: Error) => ({ status: 0, headers: {}, body: `failed: ${e.message}` }));
    const session = await h2Session(sport);
    assert.equal((await h2Request(session, { ':path': '/index.html' })).body.toString(), 'site A\n');

    // Reload: another root, CORS off, a new key and certificate.
    const second = generateSelfSigned();
    writeFileSync(key, second.key, { mode: 0o600 });
    writeFileSync(cert, second.cert);
    gw.writeConfig(conf(b, 'off'));
    const mark = gw.lines.length;
    const hupAt = Date.now();
    gw.signal('SIGHUP');
    const applied = await gw.waitLine(/reload: .* applied/, 10_000, mark);
    t.diagnostic(`reload applied in ${Date.now() - hupAt} ms: ${applied}`);

    const after = await get(port, '/index.html', { Origin: 'http://example.test' });
    assert.equal(after.body, 'site B\n', 'the new root is served');
    assert.equal(after.headers['access-control-allow-origin'], undefined, 'crossdomain off took effect');
    const fp = await peerFingerprint(sport);
    assert.equal(fp, fingerprintOf(second.cert), 'a new TLS connection sees the new certificate');
    assert.equal((await h2Request(session, { ':path': '/index.html' })).body.toString(), 'site B\n', 'the HTTP/2 session opened before the reload still works');
    session.close();

    // The in-flight exchanges finish whole.
    releaseDownload();
    releaseUpstream();
    const d = await download.done;
    assert.equal(d.status, 200);
    assert.ok(d.complete, 'the download was not cut');
    assert.equal(d.bytes, BIG_BYTES);
    assert.equal(d.sha, bigSha, 'the download is the file it started as');
    const p = await proxied;
    assert.equal(p.status, 200);
    assert.equal(p.body, 'first half, second half', 'the proxied response held across the reload completed');

    // Players kept playing: frames keep arriving after the reload, and nobody was cut.
    const dtsAtHup = Math.max(...players.map((x) => x.lastDts()));
    await waitFor('frames after the reload', () => players.every((x) => x.lastDts() > dtsAtHup + 1000), 10_000);
    for (const x of players) {
      assert.equal(x.error, null);
      assert.equal(x.ended, false, 'the player was not ended by the reload');
    }
    t.diagnostic(`across the reload: ${players.length} players kept receiving (${players.map((x) => x.packets.length).join(', ')} packets), ${d.bytes} bytes downloaded whole, proxied response whole`);

    // A broken config: rejected with file:line in the log, and the running one keeps serving.
    const badMark = gw.lines.length;
    gw.writeConfig(`${conf(b, 'off')}\nlissten 8080;\n`);
    gw.signal('SIGHUP');
    const err = await gw.waitLine(/reload failed/, 10_000, badMark);
    t.diagnostic(`broken config: ${err}`);
    const badLine = conf(b, 'off').split('\n').length + 1;
    assert.ok(err.includes(`${gw.confFile}:${badLine}:`), `the error names ${gw.confFile}:${badLine}: ${err}`);
    assert.match(err, /lissten/);
    const still = await get(port, '/index.html', { Origin: 'http://example.test' });
    assert.equal(still.body, 'site B\n', 'the running config keeps serving');
    assert.equal(still.headers['access-control-allow-origin'], undefined);
    assert.equal(await peerFingerprint(sport), fingerprintOf(second.cert));

    // A broken certificate: rejected the same way; the running one keeps being served.
    const certMark = gw.lines.length;
    gw.writeConfig(conf(b, 'off'));
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    gw.signal('SIGHUP');
    const certErr = await gw.waitLine(/reload failed/, 10_000, certMark);
    t.diagnostic(`broken certificate: ${certErr}`);
    assert.ok(certErr.includes(cert), `the error names the certificate file: ${certErr}`);
    assert.equal(await peerFingerprint(sport), fingerprintOf(second.cert), 'the running certificate is still served');
    assert.equal((await get(port, '/index.html')).body, 'site B\n');

    await sleep(300);
    assert.ok(players.every((x) => !x.ended && x.error === null), 'players still playing after the rejected reloads');
    assert.equal(gw.child.exitCode, null, 'the gateway is still running');
    assert.doesNotMatch(gw.log(), /\n\s+at /, 'no stack trace in the log');
  } finally {
    releaseUpstream();
    for (const x of players) x.close();
    for (const x of pub) x.destroy();
    gw.kill();
    await gw.exited;
    upstream.closeAllConnections();
    upstream.close();
  }
});
