import type { RecordingInfo } from '../record/types.js';
import { GatewayError } from '../errors.js';
import type { ApiKit, Resource } from './kit.js';

/** What the resource reads: the recorder's list (src/record/recorder.ts). */
export interface RecordingList {
  list(filter: { vhost?: string; app?: string; stream?: string }): RecordingInfo[];
}

/**
 * `GET /api/v1/recordings[?vhost=&app=&stream=&start=&count=]`: finished and in-progress
 * recordings, oldest first, in the API's envelope, with `total` before paging. Times are ms since
 * 1970, durations seconds; `file` is the path dvr_path made (the static origin serves it when it
 * lies under a served directory).
 */
export function recordings(kit: ApiKit): Resource {
  return {
    name: 'recordings',
    about: 'dvr recordings, finished and in progress (?app=&stream=)',
    get: (ctx, id) => {
      if (id !== undefined) throw new GatewayError('API_NOT_FOUND', 'recordings are listed, not fetched one by one');
      const q = (k: string): string | undefined => (typeof ctx.query[k] === 'string' ? (ctx.query[k] as string) : undefined);
      const all = kit.deps.recordings?.list({ vhost: q('vhost'), app: q('app'), stream: q('stream') }) ?? [];
      return kit.envelope({ total: all.length, recordings: kit.page(ctx, all).map(json) });
    },
  };
}

function json(r: RecordingInfo): Record<string, unknown> {
  return {
    vhost: r.vhost, app: r.app, stream: r.stream, file: r.file, container: r.container, state: r.state,
    start: r.startMs, end: r.endMs, duration: r.durationMs === null ? null : r.durationMs / 1000, bytes: r.bytes, codecs: r.codecs,
  };
}
