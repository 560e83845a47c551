import type { Context } from 'koa';
import type { RecordingInfo } from '../record/types.js';
import { GatewayError } from '../errors.js';

/** What the endpoint reads: the recorder's list (src/record/recorder.ts). */
export interface RecordingList {
  list(filter: { vhost?: string; app?: string; stream?: string }): RecordingInfo[];
}

/** Recordings listed per answer at most (?start=&count= pages through more). */
const MAX_COUNT = 10_000;
const DEFAULT_COUNT = 1000;

/**
 * `GET /api/v1/recordings[?vhost=&app=&stream=&start=&count=]`: finished and in-progress
 * recordings, oldest first, in the API's envelope. Times are ms since 1970 and durations seconds,
 * as SRS's API writes them; `file` is the path dvr_path made (served by the static origin when it
 * lies under a served directory).
 */
export function recordingsEndpoint(recorder: RecordingList | undefined, envelope: (d: Record<string, unknown>) => Record<string, unknown>) {
  return {
    GET: (ctx: Context, id: string | undefined) => {
      if (id !== undefined) throw new GatewayError('API_NOT_FOUND', 'recordings are listed, not fetched one by one');
      const q = (k: string): string | undefined => (typeof ctx.query[k] === 'string' ? (ctx.query[k] as string) : undefined);
      const all = recorder?.list({ vhost: q('vhost'), app: q('app'), stream: q('stream') }) ?? [];
      const start = bounded(q('start'), 0, Number.MAX_SAFE_INTEGER);
      const count = bounded(q('count'), DEFAULT_COUNT, MAX_COUNT);
      return envelope({ total: all.length, recordings: all.slice(start, start + count).map(json) });
    },
  };
}

function json(r: RecordingInfo): Record<string, unknown> {
  return {
    vhost: r.vhost, app: r.app, stream: r.stream, file: r.file, container: r.container, state: r.state,
    start: r.startMs, end: r.endMs, duration: r.durationMs === null ? null : r.durationMs / 1000, bytes: r.bytes, codecs: r.codecs,
  };
}

function bounded(v: string | undefined, dflt: number, max: number): number {
  const n = v === undefined ? Number.NaN : Number.parseInt(v, 10);
  return Number.isFinite(n) && n >= 0 ? Math.min(n, max) : dflt;
}
