import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext } from 'playwright-core';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { publish, waitFor } from '../helpers/ffmpeg.js';
import { launchBrowser, openPage, screenshot, until, videoState, waitForPlayback } from '../helpers/browser.js';

// Functions passed to page.evaluate run in the browser; the project's tsconfig has no DOM lib.
declare const document: any;

/**
 * A viewer opens the players page, finds a past recording in its list, presses its "Play" link
 * and seeks to the middle: hls.js plays the recording's HLS VOD playlist, lands within one
 * segment of where it was asked to, and keeps playing. Once for each container: fMP4 recordings
 * play as byte ranges of the file, FLV recordings as TS segments cut from it.
 */

/** Seconds of media published (without -re: the recording is as long as the media, not the wall clock). */
const SECONDS = 30;
/** The VOD segments' target length (src/record/vod/types.ts SEGMENT_TARGET_MS), with key frames every second. */
const SEGMENT_S = 4;

describe('recordings play and seek in Chromium', () => {
  let browser: Browser;
  let tmp: string;
  const contexts: BrowserContext[] = [];
  const gateways: Gateway[] = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'streamgate-dvr-seek-'));
    browser = await launchBrowser();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    for (const g of gateways) await g.close();
    await rm(tmp, { recursive: true, force: true });
  });

  for (const ext of ['mp4', 'flv'] as const) {
    test(`${ext}: the list's Play link plays the recording; a seek to the middle lands within a segment and playback goes on`, async () => {
      // Run from the repo root: the shipped page is ./www/players. The files lie outside the web root: VOD serves them anyway.
      const conf = `listen 127.0.0.1:0; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } } players_dir ./www/players;
        vhost __defaultVhost__ { dvr { enabled on; dvr_plan session; dvr_path ${tmp}/${ext}/[app]/[stream].[timestamp].${ext}; } }`;
      const gw = await Gateway.start(loadConfigText(conf, 'seek.conf'), { log: memoryLogger().log });
      gateways.push(gw);
      const base = `http://127.0.0.1:${gw.port('http')}`;
      const pub = publish(`rtmp://127.0.0.1:${gw.port('rtmp')}/live/past`, { seconds: SECONDS, fast: true, size: '640x360', gop: 25 });
      assert.equal(await pub.exited, 0, pub.stderr());
      await waitFor('the recording to finish', () => gw.recorder.list().find((r) => r.state === 'done'), 20_000);

      const { context, page, problems } = await openPage(browser);
      contexts.push(context);
      await page.goto(`${base}/players/`);
      const link = page.getByRole('link', { name: /^Play: the recording of live\/past/ });
      await link.click();
      await until('the VOD playlist in the address bar', async () => new URL(page.url()).searchParams.get('url')?.startsWith('/recordings/live/past.m3u8?id='));
      await waitForPlayback(page, 1);
      const duration = await page.evaluate(() => document.querySelector('video')!.duration as number);
      assert.ok(Math.abs(duration - SECONDS) <= 0.5, `the video says ${duration} s for ${SECONDS} s recorded`);

      const target = duration / 2;
      const landed = await page.evaluate(async (t: number) => {
        const v = document.querySelector('video')!;
        await new Promise((resolve) => {
          v.addEventListener('seeked', resolve, { once: true });
          v.currentTime = t;
        });
        return v.currentTime as number;
      }, target);
      assert.ok(Math.abs(landed - target) <= SEGMENT_S, `asked for ${target} s, landed at ${landed} s`);
      const after = await until('playback to go on after the seek', async () => {
        const s = await videoState(page);
        return s.currentTime >= landed + 1.5 && s;
      });
      assert.equal(after.paused, false);
      assert.ok(after.currentTime < duration, 'still inside the recording');
      await screenshot(page, `dvr-seek-${ext}.png`);
      assert.deepEqual(problems.errors, []);
      assert.equal(await page.evaluate(() => document.getElementById('errors')!.textContent), '', 'no player errors');
    });
  }
});
