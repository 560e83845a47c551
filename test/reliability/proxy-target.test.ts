import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { Gateway } from '../../src/gateway.js';
import { readOneResponse } from '../helpers/proc.js';
import { proxyGateway } from '../integration/site.js';

/**
 * What the proxy forwards: only origin-form targets, normalised, under the prefix they were routed
 * by, with one Host and clean field values (RFC 9112 §3.2, RFC 3986 §5.2.4), on the front door's
 * raw lane (plain GET) and on the undici path (a body, or a head the front door leaves to Node's
 * parser) alike. And what held before and must keep holding: request smuggling attempts are a 400
 * and nothing reaches the upstream.
 */

/** A raw upstream that records each request head and answers with its request line. */
class RecordingUpstream {
  readonly server: net.Server;
  heads: string[] = [];
  private readonly sockets = new Set<net.Socket>();
  constructor() {
    this.server = net.createServer((sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => {});
      let buf = '';
      sock.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          const chunked = /\r\ntransfer-encoding: *chunked/i.test(head);
          const bodyEnd = chunked ? buf.indexOf('0\r\n\r\n', end + 4) + 5 : end + 4 + length;
          if ((chunked && bodyEnd < 5) || buf.length < bodyEnd) return;
          buf = buf.slice(bodyEnd);
          this.heads.push(head);
          const line = head.slice(0, head.indexOf('\r\n'));
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${line.length}\r\n\r\n${line}`);
        }
      });
    });
  }
  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** Sends raw bytes on a new connection; resolves with what came back by the close or the first whole response. */
function send(port: number, bytes: string, ms = 3000): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  const reply = readOneResponse(s, ms);
  s.write(bytes);
  return reply;
}

const status = (reply: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0);

describe('the proxy forwards origin-form targets only, normalised, with one Host', () => {
  const up = new RecordingUpstream();
  const other = new RecordingUpstream();
  let gw: Gateway;
  let port: number;
  before(async () => {
    const upPort = await up.start();
    const otherPort = await other.start();
    ({ gw, port } = await proxyGateway(`route /up/ http://127.0.0.1:${upPort}; route /other/ http://127.0.0.1:${otherPort}; timeout 2s;`));
  });
  after(async () => {
    await gw.close();
    await up.close();
    await other.close();
  });

  // The raw lane takes a plain GET; a Content-Length (even 0) sends the same request to the undici path.
  const lanes: [string, (line: string, fields?: string) => string][] = [
    ['raw lane', (line, fields = 'Host: client.test\r\n') => `${line}\r\n${fields}\r\n`],
    ['undici path', (line, fields = 'Host: client.test\r\n') => `${line.replace(/^GET/, 'POST')}\r\n${fields}Content-Length: 2\r\n\r\nhi`],
  ];

  for (const [lane, req] of lanes) {
    test(`${lane}: an absolute-form target goes upstream as origin-form, its authority the Host`, async () => {
      up.heads = [];
      const r = await send(port, req('GET http://evil.example/up/x?q=1 HTTP/1.1'));
      assert.equal(status(r), 200, r);
      assert.equal(up.heads.length, 1);
      assert.match(up.heads[0], /^(GET|POST) \/up\/x\?q=1 HTTP\/1\.1\r\n/, 'origin-form upstream');
      assert.match(up.heads[0], /\r\nHost: evil\.example\r\n/i, 'the target\'s authority is the Host (RFC 9112 §3.2.2)');
      assert.doesNotMatch(up.heads[0], /client\.test\r\n(?![\s\S]*X-Forwarded-Host)/);
    });

    test(`${lane}: two Host fields are a 400 and nothing goes upstream`, async () => {
      up.heads = [];
      const r = await send(port, req('GET /up/x HTTP/1.1', 'Host: a.test\r\nHost: b.test\r\n'));
      assert.equal(status(r), 400, r);
      assert.equal(up.heads.length, 0);
    });

    test(`${lane}: dot-segments are removed before routing and in what goes upstream; climbing above / is a 400`, async () => {
      up.heads = [];
      other.heads = [];
      const norm = await send(port, req('GET /up/a/./b/../c HTTP/1.1'));
      assert.equal(status(norm), 200, norm);
      assert.match(up.heads[0], /^(GET|POST) \/up\/a\/c HTTP\/1\.1\r\n/);
      up.heads = [];
      // Dot-segments are removed before the table is asked, so a path routes where it lands (as
      // NGINX's location matching does): out of /up/ into the files, or into /other/'s upstream.
      for (const target of ['/up/../etc/passwd', '/up/%2e%2e/etc/passwd']) {
        const r = await send(port, req(`GET ${target} HTTP/1.1`));
        // The static origin's answer: 404 for a GET, 405 for the undici lane's POST.
        assert.ok(status(r) === 404 || status(r) === 405, `${target}: ${r}`);
      }
      other.heads = [];
      for (const [target, lands] of [['/up/.%2E/other/x', '/other/x'], ['/up/../other/secret', '/other/secret']]) {
        const r = await send(port, req(`GET ${target} HTTP/1.1`));
        assert.equal(status(r), 200, `${target}: ${r}`);
        assert.match(other.heads.shift() ?? '', new RegExp(`^(GET|POST) ${lands} HTTP/1\\.1\r\n`), `${target} reaches the upstream of ${lands}, normalised`);
      }
      // (A path above / outside every proxy prefix is the static origin's to refuse.)
      for (const target of ['/up/../../x', '/up/%2e%2e/%2E%2E/x', '/up/a/../../../other/x']) {
        const r = await send(port, req(`GET ${target} HTTP/1.1`));
        assert.equal(status(r), 400, `${target}: ${r}`);
      }
      assert.deepEqual(up.heads, [], 'nothing that left /up/ reached the /up/ upstream');
      assert.deepEqual(other.heads, [], 'nor anything that climbed above /');
    });

    test(`${lane}: a control character in a header value is a 400 and nothing goes upstream`, async () => {
      up.heads = [];
      for (const bad of ['\x00', '\x7f', '\x01', '\r', '\x1b']) {
        const r = await send(port, req('GET /up/x HTTP/1.1', `Host: client.test\r\nX-Bad: a${bad}b\r\n`));
        assert.equal(status(r), 400, `${JSON.stringify(bad)}: ${r}`);
      }
      assert.deepEqual(up.heads, []);
    });
  }

  test('request smuggling through either lane: CL.TE, TE.CL, obfuscated TE, duplicate CL, obs-fold, bare LF, chunk-size overflow all 400, nothing upstream', async () => {
    up.heads = [];
    const attempts: [string, string][] = [
      ['CL.TE', 'POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'],
      ['TE.CL', 'POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n'],
      ['obfuscated TE', 'POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\nabcd'],
      ['TE with a space before the colon', 'POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n'],
      ['duplicate CL', 'POST /up/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
      ['obs-fold', 'GET /up/x HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n'],
      ['bare LF', 'GET /up/x HTTP/1.1\nHost: x\n\n'],
      ['bare LF in a value', 'GET /up/x HTTP/1.1\r\nHost: x\r\nX-A: 1\nGET /up/smuggled HTTP/1.1\r\n\r\n'],
      ['chunk-size overflow', 'POST /up/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF1\r\nx\r\n0\r\n\r\n'],
    ];
    for (const [name, bytes] of attempts) {
      const r = await send(port, bytes);
      assert.equal(status(r), 400, `${name}: ${JSON.stringify(r.slice(0, 60))}`);
    }
    assert.deepEqual(up.heads, [], 'nothing reached the upstream');
  });
});
