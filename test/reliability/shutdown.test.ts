import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlvPlayer } from '../helpers/flv-player.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { CliGateway, FlvPublisher, sleep, timedGet } from '../helpers/proc.js';
import { h2Request, h2Session } from '../integration/site.js';
import { keyPairIn } from '../helpers/tls.js';

const PLAYERS = 20;
const BIG_BYTES = 16 * 1024 * 1024;
/** Exit may lag the bound it is measured against by this much on a busy 2-core machine. */
const EXIT_SLACK_MS = 4000;

function conf(dir: string, shutdownTimeout: string, extra = ''): string {
  return `listen off; access_log off;
    http_server { listen 127.0.0.1:0; dir ${dir}; https { enabled off; } }
    limits { shutdown_timeout ${shutdownTimeout}; }
    vhost __defaultVhost__ { play { mw_latency 50ms; } }
    ${extra}`;
}

function site(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sg-shutdown-'));
  writeFileSync(join(dir, 'index.html'), 'up\n');
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(BIG_BYTES, 0x5a));
  return dir;
}

/** Whether a new connection to the port is refused (the listener is closed). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e) => resolve((e as NodeJS.ErrnoException).code === 'ECONNREFUSED'));
  });
}

/** A live stream with `n` players reading it, once every player has frames. */
async function liveWithPlayers(port: number, n: number): Promise<{ pub: FlvPublisher; players: FlvPlayer[] }> {
  const pub = new FlvPublisher(port, '/live/bye.flv').play();
  await waitFor('the stream to be live', async () => (await timedGet(port, '/api/v1/streams/')).body.includes('"bye"'));
  const players = Array.from({ length: n }, () => new FlvPlayer(port, '/live/bye.flv'));
  await waitFor('every player to get frames', () => players.every((p) => p.packets.some((x) => x.pkt.kind === 'video' && !x.pkt.header)));
  return { pub, players };
}

