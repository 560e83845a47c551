import type { Context } from 'koa';
import { PassThrough } from 'node:stream';
import { GatewayError } from '../errors.js';
import type { FastReply } from '../http/frontdoor.js';
import type { Fmp4HlsStream, GrowingPart } from './hls-fmp4.js';
import { targetDuration } from './hls-fmp4-playlist.js';

export const M4S_TYPE = 'video/iso.segment';
export const INIT_TYPE = 'video/mp4';
const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
const IMMUTABLE = 'public, max-age=3600, immutable';
/**
 * Requests held at once (blocking reloads and preload hints waiting for their part), over every
 * stream. A held request is an open socket and a listener of a few hundred bytes; past the
 * bound a client gets 503 with Retry-After instead of a place in a queue that could grow forever.
 */
export const DEFAULT_MAX_HELD = 8192;
/** RFC 8216bis §6.2.5.2: a part more than this many beyond the last one is a bad request. */
const ADVANCE_PART_LIMIT = 3;
/** RFC 8216bis §6.2.5.2: a request not satisfied within this many target durations gets 503. */
const HOLD_TARGETS = 3;
const DIRECTIVE = /^\d{1,15}$/;
/** `s-12` (segment), `s-12.3` (part 3 of it), `s-i12` (init segment 12). */
const M4S_NAME = /^(.+)-(?:(\d{1,15})(?:\.(\d{1,4}))?|i(\d{1,15}))$/;

export interface M4sName {
  stream: string;
  seq: number;
  /** A part's index, or null for the whole segment. */
  part: number | null;
  /** The init segment's id, or null. */
  init: number | null;
}

export function parseM4sName(name: string): M4sName | null {
  const m = M4S_NAME.exec(name);
  if (!m) return null;
  if (m[4] !== undefined) return { stream: m[1], seq: -1, part: null, init: Number(m[4]) };
  return { stream: m[1], seq: Number(m[2]), part: m[3] === undefined ? null : Number(m[3]), init: null };
}

/** The process-wide count of held requests and its bound. */
export class HeldRequests {
  count = 0;
  refused = 0;
  constructor(readonly max = DEFAULT_MAX_HELD) {}

  take(): boolean {
    if (this.count >= this.max) {
      this.refused++;
      return false;
    }
    this.count++;
    return true;
  }

  give(): void {
    this.count--;
  }
}

/**
 * Waits, without polling, until `ok()` holds after one of the stream's changes, the timeout, or
 * the client leaving (its slot is freed then). Resolves whether `ok()` holds.
 */
function hold(ctx: Context, stream: Fmp4HlsStream, held: HeldRequests, timeoutMs: number, ok: () => boolean): Promise<boolean> {
  if (ok()) return Promise.resolve(true);
  if (!held.take()) throw new GatewayError('LIMIT_REACHED', 'too many held LL-HLS requests', { 'Retry-After': '1' });
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      held.give();
      clearTimeout(timer);
      off();
      ctx.res.off('close', finish);
      resolve(ok());
    };
    const off = stream.listen(() => {
      if (ok()) finish();
    });
    const timer = setTimeout(finish, timeoutMs);
    ctx.res.once('close', finish);
  });
}

function holdMs(stream: Fmp4HlsStream): number {
  return HOLD_TARGETS * targetDuration(stream) * 1000;
}

/** A playlist request: delivery directives honoured when the stream is LL-HLS (RFC 8216bis §6.2.5). */
export async function servePlaylist(ctx: Context, stream: Fmp4HlsStream, held: HeldRequests): Promise<void> {
  let skip = false;
  if (stream.ll) {
    const q = ctx.query;
    const msnArg = q._HLS_msn;
    const partArg = q._HLS_part;
    skip = q._HLS_skip === 'YES' || q._HLS_skip === 'v2';
    if (partArg !== undefined && msnArg === undefined) throw new GatewayError('BAD_REQUEST', '_HLS_part without _HLS_msn');
    if (msnArg !== undefined) {
      if (typeof msnArg !== 'string' || !DIRECTIVE.test(msnArg) || (partArg !== undefined && (typeof partArg !== 'string' || !DIRECTIVE.test(partArg)))) {
        throw new GatewayError('BAD_REQUEST', 'delivery directives are decimal integers');
      }
      const msn = Number(msnArg);
      const part = partArg === undefined ? null : Number(partArg);
      // What is already there is answered at once, however the segment it was asked as ended.
      if (!stream.reached(msn, part)) checkAhead(stream, msn, part);
      const ok = await hold(ctx, stream, held, holdMs(stream), () => stream.reached(msn, part));
      if (!ok) throw new GatewayError('LIMIT_REACHED', `segment ${msn} part ${part ?? '-'} did not come within ${HOLD_TARGETS} target durations`, { 'Retry-After': '1' });
    }
  }
  ctx.status = 200;
  ctx.set('Cache-Control', 'no-cache');
  ctx.type = PLAYLIST_TYPE;
  ctx.body = stream.playlist(skip);
}

