import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { FlvPublisher, sleep } from '../helpers/proc.js';
import { freePort, pebbleInstalled, startPebble, type Pebble } from '../helpers/pebble.js';
import { keyPairIn } from '../helpers/tls.js';

const A = 'a.example.com';
const B = 'b.example.com';
/** Issuance against pebble with no VA sleeps takes about a second; this bounds a stuck one. */
const ISSUE_WAIT_MS = 30_000;
const skip = pebbleInstalled() ? false : 'pebble is not installed (apt-get install pebble)';

interface Started {
  gw: Gateway;
  lines: string[];
  http: number;
  https: number;
}

async function start(opts: { http: number; https: number; pebble: { directory: string; caCert: string }; dir: string; tlsDir: string; domains?: string[]; extra?: string; top?: string }): Promise<Started> {
  const { log, lines } = memoryLogger();
  const gw = await Gateway.start(loadConfigText(`listen off; access_log off; limits { shutdown_timeout 1s; } ${opts.top ?? ''}
    http_server { listen 127.0.0.1:${opts.http}; dir ./public; ${opts.extra ?? ''}
      https { enabled on; listen 127.0.0.1:${opts.https}; ${keyPairIn(opts.tlsDir)}
        acme { enabled on; domains ${(opts.domains ?? [A, B]).join(' ')}; email ops@example.com;
               directory ${opts.pebble.directory}; ca_cert ${opts.pebble.caCert}; dir ${opts.dir}; } } }`, 'acme.conf'), { log });
  return { gw, lines, http: opts.http, https: opts.https };
}

async function until(what: string, cond: () => boolean, lines: string[], ms = ISSUE_WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; log:\n${lines.join('\n')}`);
    await sleep(50);
  }
}

const issued = (s: Started, name: string) => s.gw.certs.info().find((c) => c.domain === name)?.status === 'valid';

/** The certificate a TLS client asking for `name` gets, as `openssl s_client -servername` shows it. */
async function servedBy(port: number, name: string): Promise<{ subject: string; issuer: string; fingerprint: string; san: string; pem: string }> {
  // Not spawnSync: the gateway answering it runs in this process.
  const sh = (cmd: string) => new Promise<string>((resolve) => execFile('bash', ['-c', cmd], { timeout: 10_000 }, (_e, stdout) => resolve(stdout)));
  const pem = await sh(`openssl s_client -connect 127.0.0.1:${port} -servername ${name} </dev/null 2>/dev/null | openssl x509`);
  const out = await sh(`echo '${pem}' | openssl x509 -noout -subject -issuer -fingerprint -sha256 -ext subjectAltName`);
  return {
    pem,
    subject: /subject=(.*)/.exec(out)?.[1] ?? '',
    issuer: /issuer=(.*)/.exec(out)?.[1] ?? '',
    fingerprint: /Fingerprint=(.*)/i.exec(out)?.[1] ?? '',
    san: /DNS:.*/.exec(out)?.[0] ?? '',
  };
}

function get(port: number, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false, headers: { Host: `${A}:${port}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    }).on('error', reject);
  });
}

