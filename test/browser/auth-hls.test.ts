import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { SignJWT } from 'jose';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { publish, waitFor, type Proc } from '../helpers/ffmpeg.js';
import { launchBrowser, openPage, waitForPlayback } from '../helpers/browser.js';

const SECRET = 'browser-hls-token-secret-0123456789';

/**
 * A viewer is handed one link with one token: hls.js in Chromium plays the protected stream,
 * every segment request carrying the token the playlist passed on; the same page without the
 * token gets nothing.
 */
describe('a token-protected HLS stream in hls.js', () => {
  let gw: Gateway;
  let browser: Browser;
  let pub: Proc;
  let http = '';
  before(async () => {
    const { log } = memoryLogger();
    const conf = `listen off; console_dir off; players_dir ./www/players;
      http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      vhost __defaultVhost__ { hls { hls_fragment 1; hls_window 6; } token { enabled on; require play; secret ${SECRET}; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'hls-token.conf'), { log });
    http = `http://127.0.0.1:${gw.port('http')}`;
    pub = publish(`${http}/live/prot.flv`, { seconds: 60, size: '320x240', gop: 25 });
    await waitFor('prot live', () => gw.hub.find({ vhost: '__defaultVhost__', app: 'live', stream: 'prot' }), 20_000);
    browser = await launchBrowser();
  });
  after(async () => {
    pub?.kill();
    await browser?.close();
    await gw?.close();
  });

  test('plays with one token; segments carry it; without it, 401', async () => {
    const token = await new SignJWT({ action: 'play', app: 'live', stream: 'prot', exp: Math.floor(Date.now() / 1000) + 120 })
      .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(SECRET));
    await waitFor('a playlist with segments', async () => {
      const r = await fetch(`${http}/live/prot.m3u8?token=${token}`);
      return r.status === 200 && (await r.text()).includes('.ts');
    }, 20_000);
    assert.equal((await fetch(`${http}/live/prot.m3u8`)).status, 401);
    const { page, problems, context } = await openPage(browser);
    const segments: string[] = [];
    page.on('request', (r) => {
      if (/\.ts(\?|$)/.test(r.url())) segments.push(r.url());
    });
    await page.goto(`${http}/players/?url=${encodeURIComponent(`/live/prot.m3u8?token=${token}`)}`);
    await waitForPlayback(page, 1.5);
    assert.ok(segments.length >= 2, `segments fetched: ${segments.length}`);
    for (const s of segments) assert.ok(s.endsWith(`token=${token}`), s);
    assert.deepEqual(problems.errors, []);
    await context.close();
  });
});
