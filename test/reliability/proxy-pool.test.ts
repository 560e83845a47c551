import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { Gateway } from '../../src/gateway.js';
import { readOneResponse, sleep } from '../helpers/proc.js';
import { proxyGateway } from '../integration/site.js';

/**
 * Pool poisoning: an upstream that sends an unsolicited second response after a complete one.
 * Bytes that reach an idle pooled connection, or that were already on their way when the next
 * request was written to it, are nobody's answer: the connection is closed and the next client
 * gets its own answer from a fresh one. Both proxy lanes share the hazard (HTTP/1.1 carries no
 * request id, so a stray response read after a request was sent looks like its answer).
 */

const STRAY = 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON';
const TRIALS = 40;

/** A raw upstream that answers each request with its own target, and can send a stray response on every connection. */
class StrayUpstream {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  connections = 0;
  requests = 0;
  /** Bytes written right after each answer, in the same write (past its framing). */
  extra = '';
  constructor() {
    this.server = net.createServer((sock) => {
      this.connections++;
      this.sockets.add(sock);
      // The stray leaves at once: with Nagle on, it would wait for the ACK of the answer before it,
      // which rides on the gateway's next request, and so arrive as late as a real answer.
      sock.setNoDelay(true);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => {});
      let buf = '';
      sock.on('data', (c: Buffer) => {
        buf += c.toString('latin1');
        for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
          const head = buf.slice(0, end);
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          buf = buf.slice(end + 4 + length);
          this.requests++;
          const body = `answer to ${head.split(' ')[1]}`;
          sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}${this.extra}`);
        }
      });
    });
  }
  async start(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as net.AddressInfo).port;
  }
  /** The unsolicited response, on every open upstream connection. */
  stray(): void {
    for (const s of this.sockets) s.write(STRAY);
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const answer = readOneResponse;

async function connected(port: number): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  return s;
}

/** Blocks this process's event loop: whatever peers send meanwhile waits in the kernel, to be read in one batch. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* the race this test makes needs both sockets readable at once */ }
}

async function strays(port: number): Promise<number> {
  const s = await connected(port);
  s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const got = await new Promise<string>((resolve) => {
    let all = '';
    s.on('data', (c: Buffer) => (all += c.toString('latin1')));
    s.on('close', () => resolve(all));
  });
  return Number(/^streamgate_proxy_stray_responses_total (\d+)$/m.exec(got)?.[1] ?? 0);
}

function body(reply: string): string {
  const end = reply.indexOf('\r\n\r\n');
  return end < 0 ? '' : reply.slice(end + 4);
}

describe('a misbehaving upstream cannot answer one client with bytes meant for another', () => {
  const up = new StrayUpstream();
  let gw: Gateway;
  let port: number;
  before(async () => {
    const upPort = await up.start();
    ({ gw, port } = await proxyGateway(`route /up/ http://127.0.0.1:${upPort}; timeout 2s; connect_timeout 1s;`));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  /**
   * One trial: client A's answer leaves a pooled upstream connection idle; then client B's request
   * and the upstream's stray response reach the gateway in the same event-loop batch, B's first
   * (the order that once handed B the stray: its request was written to the pooled connection, and
   * the stray read next was taken for its answer).
   */
  async function trial(name: string, request: (path: string) => string): Promise<string> {
    const a = await connected(port);
    a.write(request(`/up/${name}-a`));
    assert.equal(body(await answer(a)), `answer to /up/${name}-a`);
    // Past the gateway's delayed ACK of that answer (40 ms at most on Linux): the stray is sent
    // well after a complete response, as the misbehaving upstream does.
    await sleep(60);
    const b = await connected(port);
    await sleep(5);
    const got = answer(b);
    b.write(request(`/up/${name}-b`));
    up.stray();
    block(30);
    return got;
  }

  const lanes: [string, (path: string) => string][] = [
    ['raw lane GET', (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ['undici GET', (p) => `GET ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`],
    ['undici POST', (p) => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody`],
  ];
  for (const [lane, request] of lanes) {
    test(`${lane}: a stray response on an idle pooled connection closes it; bytes past an answer's framing too`, async () => {
      const name = lane.replace(/ /g, '-');
      const strays0 = await strays(port);
      const a = await connected(port);
      a.write(request(`/up/${name}-idle-a`));
      assert.equal(body(await answer(a)), `answer to /up/${name}-idle-a`);
      const conns0 = up.connections;
      up.stray();
      await sleep(50);
      const b = await connected(port);
      b.write(request(`/up/${name}-idle-b`));
      assert.equal(body(await answer(b)), `answer to /up/${name}-idle-b`);
      assert.equal(up.connections, conns0 + 1, 'the connection that carried the stray was not reused');
      if (lane.startsWith('raw')) assert.ok((await strays(port)) > strays0, 'counted on /metrics');
      up.extra = STRAY;
      try {
        for (let i = 0; i < 10; i++) {
          const c = await connected(port);
          c.write(request(`/up/${name}-extra-${i}`));
          assert.equal(body(await answer(c)), `answer to /up/${name}-extra-${i}`);
        }
      } finally {
        up.extra = '';
      }
    });

    test(`${lane}: ${TRIALS} trials, no client gets the stray response`, async (t) => {
      let poisoned = 0;
      let own = 0;
      const conns0 = up.connections;
      for (let i = 0; i < TRIALS; i++) {
        const reply = await trial(`${lane.replace(/ /g, '-')}-${i}`, request);
        if (reply.includes('POISON')) poisoned++;
        else if (body(reply) === `answer to /up/${lane.replace(/ /g, '-')}-${i}-b`) own++;
      }
      t.diagnostic(`${lane}: ${own} own answers, ${poisoned} poisoned, ${TRIALS - own - poisoned} refused; upstream connections opened ${up.connections - conns0}`);
      assert.equal(poisoned, 0, 'no client ever reads another exchange\'s bytes');
      assert.ok(own >= TRIALS * 0.9, `nearly every client gets its own answer (${own}/${TRIALS})`);
    });
  }
});
