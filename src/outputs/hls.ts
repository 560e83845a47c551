import type { Context } from 'koa';
import type { VhostConfig } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import { clientIp } from '../net/address.js';
import { HlsSessions } from './hls-sessions.js';
import type { Source } from '../live/source.js';
import { keyedName, streamKey, type StreamName } from '../live/types.js';
import type { Logger } from '../log.js';
import { GatewayError } from '../errors.js';
import { DEFAULT_HLS_LIMITS, HlsStream, type HlsLimits, type Segment } from './hls-segmenter.js';
import { tsTracks } from './ts.js';
import type { FastReply } from '../http/frontdoor.js';
import { DIRECT_MIN_BYTES, DirectBody } from '../net/sendfile.js';
import { Fmp4HlsStream } from './hls-fmp4.js';
import { fastM4s, HeldRequests, parseM4sName, serveM4s, servePlaylist } from './hls-fmp4-serve.js';

/** The longest a playlist request waits for a just-published stream's first segment. */
const FIRST_SEGMENT_WAIT_MAX_MS = 10_000;
/** `stream-12.ts`: SRS's default segment name, `[stream]-[seq].ts`. */
const SEGMENT_NAME = /^(.+)-(\d{1,15})$/;
/**
 * Segments never change once cut, and their numbers start from the clock, so a name is never
 * reused for other bytes within this time: a CDN may keep them.
 */
const SEGMENT_MAX_AGE_S = 3600;

/** memfd copies held at most, over every stream (each is an open fd). */
const DIRECT_MAX_SEGMENTS = 256;
/**
 * How long a playlist whose publisher left stays open for it to come back (continuing after
 * EXT-X-DISCONTINUITY) before it gets EXT-X-ENDLIST, at most half of hls_dispose. Encoders that
 * lose their connection (OBS, ffmpeg in a restart loop) reconnect within a few seconds; ENDLIST
 * can never be taken back (RFC 8216 §6.2.1), so it waits for them.
 */
export const HLS_REPUBLISH_GRACE_MS = 10_000;
/** Stream names whose segment numbering is remembered past their playlist's disposal, at most. */
const MAX_REMEMBERED_NUMBERINGS = 10_000;

export const HLS_PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
export const TS_TYPE = 'video/mp2t';

/** Who fetched: what the API's `hls-play` listing records, from a Koa context or the front door. */
export interface HlsViewer {
  ip: string;
  agent: string;
  host: string;
  referer: string;
  /**
   * Its session's key, filled on first use: a viewer object kept by the front door for a repeated
   * request (one stream) then costs no key to build and hash.
   */
  sessionKey?: string;
}

/**
 * A playlist or segment name as asked for. The front door asks with the same object while a
 * client repeats its request, so what segmentOf reads from the name is kept on it.
 */
export interface HlsName extends StreamName {
  /** `{stream}-{seq}` read as the stream's own name and a sequence number; null: not a segment name. */
  segmentName?: { name: StreamName; seq: number } | null;
}

export interface HlsDeps {
  hub: Hub;
  vhost: (name: string) => VhostConfig;
  log: Logger;
  /** Overrides for tests and soaks. */
  limits?: Partial<Omit<HlsLimits, 'fragmentS' | 'windowS'>>;
  /** Segments may go out by sendfile from a sealed memfd copy (the native addon is built and on). */
  sendfile?: boolean;
  /** Each segment as it is cut (http_hooks on_hls). */
  onSegment?: (source: Source, seg: Segment) => void;
  /** HLS_REPUBLISH_GRACE_MS, for tests. */
  republishGraceMs?: number;
  /** LL-HLS requests held at once (DEFAULT_MAX_HELD), for tests and benches. */
  maxHeld?: number;
}

interface Entry {
  stream: HlsStream | Fmp4HlsStream;
  /** Adds ENDLIST once the publisher has not come back within the grace. */
  seal: NodeJS.Timeout | null;
  /** Drops the playlist and its segments hls_dispose after the publisher left. */
  expiry: NodeJS.Timeout | null;
}

/**
 * Live HLS for every stream of a vhost with `hls { enabled on; }`: follows the hub's publishes,
 * cuts segments in memory (no files, no hls_ctx redirect: SRS #2991), and answers
 * `/{app}/{stream}.m3u8` and `/{app}/{stream}-{seq}.ts`.
 */
export class HlsOutput {
  /** The playlist served for each stream name. */
  private readonly entries = new Map<string, Entry>();
  /**
   * A fresh playlist cut for a publisher that came after the served one got ENDLIST: served only
   * once that one is disposed, so no client that saw ENDLIST at a URL sees it go away.
   */
  private readonly waiting = new Map<string, Entry>();
  /** Next segment numbers of disposed playlists that ran ahead of the clock, by stream name. */
  private readonly numbering = new Map<string, number>();
  private readonly sessions: HlsSessions;
  private readonly onPublish = (source: Source) => this.follow(source);
  /** Blocking reloads and preload hints waiting now (LL-HLS), over every stream. */
  readonly held: HeldRequests;

