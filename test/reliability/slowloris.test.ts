import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { percentile, timedGet } from '../helpers/proc.js';

const ATTACKERS = 1000;
/** Long enough for 1,000 connects on a busy two-core machine (about 2 s measured): the timer runs from accept. */
const HEADER_TIMEOUT_MS = 5000;
/** Each attacker sends one header byte this often: well inside any per-byte idle timer. */
const BYTE_EVERY_MS = 500;
const NORMAL_REQUESTS = 300;
/** p99 of a small-file GET (new connection each) while 1,000 connections dribble headers. */
const P99_BOUND_MS = 250;

test(`${ATTACKERS} slowloris connections: normal requests keep their latency, the header timeout closes every attacker`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-slowloris-'));
  writeFileSync(join(dir, 'index.html'), `<!doctype html><title>ok</title>${'x'.repeat(1000)}`);
  const { log } = memoryLogger();
  // max_connections above the attack size: this test is about the header timeout, limits.test about the cap.
  const conf = `listen off; max_connections 5000; http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    limits { header_timeout ${HEADER_TIMEOUT_MS}ms; } access_log off;`;
  const gw = await Gateway.start(loadConfigText(conf, 'slowloris.conf'), { log });
  const port = gw.port('http');
  const attackers: net.Socket[] = [];
  const closedAt = new Map<net.Socket, number>();
  const answers = new Map<string, number>();
  let dribble: NodeJS.Timeout | undefined;
  try {
    const baseline: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await timedGet(port, '/index.html');
      assert.equal(r.status, 200);
      baseline.push(r.ms);
    }

    // The header timer starts at accept (NGINX's client_header_timeout does too): the attack
    // begins with the first connect, and each attacker starts its head as soon as it is connected.
    const startedAt = Date.now();
    // Connect in batches so the listen backlog never overflows (that would measure the kernel, not us).
    for (let b = 0; b < ATTACKERS; b += 100) {
      const batch = Array.from({ length: Math.min(100, ATTACKERS - b) }, () => {
        const s = net.connect(port, '127.0.0.1');
        s.setNoDelay(true);
        s.on('error', () => {});
        s.on('data', (d: Buffer) => {
          const status = d.toString('latin1', 0, 12);
          answers.set(status, (answers.get(status) ?? 0) + 1);
        });
        s.on('close', () => closedAt.set(s, Date.now()));
        attackers.push(s);
        s.once('connect', () => s.write('GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: '));
        return once(s, 'connect');
      });
      await Promise.all(batch);
    }
    let next = 0;
    const perTick = Math.ceil(ATTACKERS / (BYTE_EVERY_MS / 50));
    dribble = setInterval(() => {
      for (let i = 0; i < perTick; i++) {
        const s = attackers[next++ % attackers.length];
        if (!s.destroyed) s.write('a');
      }
    }, 50);
    await waitFor('attackers counted', () => gw.traffic().connections >= ATTACKERS, 5000, 10);
    // The server's clock for each attacker starts at its accept, which trails the client's connect
    // on a busy machine: the bound below is from the last accept.
    const acceptedBy = Date.now() - startedAt;

    const during: number[] = [];
    let failed = 0;
    for (let i = 0; i < NORMAL_REQUESTS && Date.now() - startedAt < HEADER_TIMEOUT_MS - 200; i++) {
      const r = await timedGet(port, '/index.html');
      if (r.status !== 200) failed++;
      during.push(r.ms);
    }
    const openDuring = attackers.filter((s) => !closedAt.has(s)).length;

    // Every attacker must be closed by the server once the header timeout has passed.
    await waitFor('every attacker closed', () => closedAt.size === ATTACKERS, HEADER_TIMEOUT_MS + 10_000, 100);
    const lastClose = Math.max(...closedAt.values()) - startedAt;
    const p99 = percentile(during, 99);
    t.diagnostic(`baseline p50 ${percentile(baseline, 50).toFixed(1)} ms, p99 ${percentile(baseline, 99).toFixed(1)} ms`);
    t.diagnostic(`under attack (${openDuring} slowloris connections open): ${during.length} requests, ${failed} failed, p50 ${percentile(during, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
    t.diagnostic(`header_timeout ${HEADER_TIMEOUT_MS} ms: all ${ATTACKERS} attackers closed ${lastClose} ms after the attack began; they were answered ${JSON.stringify(Object.fromEntries(answers))}`);
    assert.ok(openDuring >= ATTACKERS * 0.95, `the attack was really on while measuring (${openDuring} open)`);
    assert.ok(during.length >= 50, `enough requests measured under attack (${during.length})`);
    assert.equal(failed, 0, 'no normal request failed during the attack');
    assert.ok(p99 < P99_BOUND_MS, `p99 under attack ${p99.toFixed(1)} ms < ${P99_BOUND_MS} ms`);
    assert.ok(lastClose < acceptedBy + HEADER_TIMEOUT_MS + 1500, `attackers closed within header_timeout + 1.5 s of the last accept (${acceptedBy} ms; took ${lastClose} ms)`);
    await waitFor('the gateway holds no attacker socket', () => gw.traffic().connections === 0, 5000);
  } finally {
    clearInterval(dribble);
    for (const s of attackers) s.destroy();
    await gw.close();
  }
});