describe('shutdown: SIGTERM drains and exits within limits.shutdown_timeout', () => {
  test(`SIGTERM with a publisher and ${PLAYERS} players: every response ends cleanly, an in-flight download finishes, exit 0`, async (t) => {
    const TIMEOUT_MS = 10_000;
    const gw = new CliGateway(conf(site(), `${TIMEOUT_MS}ms`));
    let pub: FlvPublisher | null = null;
    let players: FlvPlayer[] = [];
    try {
      const port = await gw.port('http');
      ({ pub, players } = await liveWithPlayers(port, PLAYERS));

      // A download paused mid-body: the drain must wait for it, not cut it.
      let got = 0;
      let complete = false;
      let resumeDownload!: () => void;
      const download = new Promise<void>((resolve) => {
        http.get({ host: '127.0.0.1', port, path: '/big.bin', agent: false }, (res) => {
          res.on('data', (c: Buffer) => {
            got += c.length;
            if (resumeDownload === undefined && got >= 1024 * 1024) {
              res.pause();
              resumeDownload = () => res.resume();
            }
          });
          res.on('end', () => {
            complete = res.complete;
            resolve();
          });
          res.on('close', () => resolve());
        }).on('error', () => resolve());
      });
      await waitFor('the download to be under way', () => resumeDownload !== undefined);
      // An idle keep-alive connection must not hold the exit back.
      const idle = net.connect(port, '127.0.0.1');
      idle.on('error', () => {});
      idle.write('GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n');
      await once(idle, 'data');

      const mark = gw.lines.length;
      const termAt = Date.now();
      gw.signal('SIGTERM');
      await gw.waitLine(/shutdown: live streams ended/, 10_000, mark);
      assert.ok(await refused(port), 'new connections are refused once draining');
      await sleep(300);
      assert.equal(gw.child.exitCode, null, 'the drain waits for the paused download');
      resumeDownload();
      await download;
      const exit = await gw.exited;
      const exitMs = exit.at - termAt;

      const clean = players.filter((p) => p.lastChunk && p.ended && p.error === null).length;
      t.diagnostic(`SIGTERM → exit ${exit.code} in ${exitMs} ms; ${clean}/${PLAYERS} players saw the last chunk and a FIN; download ${got} of ${BIG_BYTES} bytes`);
      assert.equal(exit.code, 0);
      assert.equal(clean, PLAYERS, 'every player got the zero-length last chunk and a clean close, no reset');
      assert.ok(complete && got === BIG_BYTES, `the in-flight download finished whole (${got} bytes)`);
      assert.ok(exitMs < TIMEOUT_MS, `exited in ${exitMs} ms, inside shutdown_timeout ${TIMEOUT_MS} ms`);
      const stages = gw.lines.slice(mark).map((l) => l.text);
      const order = [/SIGTERM: draining/, /shutdown: no longer accepting connections/, /shutdown: live streams ended/, /shutdown: done/];
      let at = -1;
      for (const re of order) {
        const i = stages.findIndex((l, k) => k > at && re.test(l));
        assert.ok(i > at, `a "${re.source}" log line, in order:\n${stages.join('\n')}`);
        at = i;
      }
      assert.ok(!stages.some((l) => /still open/.test(l)), 'nothing had to be force-closed');
      assert.doesNotMatch(gw.log(), /\n\s+at |\[error\]/);
      idle.destroy();
    } finally {
      pub?.destroy();
      for (const p of players) p.close();
      gw.kill();
    }
  });

  test('HTTPS: HTTP/2 players end cleanly, an HTTP/2 download in flight finishes, an idle session does not hold the exit', async (t) => {
    const TIMEOUT_MS = 10_000;
    const dir = site();
    const gw = new CliGateway(conf(dir, `${TIMEOUT_MS}ms`).replace('https { enabled off; }', `https { enabled on; listen 127.0.0.1:0; ${keyPairIn(dir)} }`));
    let pub: FlvPublisher | null = null;
    const sessions: http2.ClientHttp2Session[] = [];
    try {
      const port = await gw.port('http');
      const sport = await gw.port('https');
      ({ pub } = await liveWithPlayers(port, 0));
      // An idle session, as a browser leaves one open after loading a page.
      const idle = await h2Session(sport);
      sessions.push(idle);
      assert.equal((await h2Request(idle, { ':path': '/index.html' })).status, 200);
      // Players and a download on one session.
      const busy = await h2Session(sport);
      sessions.push(busy);
      const players = Array.from({ length: 3 }, () => {
        const p = { bytes: 0, end: false, aborted: false, closed: false };
        const st = busy.request({ ':path': '/live/bye.flv' });
        st.on('data', (c: Buffer) => (p.bytes += c.length));
        st.on('end', () => (p.end = true));
        st.on('aborted', () => (p.aborted = true));
        st.on('error', () => (p.aborted = true));
        st.on('close', () => (p.closed = true));
        return p;
      });
      let got = 0;
      let downloadEnded = false;
      let held = false;
      const dl = busy.request({ ':path': '/big.bin' });
      dl.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= 1024 * 1024 && !held) {
          held = true;
          dl.pause();
        }
      });
      dl.on('end', () => (downloadEnded = true));
      dl.on('error', () => {});
      await waitFor('players and the download under way', () => players.every((p) => p.bytes > 13) && got >= 1024 * 1024);

      const mark = gw.lines.length;
      const termAt = Date.now();
      gw.signal('SIGTERM');
      await gw.waitLine(/shutdown: live streams ended/, 10_000, mark);
      await sleep(300);
      dl.resume();
      const exit = await gw.exited;
      const exitMs = exit.at - termAt;
      await waitFor('client streams to settle', () => players.every((p) => p.closed), 5000).catch(() => {});
      const clean = players.filter((p) => p.end && !p.aborted).length;
      t.diagnostic(`HTTPS: exit ${exit.code} in ${exitMs} ms; ${clean}/${players.length} HTTP/2 players ended cleanly; HTTP/2 download ${got} of ${BIG_BYTES} bytes`);
      assert.equal(exit.code, 0);
      assert.equal(clean, players.length, 'every HTTP/2 player stream ended with END_STREAM, not a reset');
      assert.ok(downloadEnded && got === BIG_BYTES, `the HTTP/2 download finished whole (${got} bytes)`);
      assert.ok(!gw.lines.slice(mark).some((l) => /still open/.test(l.text)), 'the idle session did not hold the drain to shutdown_timeout');
      assert.ok(exitMs < TIMEOUT_MS, `exited in ${exitMs} ms`);
    } finally {
      pub?.destroy();
      for (const s of sessions) s.destroy();
      gw.kill();
    }
  });

  test('a request that never finishes is cut at shutdown_timeout, and the process still exits 0', async (t) => {
    const TIMEOUT_MS = 2000;
    // An upstream that accepts and never answers keeps one proxied request in flight for good.
    const hang = net.createServer((s) => s.on('error', () => {}));
    hang.listen(0, '127.0.0.1');
    await once(hang, 'listening');
    const hangPort = (hang.address() as net.AddressInfo).port;
    const gw = new CliGateway(conf(site(), `${TIMEOUT_MS}ms`, `proxy { route /hang/ http://127.0.0.1:${hangPort}; timeout 60s; }`));
    let pub: FlvPublisher | null = null;
    let players: FlvPlayer[] = [];
    try {
      const port = await gw.port('http');
      ({ pub, players } = await liveWithPlayers(port, 3));
      const stuck = timedGet(port, '/hang/forever', 30_000);
      await sleep(200);
      const mark = gw.lines.length;
      const termAt = Date.now();
      gw.signal('SIGTERM');
      const exit = await gw.exited;
      const exitMs = exit.at - termAt;
      t.diagnostic(`shutdown_timeout ${TIMEOUT_MS} ms with a hung request: exit ${exit.code} after ${exitMs} ms`);
      assert.equal(exit.code, 0);
      assert.ok(exitMs >= TIMEOUT_MS - 100, `the drain waited for the in-flight request (${exitMs} ms)`);
      assert.ok(exitMs < TIMEOUT_MS + EXIT_SLACK_MS, `exited ${exitMs} ms after SIGTERM (bound ${TIMEOUT_MS} + ${EXIT_SLACK_MS} ms)`);
      assert.ok(gw.lines.slice(mark).some((l) => /shutdown: connections still open after 2000 ms, closing them/.test(l.text)));
      assert.ok(players.every((p) => p.lastChunk), 'the players still ended cleanly at the start of the drain');
      assert.equal((await stuck).status, 0, 'the hung request was cut');
    } finally {
      pub?.destroy();
      for (const p of players) p.close();
      gw.kill();
      hang.close();
    }
  });

  test('a second SIGTERM exits at once, without waiting for the drain', async (t) => {
    const hang = net.createServer((s) => s.on('error', () => {}));
    hang.listen(0, '127.0.0.1');
    await once(hang, 'listening');
    const hangPort = (hang.address() as net.AddressInfo).port;
    const gw = new CliGateway(conf(site(), '60s', `proxy { route /hang/ http://127.0.0.1:${hangPort}; timeout 60s; }`));
    try {
      const port = await gw.port('http');
      const stuck = timedGet(port, '/hang/forever', 30_000);
      await sleep(200);
      const mark = gw.lines.length;
      gw.signal('SIGTERM');
      await gw.waitLine(/shutdown: live streams ended/, 10_000, mark);
      await sleep(300);
      assert.equal(gw.child.exitCode, null, 'still draining after the first SIGTERM');
      const againAt = Date.now();
      gw.signal('SIGTERM');
      const exit = await gw.exited;
      const ms = exit.at - againAt;
      t.diagnostic(`second SIGTERM → exit ${exit.code} in ${ms} ms (shutdown_timeout 60 s)`);
      assert.ok(ms < EXIT_SLACK_MS, `exited ${ms} ms after the second SIGTERM`);
      assert.notEqual(exit.code, 0, 'an interrupted drain is not a clean exit');
      assert.ok(gw.lines.slice(mark).some((l) => /SIGTERM again: exiting now/.test(l.text)));
      await stuck;
    } finally {
      gw.kill();
      hang.close();
    }
  });
});
