import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openFds, rssOf, sleep } from '../helpers/proc.js';
import { baselineP99, frame, getBlock, normalClient, PREFACE, rawH2, rssWatch, settings, startCli, verdict } from '../helpers/h2-attack.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * CONTINUATION flood (the CVE-2024-27316 class): HEADERS without END_HEADERS, then zero-length
 * CONTINUATION frames as fast as the socket takes them. One connection of this for 10 s grew the
 * gateway from 80 MB to 2.7 GB. Here twice that: 2 TLS connections, each reconnecting whenever it
 * is cut off, for the whole header_timeout. Each connection must be cut off after at most 8
 * CONTINUATIONs (nghttp2's bound) with GOAWAY, so memory stays flat.
 */

const ATTACKERS = 2;
/**
 * The attackers reconnect over a thousand times in header_timeout, and TLS connections that only
 * connect and close already grow the heap to its working size: +52 MiB over 5,400 of them. With the
 * flood on top, peak growth measured +40-52 MiB here, and it levels off (+98 MiB after 5,900
 * connections, +106 MiB after 14,900), where a held CONTINUATION would grow it by 2.7 GB.
 */
const CHURN_BOUND_MIB = 64;
const HEADER_TIMEOUT_MS = 4000;
/** Zero-length CONTINUATIONs written per burst (9 octets each). */
const BURST = 4096;

for (const ownH2 of ['on', 'off'] as const) {
  test(`own_h2 ${ownH2}: ${ATTACKERS} connections of zero-length CONTINUATION frames for header_timeout: GOAWAY after a few, memory flat`, async (t) => {
    const { gw, https } = await startCli((d) => `listen off; access_log off;
      http_server { listen 127.0.0.1:0; dir ${d}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(d)} own_h2 ${ownH2}; } }
      limits { header_timeout ${HEADER_TIMEOUT_MS}ms; }`);
    try {
      const baseline = await baselineP99(https, '/hello.txt');
      await sleep(300);
      const rssBefore = rssOf(gw.pid);
      const fdsBefore = openFds(gw.pid);
      const watch = rssWatch(gw.pid);
      const normal = normalClient(https, '/hello.txt');
      const burst = Buffer.concat(Array.from({ length: BURST }, () => frame(9, 0, 1)));
      const until = Date.now() + HEADER_TIMEOUT_MS;
      const codes: (number | undefined)[] = [];
      let frames = 0;
      const attacker = async () => {
        while (Date.now() < until) {
          const a = await rawH2(https, Buffer.concat([PREFACE, settings([]), frame(1, 0, 1, getBlock('/hello.txt'))]));
          while (!a.sock.destroyed && a.goaway() === undefined && Date.now() < until) {
            // Only as fast as the socket drains: the flood is bounded by the peer, not by this test's memory.
            if (!a.sock.write(burst)) await Promise.race([new Promise((r) => a.sock.once('drain', r)), a.closed, sleep(200)]);
            frames += BURST;
            await sleep(1);
          }
          codes.push(a.goaway());
          a.sock.destroy();
        }
      };
      await Promise.all(Array.from({ length: ATTACKERS }, attacker));
      watch.stop();
      const latencies = await normal.stop();
      t.diagnostic(`${codes.length} attacking connections, ${frames} CONTINUATION frames written; GOAWAY codes: ${[...new Set(codes)].join(', ')}`);
      // Each connection was cut off: ours with GOAWAY ENHANCE_YOUR_CALM; Node's (nghttp2's bound
      // of 8) with INTERNAL_ERROR or a bare close.
      assert.ok(codes.length > ATTACKERS, 'the attackers were cut off and came back');
      if (ownH2 === 'on') assert.ok(codes.filter((c) => c === 11).length >= codes.length - ATTACKERS, `GOAWAY ENHANCE_YOUR_CALM: ${codes.join(',')}`);
      await verdict(t, gw, { rssBefore, rssPeak: watch.peak(), fdsBefore, latencies, failures: normal.failures(), baselineP99: baseline, rssBoundMiB: CHURN_BOUND_MIB });
    } finally {
      gw.kill();
    }
  });
}
