import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { openFds, rssOf, sleep } from '../helpers/proc.js';
import { baselineP99, frame, getBlock, normalClient, PREFACE, rawH2, rssWatch, settings, startCli, verdict } from '../helpers/h2-attack.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * Relayed answers to a client whose windows are 0: SETTINGS_INITIAL_WINDOW_SIZE 0, 128 streams
 * per connection each asking a large file with a Range (so Koa answers, through the relay when
 * own_h2 is on), a PING every 0.5 s to look alive. Twice the intensity that grew the gateway by
 * ~100 MiB a connection: 50 connections. What the gateway holds for them is bounded per
 * connection (the relay's windows, charged to the connection's account) and their connections
 * are closed once no stream has moved for request_timeout, PINGs or not.
 */

const CONNECTIONS = 50;
const STREAMS = Number(process.env.H2_STREAMS ?? 128);
const REQUEST_TIMEOUT_MS = 3000;
/** The attack lasts past request_timeout, so the close is part of what is measured. */
const ATTACK_MS = 6000;

for (const ownH2 of ['on', 'off'] as const) {
  test(`own_h2 ${ownH2}: ${CONNECTIONS} connections × ${STREAMS} ranged streams of a large file with windows of 0 and PINGs: bounded memory, closed after request_timeout`, async (t) => {
    const { gw, dir, https } = await startCli((d) => `listen off; access_log off; max_connections 5000;
      http_server { listen 127.0.0.1:0; dir ${d}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(d)} own_h2 ${ownH2}; } }
      limits { request_timeout ${REQUEST_TIMEOUT_MS}ms; keepalive_timeout 20s; header_timeout 5s; }`);
    // 256 MiB, sparse: as large as needed for no stream to finish, costing no disk.
    const fd = openSync(join(dir, 'large.bin'), 'w');
    ftruncateSync(fd, 256 * 1024 * 1024);
    closeSync(fd);
    const attackers: Awaited<ReturnType<typeof rawH2>>[] = [];
    let pinger: NodeJS.Timeout | undefined;
    try {
      // Warm: /hello.txt is then answered from memory.
      const baseline = await baselineP99(https, '/hello.txt');
      await sleep(500);
      const rssBefore = rssOf(gw.pid);
      const fdsBefore = openFds(gw.pid);
      const watch = rssWatch(gw.pid);
      const watchFrom = Date.now();
      const streams = Buffer.concat(Array.from({ length: STREAMS }, (_, i) => frame(1, 5, 2 * i + 1, getBlock('/large.bin', [['range', `bytes=${i}-`]]))));
      for (let i = 0; i < CONNECTIONS; i++) {
        attackers.push(await rawH2(https, Buffer.concat([PREFACE, settings([[4, 0]]), streams])));
        // Paced: the connections are the attack, not the rate of TLS handshakes.
        await sleep(40);
      }
      const openedAt = Date.now();
      // The normal user comes while the attack holds its streams open.
      const normal = normalClient(https, '/hello.txt');
      t.diagnostic(`${CONNECTIONS} connections opened in ${openedAt - watchFrom} ms; RSS now ${((rssOf(gw.pid) - rssBefore) / 1048576).toFixed(1)} MiB above the baseline`);
      pinger = setInterval(() => {
        for (const a of attackers) if (!a.sock.destroyed) a.sock.write(frame(6, 0, 0, Buffer.alloc(8)));
      }, 500);
      await sleep(ATTACK_MS);
      clearInterval(pinger);
      const stillOpen = attackers.filter((a) => !a.sock.destroyed && a.goaway() === undefined).length;
      t.diagnostic(`peak RSS +${((watch.peak() - rssBefore) / 1048576).toFixed(1)} MiB; after ${Date.now() - openedAt} ms: ${stillOpen} of ${CONNECTIONS} attacking connections still open without a GOAWAY`);
      assert.equal(stillOpen, 0, 'every attacking connection was closed, PINGs notwithstanding');
      watch.stop();
      const latencies = await normal.stop();
      // Bound: measured about 2.6 MiB a connection with own_h2 on (at most 32 streams in flight to
      // Node, a quarter of connection_memory waiting for the client) and 2.2 MiB with Node's own
      // server, whose sessions take 32 streams at once too (they took 128, a 16 KiB file chunk
      // and a Koa request each: +231 to +380 MiB for 50 connections, outside every budget).
      await verdict(t, gw, { rssBefore, rssPeak: watch.peak(), fdsBefore, latencies, failures: normal.failures(), baselineP99: baseline, rssBoundMiB: 192 });
    } finally {
      clearInterval(pinger);
      for (const a of attackers) a.sock.destroy();
      gw.kill();
    }
  });
}
