import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { RecordingInfo } from '../record/types.js';
import { vodUrl } from '../record/vod/library.js';
import { GatewayError } from '../errors.js';
import type { ApiKit, Resource } from './kit.js';

/** What the resource reads: the recorder's list (src/record/recorder.ts). */
export interface RecordingList {
  list(filter: { vhost?: string; app?: string; stream?: string }): RecordingInfo[];
}

/**
 * `GET /api/v1/recordings[?vhost=&app=&stream=&start=&count=]`: finished and in-progress
 * recordings, oldest first, in the API's envelope, with `total` before paging. Times are ms since
 * 1970, durations seconds; `file` is the path dvr_path made, `url` where http_server.dir serves it
 * (null when the file lies outside it; an http_static mount may still serve it), `vod` the HLS
 * VOD playlist of this one recording (src/record/vod/), which plays wherever the file lies.
 */
export function recordings(kit: ApiKit): Resource {
  return {
    name: 'recordings',
    about: 'dvr recordings, finished and in progress (?app=&stream=)',
    get: (ctx, id) => {
      if (id !== undefined) throw new GatewayError('API_NOT_FOUND', 'recordings are listed, not fetched one by one');
      const q = (k: string): string | undefined => (typeof ctx.query[k] === 'string' ? (ctx.query[k] as string) : undefined);
      const all = kit.deps.recordings?.list({ vhost: q('vhost'), app: q('app'), stream: q('stream') }) ?? [];
      const root = kit.deps.config().httpServer.dir;
      return kit.envelope({ total: all.length, recordings: kit.page(ctx, all).map((r) => json(r, urlOf(root, r.file))) });
    },
  };
}

/** The path http_server.dir serves the file at, or null when the file lies outside it. */
function urlOf(root: string, file: string): string | null {
  const rel = relative(resolve(root), resolve(file));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return null;
  return `/${rel.split(sep).map(encodeURIComponent).join('/')}`;
}

function json(r: RecordingInfo, url: string | null): Record<string, unknown> {
  return {
    vhost: r.vhost, app: r.app, stream: r.stream, file: r.file, url, vod: vodUrl(r), container: r.container, state: r.state,
    start: r.startMs, end: r.endMs, duration: r.durationMs === null ? null : r.durationMs / 1000, bytes: r.bytes, codecs: r.codecs,
  };
}