/** An HTTP-FLV player over HTTPS for `name`: counts the bytes it reads, keeps the certificate it got. */
function httpsPlayer(port: number, name: string, path: string): { bytes: () => number; fingerprint: string | null; socket: tls.TLSSocket; ready: Promise<void> } {
  let bytes = 0;
  const socket = tls.connect({ host: '127.0.0.1', port, servername: name, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
  const p = { bytes: () => bytes, fingerprint: null as string | null, socket, ready: Promise.resolve() };
  p.ready = new Promise((resolve, reject) => {
    socket.once('secureConnect', () => {
      p.fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? null;
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${name}\r\n\r\n`);
      resolve();
    });
    socket.once('error', reject);
  });
  socket.on('data', (d: Buffer) => (bytes += d.length));
  return p;
}

describe('automatic HTTPS against a real ACME CA (pebble)', { skip }, () => {
  let pebble: Pebble;
  let s: Started;
  let ports: { http: number; https: number };
  const dir = mkdtempSync(join(tmpdir(), 'sg-acme-'));
  const tlsDir = join(dir, 'default');

  before(async () => {
    ports = { http: await freePort(), https: await freePort() };
    pebble = await startPebble({ httpPort: ports.http, tlsPort: ports.https });
  });
  after(async () => {
    await s?.gw.close();
    await pebble?.stop();
  });

  test('HTTP-01: two domains issued, each client sees its own name\'s certificate; the API shows them', async () => {
    // A catch-all proxy to a dead upstream: the challenge step must come before it.
    s = await start({ ...ports, pebble, dir: join(dir, 'acme'), tlsDir, top: 'proxy { route / http://127.0.0.1:9; }' });
    assert.ok(s.lines.some((l) => l.includes(`no certificate for ${A} yet: serving the default one`)), s.lines.join('\n'));
    await until('both certificates', () => issued(s, A) && issued(s, B), s.lines);
    assert.ok(s.lines.some((l) => new RegExp(`${A}: certificate issued by .* via http-01`).test(l)), s.lines.join('\n'));
    const a = await servedBy(s.https, A);
    const b = await servedBy(s.https, B);
    assert.match(a.san, new RegExp(`DNS:${A.replace(/\./g, '\\.')}`));
    assert.match(b.san, new RegExp(`DNS:${B.replace(/\./g, '\\.')}`));
    assert.match(a.issuer, /Pebble/i);
    assert.notEqual(a.fingerprint, b.fingerprint);
    // A name with no ACME certificate gets the default one.
    assert.match((await servedBy(s.https, 'localhost')).subject, /localhost/);
    // Keys on disk are the operator's secret.
    assert.equal(statSync(join(dir, 'acme', `${A}.key`)).mode & 0o777, 0o600);
    const api = JSON.parse((await get(s.http, '/api/v1/config')).body) as { data: { http_server: { https: { acme: { certificates: { domain: string; issuer: string; not_after: string; next_renewal: string }[] } } } } };
    const certs = api.data.http_server.https.acme.certificates;
    assert.deepEqual(certs.map((c) => c.domain), [A, B]);
    assert.match(certs[0].issuer, /Pebble/i);
    assert.ok(Date.parse(certs[0].next_renewal) < Date.parse(certs[0].not_after));
  });

  test('renewal (clock moved past two thirds of the lifetime) swaps the certificate; a player on the old one keeps playing', async () => {
    const pub = new FlvPublisher(s.http, '/live/renew.flv').play();
    try {
      await sleep(300);
      const player = httpsPlayer(s.https, A, '/live/renew.flv');
      await player.ready;
      await until('the player receiving', () => player.bytes() > 10_000, s.lines, 5000);
      const before = player.fingerprint;
      const notAfter = Date.parse(s.gw.certs.info()[0].not_after!);
      s.gw.certs.now = () => notAfter - 1000;
      await s.gw.certs.renewDue();
      const now = await servedBy(s.https, A);
      assert.ok(s.lines.some((l) => l.includes(`${A}: certificate renewed`)), s.lines.join('\n'));
      assert.notEqual(now.fingerprint.replace(/:/g, '').toLowerCase(), before!.replace(/:/g, '').toLowerCase(), 'a new certificate for new connections');
      const at = player.bytes();
      await sleep(1000);
      assert.ok(player.bytes() > at + 10_000, 'the old connection kept playing');
      assert.equal(player.socket.destroyed, false);
      player.socket.destroy();
    } finally {
      pub.destroy();
      s.gw.certs.now = Date.now;
    }
  });

  test('restart with the CA down: the stored certificates are served, no new order', async () => {
    const served = await servedBy(s.https, A);
    await s.gw.close();
    await pebble.stop();
    s = await start({ ...ports, pebble, dir: join(dir, 'acme'), tlsDir });
    assert.ok(s.lines.some((l) => l.includes(`${A}: serving the stored certificate`)), s.lines.join('\n'));
    await sleep(500);
    assert.ok(!s.lines.some((l) => /ordering|renewing/.test(l)), s.lines.join('\n'));
    const again = await servedBy(s.https, A);
    assert.equal(again.fingerprint, served.fingerprint, `${JSON.stringify(again)}\n${JSON.stringify(served)}`);
  });

  test('CA down and no certificate yet: HTTP keeps serving, HTTPS serves the default one, the log says why', async () => {
    await s.gw.close();
    s = await start({ ...ports, pebble, dir: join(dir, 'acme-fresh'), tlsDir, domains: [A] });
    await until('the failure line', () => s.lines.some((l) => l.includes(`acme: ${A}: order with`) && l.includes('next try in')), s.lines);
    const line = s.lines.find((l) => l.includes('next try in'))!;
    assert.match(line, /ECONNREFUSED/);
    assert.match(line, /serving the default certificate meanwhile/);
    assert.equal((await get(s.http, '/')).status, 200);
    assert.match((await servedBy(s.https, A)).subject, /localhost/);
    assert.equal(s.gw.certs.info()[0].status, 'pending');
    assert.match(s.gw.certs.info()[0].last_error!, /ECONNREFUSED/);
  });
});

describe('TLS-ALPN-01 when HTTP-01 cannot work', { skip }, () => {
  test('the CA\'s HTTP-01 port is closed: the problem document is logged, TLS-ALPN-01 gets the certificate', async () => {
    const ports = { http: await freePort(), https: await freePort() };
    // The CA validates HTTP-01 on a port where nothing listens.
    const pebble = await startPebble({ httpPort: await freePort(), tlsPort: ports.https });
    const dir = mkdtempSync(join(tmpdir(), 'sg-acme-alpn-'));
    const s = await start({ ...ports, pebble, dir: join(dir, 'acme'), tlsDir: join(dir, 'default'), domains: [A] });
    try {
      await until('the certificate', () => issued(s, A), s.lines);
      const failed = s.lines.find((l) => l.includes(`${A}: order with http-01 failed`));
      assert.ok(failed, s.lines.join('\n'));
      assert.match(failed, /CA problem document: \{"type":"urn:ietf:params:acme:error:connection"/);
      assert.ok(s.lines.some((l) => new RegExp(`${A}: certificate issued by .* via tls-alpn-01`).test(l)), s.lines.join('\n'));
      const served = new X509Certificate((await servedBy(s.https, A)).pem);
      assert.ok(served.checkHost(A));
      // Ordinary clients still get h2 and http/1.1 by ALPN.
      const alpn = await new Promise<string | false | null>((resolve, reject) => {
        const c = tls.connect({ host: '127.0.0.1', port: s.https, servername: A, ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false }, () => {
          resolve(c.alpnProtocol);
          c.destroy();
        });
        c.on('error', reject);
      });
      assert.equal(alpn, 'h2');
    } finally {
      await s.gw.close();
      await pebble.stop();
    }
  });
});
