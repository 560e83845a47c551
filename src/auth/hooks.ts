import type { Logger } from '../log.js';
import type { HookEvent, HooksConfig } from './types.js';

/** Hook requests in flight over the whole process; past it an enforcing hook denies at once. */
export const MAX_HOOKS_IN_FLIGHT = 256;
/** Bytes of a hook's answer read at most: `0` or `{"code":0}` is all SRS reads. */
export const MAX_HOOK_RESPONSE_BYTES = 16 * 1024;
/** Ordered chains kept at most (one per stream or client with a hook pending). */
const MAX_CHAINS = 10_000;

/** Events whose answer decides (the others are notifications: logged, not enforced). */
const ENFORCED: ReadonlySet<HookEvent> = new Set(['on_connect', 'on_publish', 'on_play']);

/**
 * SRS's http_hooks client (srs_app_http_hooks.cpp): each URL of an event gets a POST of the
 * event's JSON, in order; an enforcing event is allowed only if every URL answers HTTP 200 with
 * `0` or `{"code":0}`. A timeout, a refused connection, another status or body denies, with one
 * log line naming the hook and its answer (the URL's path only: its query may hold a key).
 *
 * Calls for one key (a stream's publish events, a client's play events) run one after another,
 * so an on_unpublish never overtakes its on_publish; different keys never wait on each other.
 */
export class HookCaller {
  private inFlight = 0;
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly log: Logger) {}

  /** Runs the event's hooks after the key's earlier ones; true = allowed (always true for notifications). */
  call(cfg: HooksConfig, event: HookEvent, key: string, body: Record<string, unknown>): Promise<boolean> {
    const urls = cfg.enabled ? cfg.urls[event] : [];
    if (urls.length === 0) return Promise.resolve(true);
    const enforced = ENFORCED.has(event);
    if (this.chains.size >= MAX_CHAINS && !this.chains.has(key)) {
      this.log.warn(`hook ${event}: ${MAX_CHAINS} streams and clients already wait on hooks; ${enforced ? 'denied' : 'not sent'}`);
      return Promise.resolve(!enforced);
    }
    const prev = this.chains.get(key) ?? Promise.resolve();
    const run = prev.then(() => this.runAll(cfg, event, urls, body, enforced));
    const tail = run.catch(() => false);
    this.chains.set(key, tail);
    void tail.then(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
    });
    return run.then((ok) => ok || !enforced, () => !enforced);
  }

  private async runAll(cfg: HooksConfig, event: HookEvent, urls: URL[], body: Record<string, unknown>, enforced: boolean): Promise<boolean> {
    const json = JSON.stringify(body);
    for (const url of urls) {
      const answer = await this.post(url, json, cfg.timeoutMs);
      const where = `${url.protocol}//${url.host}${url.pathname}`;
      const label = `${body.vhost}/${body.app}${body.stream !== undefined ? `/${body.stream}` : ''} client ${body.client_id}`;
      if (answer === null) continue;
      if (enforced) {
        this.log.warn(`hook ${event} ${where} denied ${label}: ${answer}`);
        return false;
      }
      this.log.warn(`hook ${event} ${where} for ${label} answered ${answer} (a notification: ignored)`);
    }
    return true;
  }

  /** Null when the hook allowed; else what it answered, for the log line. */
  private async post(url: URL, json: string, timeoutMs: number): Promise<string | null> {
    if (this.inFlight >= MAX_HOOKS_IN_FLIGHT) return `not called: ${MAX_HOOKS_IN_FLIGHT} hook calls already in flight`;
    this.inFlight++;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const r = await fetch(url, { method: 'POST', body: json, headers: { 'Content-Type': 'application/json' }, redirect: 'manual', signal: abort.signal });
      const text = await readBounded(r);
      if (text === null) return `an answer over ${MAX_HOOK_RESPONSE_BYTES} bytes (status ${r.status})`;
      if (r.status !== 200) return `status ${r.status} ${quote(text)}`;
      return allows(text) ? null : `status 200 ${quote(text)}`;
    } catch (err) {
      if (abort.signal.aborted) return `no answer within ${timeoutMs} ms`;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return `request failed: ${cause?.code ?? cause?.message ?? (err as Error).message}`;
    } finally {
      clearTimeout(timer);
      abort.abort();
      this.inFlight--;
    }
  }
}

/**
 * SRS's on_dvr body (srs_app_http_hooks.cpp on_dvr): the publisher's fields, then `cwd` and
 * `file` as dvr_path made it (relative paths are relative to `cwd`), once the file is finished.
 */
export function onDvrBody(pub: Record<string, unknown>, name: { app: string; stream: string }, file: string, streamId: string): Record<string, unknown> {
  return { ...pub, action: 'on_dvr', cwd: process.cwd(), file, stream_url: `/${name.app}/${name.stream}`, stream_id: streamId };
}

/** SRS 5: a body of `0`, or a JSON object whose `code` is 0. */
export function allows(text: string): boolean {
  const t = text.trim();
  if (t === '0') return true;
  try {
    const v = JSON.parse(t) as unknown;
    return typeof v === 'object' && v !== null && (v as { code?: unknown }).code === 0;
  } catch {
    return false;
  }
}

async function readBounded(r: Response): Promise<string | null> {
  if (!r.body) return '';
  const reader = r.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > MAX_HOOK_RESPONSE_BYTES) {
      await reader.cancel();
      return null;
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString('utf8');
}

function quote(text: string): string {
  const t = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return JSON.stringify(t);
}
