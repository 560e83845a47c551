import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { ownH2Server, startCli } from '../helpers/h2-attack.js';
import { keyPairIn } from '../helpers/tls.js';

/**
 * Request bodies relayed to Node's http2 server (src/http/h2/relay.ts), read by a handler that
 * pauses and resumes the request often. Node's session aborted the whole process on this
 * (`Assertion failed: session->is_reading_stopped()` in node_http2.cc) whenever the relay link
 * handed it bytes while one of its own writes was in progress: any reader of a relayed body, so any
 * client uploading over h2, could end the process. Every reader pattern below did, on the first run.
 */

/** How a handler gives the body back its flow after pausing it on every chunk. */
const RESUMES: Record<string, (f: () => void) => void> = {
  'at once': (f) => f(),
  'next tick': (f) => process.nextTick(f),
  microtask: (f) => queueMicrotask(f),
  immediate: (f) => setImmediate(f),
  timer: (f) => setTimeout(f, 1),
};
const UPLOADS = 3;
const WRITES = 1500;

/** Uploads `WRITES` chunks of 1,000–2,800 bytes on one h2 stream; resolves with the answer and the bytes sent. */
function upload(client: http2.ClientHttp2Session, path: string): Promise<{ sent: number; answer: string; status: number }> {
  return new Promise((resolve, reject) => {
    const r = client.request({ ':method': 'POST', ':path': path });
    let i = 0;
    let sent = 0;
    const write = (): void => {
      while (i < WRITES) {
        const c = Buffer.alloc(1000 + (i % 7) * 300, i++ & 0xff);
        sent += c.length;
        if (!r.write(c)) return void r.once('drain', write);
      }
      r.end();
    };
    write();
    let answer = '';
    let status = 0;
    r.on('response', (h) => (status = Number(h[':status'])));
    r.setEncoding('utf8');
    r.on('data', (c: string) => (answer += c));
    r.on('end', () => resolve({ sent, answer, status }));
    r.on('error', reject);
  });
}

test('own HTTP/2 relay: handlers that pause and resume a request body on every chunk (every way of resuming, and an async iterator), uploads in parallel: all bytes read, process alive', async (t) => {
  // Node's http2 server as the gateway runs it behind the relay, with a handler of the kind any
  // Koa middleware or ingest could be; the client's connection is streamgate's own.
  let resume: ((f: () => void) => void) | null = RESUMES['at once'];
  const node = http2.createServer((req, res) => {
    let n = 0;
    if (resume === null) {
      // The stream's own async iterator, waiting a turn per chunk (what undici did with a body).
      void (async () => {
        for await (const c of req) {
          n += (c as Buffer).length;
          await new Promise((r) => setImmediate(r));
        }
        res.end(String(n));
      })();
      return;
    }
    const again = resume;
    req.on('data', (c: Buffer) => {
      n += c.length;
      req.pause();
      again(() => req.resume());
    });
    req.on('end', () => res.end(String(n)));
  });
  const own = await ownH2Server(node, (line) => t.diagnostic(line));
  const client = http2.connect(`http://127.0.0.1:${own.port}`);
  try {
    for (const [name, f] of [...Object.entries(RESUMES), ['by async iterator', null] as const]) {
      resume = f;
      const all = await Promise.all(Array.from({ length: UPLOADS }, () => upload(client, '/up')));
      for (const r of all) assert.equal(r.answer, String(r.sent), `resumed ${name}: the handler read every byte`);
      t.diagnostic(`resumed ${name}: ${UPLOADS} × ${all[0].sent} bytes read`);
    }
  } finally {
    client.close();
    own.close();
    node.close();
  }
});

for (const ownH2 of ['on', 'off'] as const) {
  test(`own_h2 ${ownH2}: uploads over h2 proxied to an upstream that reads in small steps (the proxy pauses and resumes the body): all bytes arrive, gateway alive`, async (t) => {
    // The upstream reads 64 KiB and then nothing for 2 ms, so undici falls behind and the proxy
    // pauses the client's body at its read-ahead bound and resumes it, hundreds of times.
    const upstream = http.createServer((req, res) => {
      let n = 0;
      let step = 0;
      req.on('data', (c: Buffer) => {
        n += c.length;
        step += c.length;
        if (step >= 64 * 1024) {
          step = 0;
          req.pause();
          setTimeout(() => req.resume(), 2);
        }
      });
      req.on('end', () => res.end(String(n)));
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const up = (upstream.address() as AddressInfo).port;
    const { gw, https } = await startCli((d) => `listen off; access_log off;
      http_server { listen 127.0.0.1:0; dir ${d}; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(d)} own_h2 ${ownH2}; } }
      proxy { route /up/ http://127.0.0.1:${up}; }`);
    const client = http2.connect(`https://127.0.0.1:${https}`, { rejectUnauthorized: false });
    client.on('error', () => {});
    try {
      for (let round = 0; round < 3; round++) {
        const all = await Promise.all(Array.from({ length: UPLOADS }, (_, i) => upload(client, `/up/${round}/${i}`))).catch(async (err: Error) => {
          // A cut connection: say whether the gateway died under it (its log has the assertion).
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(gw.child.exitCode, null, `the gateway is alive:\n${gw.log().slice(-1500)}`);
          throw err;
        });
        for (const r of all) {
          assert.equal(r.status, 200);
          assert.equal(r.answer, String(r.sent), 'the upstream got every byte');
        }
      }
      assert.equal(gw.child.exitCode, null, `the gateway is alive:\n${gw.log().slice(-2000)}`);
      t.diagnostic(`${3 * UPLOADS} uploads proxied whole`);
    } finally {
      client.close();
      gw.kill();
      upstream.close();
      upstream.closeAllConnections();
    }
  });
}
