import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { RtmpTestClient } from '../helpers/rtmp-client.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { sleep } from '../helpers/proc.js';

/**
 * An RTMP play is authorised before the stream is acquired: a player the policy refuses must not
 * make an edge pull from the origin (nor wait for a publisher). The origin here is a real HTTP
 * server that counts what reaches it.
 */

describe('RTMP play: the policy runs before the stream is acquired', () => {
  let origin: http.Server;
  let hits = 0;
  const gateways: Gateway[] = [];
  const clients: RtmpTestClient[] = [];

  before(async () => {
    origin = http.createServer((_req, res) => {
      hits++;
      // An origin that has the stream would answer with FLV; 404 is enough to count the pull.
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    for (const c of clients) c.close();
    for (const g of gateways) await g.close();
    await new Promise((r) => origin.close(r));
  });

  async function gateway(vhostExtra: string): Promise<Gateway> {
    const port = (origin.address() as AddressInfo).port;
    const { log } = memoryLogger();
    const gw = await Gateway.start(loadConfigText(`listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { edge { origin http://127.0.0.1:${port}; connect_timeout 2s; } play { wait_publisher 1s; } ${vhostExtra} }`, 'edge.conf'), { log });
    gateways.push(gw);
    return gw;
  }

  test('a denied play gets NetStream.Play.Failed and the origin sees no request; an allowed one is pulled', async () => {
    const denied = await gateway('security { enabled on; deny play all; }');
    hits = 0;
    for (let i = 0; i < 3; i++) {
      const c = new RtmpTestClient(denied.port('rtmp'));
      clients.push(c);
      await c.play('live', `secret${i}`);
      await c.until('a play status', () => c.statuses.length > 0);
      assert.deepEqual(c.statuses, ['NetStream.Play.Failed']);
      await c.closed;
    }
    // The HTTP door agrees, and a late pull would have had time to arrive.
    const r = await fetch(`http://127.0.0.1:${denied.port('http')}/live/secret0.flv`);
    assert.equal(r.status, 403);
    await sleep(300);
    assert.equal(hits, 0, 'no request reached the origin for refused players');

    // The same play on a gateway that allows it does reach the origin: the count can move.
    const open = await gateway('');
    const c = new RtmpTestClient(open.port('rtmp'));
    clients.push(c);
    await c.play('live', 'secret0');
    await waitFor('the edge pull', () => hits > 0);
  });
});