  constructor(private readonly deps: HlsDeps) {
    deps.hub.on('publish', this.onPublish);
    this.held = new HeldRequests(deps.maxHeld);
    this.sessions = new HlsSessions(deps.hub);
  }

  find(name: StreamName): HlsStream | Fmp4HlsStream | undefined {
    return this.entries.get(streamKey(name))?.stream;
  }

  /** Bytes held by every stream's segments (for soaks and metrics). */
  bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.stream.bytes;
    for (const e of this.waiting.values()) n += e.stream.bytes;
    return n;
  }

  get streamCount(): number {
    return this.entries.size;
  }

  /** Whether `.m3u8` or `.ts` of this name is a live playlist or segment held here. */
  claims(name: HlsName, ext: string): boolean {
    if (ext === 'm3u8') return this.entries.has(streamKey(name));
    if (ext === 'ts') return this.segmentOf(name) !== undefined;
    return ext === 'm4s' && this.m4sOf(name) !== undefined;
  }

  /** Answers a GET/HEAD of a playlist or segment; false if there is none, for the next output to try. */
  async serve(ctx: Context, name: HlsName, ext: string): Promise<boolean> {
    if (ext === 'm4s') {
      const found = this.m4sOf(name);
      if (!found || !(await serveM4s(ctx, found.stream, found.m4s, this.held))) return false;
      this.touch(found.name, this.viewerOf(ctx), ctx.method === 'HEAD' || !Buffer.isBuffer(ctx.body) ? 0 : ctx.body.length);
      return true;
    }
    if (ext === 'm3u8') {
      const stream = this.find(name);
      if (!stream) return false;
      if (stream.window().length === 0) {
        // hls.js gives up on a playlist after one retry; a just-started stream is worth a short wait.
        const fragmentMs = this.deps.vhost(name.vhost).hls.fragmentS * 1000;
        const ok = await stream.ready(Math.min(FIRST_SEGMENT_WAIT_MAX_MS, 2 * fragmentMs + 1000));
        if (!ok) throw new GatewayError('STREAM_NOT_FOUND', `${name.app}/${name.stream} has no HLS segment yet`);
      }
      if (stream instanceof Fmp4HlsStream) await servePlaylist(ctx, stream, this.held);
      else {
        ctx.status = 200;
        ctx.set('Cache-Control', 'no-cache');
        ctx.type = HLS_PLAYLIST_TYPE;
        ctx.body = stream.playlist();
      }
      this.touch(name, this.viewerOf(ctx), 0);
      return true;
    }
    const found = this.segmentOf(name);
    if (!found) return false;
    ctx.status = 200;
    ctx.set('Cache-Control', `public, max-age=${SEGMENT_MAX_AGE_S}, immutable`);
    ctx.type = TS_TYPE;
    ctx.body = found.seg.data;
    this.touch(found.name, this.viewerOf(ctx), ctx.method === 'HEAD' ? 0 : found.seg.data.length);
    return true;
  }

  /**
   * The front door's answer for a playlist or segment that is ready now; null for a live stream's
   * playlist with no segment yet (the full path waits for one); undefined when no live playlist
   * or segment has this name (what `claims` says, without a second lookup).
   */
  fast(name: HlsName, ext: string, head: boolean, viewer: HlsViewer): FastReply | null | undefined {
    if (ext === 'm4s') {
      const found = this.m4sOf(name);
      const reply = found && fastM4s(found.stream, found.m4s);
      // A part not cut yet is held on the full path; nothing of this name is the next output's.
      if (!reply) return found ? null : undefined;
      this.touch(found.name, viewer, head ? 0 : reply.body.length);
      return reply;
    }
    if (ext === 'm3u8') {
      const stream = this.find(name);
      if (!stream) return undefined;
      // LL-HLS playlists carry delivery directives in the query: the full path reads them.
      if (stream.window().length === 0 || (stream instanceof Fmp4HlsStream && stream.ll)) return null;
      const text = stream.playlist();
      let cached = this.playlists.get(stream);
      if (cached === undefined || cached.text !== text) {
        cached = { text, reply: { status: 200, head: `Content-Type: ${HLS_PLAYLIST_TYPE}\r\nContent-Length: ${Buffer.byteLength(text)}\r\nCache-Control: no-cache\r\n`, body: Buffer.from(text), route: 'stream' } };
        this.playlists.set(stream, cached);
      }
      this.touch(name, viewer, 0);
      return cached.reply;
    }
    const found = this.segmentOf(name);
    if (!found) return undefined;
    let reply = this.segmentReplies.get(found.seg);
    if (reply === undefined) {
      reply = { status: 200, head: `Content-Type: ${TS_TYPE}\r\nContent-Length: ${found.seg.data.length}\r\nCache-Control: public, max-age=${SEGMENT_MAX_AGE_S}, immutable\r\n`, body: found.seg.data, route: 'stream', direct: this.directOf(found.seg, streamKey(found.name)) };
      this.segmentReplies.set(found.seg, reply);
    }
    this.touch(found.name, viewer, head ? 0 : found.seg.data.length);
    return reply;
  }

  private readonly playlists = new WeakMap<HlsStream | Fmp4HlsStream, { text: string; reply: FastReply }>();
  private readonly segmentReplies = new WeakMap<Segment, FastReply>();
  /**
   * Segments with a memfd copy, and the key of the stream that holds them. A segment is read by
   * every viewer within seconds of being cut, so one copy serves thousands of sendfile calls
   * (NGINX gets the same from the page cache when SRS writes segments to disk).
   */
  private readonly directs = new Map<Segment, { body: DirectBody; key: string }>();

  /** A memfd copy of a segment for sendfile, made the first time the front door serves it. */
  private directOf(seg: Segment, key: string): DirectBody | null {
    if (!this.deps.sendfile || seg.data.length < DIRECT_MIN_BYTES) return null;
    this.releaseDirects(false);
    if (this.directs.size >= DIRECT_MAX_SEGMENTS) return null;
    const body = DirectBody.of(seg.data);
    if (body) this.directs.set(seg, { body, key });
    return body;
  }

  /**
   * Closes the copies of segments no longer fetchable (slid out of the window and its retired
   * tail, or their stream disposed), or all of them. A reply that still points at a released
   * copy falls back to the in-memory bytes (DirectBody.release).
   */
  private releaseDirects(all: boolean): void {
    for (const [seg, d] of this.directs) {
      if (!all && this.entries.get(d.key)?.stream.segment(seg.seq) === seg) continue;
      d.body.release();
      this.directs.delete(seg);
    }
  }

  private viewerOf(ctx: Context): HlsViewer {
    return { ip: clientIp(ctx.req.socket?.remoteAddress), agent: ctx.get('User-Agent'), host: ctx.host, referer: ctx.get('Referer') };
  }

  /** Lists the viewer in the API as SRS's `hls-play`, counting the segment bytes it fetched. */
  private touch(name: StreamName, viewer: HlsViewer, bytes: number): void {
    this.sessions.touch(name, viewer, bytes);
  }

  close(): void {
    this.sessions.close();
    this.deps.hub.off('publish', this.onPublish);
    for (const e of [...this.entries.values(), ...this.waiting.values()]) clearTimers(e);
    this.entries.clear();
    this.waiting.clear();
    this.releaseDirects(true);
  }

  /** The segment a `{stream}-{seq}` name points at, and the stream's own name. */
  private segmentOf(name: HlsName): { seg: Segment; name: StreamName } | undefined {
    let parsed = name.segmentName;
    if (parsed === undefined) {
      const m = SEGMENT_NAME.exec(name.stream);
      parsed = name.segmentName = m ? { name: keyedName(name.vhost, name.app, m[1]), seq: Number(m[2]) } : null;
    }
    if (parsed === null) return undefined;
    const stream = this.find(parsed.name);
    const seg = stream instanceof HlsStream ? stream.segment(parsed.seq) : undefined;
    return seg ? { seg, name: parsed.name } : undefined;
  }

  /** The fMP4 stream and object an `.m4s` name points at. */
  private m4sOf(name: HlsName): { stream: Fmp4HlsStream; m4s: NonNullable<ReturnType<typeof parseM4sName>>; name: StreamName } | undefined {
    const m4s = parseM4sName(name.stream);
    if (!m4s) return undefined;
    const own = keyedName(name.vhost, name.app, m4s.stream);
    const stream = this.find(own);
    return stream instanceof Fmp4HlsStream ? { stream, m4s, name: own } : undefined;
  }

  /**
   * A publish of a stream with HLS on. The served playlist continues if its publisher left less
   * than the grace ago; once it has ENDLIST, the publish is cut into a fresh playlist (numbered
   * above the old one) that is served when the old one is disposed.
   */
  private follow(source: Source): void {
    const v = this.deps.vhost(source.name.vhost);
    if (!v.hls.enabled) return;
    const key = source.key;
    let e = this.entries.get(key);
    // An ended playlist that never listed a segment was never served (a playlist request waits,
    // then 404s): nobody saw its ENDLIST, so it need not wait for hls_dispose.
    while (e?.stream.ended && e.stream.window().length === 0) {
      this.drop(key, e);
      e = this.entries.get(key);
    }
    if (e?.stream.ended) {
      const served = e.stream;
      e = this.waiting.get(key);
      // A waiting playlist that ended too was never served: nobody saw it, so it can go.
      if (e?.stream.ended) this.drop(key, e);
      if (!e || e.stream.ended) {
        e = this.entry(source, Math.max(served.nextSequence, this.firstSeq(key)));
        this.waiting.set(key, e);
      }
    } else if (!e) {
      e = this.entry(source, this.firstSeq(key));
      this.entries.set(key, e);
    }
    clearTimers(e);
    const entry = e;
    const onSegment = this.deps.onSegment;
    entry.stream.onSegment = onSegment ? (seg) => onSegment(source, seg) : null;
    const sink = entry.stream.attach({ get hasVideo() { return source.hasVideo; }, get hasAudio() { return source.hasAudio; }, tracks: () => tsTracks(source) });
    source.subscribe(sink, null, true);
    source.once('end', () => this.unpublished(key, entry, v));
  }

  /**
   * Where a new playlist's numbering starts: the clock's second, so names do not repeat what a
   * cache may hold from an earlier stream of the name; or above the last disposed playlist of
   * the name when its numbers ran ahead of the clock (a publisher sending faster than real
   * time, or fragments under a second).
   */
  private firstSeq(key: string): number {
    const clock = Math.floor(Date.now() / 1000);
    const after = this.numbering.get(key) ?? 0;
    this.numbering.delete(key);
    return Math.max(clock, after);
  }

  /** Remembers a disposed playlist's next number while it is ahead of the clock (bounded). */
  private remember(key: string, stream: HlsStream | Fmp4HlsStream): void {
    const clock = Math.floor(Date.now() / 1000);
    if (stream.nextSequence <= clock) return;
    if (this.numbering.size >= MAX_REMEMBERED_NUMBERINGS) {
      for (const [k, n] of this.numbering) if (n <= clock) this.numbering.delete(k);
      // Still full: the oldest goes (the clock catches up with it within the hour or so its
      // segments may be cached anyway).
      if (this.numbering.size >= MAX_REMEMBERED_NUMBERINGS) this.numbering.delete(this.numbering.keys().next().value!);
    }
    this.numbering.set(key, stream.nextSequence);
  }

  private entry(source: Source, firstSeq: number): Entry {
    const v = this.deps.vhost(source.name.vhost);
    const limits: HlsLimits = { ...DEFAULT_HLS_LIMITS, ...this.deps.limits, fragmentS: v.hls.fragmentS, windowS: v.hls.windowS };
    const stream = v.hls.fmp4 ? new Fmp4HlsStream(source.name.stream, { ...limits, partS: v.hls.ll ? v.hls.partS : 0 }, firstSeq) : new HlsStream(source.name.stream, limits, firstSeq);
    return { stream, seal: null, expiry: null };
  }

  /** The publisher left: ENDLIST after the grace unless it comes back, the playlist gone after hls_dispose. */
  private unpublished(key: string, entry: Entry, v: VhostConfig): void {
    clearTimers(entry);
    const graceMs = Math.min(this.deps.republishGraceMs ?? HLS_REPUBLISH_GRACE_MS, v.hls.disposeMs / 2);
    entry.seal = setTimeout(() => {
      entry.seal = null;
      entry.stream.seal();
    }, graceMs);
    entry.seal.unref();
    entry.expiry = setTimeout(() => this.drop(key, entry), v.hls.disposeMs);
    entry.expiry.unref();
    if (entry.stream.oversized > 0) this.deps.log.warn(`hls ${key}: ${entry.stream.oversized} segments dropped (no key frame within ${DEFAULT_HLS_LIMITS.maxSegmentBytes} bytes)`);
  }

  /** Forgets a playlist; a waiting one takes the served one's place. */
  private drop(key: string, entry: Entry): void {
    clearTimers(entry);
    if (this.entries.get(key) === entry) {
      this.remember(key, entry.stream);
      this.entries.delete(key);
      const next = this.waiting.get(key);
      if (next) {
        this.waiting.delete(key);
        this.entries.set(key, next);
      }
    } else if (this.waiting.get(key) === entry) {
      this.waiting.delete(key);
    }
    this.releaseDirects(false);
  }
}

function clearTimers(e: Entry): void {
  if (e.seal) clearTimeout(e.seal);
  if (e.expiry) clearTimeout(e.expiry);
  e.seal = null;
  e.expiry = null;
}
