import type { Context } from 'koa';
import type { VhostConfig } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import { streamKey, type StreamName } from '../live/types.js';
import type { Logger } from '../log.js';
import { GatewayError } from '../errors.js';
import { DEFAULT_HLS_LIMITS, HlsStream, type HlsLimits, type Segment } from './hls-segmenter.js';
import { tsTracks } from './ts.js';

/** An ended stream's playlist (with ENDLIST) and segments stay this long, then the memory is freed. */
export const HLS_EXPIRE_MS = 60_000;
/** The longest a playlist request waits for a just-published stream's first segment. */
const FIRST_SEGMENT_WAIT_MAX_MS = 10_000;
/** `stream-12.ts`: SRS's default segment name, `[stream]-[seq].ts`. */
const SEGMENT_NAME = /^(.+)-(\d{1,15})$/;
/**
 * Segments never change once cut, and their numbers start from the clock, so a name is never
 * reused for other bytes within this time: a CDN may keep them.
 */
const SEGMENT_MAX_AGE_S = 3600;

export const HLS_PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
export const TS_TYPE = 'video/mp2t';

export interface HlsDeps {
  hub: Hub;
  vhost: (name: string) => VhostConfig;
  log: Logger;
  /** Overrides for tests and soaks. */
  expireMs?: number;
  limits?: Partial<Omit<HlsLimits, 'fragmentS' | 'windowS'>>;
}

interface Entry {
  stream: HlsStream;
  expiry: NodeJS.Timeout | null;
}

/**
 * Live HLS for every stream of a vhost with `hls { enabled on; }`: follows the hub's publishes,
 * cuts segments in memory (no files, no hls_ctx redirect: SRS #2991), and answers
 * `/{app}/{stream}.m3u8` and `/{app}/{stream}-{seq}.ts`.
 */
export class HlsOutput {
  private readonly entries = new Map<string, Entry>();
  private readonly onPublish = (source: Source) => this.follow(source);

  constructor(private readonly deps: HlsDeps) {
    deps.hub.on('publish', this.onPublish);
  }

  find(name: StreamName): HlsStream | undefined {
    return this.entries.get(streamKey(name))?.stream;
  }

  /** Bytes held by every stream's segments (for soaks and metrics). */
  bytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.stream.bytes;
    return n;
  }

  get streamCount(): number {
    return this.entries.size;
  }

  /** Whether `.m3u8` or `.ts` of this name is a live playlist or segment held here. */
  claims(name: StreamName, ext: string): boolean {
    if (ext === 'm3u8') return this.entries.has(streamKey(name));
    if (ext === 'ts') return this.segmentOf(name) !== undefined;
    return false;
  }

  /** Answers a GET/HEAD of a playlist or segment; false if there is none, for the next output to try. */
  async serve(ctx: Context, name: StreamName, ext: string): Promise<boolean> {
    if (ext === 'm3u8') {
      const stream = this.find(name);
      if (!stream) return false;
      if (stream.window().length === 0) {
        // hls.js gives up on a playlist after one retry; a just-started stream is worth a short wait.
        const fragmentMs = this.deps.vhost(name.vhost).hls.fragmentS * 1000;
        const ok = await stream.ready(Math.min(FIRST_SEGMENT_WAIT_MAX_MS, 2 * fragmentMs + 1000));
        if (!ok) throw new GatewayError('STREAM_NOT_FOUND', `${name.app}/${name.stream} has no HLS segment yet`);
      }
      ctx.status = 200;
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = HLS_PLAYLIST_TYPE;
      ctx.body = stream.playlist();
      return true;
    }
    const seg = this.segmentOf(name);
    if (!seg) return false;
    ctx.status = 200;
    ctx.set('Cache-Control', `public, max-age=${SEGMENT_MAX_AGE_S}, immutable`);
    ctx.type = TS_TYPE;
    ctx.body = seg.data;
    return true;
  }

  close(): void {
    this.deps.hub.off('publish', this.onPublish);
    for (const e of this.entries.values()) if (e.expiry) clearTimeout(e.expiry);
    this.entries.clear();
  }

  private segmentOf(name: StreamName): Segment | undefined {
    const m = SEGMENT_NAME.exec(name.stream);
    if (!m) return undefined;
    return this.find({ vhost: name.vhost, app: name.app, stream: m[1] })?.segment(Number(m[2]));
  }

  private follow(source: Source): void {
    const v = this.deps.vhost(source.name.vhost);
    if (!v.hls.enabled) return;
    const key = source.key;
    let e = this.entries.get(key);
    if (!e) {
      const limits: HlsLimits = { ...DEFAULT_HLS_LIMITS, ...this.deps.limits, fragmentS: v.hls.fragmentS, windowS: v.hls.windowS };
      e = { stream: new HlsStream(source.name.stream, limits, Math.floor(Date.now() / 1000)), expiry: null };
      this.entries.set(key, e);
    }
    if (e.expiry) {
      clearTimeout(e.expiry);
      e.expiry = null;
    }
    const entry = e;
    const sink = entry.stream.attach({ get hasVideo() { return source.hasVideo; }, tracks: () => tsTracks(source) });
    source.subscribe(sink, null, true);
    source.once('end', () => {
      if (entry.expiry) clearTimeout(entry.expiry);
      entry.expiry = setTimeout(() => {
        if (this.entries.get(key) === entry && entry.stream.ended) this.entries.delete(key);
      }, this.deps.expireMs ?? HLS_EXPIRE_MS);
      entry.expiry.unref();
      if (entry.stream.oversized > 0) this.deps.log.warn(`hls ${source.name.app}/${source.name.stream}: ${entry.stream.oversized} segments dropped (no key frame within ${DEFAULT_HLS_LIMITS.maxSegmentBytes} bytes)`);
    });
  }
}
