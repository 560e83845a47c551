import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { loadConfigText } from '../../src/config/index.js';
import { Gateway } from '../../src/gateway.js';
import { memoryLogger } from '../../src/log.js';
import { run, waitFor, type Proc } from '../helpers/ffmpeg.js';
import { launchBrowser, openPage, screenshot, waitForPlayback, watchProtocols } from '../helpers/browser.js';
import { keyPairIn } from '../helpers/tls.js';

declare const document: any;

/**
 * Glass-to-glass latency in Chromium. The publisher burns each frame's wall-clock time (ms, mod
 * 2^16) into the picture as a 16-bit barcode (geq on a strip at the top left), taken as its filter
 * graph reads the frame, before encoding. The page plays the stream with hls.js lowLatencyMode over
 * HTTPS (HTTP/2); every sample draws the displayed frame onto a canvas, reads its time and
 * subtracts it from the clock (same machine, same clock). LL-HLS (1 s GOP,
 * hls_part 0.333) and classic MPEG-TS HLS (1 s segments) are measured the same way.
 */

const FPS = 25;
const BITS = 16;
const BIT_PX = 16;
const SAMPLES = 25;
const SAMPLE_EVERY_MS = 200;
/** hls.js needs a few seconds to settle on its target latency after it starts. */
const SETTLE_MS = 5000;

function publisher(url: string, seconds: number): Proc {
  // setpts RTCTIME: the frame's time becomes the wall clock when ffmpeg's filter graph takes it
  // (paced by -re), geq writes its milliseconds (mod 2^16) into the strip, and the timestamps are
  // renumbered for the encoder.
  const graph = `[0:v]setpts='RTCTIME/(TB*1000000)',split[a][b];[b]crop=${BITS * BIT_PX}:${BIT_PX}:0:0,`
    + `geq=lum='255*mod(floor(mod(T*1000\\,65536)/pow(2\\,floor(X/${BIT_PX})))\\,2)':cb=128:cr=128[bar];[a][bar]overlay=0:0,setpts=N/(${FPS}*TB)[v]`;
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-f', 'lavfi', '-i', `testsrc2=size=320x240:rate=${FPS}`,
    '-f', 'lavfi', '-i', 'sine=sample_rate=44100', '-filter_complex', graph, '-map', '[v]', '-map', '1:a', '-t', String(seconds),
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', String(FPS), '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', url]);
}

/** The displayed frame's publish time (wall-clock ms mod 2^16), read off its barcode; null before a frame is shown. */
async function displayedFrame(page: Page): Promise<number | null> {
  return page.evaluate(({ bits, px }) => {
    const v = document.querySelector('video');
    if (!v || v.videoWidth === 0) return null;
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    const row = g.getImageData(0, px >> 1, bits * px, 1).data;
    let n = 0;
    for (let i = 0; i < bits; i++) if (row[(i * px + (px >> 1)) * 4] > 128) n += 2 ** i;
    return n;
  }, { bits: BITS, px: BIT_PX });
}

interface Measured {
  p50: number;
  p90: number;
  hlsjs: number | null;
  protocol: string | undefined;
}

async function measure(browser: Browser, base: string, path: string, shot: string): Promise<Measured> {
  const { context, page, problems } = await openPage(browser);
  try {
    const protocols = await watchProtocols(page);
    await page.goto(`${base}/players/?url=${encodeURIComponent(path)}`);
    await waitForPlayback(page, 1, 25_000);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const delays: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const n = await displayedFrame(page);
      const now = Date.now();
      if (n !== null) delays.push((((now % 65536) - n + 65536) % 65536) / 1000);
      await new Promise((r) => setTimeout(r, SAMPLE_EVERY_MS));
    }
    const readout = await page.evaluate(() => document.getElementById('st-latency')?.textContent ?? '');
    await screenshot(page, shot);
    assert.deepEqual(problems.errors, []);
    delays.sort((a, b) => a - b);
    const own = /hls\.js (\d+\.\d) s/.exec(readout);
    return { p50: delays[Math.floor(delays.length / 2)], p90: delays[Math.floor(delays.length * 0.9)], hlsjs: own ? Number(own[1]) : null, protocol: protocols.get(`${base}${path}`) };
  } finally {
    await context.close().catch(() => {});
  }
}

describe('glass-to-glass latency in Chromium (hls.js lowLatencyMode, HTTPS/HTTP/2)', () => {
  let tmp: string;
  let browser: Browser;
  const gateways: Gateway[] = [];
  const pubs: Proc[] = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'streamgate-latency-'));
    browser = await launchBrowser();
  });
  after(async () => {
    for (const p of pubs) p.kill();
    await browser?.close();
    for (const g of gateways) await g.close();
    await rm(tmp, { recursive: true, force: true });
  });

  /** `play`: the LL-HLS vhost turns merged writes off (mw_latency 0), as the README advises: they hold every frame up to 350 ms before the segmenter sees it. */
  async function start(hls: string, play = ''): Promise<{ http: string; https: string }> {
    const conf = `listen off; http_server { listen 127.0.0.1:0; dir ./public; https { enabled on; listen 127.0.0.1:0; ${keyPairIn(tmp)} } }
      players_dir ./www/players; vhost __defaultVhost__ { play { ${play} } hls { enabled on; hls_fragment 1; hls_window 6; ${hls} } }`;
    const gw = await Gateway.start(loadConfigText(conf, 'latency.conf'), { log: memoryLogger().log });
    gateways.push(gw);
    return { http: `http://127.0.0.1:${gw.port('http')}`, https: `https://127.0.0.1:${gw.port('https')}` };
  }

  async function live(http: string, name: string): Promise<void> {
    pubs.push(publisher(`${http}/live/${name}.flv`, 40));
    await waitFor('two segments', async () => {
      const r = await fetch(`${http}/live/${name}.m3u8`);
      return r.status === 200 && (await r.text()).split('#EXTINF').length > 2;
    }, 20_000, 200);
  }

  test('LL-HLS: p50 under 2 s and under classic TS HLS measured the same way', async (t) => {
    const ll = await start('hls_ll on; hls_part 0.333;', 'mw_latency 0;');
    await live(ll.http, 'll');
    const low = await measure(browser, ll.https, '/live/ll.m3u8', 'latency-ll-hls.png');
    pubs[0].kill();

    const ts = await start('');
    await live(ts.http, 'ts');
    const classic = await measure(browser, ts.https, '/live/ts.m3u8', 'latency-ts-hls.png');

    const line = (name: string, m: Measured) => `${name}: p50 ${m.p50.toFixed(2)} s, p90 ${m.p90.toFixed(2)} s, hls.js says ${m.hlsjs ?? '–'} s, over ${m.protocol}`;
    console.log(`# glass-to-glass ${line('LL-HLS', low)}; ${line('TS HLS', classic)}`);
    assert.equal(low.protocol, 'h2');
    assert.ok(low.p50 > 0, 'a frame is never shown before it was published');
    assert.ok(low.p50 < classic.p50, `LL-HLS is not lower than TS HLS: ${line('LL-HLS', low)}; ${line('TS HLS', classic)}`);
    // The 2 s bound is for a machine with a core to spare; on one whose
    // run queue is several times its cores, Chromium's software decoder stalls and hls.js adds a
    // second of target latency per stall (liveSyncOnStallIncrease), so there it is reported, not asserted.
    const load = loadavg()[0];
    if (load <= cpus().length) assert.ok(low.p50 < 2.0, line('LL-HLS', low));
    else t.diagnostic(`2 s bound not checked: load average ${load.toFixed(1)} on ${cpus().length} cores`);
  });
});