/** RFC 8216bis §6.2.5.2: a segment more than two ahead, or a part more than the advance limit ahead, is a bad request. */
function checkAhead(stream: Fmp4HlsStream, msn: number, part: number | null): void {
  if (msn > stream.lastSeq + 2) throw new GatewayError('BAD_REQUEST', `_HLS_msn ${msn} is more than two segments ahead`);
  const b = stream.building();
  const have = b && b.seq === msn ? b.parts.length : 0;
  if (part !== null && part > have - 1 + ADVANCE_PART_LIMIT) throw new GatewayError('BAD_REQUEST', `_HLS_part ${part} is more than ${ADVANCE_PART_LIMIT} parts ahead`);
}

/** The bytes of a complete init segment, segment or part, or undefined. */
export function completeBody(stream: Fmp4HlsStream, n: M4sName): { data: Buffer; type: string } | undefined {
  if (n.init !== null) {
    const init = stream.initSection(n.init);
    return init && { data: init.data, type: INIT_TYPE };
  }
  const data = n.part === null ? stream.segment(n.seq)?.data : stream.part(n.seq, n.part)?.data;
  return data && { data, type: M4S_TYPE };
}

/**
 * An `.m4s` request: a complete object at once; the part being cut (EXT-X-PRELOAD-HINT) streamed
 * chunk by chunk as it is cut; a part just ahead of it held until it starts. Returns the bytes
 * sent (0 while streaming).
 */
export async function serveM4s(ctx: Context, stream: Fmp4HlsStream, n: M4sName, held: HeldRequests): Promise<boolean> {
  let body = completeBody(stream, n);
  if (!body && n.part !== null && stream.ll) {
    const soon = () => completeBody(stream, n) !== undefined || isGrowing(stream.growing, n) || stream.ended;
    const b = stream.building();
    const ahead = b !== null && ((n.seq === b.seq && n.part <= b.parts.length + ADVANCE_PART_LIMIT) || (n.seq === b.seq + 1 && n.part <= ADVANCE_PART_LIMIT));
    if (!ahead || !(await hold(ctx, stream, held, holdMs(stream), soon))) return false;
    body = completeBody(stream, n);
    const g = stream.growing;
    if (!body && g && isGrowing(g, n)) {
      streamPart(ctx, g, held);
      return true;
    }
  }
  if (!body) return false;
  ctx.status = 200;
  ctx.set('Cache-Control', IMMUTABLE);
  ctx.type = body.type;
  ctx.body = body.data;
  return true;
}

function isGrowing(g: GrowingPart | null, n: M4sName): g is GrowingPart {
  return g !== null && g.seq === n.seq && g.index === n.part;
}

/** Sends the chunks cut so far, then each new one, and ends with the part (RFC 8216bis §6.2.6). */
function streamPart(ctx: Context, g: GrowingPart, held: HeldRequests): void {
  if (!held.take()) throw new GatewayError('LIMIT_REACHED', 'too many held LL-HLS requests', { 'Retry-After': '1' });
  const out = new PassThrough();
  for (const c of g.chunks) out.write(c);
  let done = false;
  const reader = (chunk: Buffer | null) => {
    if (done) return;
    if (chunk) {
      out.write(chunk);
      return;
    }
    stop();
    out.end();
  };
  const stop = () => {
    if (done) return;
    done = true;
    held.give();
    g.readers.delete(reader);
    ctx.res.off('close', stop);
  };
  g.readers.add(reader);
  ctx.res.once('close', stop);
  ctx.status = 200;
  ctx.set('Cache-Control', 'no-cache');
  ctx.type = M4S_TYPE;
  ctx.body = out;
}

const replies = new WeakMap<Buffer, FastReply>();

/** The front door's answer for a complete `.m4s` object; undefined when there is none now. */
export function fastM4s(stream: Fmp4HlsStream, n: M4sName): FastReply | undefined {
  const body = completeBody(stream, n);
  if (!body) return undefined;
  let reply = replies.get(body.data);
  if (!reply) {
    reply = { status: 200, head: `Content-Type: ${body.type}\r\nContent-Length: ${body.data.length}\r\nCache-Control: ${IMMUTABLE}\r\n`, body: body.data, route: 'stream' };
    replies.set(body.data, reply);
  }
  return reply;
}
