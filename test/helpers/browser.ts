import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

// Functions passed to page.evaluate run in the browser. The project's tsconfig has no DOM lib (server
// code must not see browser globals), so the few browser globals used here are declared loosely,
// in this module's scope only.
declare const document: any;
declare const window: any;
declare const performance: any;

/**
 * A real browser for the pages' tests: Debian's Chromium (installed by .ci/run), driven by
 * playwright-core. Nothing here downloads a browser: playwright-core has no browsers of its own and
 * is only ever pointed at this executable.
 */
export const CHROMIUM_PATH = process.env.STREAMGATE_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new',
  // CI containers run as root, where Chromium's sandbox cannot start.
  '--no-sandbox',
  '--disable-gpu',
  // HTTPS must be HTTP/2 over TCP: an Alt-Svc-driven QUIC attempt would make the protocol vary.
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The players autoplay muted anyway; this keeps a test from depending on that policy.
  '--autoplay-policy=no-user-gesture-required',
  // The gateway's generated self-signed certificate.
  '--ignore-certificate-errors',
];

/** Every wait in the browser tests is bounded by this unless a test says otherwise. */
export const BROWSER_WAIT_MS = 20_000;

export const ARTIFACTS_DIR = resolve('artifacts');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** What a page did wrong while it ran: uncaught exceptions and console errors. */
export interface PageProblems {
  errors: string[];
}

/**
 * A fresh context (own cache, own connections: HTTP/1.1 and HTTP/2 cases do not share a socket)
 * with one page, whose uncaught errors are collected.
 */
export async function openPage(browser: Browser, viewport = { width: 1280, height: 800 }): Promise<{ context: BrowserContext; page: Page; problems: PageProblems }> {
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(BROWSER_WAIT_MS);
  const problems: PageProblems = { errors: [] };
  page.on('pageerror', (e) => problems.errors.push(`pageerror: ${e.message}`));
  return { context, page, problems };
}

/**
 * The HTTP protocol of every response the page receives, by URL, as Chromium's network stack
 * reports it ("http/1.1", "h2"). A live FLV response never finishes, so Resource Timing never
 * records it; the DevTools protocol sees its headers as they arrive.
 */
export async function watchProtocols(page: Page): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Network.responseReceived', (e) => {
    if (e.response.protocol) seen.set(e.response.url, e.response.protocol);
  });
  await cdp.send('Network.enable');
  return seen;
}

export interface VideoState {
  currentTime: number;
  videoWidth: number;
  videoHeight: number;
  readyState: number;
  paused: boolean;
  /** The player page's own state line (`#st-state`), what a viewer reads. */
  state: string;
  engine: string;
}

export async function videoState(page: Page): Promise<VideoState> {
  return page.evaluate(() => {
    const v = document.querySelector('video')!;
    return {
      currentTime: v.currentTime,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      readyState: v.readyState,
      paused: v.paused,
      state: document.getElementById('st-state')?.dataset.state ?? '',
      engine: document.getElementById('st-engine')?.textContent ?? '',
    };
  });
}

/**
 * Waits until the page's <video> shows moving pictures: it has a frame size, and its current time
 * advances by `advanceS` over a bounded wait. Returns the two samples.
 */
export async function waitForPlayback(page: Page, advanceS = 1, timeoutMs = BROWSER_WAIT_MS): Promise<{ first: VideoState; later: VideoState }> {
  const until = Date.now() + timeoutMs;
  let first: VideoState | null = null;
  let last: VideoState = await videoState(page);
  while (Date.now() < until) {
    last = await videoState(page);
    if (!first && last.videoWidth > 0 && last.currentTime > 0) first = last;
    if (first && last.currentTime >= first.currentTime + advanceS) return { first, later: last };
    await new Promise((r) => setTimeout(r, 100));
  }
  const errors = await page.evaluate(() => document.getElementById('errors')?.textContent ?? '');
  throw new Error(`timed out after ${timeoutMs} ms waiting for playback: first ${JSON.stringify(first)}, last ${JSON.stringify(last)}, page errors: ${errors || 'none'}`);
}

/** Bounded polling of a condition evaluated in Node (e.g. over page state read with evaluate). */
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = BROWSER_WAIT_MS, stepMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A full-page screenshot in artifacts/ (gitignored): what the page looked like while it played. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const path = resolve(ARTIFACTS_DIR, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}
