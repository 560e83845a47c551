import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Context } from 'koa';
import { authoriseHls, carryToken } from '../../auth/doors.js';
import type { AccessControl } from '../../auth/policy.js';
import { GatewayError } from '../../errors.js';
import { parseRange } from '../../static/range.js';
import type { VodLibrary } from './library.js';
import { MAX_PLAYLIST_SEGMENTS, renderPlaylist } from './playlist.js';
import { cutTs } from './ts-cut.js';

/** The prefix of every VOD URL (the routing table's entry matches it). */
export const VOD_PREFIX = '/recordings/';
/** `/recordings/{app}/{stream}.m3u8`: a stream's recordings as one playlist. */
export const VOD_PLAYLIST = /^\/recordings\/(.+)\/([^/]+)\.m3u8$/;
/** `/recordings/{app}/{stream}/{id}.mp4|.flv`: a recording's bytes, with Range (fMP4 segments are ranges of it). */
const VOD_FILE = /^\/recordings\/(.+)\/([^/]+)\/([0-9a-f]{16})\.(mp4|flv)$/;
/** `/recordings/{app}/{stream}/{id}/{n}.ts`: the n-th TS segment cut from an FLV recording. */
const VOD_TS = /^\/recordings\/(.+)\/([^/]+)\/([0-9a-f]{16})\/(\d{1,9})\.ts$/;
/** TS segments being cut at once, at most (each holds its segment's bytes, up to the index's maxSegmentBytes); past it 503. */
export const MAX_CONCURRENT_CUTS = 8;
/**
 * The recording bytes all cuts in flight may hold between them (each also holds its TS, about as
 * much again): past it 503. Room for any one segment the index allows (32 MiB and a tag), so
 * every segment can be cut; eight of the largest at once would otherwise hold over 600 MiB for
 * whoever asks for them.
 */
export const MAX_CUT_BYTES = 64 * 1024 * 1024;

export interface VodDeps {
  library: VodLibrary;
  access: AccessControl;
  maxConcurrentCuts?: number;
  maxCutBytes?: number;
}

/**
 * HLS VOD of recordings. Same door as live HLS: on a vhost that controls play, the policy
 * chain (security, token, http_hooks on_play) runs once per viewer session of the stream, and a
 * token in the playlist URL is carried into every URI it lists.
 */
export function vodHandler(deps: VodDeps): (ctx: Context, vhost: string) => Promise<void> {
  let cutting = 0;
  let cutBytes = 0;
  const maxCuts = deps.maxConcurrentCuts ?? MAX_CONCURRENT_CUTS;
  const maxBytes = deps.maxCutBytes ?? MAX_CUT_BYTES;
  return async (ctx, vhost) => {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: 'GET, HEAD' });
    const path = ctx.path;
    const ts = VOD_TS.exec(path);
    const m = ts ?? VOD_FILE.exec(path) ?? VOD_PLAYLIST.exec(path);
    if (m === null) throw new GatewayError('NOT_FOUND');
    const name = { vhost, app: decode(m[1]), stream: decode(m[2]) };
    if (deps.access.guardsPlay(vhost)) await authoriseHls(deps.access, ctx, name, 'm3u8');
    if (m.length === 3) return playlist(ctx, deps.library, name);
    const f = await deps.library.file(vhost, name.app, name.stream, m[3]);
    if (f === null) throw new GatewayError('NOT_FOUND');
    if (ts === null) {
      if (m[4] !== f.info.container) throw new GatewayError('NOT_FOUND');
      return sendRange(ctx, f.path, m[4] === 'mp4' ? 'video/mp4' : 'video/x-flv');
    }
    const seg = f.index.container === 'flv' ? f.index.segments[Number(m[4])] : undefined;
    if (seg === undefined) throw new GatewayError('NOT_FOUND');
    if (ctx.method === 'HEAD') {
      // A segment's length is known only once it is cut: RFC 9110 §9.3.2 lets HEAD leave out
      // what only generating the content determines, so a HEAD neither cuts nor takes a slot.
      ctx.status = 200;
      ctx.type = 'video/mp2t';
      return;
    }
    if (cutting >= maxCuts) throw new GatewayError('LIMIT_REACHED', `at most ${maxCuts} recording segments are cut at once`, { 'Retry-After': '1' });
    if (cutBytes + seg.length > maxBytes) throw new GatewayError('LIMIT_REACHED', 'recording segments being cut hold all the memory they may', { 'Retry-After': '1' });
    cutting++;
    cutBytes += seg.length;
    try {
      const fh = await open(f.path, 'r');
      try {
        const read = async (position: number, length: number) => {
          const b = Buffer.allocUnsafe(length);
          return b.subarray(0, (await fh.read(b, 0, length, position)).bytesRead);
        };
        ctx.body = await cutTs(read, f.index, seg);
      } finally {
        await fh.close();
      }
    } finally {
      cutting--;
      cutBytes -= seg.length;
    }
    ctx.type = 'video/mp2t';
  };
}

/** `?start=&end=`: ms since 1970 (as /api/v1/recordings lists them) or an ISO 8601 date; absent = unbounded. */
function bound(v: unknown, missing: number): number {
  if (v === undefined) return missing;
  if (typeof v !== 'string') throw new GatewayError('BAD_REQUEST', 'start and end are given once each');
  const n = /^\d{1,16}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) throw new GatewayError('BAD_REQUEST', 'start and end are ms since 1970 or ISO 8601 dates');
  return n;
}

async function playlist(ctx: Context, library: VodLibrary, name: { vhost: string; app: string; stream: string }): Promise<void> {
  const range = { fromMs: bound(ctx.query.start, -Infinity), toMs: bound(ctx.query.end, Infinity) };
  const id = ctx.query.id;
  if (id !== undefined && typeof id !== 'string') throw new GatewayError('BAD_REQUEST', 'id is given once');
  // ?id= is one recording (the API's `vod` URL of it); otherwise every file in the range.
  const one = id === undefined ? null : await library.file(name.vhost, name.app, name.stream, id);
  if (id !== undefined && one === null) throw new GatewayError('STREAM_NOT_FOUND', 'no such recording of this stream');
  const files = one ? [one] : await library.files(name.vhost, name.app, name.stream, range.fromMs, range.toMs, MAX_PLAYLIST_SEGMENTS);
  const text = renderPlaylist(files, range, name.stream);
  if (text === null) throw new GatewayError('STREAM_NOT_FOUND', 'no recording of this stream in that range');
  ctx.type = 'application/vnd.apple.mpegurl';
  ctx.set('Cache-Control', 'no-cache');
  ctx.body = carryToken(text, ctx);
}

/** A recording's bytes: one range of RFC 9110 §14 (hls.js asks for each fMP4 segment so), or the whole file. */
async function sendRange(ctx: Context, path: string, type: string): Promise<void> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    throw new GatewayError('NOT_FOUND');
  }
  ctx.set('Accept-Ranges', 'bytes');
  ctx.type = type;
  const header = ctx.get('Range');
  let start = 0;
  let end = size - 1;
  if (header !== '') {
    const r = parseRange(header, size);
    if (r === 'unsatisfiable') throw new GatewayError('RANGE_NOT_SATISFIABLE', undefined, { 'Content-Range': `bytes */${size}` });
    if (r !== null) {
      ({ start, end } = r);
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${start}-${end}/${size}`);
    }
  }
  ctx.length = size === 0 ? 0 : end - start + 1;
  ctx.body = size === 0 ? '' : createReadStream(path, { start, end });
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new GatewayError('BAD_REQUEST', 'malformed percent-encoding');
  }
}
