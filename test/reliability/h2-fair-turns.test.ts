import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { sleep } from '../helpers/proc.js';
import { ownH2Server } from '../helpers/h2-attack.js';
import { frame, getBlock, PREFACE, settings } from '../helpers/h2-frames.js';

/**
 * One connection's read must not keep the event loop from every other connection: its frames do
 * a bounded amount of work a turn (calm.ts TURN_WORK), and the rest waits, its socket paused,
 * until the other connections' reads have had their turn. Pushed far past the bound here: 30,000
 * PINGs in one write (over 200 turns' worth), and a request on a second connection sent just
 * after them must be answered long before the last PING is.
 */

const PINGS = 30_000;

/** A plain-TCP h2 client connection that counts the frames it gets by type, and calls `onFrame` for each. */
async function h2Socket(port: number, onFrame: (type: number, id: number) => void): Promise<net.Socket> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  await once(sock, 'connect');
  let buf: Buffer = Buffer.alloc(0);
  sock.on('data', (c: Buffer) => {
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
    let p = 0;
    while (buf.length - p >= 9 && buf.length - p >= 9 + buf.readUIntBE(p, 3)) {
      onFrame(buf[p + 3], buf.readUInt32BE(p + 5) & 0x7fffffff);
      p += 9 + buf.readUIntBE(p, 3);
    }
    buf = buf.subarray(p);
  });
  sock.write(Buffer.concat([PREFACE, settings([])]));
  return sock;
}

test(`a connection flooding ${PINGS} PINGs in one write does not hold another connection's request until it is done`, async (t) => {
  const node = http2.createServer((_req, res) => res.end('ok'));
  const own = await ownH2Server(node);
  let acks = 0;
  let acksWhenAnswered = -1;
  const flood = await h2Socket(own.port, (type) => type === 6 && acks++);
  const other = await h2Socket(own.port, (type, id) => {
    if (type === 1 && id === 1 && acksWhenAnswered < 0) acksWhenAnswered = acks;
  });
  try {
    await sleep(100);
    flood.write(Buffer.concat(Array.from({ length: PINGS }, (_, i) => frame(6, 0, 0, Buffer.alloc(8, i & 0xff)))));
    other.write(frame(1, 5, 1, getBlock('/other')));
    // Bounds, not speed checks: a loaded machine is slow at both.
    const until = Date.now() + 20_000;
    while ((acks < PINGS || acksWhenAnswered < 0) && Date.now() < until) await sleep(20);
    assert.equal(acks, PINGS, 'every PING was answered');
    assert.ok(acksWhenAnswered >= 0, 'the other connection was answered');
    t.diagnostic(`the other connection's answer came when ${acksWhenAnswered} of ${PINGS} PING ACKs had`);
    assert.ok(acksWhenAnswered < PINGS / 2, `answered while the flood was still being worked through (${acksWhenAnswered} of ${PINGS} ACKs before it)`);
  } finally {
    flood.destroy();
    other.destroy();
    own.close();
    node.close();
  }
});
