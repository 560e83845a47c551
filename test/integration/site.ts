import net from 'node:net';
import tls from 'node:tls';
import http2 from 'node:http2';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';

/**
 * A small web site on disk for the static-origin tests, a gateway serving it, and clients that
 * send exactly the bytes a test writes (fetch and node:http normalise URLs, which would hide
 * the very requests a traversal test must send).
 */

/** Bytes no file inside the site contains: if they ever show up in a response, the root leaked. */
export const SECRET = 'SECRET-7f3a9c1e-outside-the-root';

export interface Site {
  /** The temp dir holding everything (root, mount, secret, certs). */
  base: string;
  /** http_server.dir */
  root: string;
  /** A vhost http_static dir. */
  mount: string;
  files: Record<string, Buffer>;
  remove(): void;
}

/** Deterministic, non-repeating-looking bytes so a wrong slice is always noticed. */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export function makeSite(): Site {
  const base = mkdtempSync(join(tmpdir(), 'sg-site-'));
  const root = join(base, 'root');
  const mount = join(base, 'mount');
  const files: Record<string, Buffer> = {
    '/hello.txt': Buffer.from('hello world\n'),
    '/data.bin': pattern(1000),
    '/big.bin': pattern(2 * 1024 * 1024 + 3, 7), // above the in-memory limit: streamed from disk
    '/empty.txt': Buffer.alloc(0),
    '/live.m3u8': Buffer.from('#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n'),
    '/seg.ts': pattern(188 * 4, 3),
    '/clip.flv': Buffer.concat([Buffer.from('FLV\x01\x05\x00\x00\x00\x09', 'latin1'), pattern(64, 4)]),
    '/page.html': Buffer.from('<!doctype html><title>page</title>'),
    '/app.js': Buffer.from('console.log(1);\n'),
    '/style.css': Buffer.from('body{color:red}\n'),
    '/info.json': Buffer.from('{"ok":true}\n'),
    '/blob.xyz': Buffer.from('<script>alert(1)</script>'),
    '/dir/index.html': Buffer.from('<!doctype html><title>dir index</title>'),
    '/dir/a.txt': Buffer.from('a in dir\n'),
    '/noindex/a.txt': Buffer.from('a in noindex\n'),
    '/hls/x.txt': Buffer.from('root hls x\n'),
    '/a b.txt': Buffer.from('space\n'),
    '/%2e%2e': Buffer.from('a file literally named %2e%2e\n'),
  };
  for (const [p, body] of Object.entries(files)) {
    const full = join(root, ...p.split('/'));
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, body);
  }
  mkdirSync(join(mount, 'sub'), { recursive: true });
  const mountFiles: Record<string, Buffer> = {
    '/m.txt': Buffer.from('from the mount\n'),
    '/sub/deep.txt': Buffer.from('deep in the mount\n'),
  };
  for (const [p, body] of Object.entries(mountFiles)) writeFileSync(join(mount, ...p.split('/')), body);
  writeFileSync(join(base, 'secret.txt'), `${SECRET}\n`);
  mkdirSync(join(base, 'private'));
  writeFileSync(join(base, 'private', 'key.txt'), `${SECRET} private\n`);
  // Links that lead out of the root: a file, a directory, and an absolute one.
  symlinkSync('../secret.txt', join(root, 'escape.txt'));
  symlinkSync('../private', join(root, 'escdir'));
  symlinkSync(join(base, 'secret.txt'), join(root, 'abs-escape.txt'));
  symlinkSync('../secret.txt', join(mount, 'escape.txt'));
  // A link that stays inside is fine to follow.
  symlinkSync('hello.txt', join(root, 'inside-link.txt'));
  return { base, root, mount, files, remove: () => rmSync(base, { recursive: true, force: true }) };
}

export interface Started {
  gw: Gateway;
  lines: string[];
  http: number;
}

/** A gateway on an ephemeral loopback port; `conf` is placed inside http_server { … }. */
export async function startGateway(text: string, env: NodeJS.ProcessEnv = {}): Promise<Started> {
  const { log, lines } = memoryLogger();
  const gw = await Gateway.start(loadConfigText(text, 'test.conf', env), { log });
  return { gw, lines, http: gw.port('http') };
}

/** A gateway with only plain HTTP on an ephemeral port and `proxy { … }` as given (`top`: more top-level directives). */
export async function proxyGateway(proxy: string, top = ''): Promise<{ gw: Gateway; port: number; lines: string[] }> {
  const { gw, lines, http } = await startGateway(`listen off; ${top} http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
    proxy { ${proxy} }`);
  return { gw, port: http, lines };
}

export interface RawReply {
  status: number;
  statusLine: string;
  /** Lower-cased names; the last value wins. */
  headers: Record<string, string>;
  /** Header names in the order they were sent. */
  order: string[];
  body: Buffer;
  /** Everything received, head included. */
  raw: Buffer;
}

