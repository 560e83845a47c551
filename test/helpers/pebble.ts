import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Let's Encrypt's test CA (Debian's `pebble`) on loopback, with `pebble-challtestsrv` as its DNS
 * server answering 127.0.0.1 for every name: a real RFC 8555 server that validates challenges
 * against streamgate's own ports. Its TLS certificate is made here with openssl; `caCert` is the
 * file to trust for its directory.
 */
export interface Pebble {
  directory: string;
  caCert: string;
  /** The root that signs the certificates it issues (PEM), from its management interface. */
  root(): Promise<string>;
  stop(): Promise<void>;
  output(): string;
}

export interface PebbleOptions {
  /** Where its VA sends HTTP-01 (streamgate's HTTP port) and TLS-ALPN-01 (streamgate's HTTPS port). */
  httpPort: number;
  tlsPort: number;
  /** The directory port to use (a restarted CA on the same address); default a free one. */
  port?: number;
}

export function pebbleInstalled(): boolean {
  return spawnSync('pebble', ['-h']).error === undefined && spawnSync('pebble-challtestsrv', ['-h']).error === undefined;
}

/** A port nobody listens on right now (bound and released: the caller binds it next). */
export async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-pebble-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=pebble test CA', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (ssl.status !== 0) throw new Error(`openssl: ${ssl.stderr}`);
  const [port, mgmt, dns, dnsMgmt] = [opts.port ?? await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${port}`,
      managementListenAddress: `127.0.0.1:${mgmt}`,
      certificate: cert,
      privateKey: key,
      httpPort: opts.httpPort,
      tlsPort: opts.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }));
  let out = '';
  const collect = (c: ChildProcess) => {
    c.stdout?.on('data', (d: Buffer) => (out += d));
    c.stderr?.on('data', (d: Buffer) => (out += d));
  };
  // Only its DNS server: the challenges themselves are streamgate's to answer.
  const dnsSrv = spawn('pebble-challtestsrv', ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dns}`,
    '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${dnsMgmt}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  collect(dnsSrv);
  // No sleeps before validation, and no nonces rejected at random: a test run is short and exact.
  const ca = spawn('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dns}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
  });
  collect(ca);
  const ca0 = readFileSync(cert);
  const get = (url: string) => new Promise<string>((resolve, reject) => {
    https.get(url, { ca: ca0 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
    }).on('error', reject);
  });
  const directory = `https://127.0.0.1:${port}/dir`;
  const stop = async () => {
    for (const c of [ca, dnsSrv]) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await get(directory);
      break;
    } catch (err) {
      if (Date.now() > deadline || ca.exitCode !== null) {
        await stop();
        throw new Error(`pebble did not start: ${(err as Error).message}\n${out}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { directory, caCert: cert, root: () => get(`https://127.0.0.1:${mgmt}/roots/0`), stop, output: () => out };
}
