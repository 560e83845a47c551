import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { publish, waitFor, type Proc } from '../helpers/ffmpeg.js';
import { launchBrowser, openPage, screenshot, until, videoState, waitForPlayback } from '../helpers/browser.js';
import { keyPairIn } from '../helpers/tls.js';

// Functions passed to page.evaluate run in the browser; the tsconfig has no DOM lib (see helpers/browser.ts).
declare const document: any;
declare const window: any;

/**
 * An operator opens /console/ while a stream is live and someone watches it: the stream and the
 * player are listed, refreshed on their own, and the Kick button ends that player.
 */

const V = '__defaultVhost__';
const PUBLISH_SECONDS = 90;

async function startGateway(tmp: string, extra = ''): Promise<Gateway> {
  const { log } = memoryLogger();
  const conf = `listen off;
    http_server { listen 127.0.0.1:0; dir ./public;
      https { enabled on; listen 127.0.0.1:0; ${keyPairIn(tmp)} } }
    console_dir ./www/console; players_dir ./www/players; ${extra}`;
  return Gateway.start(loadConfigText(conf, 'browser.conf'), { log });
}

/** The text of each row of a console table, cells joined by " | ", with the row's data-role. */
async function rows(page: Page, table: 'streams' | 'clients'): Promise<{ role: string; cells: string[] }[]> {
  return page.evaluate((id: string) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr: any) => ({
    role: tr.dataset.role ?? '',
    cells: [...tr.cells].map((c: any) => c.textContent.trim()),
  })), table);
}

describe('console page in Chromium', () => {
  let gw: Gateway;
  let tmp: string;
  let browser: Browser;
  let pub: Proc | undefined;
  const contexts: BrowserContext[] = [];
  let http = '';

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'streamgate-console-'));
    gw = await startGateway(tmp);
    http = `http://127.0.0.1:${gw.port('http')}`;
    browser = await launchBrowser();
    // The API and HTTP-FLV ingest are shipped: a 501 or a publish that never goes live fails the cases.
    const api = await fetch(`${http}/api/v1/streams/`);
    assert.equal(api.status, 200, 'the embedded API answers');
    pub = publish(`${http}/live/show.flv`, { seconds: PUBLISH_SECONDS, size: '640x360', fps: 25, gop: 25 });
    const live = await waitFor('show to be live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'show' })?.videoHeader, 15_000).then(() => true, () => false);
    if (!live) throw new Error(`the publisher did not go live: ${pub.stderr()}`);
  });

  after(async () => {
    pub?.kill();
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await gw?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  async function open(path: string, viewport?: { width: number; height: number }) {
    const o = await openPage(browser, viewport);
    contexts.push(o.context);
    await o.page.goto(`${http}${path}`);
    return o;
  }

  test('lists the live stream and its player, refreshed on its own; Kick ends that player', async () => {
    const cons = await open('/console/');
    // The stream is listed before anyone watches it...
    const stream = await until('the stream row', async () => (await rows(cons.page, 'streams')).find((r) => r.cells[0] === 'live/show'));
    assert.match(stream.cells[1], /h\.?264|avc/i, `video codec shown: ${stream.cells.join(' | ')}`);
    assert.match(stream.cells[1], /640×360/);
    assert.match(stream.cells[2], /aac/i);

    // ...then a viewer starts watching, and the console shows it without a reload.
    const viewer = await open('/players/?url=/live/show.flv');
    await waitForPlayback(viewer.page, 1);
    await until('one player on the stream row', async () => (await rows(cons.page, 'streams')).find((r) => r.cells[0] === 'live/show' && r.cells[5] === '1'));
    const player = await until('the player in the clients table', async () => (await rows(cons.page, 'clients')).find((r) => r.role === 'player' && r.cells[2] === 'live/show'));
    assert.ok((await rows(cons.page, 'clients')).some((r) => r.role === 'publisher' && r.cells[2] === 'live/show'), 'the publisher is listed too');
    await until('a bitrate and an uptime', async () => {
      const r = (await rows(cons.page, 'streams')).find((x) => x.cells[0] === 'live/show');
      return r && /\d+ kbit\/s/.test(r.cells[3]) && /\d+s/.test(r.cells[4]);
    });
    await screenshot(cons.page, 'console.png');

    // Kick, from the keyboard: focus the player's button and press Enter.
    const kick = cons.page.getByRole('button', { name: `Kick player ${player.cells[0]} of live/show` });
    await kick.press('Enter');
    await until('the player to leave the clients table', async () => !(await rows(cons.page, 'clients')).some((r) => r.cells[0] === player.cells[0]), 10_000);
    const ended = await until('the viewer to see the stream end', async () => {
      const s = await videoState(viewer.page);
      return (s.state === 'ended' || s.state === 'error') && s;
    }, 10_000);
    assert.ok(ended.state === 'ended' || ended.state === 'error');
    // The publisher was not touched: the stream is still live, now with no players.
    await until('the stream with no players', async () => (await rows(cons.page, 'streams')).find((r) => r.cells[0] === 'live/show' && r.cells[5] === '0'));
    assert.equal(await cons.page.locator('#problem').textContent(), '');
    assert.deepEqual(cons.problems.errors, []);
    assert.deepEqual(viewer.problems.errors, []);
  });

  test('shows the gateway config read-only, or says it is not available', async () => {
    const { page, problems } = await open('/console/');
    const r = await fetch(`${http}/api/v1/config`);
    if (r.ok) {
      // Whatever shape the view has, the ports this gateway listens on appear in it.
      await until('the config rendered', async () => (await page.locator('#config').textContent())?.includes(String(gw.port('https'))));
      await page.getByRole('button', { name: 'Reload' }).click();
      await until('the config rendered again', async () => (await page.locator('#config').textContent())?.includes(String(gw.port('http'))));
    } else {
      await until('the degraded message', async () => /does not offer a config view/.test((await page.locator('#config').textContent()) ?? ''));
    }
    assert.deepEqual(problems.errors, []);
  });

  test('on a phone the console fits the screen and Kick stays in reach', async () => {
    const { page, problems } = await open('/console/', { width: 390, height: 844 });
    await until('the publisher listed', async () => (await rows(page, 'clients')).some((r) => r.role === 'publisher'));
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scrolling at 390 px');
    const box = await page.getByRole('button', { name: /^Kick publisher/ }).first().boundingBox();
    assert.ok(box && box.x + box.width <= 390, `the Kick button is on screen: ${JSON.stringify(box)}`);
    await screenshot(page, 'console-phone.png');
    assert.deepEqual(problems.errors, []);
  });
});