/** Parses one HTTP/1.x response (Content-Length or close-delimited; chunked is decoded). */
export function parseReply(raw: Buffer, head = false): RawReply {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = lines[0];
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  const order: string[] = [];
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    const k = l.slice(0, c).trim().toLowerCase();
    headers[k] = l.slice(c + 1).trim();
    order.push(k);
  }
  let body = raw.subarray(end + 4);
  if (head || status === 304 || status === 204) body = Buffer.alloc(0);
  else if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']));
  return { status, statusLine, headers, order, body, raw };
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (let n = 0; n < 100_000 && i < b.length; n++) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const size = parseInt(b.subarray(i, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    out.push(b.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/**
 * Sends `target` exactly as written in a request line and reads the whole answer (the request
 * asks the server to close). Bounded by `timeoutMs`.
 */
export function rawGet(port: number, target: string, opts: { method?: string; headers?: Record<string, string>; host?: string; timeoutMs?: number } = {}): Promise<RawReply> {
  const method = opts.method ?? 'GET';
  const extra = Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const text = `${method} ${target} HTTP/1.1\r\nHost: ${opts.host ?? '127.0.0.1'}\r\n${extra}Connection: close\r\n\r\n`;
  return rawExchange(port, Buffer.from(text, 'latin1'), opts.timeoutMs).then((raw) => parseReply(raw, method === 'HEAD'));
}

/** Writes `bytes` to the port and collects everything until the server closes. */
export function rawExchange(port: number, bytes: Buffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no close from the server within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))}`));
    }, timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    // No half-close: Node's HTTP server drops a request whose connection is already ending.
    sock.write(bytes);
  });
}

/**
 * Several requests on one keep-alive connection, one after the other, answers read by
 * Content-Length. Used to reach the fast lane: the first request fills the file cache, the
 * next ones are answered from it.
 */
export async function keepAliveGets(port: number, targets: string[], timeoutMs = 5000): Promise<RawReply[]> {
  const conn = keepAlive(port, timeoutMs);
  const out: RawReply[] = [];
  try {
    for (const target of targets) out.push(await conn.get(target));
  } finally {
    conn.close();
  }
  return out;
}

/** One keep-alive connection: each `get` writes the same head shape a load tool repeats. */
export interface KeepAliveClient {
  /** One GET, written whole, and its answer. */
  get(target: string): Promise<RawReply>;
  /** Bytes as given (part of a head, or several heads): the answers are read with next(). */
  write(bytes: string): void;
  next(): Promise<RawReply>;
  close(): void;
}

export function keepAlive(port: number, timeoutMs = 5000): KeepAliveClient {
  const sock = net.connect({ host: '127.0.0.1', port });
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | null = null;
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    waiter?.();
  });
  sock.on('error', () => waiter?.());
  const next = async (): Promise<RawReply> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
        if (buf.length >= end + 4 + len) {
          const r = parseReply(buf.subarray(0, end + 4 + len));
          buf = buf.subarray(end + 4 + len);
          return r;
        }
      }
      if (Date.now() > deadline || sock.destroyed) throw new Error('keep-alive exchange did not complete');
      await new Promise<void>((r) => {
        waiter = r;
        setTimeout(r, 50);
      });
      waiter = null;
    }
  };
  return {
    get(target: string): Promise<RawReply> {
      sock.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      return next();
    },
    write: (bytes: string) => void sock.write(bytes),
    next,
    close: () => sock.destroy(),
  };
}

/**
 * The gateway answers a request either from its fast lane (the front door, src/http/frontdoor.ts:
 * no Koa context) or through the full routing table. Both must say the same thing; the only visible difference is the order in
 * which they set headers (the fast lane starts with Content-Type), which lets a test prove it
 * exercised both.
 */
export function lane(r: RawReply): 'fast' | 'table' {
  return r.order[0] === 'content-type' ? 'fast' : 'table';
}

export interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP/2 session over TLS (ALPN h2) to a self-signed listener. */
export async function h2Session(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, ALPNProtocols: ['h2'] } as http2.SecureClientSessionOptions);
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  return session;
}

export function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, timeoutMs = 5000): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: true });
    const chunks: Buffer[] = [];
    let head: http2.IncomingHttpHeaders = {};
    const timer = setTimeout(() => {
      req.close();
      reject(new Error(`HTTP/2 ${String(headers[':path'])}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('response', (h) => (head = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      clearTimeout(timer);
      resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The ALPN protocol a TLS client offering h2 and http/1.1 ends up with. */
export function negotiatedAlpn(port: number): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      const p = s.alpnProtocol;
      s.destroy();
      resolve(p ?? false);
    });
    s.on('error', reject);
  });
}

/** One HTTP/1.1 GET over TLS (ALPN http/1.1 only), read until the server closes. */
export function tlsGet(port: number, target: string, timeoutMs = 5000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer over TLS within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(parseReply(Buffer.concat(chunks)));
    });
  });
}

/** A loopback port that was free a moment ago (for configs that must name a port: CLI, nginx). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
