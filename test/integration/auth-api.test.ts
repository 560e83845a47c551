import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { checkApiRequest } from '../../src/auth/api-guard.js';
import { publish, waitFor } from '../helpers/ffmpeg.js';
import { keyPairIn } from '../helpers/tls.js';

/** Every path of the embedded API, and /metrics, which follows the API's rule. */
const API_PATHS = ['/api/', '/api/v1/', '/api/v1/versions', '/api/v1/summaries', '/api/v1/streams/', '/api/v1/clients/', '/api/v1/vhosts/', '/api/v1/config', '/metrics'];

interface CurlReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request with curl: the status, the headers (lower-cased) and the body. */
function curl(url: string, args: string[] = []): Promise<CurlReply> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sk', '-i', '--max-time', '10', ...args, url], { encoding: 'latin1' }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      // Skip interim answers; the last head is the final one.
      const blocks = stdout.split('\r\n\r\n');
      let i = 0;
      while (/^HTTP\/\S+ 1\d\d/.test(blocks[i] ?? '') && i < blocks.length - 1) i++;
      const [statusLine, ...lines] = blocks[i].split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: blocks.slice(i + 1).join('\r\n\r\n') });
    });
  });
}

describe('http_api auth, as SRS 5 has it', () => {
  let gw: Gateway;
  let tmp: string;
  let bases: string[] = [];
  let lines: string[];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'streamgate-auth-'));
    const mem = memoryLogger();
    lines = mem.lines;
    const conf = `listen off; console_dir off; players_dir off;
      http_server { listen 127.0.0.1:0; dir ./public;
        https { enabled on; listen 127.0.0.1:0; ${keyPairIn(tmp)} } }
      http_api { enabled on; listen 127.0.0.1:0; auth { enabled on; username admin; password "p4ss word"; } }
      vhost __defaultVhost__ { play { mw_latency 50ms; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'auth.conf'), { log: mem.log });
    bases = [`http://127.0.0.1:${gw.port('http')}`, `https://127.0.0.1:${gw.port('https')}`, `http://127.0.0.1:${gw.port('http_api')}`];
  });
  after(async () => {
    await gw?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('every API path on every listener: 401 with a Basic challenge without or with wrong credentials, 200 with the right ones', async () => {
    for (const base of bases) {
      for (const path of API_PATHS) {
        if (path === '/metrics' && base.endsWith(String(gw.port('http_api')))) continue;
        const none = await curl(base + path);
        assert.equal(none.status, 401, `${base}${path} without credentials`);
        assert.match(none.headers['www-authenticate'] ?? '', /^Basic realm="/, `${base}${path}`);
        const wrong = await curl(base + path, ['-u', 'admin:p4ss']);
        assert.equal(wrong.status, 401, `${base}${path} with a wrong password`);
        const wrongUser = await curl(base + path, ['-u', 'root:p4ss word']);
        assert.equal(wrongUser.status, 401, `${base}${path} with a wrong user`);
        const ok = await curl(base + path, ['-u', 'admin:p4ss word']);
        assert.equal(ok.status, 200, `${base}${path} with credentials`);
        assert.ok(!ok.body.includes('p4ss word'), `${path}: the password never appears in an answer`);
      }
    }
    assert.ok(!lines.some((l) => l.includes('p4ss word')), 'nor in the log');
  });

  test('DELETE needs the credentials too; with them it kicks a publisher', async () => {
    const base = bases[0];
    const pub = publish(`${base}/live/kick.flv`, { seconds: 30, fast: false });
    try {
      const src = await waitFor('the stream', () => gw.hub.find({ vhost: '__defaultVhost__', app: 'live', stream: 'kick' }));
      const id = src.publisher!.id;
      const denied = await curl(`${base}/api/v1/clients/${id}`, ['-X', 'DELETE']);
      assert.equal(denied.status, 401);
      assert.ok(gw.hub.find({ vhost: '__defaultVhost__', app: 'live', stream: 'kick' }), 'still publishing');
      const kicked = await curl(`${bases[2]}/api/v1/clients/${id}`, ['-X', 'DELETE', '-u', 'admin:p4ss word']);
      assert.equal(kicked.status, 200);
      await waitFor('the stream to end', () => !gw.hub.find({ vhost: '__defaultVhost__', app: 'live', stream: 'kick' }));
    } finally {
      pub.kill();
    }
  });

  test('the http_api listener serves the API and nothing else', async () => {
    const api = bases[2];
    for (const path of ['/', '/index.html', '/console/', '/live/x.flv', '/live/x.m3u8', '/metrics', '/favicon.ico']) {
      const r = await curl(api + path, ['-u', 'admin:p4ss word']);
      assert.equal(r.status, 404, `${path} on the API listener`);
    }
    const site = await curl(`${bases[0]}/live/x.flv`);
    assert.equal(site.status, 404, 'the site listener still answers stream paths itself');
  });

  test('a malformed percent-encoded id is a 400, not a 500', async () => {
    for (const id of ['%ff', '%', '%e0%80', 'a%zz']) {
      const r = await curl(`${bases[0]}/api/v1/clients/${id}`, ['-u', 'admin:p4ss word']);
      assert.equal(r.status, 400, id);
      assert.equal(JSON.parse(r.body).code, 400);
    }
    assert.ok(!lines.some((l) => /URIError/.test(l)), 'no stack in the log');
  });

  test('a preflight from another origin is granted DELETE only because auth is on, and Authorization is named', async () => {
    const r = await curl(`${bases[0]}/api/v1/clients/x`, ['-X', 'OPTIONS', '-H', 'Origin: http://evil.example', '-H', 'Access-Control-Request-Method: DELETE']);
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-methods'], 'GET, HEAD, DELETE, OPTIONS');
    assert.match(r.headers['access-control-allow-headers'], /Authorization/);
  });
});

describe('http_api auth from the environment, and the loopback rule without it', () => {
  test('SRS_HTTP_API_AUTH_* turn auth on over a config without it', async () => {
    const { log } = memoryLogger();
    const conf = 'listen off; console_dir off; players_dir off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }';
    const env = { SRS_HTTP_API_AUTH_ENABLED: 'on', SRS_HTTP_API_AUTH_USERNAME: 'ops', SRS_HTTP_API_AUTH_PASSWORD: 'from-env' };
    const gw = await Gateway.start(loadConfigText(conf, 'env.conf', env), { log });
    try {
      const base = `http://127.0.0.1:${gw.port('http')}`;
      assert.equal((await curl(`${base}/api/v1/versions`)).status, 401);
      assert.equal((await curl(`${base}/api/v1/versions`, ['-u', 'ops:from-env'])).status, 200);
    } finally {
      await gw.close();
    }
  });

  test('auth on without a password is a config error, not an open API', () => {
    assert.throws(() => loadConfigText('http_api { auth { enabled on; username admin; } }', 'bad.conf'), /needs a username and a password/);
  });

  test('without auth: reads from anywhere, writes from loopback only', () => {
    const auth = { enabled: false, username: '', password: '' };
    for (const ip of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      assert.doesNotThrow(() => checkApiRequest(auth, { method: 'DELETE', authorization: '', ip }), ip);
    }
    for (const ip of ['10.0.0.7', '192.168.1.2', '2001:db8::1', '::ffff:10.0.0.7']) {
      assert.doesNotThrow(() => checkApiRequest(auth, { method: 'GET', authorization: '', ip }), ip);
      assert.throws(() => checkApiRequest(auth, { method: 'DELETE', authorization: '', ip }), (e: any) => e.status === 403, ip);
      assert.throws(() => checkApiRequest(auth, { method: 'POST', authorization: '', ip }), (e: any) => e.status === 403, ip);
    }
  });
});