describe('console page without an API', () => {
  test('says what is wrong instead of showing empty tables', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'streamgate-console-'));
    // The browser first: if it cannot start, no gateway is left listening.
    const browser = await launchBrowser();
    const gw = await startGateway(tmp, 'http_api { enabled off; }');
    try {
      const { page, problems } = await openPage(browser);
      await page.goto(`http://127.0.0.1:${gw.port('http')}/console/`);
      await until('the problem shown', async () => /Could not load streams and clients/.test((await page.locator('#problem').textContent()) ?? ''));
      assert.equal(await page.getByRole('alert').count(), 1);
      await until('the config section degraded', async () => /config view|Could not load the config/.test((await page.locator('#config').textContent()) ?? ''));
      assert.deepEqual(problems.errors, []);
    } finally {
      await browser.close();
      await gw.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('console page with http_api auth on', () => {
  test('asks for the credentials in a login field, then lists and kicks with them', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'streamgate-console-'));
    const gw = await startGateway(tmp, 'http_api { auth { enabled on; username admin; password console-pw; } }');
    const browser = await launchBrowser();
    const http = `http://127.0.0.1:${gw.port('http')}`;
    const pub = publish(`${http}/live/guarded.flv`, { seconds: 60, size: '320x240' });
    try {
      await waitFor('guarded to be live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'guarded' }), 15_000);
      const { page, problems } = await openPage(browser);
      await page.goto(`${http}/console/`);
      // Without credentials: no data, the reason, and the login field.
      await until('the problem shown', async () => /authentication required/i.test((await page.locator('#problem').textContent()) ?? ''));
      assert.equal((await rows(page, 'clients')).length, 0);
      await page.getByLabel('Username').fill('admin');
      await page.getByLabel('Password').fill('wrong');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await until('the login asked again', async () => page.locator('#login').isVisible());
      await page.getByLabel('Username').fill('admin');
      await page.getByLabel('Password').fill('console-pw');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await until('the stream row', async () => (await rows(page, 'streams')).find((r) => r.cells[0] === 'live/guarded'));
      assert.equal(await page.locator('#login').isVisible(), false);
      await page.getByRole('button', { name: /^Kick publisher/ }).first().press('Enter');
      await waitFor('the publisher kicked', () => !gw.hub.find({ vhost: V, app: 'live', stream: 'guarded' }), 10_000);
      assert.equal(await page.locator('#problem').textContent(), '');
      assert.deepEqual(problems.errors, []);
    } finally {
      pub.kill();
      await browser.close();
      await gw.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('a page on another origin', () => {
  test('can read the API, as in SRS, but cannot kick a publisher', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'streamgate-console-'));
    const gw = await startGateway(tmp);
    const http = `http://127.0.0.1:${gw.port('http')}`;
    // The attacker's site: another port is another origin.
    const evil = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>evil</title>'));
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
    const browser = await launchBrowser();
    const pub = publish(`${http}/live/victim.flv`, { seconds: 60, size: '320x240' });
    try {
      await waitFor('victim to be live', () => gw.hub.find({ vhost: V, app: 'live', stream: 'victim' }), 15_000);
      const { page } = await openPage(browser);
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      const outcome = await page.evaluate(async (api: string) => {
        const list: any = await (await fetch(`${api}/api/v1/clients/`)).json();
        const tries: string[] = [];
        for (const c of list.clients) {
          try {
            const r = await fetch(`${api}/api/v1/clients/${c.id}`, { method: 'DELETE' });
            tries.push(`answered ${r.status}`);
          } catch (e: any) {
            tries.push(`blocked: ${e.name}`);
          }
        }
        return { listed: list.clients.length, tries };
      }, http);
      assert.equal(outcome.listed, 1, 'reads are open to other origins, as in SRS');
      assert.deepEqual(outcome.tries, ['blocked: TypeError'], 'the browser refused the DELETE after the preflight');
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(gw.hub.find({ vhost: V, app: 'live', stream: 'victim' }), 'the publisher is still live');
    } finally {
      pub.kill();
      await browser.close();
      evil.close();
      await gw.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
