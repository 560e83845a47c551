import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { publish, waitFor, type Proc } from '../helpers/ffmpeg.js';
import { launchBrowser, openPage, screenshot, until, videoState, waitForPlayback, watchProtocols } from '../helpers/browser.js';

// Functions passed to page.evaluate run in the browser. The project's tsconfig has no DOM lib (server
// code must not see browser globals), so the few browser globals used here are declared loosely,
// in this module's scope only.
declare const document: any;
declare const window: any;
declare const performance: any;

/**
 * A viewer opens /players/ with a stream URL and sees moving pictures: HTTP-FLV through mpegts.js and
 * HLS through hls.js, over plain HTTP/1.1 and over HTTPS with HTTP/2, against a real streamgate fed by
 * a real ffmpeg.
 */

const V = '__defaultVhost__';
/** Long enough for every case below to find the stream still live. */
const PUBLISH_SECONDS = 120;

describe('players page in Chromium', () => {
  let gw: Gateway;
  let tmp: string;
  let browser: Browser;
  let pub: Proc;
  const contexts: BrowserContext[] = [];
  let http = '';
  let https = '';

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'streamgate-browser-'));
    const { log } = memoryLogger();
    // Run from the repo root: the shipped pages are ./www/console and ./www/players.
    const conf = `listen off;
      http_server { listen 127.0.0.1:0; dir ./public;
        https { enabled on; listen 127.0.0.1:0; key ${tmp}/k.pem; cert ${tmp}/c.pem; } }
      console_dir ./www/console; players_dir ./www/players;
      vhost __defaultVhost__ { hls { enabled on; hls_fragment 1; hls_window 6; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'browser.conf'), { log });
    http = `http://127.0.0.1:${gw.port('http')}`;
    https = `https://127.0.0.1:${gw.port('https')}`;
    browser = await launchBrowser();

    pub = publish(`${http}/live/demo.flv`, { seconds: PUBLISH_SECONDS, size: '640x360', fps: 25, gop: 25 });
    const exited = pub.exited.then(() => 'exited' as const);
    const live = waitFor('demo to be live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'demo' })?.videoHeader, 15_000).then(() => 'live' as const);
    const first = await Promise.race([live, exited]).catch((e: Error) => e.message);
    // A publish that does not go live, or a playlist that never fills, fails every case below:
    // both paths are shipped, so neither is a reason to skip.
    if (first !== 'live') throw new Error(`the publisher did not go live (${first}): ${pub.stderr()}`);
    // HLS is cut from the same publish; wait for a playlist with a couple of segments in it.
    let last = { status: 0, body: '' };
    const ready = await until('a playlist with two segments', async () => {
      const r = await fetch(`${http}/live/demo.m3u8`);
      last = { status: r.status, body: await r.text() };
      return r.status === 200 && (last.body.match(/#EXTINF/g) ?? []).length >= 2;
    }, 15_000).catch(() => false);
    assert.ok(ready, `no playable playlist: ${last.status} ${last.body}`);
  });

  after(async () => {
    pub?.kill();
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await gw?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  async function viewer(base: string, streamPath: string, opts: { typeIt?: boolean } = {}) {
    const { context, page, problems } = await openPage(browser);
    contexts.push(context);
    const protocols = await watchProtocols(page);
    if (opts.typeIt) {
      // The way a person does it: type the URL into the labelled field and press Enter.
      await page.goto(`${base}/players/`);
      await page.getByLabel('Stream URL').fill(streamPath);
      await page.getByLabel('Stream URL').press('Enter');
      await until('the shareable URL in the address bar', async () => new URL(page.url()).searchParams.get('url') === streamPath);
    } else {
      await page.goto(`${base}/players/?url=${encodeURIComponent(streamPath)}`);
    }
    const { first, later } = await waitForPlayback(page, 1.5);
    return { page, protocols, problems, first, later };
  }

  test('HTTP-FLV over HTTP/1.1: typed into the form, mpegts.js plays it', async () => {
    const { page, protocols, problems, first, later } = await viewer(http, '/live/demo.flv', { typeIt: true });
    assert.equal(first.videoWidth, 640);
    assert.equal(first.videoHeight, 360);
    assert.ok(later.currentTime > first.currentTime, `currentTime advanced ${first.currentTime} → ${later.currentTime}`);
    assert.match(later.engine, /mpegts\.js/);
    assert.equal(later.state, 'playing');
    assert.equal(protocols.get(`${http}/live/demo.flv`), 'http/1.1');
    // What the viewer reads beside the picture: size, a moving clock, a bitrate, dropped frames.
    await until('the state panel filled in', async () => {
      const s = await page.evaluate(() => ['st-size', 'st-time', 'st-bitrate', 'st-dropped', 'st-buffer'].map((id) => document.getElementById(id)!.textContent));
      return s[0] === '640×360' && /^\d+\.\d s$/.test(s[1]!) && /bit\/s$/.test(s[2]!) && /^\d+ of \d+$/.test(s[3]!) && /s$/.test(s[4]!) && s;
    });
    // The live stream list comes from the embedded API; when that has landed it lists this stream.
    const api = await fetch(`${http}/api/v1/streams/`);
    if (api.ok) await page.getByRole('link', { name: 'FLV: play /live/demo.flv' }).waitFor();
    await screenshot(page, 'players-flv-http1.png');
    assert.deepEqual(problems.errors, []);
  });

  test('HTTP-FLV over HTTPS: the stream comes over HTTP/2', async () => {
    const { page, protocols, problems, first, later } = await viewer(https, '/live/demo.flv');
    assert.ok(first.videoWidth > 0);
    assert.ok(later.currentTime > first.currentTime);
    assert.equal(protocols.get(`${https}/live/demo.flv`), 'h2', JSON.stringify([...protocols]));
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h2');
    // mpegts.js came from the gateway itself, not a CDN.
    assert.equal(protocols.get(`${https}/players/vendor/mpegts.js`), 'h2');
    await screenshot(page, 'players-flv-https-h2.png');
    assert.deepEqual(problems.errors, []);
  });

  test('HLS over HTTP/1.1: hls.js plays the playlist', async () => {
    const { page, protocols, problems, first, later } = await viewer(http, '/live/demo.m3u8');
    assert.equal(first.videoWidth, 640);
    assert.ok(later.currentTime > first.currentTime);
    assert.match(later.engine, /hls\.js/);
    assert.equal(protocols.get(`${http}/live/demo.m3u8`), 'http/1.1');
    const segs = [...protocols.keys()].filter((u) => u.endsWith('.ts'));
    assert.ok(segs.length > 0, 'segments were fetched');
    await screenshot(page, 'players-hls-http1.png');
    assert.deepEqual(problems.errors, []);
  });

  test('HLS over HTTPS: playlist and segments over HTTP/2', async () => {
    const { page, problems, first, later } = await viewer(https, '/live/demo.m3u8');
    assert.ok(first.videoWidth > 0);
    assert.ok(later.currentTime > first.currentTime);
    // Resource Timing, as the page itself sees it: every HLS request went over h2.
    const entries: { name: string; protocol: string }[] = await page.evaluate(() => performance.getEntriesByType('resource')
      .map((e: { name: string; nextHopProtocol: string }) => ({ name: e.name, protocol: e.nextHopProtocol }))
      .filter((e: { name: string }) => /\.(m3u8|ts)(\?|$)/.test(e.name)));
    assert.ok(entries.some((e) => e.name.includes('.ts')), JSON.stringify(entries));
    for (const e of entries) assert.equal(e.protocol, 'h2', e.name);
    assert.equal(await page.locator('#st-protocol').textContent(), 'h2');
    await screenshot(page, 'players-hls-https-h2.png');
    assert.deepEqual(problems.errors, []);
  });

  test('a missing stream shows an error instead of spinning', async () => {
    const { context, page, problems } = await openPage(browser);
    contexts.push(context);
    await page.goto(`${http}/players/?url=/live/nothing.flv`);
    await until('the error state', async () => (await videoState(page)).state === 'error');
    assert.match((await page.locator('#errors').textContent()) ?? '', /NetworkError|404|HttpStatusCodeInvalid/i);
    assert.deepEqual(problems.errors, []);
  });

  test('on a phone the page fits the screen, and the libraries load only when needed', async () => {
    const { context, page, problems } = await openPage(browser, { width: 390, height: 844 });
    contexts.push(context);
    await page.goto(`${http}/players/`);
    const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    assert.ok(fits, 'no sideways scrolling at 390 px');
    assert.equal(await page.evaluate(() => 'mpegts' in window || 'Hls' in window), false);
    assert.equal(await page.getByRole('main').count(), 1);
    assert.equal(await page.getByRole('navigation', { name: 'Pages' }).count(), 1);
    const lib = await fetch(`${http}/players/vendor/hls.js`);
    assert.equal(lib.status, 200, 'hls.js is served by the gateway');
    assert.match(lib.headers.get('content-type') ?? '', /javascript/);
    assert.deepEqual(problems.errors, []);
  });
});
