import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { waitFor } from '../helpers/ffmpeg.js';
import { encode, enhancedTags, flvBytes, type ExCodec } from '../helpers/enhanced-flv.js';
import { launchBrowser, openPage, screenshot, until, waitForPlayback } from '../helpers/browser.js';

// page.evaluate runs in the browser; the project's tsconfig has no DOM lib.
declare const document: any;

/**
 * HEVC and AV1 published as Enhanced FLV, played from fMP4 HLS by the players page in Chromium.
 * The page shows the codec strings hls.js gives Media Source and whether the browser can decode
 * them: AV1 must play (Chromium decodes it in software); HEVC plays where Chromium has a decoder
 * for it and otherwise must say so, with the codec string, rather than show a silent black video.
 */
describe('players page: HEVC and AV1 over fMP4 HLS in Chromium', () => {
  let gw: Gateway;
  let browser: Browser;
  let http: string;

  before(async () => {
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled off; } }
      players_dir ./www/players;
      vhost __defaultVhost__ { play { mw_latency 0; } hls { enabled on; hls_fragment 1; hls_window 30; hls_dispose 60s; hls_fmp4 on; } }`;
    gw = await Gateway.start(loadConfigText(conf, 'codecs.conf'), { log: memoryLogger().log });
    http = `http://127.0.0.1:${gw.port('http')}`;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await gw?.close();
  });

  const want: Record<ExCodec, RegExp> = { hevc: /^hvc1\.\d/, av1: /^av01\.\d/ };

  for (const codec of ['av1', 'hevc'] as const) {
    test(`${codec}: the page names the stream's codec string, and plays it where the browser can decode it`, async () => {
      const enc = await encode(codec, { seconds: 4, gop: 25 });
      const r = await fetch(`${http}/live/${codec}.flv`, { method: 'POST', body: flvBytes(enhancedTags(enc)) });
      assert.equal(r.status, 200);
      await waitFor('the finished playlist', async () => (await (await fetch(`${http}/live/${codec}.m3u8`)).text()).includes('#EXT-X-ENDLIST'), 15_000, 200);

      const { context, page, problems } = await openPage(browser);
      try {
        await page.goto(`${http}/players/?url=${encodeURIComponent(`/live/${codec}.m3u8`)}`);
        const shown = await until('the codec readout', async () => {
          const t: string = await page.evaluate(() => document.getElementById('st-codecs')?.textContent ?? '');
          return t !== '' && t !== '–' && t;
        });
        const first = shown.split(',')[0].trim();
        assert.match(first, want[codec], `codec string shown: ${shown}`);
        const supported = !first.includes('not supported here');
        console.log(`# ${codec}: ${shown}`);
        if (codec === 'av1') assert.ok(supported, `Chromium decodes AV1 in software: ${shown}`);
        if (supported) await waitForPlayback(page, 1);
        await screenshot(page, `codecs-${codec}.png`);
        assert.deepEqual(problems.errors, []);
      } finally {
        await context.close().catch(() => {});
      }
    });
  }
});
