import type { MediaPacket } from '../media/packet.js';
import { TimestampUnwrapper, TsMuxer } from '../media/ts/muxer.js';
import type { Batch, EndReason, Sink } from '../live/types.js';
import type { TsTracks } from '../media/ts/muxer.js';

/** What a segmenter needs to know about the stream it cuts: its tracks, asked at each cut. */
export interface TrackSource {
  readonly hasVideo: boolean;
  tracks(): TsTracks;
}

export interface HlsLimits {
  /** Target segment length (hls_fragment): a segment ends at the first key frame at or after it. */
  fragmentS: number;
  /** Seconds of segments listed in the playlist (hls_window). */
  windowS: number;
  /** A segment that grows past this (no key frame in sight) is dropped, and cutting restarts at the next one. */
  maxSegmentBytes: number;
  /** The window holds at most this many bytes whatever its duration. */
  maxWindowBytes: number;
}

export const DEFAULT_HLS_LIMITS: HlsLimits = {
  fragmentS: 2,
  windowS: 12,
  maxSegmentBytes: 16 * 1024 * 1024,
  maxWindowBytes: 128 * 1024 * 1024,
};

/**
 * Segments that just left the playlist stay fetchable this long in number: a player that read the
 * playlist a moment before the window moved still gets the segment it asks for.
 */
const RETIRED_SEGMENTS = 3;

export interface Segment {
  readonly seq: number;
  readonly durationS: number;
  readonly data: Buffer;
  /** A publish began here (EXT-X-DISCONTINUITY before it). */
  readonly discontinuity: boolean;
}

interface Building {
  chunks: Buffer[];
  bytes: number;
  startMs: number;
  lastMs: number;
  /** The last step between two timestamps, to estimate the duration of the final frame. */
  stepMs: number;
  discontinuity: boolean;
}

/**
 * One stream's live HLS, in memory: MPEG-TS segments cut at key frames (by time for audio-only
 * streams) and the sliding-window playlist over them (RFC 8216). It outlives a publish, so a
 * publisher that comes back continues the playlist after an EXT-X-DISCONTINUITY, until its owner
 * ends it (`seal`: EXT-X-ENDLIST). The playlist only ever changes as RFC 8216 §6.2.1 allows:
 * lines appended, segments removed from the front, and ENDLIST added once, never taken back, so
 * an ended stream takes no publisher again. Memory is bounded by the window plus one segment.
 */
export class HlsStream {
  private segments: Segment[] = [];
  private retired: Segment[] = [];
  private cur: Building | null = null;
  private muxer: TsMuxer | null = null;
  private clock = new TimestampUnwrapper();
  private tracks: TrackSource | null = null;
  private nextSeq: number;
  private generation = 0;
  private pendingDiscontinuity = false;
  /** Discontinuities that slid out of the window (EXT-X-DISCONTINUITY-SEQUENCE, RFC 8216 §4.3.3.3). */
  private discontinuitySeq = 0;
  private maxDurationS = 0;
  private windowBytes = 0;
  private waiters = new Set<() => void>();
  /** Called with each segment as it is cut (the on_hls hook). */
  onSegment: ((seg: Segment) => void) | null = null;
  /** A publisher's sink is attached (from attach to its end). */
  private publishing = false;
  /** EXT-X-ENDLIST: the playlist is final. */
  ended = false;
  /** Segments dropped for exceeding maxSegmentBytes. */
  oversized = 0;

  /**
   * @param firstSeq where numbering starts. Names must not repeat what a cache may still hold from
   * an earlier stream of the same name, so the owner starts from the clock rather than from 0.
   */
  constructor(
    readonly stream: string,
    private readonly limits: HlsLimits,
    firstSeq = 0,
  ) {
    this.nextSeq = firstSeq;
  }

  /** A publish starts (or starts again): the returned sink receives its packets. */
  attach(tracks: TrackSource): Sink {
    if (this.ended) throw new Error(`HLS playlist ${this.stream} has ended: a playlist never loses EXT-X-ENDLIST (RFC 8216 §6.2.1)`);
    const gen = ++this.generation;
    this.tracks = tracks;
    this.publishing = true;
    this.text = null;
    this.cur = null;
    this.muxer = new TsMuxer(tracks.tracks());
    this.clock = new TimestampUnwrapper();
    this.pendingDiscontinuity = gen > 1;
    return {
      backlog: () => 0,
      write: (batch: Batch) => {
        if (gen !== this.generation) return;
        for (const p of batch.packets) this.packet(p);
      },
      end: (_reason: EndReason) => {
        if (gen === this.generation) this.finish();
      },
    };
  }

  /** No publisher is attached: a new one may continue the playlist, or the owner may seal it. */
  get idle(): boolean {
    return !this.publishing;
  }

  /** The number the next segment gets: a playlist that replaces this one starts above it. */
  get nextSequence(): number {
    return this.nextSeq;
  }

  /** No publisher is coming back: ENDLIST, for good. False while one is attached. */
  seal(): boolean {
    if (this.publishing) return false;
    if (!this.ended) {
      this.ended = true;
      this.text = null;
      for (const w of [...this.waiters]) w();
    }
    return true;
  }

  get bytes(): number {
    return this.windowBytes + this.retired.reduce((n, s) => n + s.data.length, 0) + (this.cur?.bytes ?? 0);
  }

  /** Segments in the playlist now, oldest first. */
  window(): readonly Segment[] {
    return this.segments;
  }

  segment(seq: number): Segment | undefined {
    return this.segments.find((s) => s.seq === seq) ?? this.retired.find((s) => s.seq === seq);
  }

  uri(seq: number): string {
    return `${this.stream}-${seq}.ts`;
  }

  /** Resolves true once the playlist lists a segment (or the stream ended), false after `ms`. */
  ready(ms: number): Promise<boolean> {
    if (this.segments.length > 0) return Promise.resolve(true);
    if (this.ended) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.segments.length > 0);
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** The playlist as last rendered; null once a segment, a publish or its end changed it. */
  private text: string | null = null;

  /** Rendered once per change: every viewer polls it, and the front door compares it by identity. */
  playlist(): string {
    return (this.text ??= this.render());
  }

  private render(): string {
    const first = this.segments[0];
    // The target must cover every EXTINF rounded (RFC 8216 §4.3.3.1) and should not change, so it only grows.
    const target = Math.max(1, Math.ceil(this.maxDurationS));
    let out = `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:${target}\n#EXT-X-MEDIA-SEQUENCE:${first ? first.seq : this.nextSeq}\n`;
    if (this.discontinuitySeq > 0) out += `#EXT-X-DISCONTINUITY-SEQUENCE:${this.discontinuitySeq}\n`;
    for (const s of this.segments) {
      if (s.discontinuity) out += '#EXT-X-DISCONTINUITY\n';
      out += `#EXTINF:${s.durationS.toFixed(3)},\n${this.uri(s.seq)}\n`;
    }
    if (this.ended) out += '#EXT-X-ENDLIST\n';
    return out;
  }

  private packet(p: MediaPacket): void {
    const muxer = this.muxer!;
    if (p.kind === 'script') return;
    if (p.header) {
      muxer.mux(p); // keeps the codec config for the frames that follow
      return;
    }
    const ms = this.clock.unwrap(p.dts);
    const video = this.tracks!.hasVideo;
    const boundary = video ? p.kind === 'video' && p.keyframe : p.kind === 'audio';
    if (boundary) {
      if (!this.cur) this.open(ms);
      else if (ms - this.cur.startMs >= this.limits.fragmentS * 1000) {
        this.close(ms);
        this.open(ms);
      }
    }
    const cur = this.cur;
    if (!cur) return; // before the first key frame: nothing to start a segment with
    const ts = muxer.mux(p);
    if (ts.length === 0) return;
    cur.chunks.push(ts);
    cur.bytes += ts.length;
    if (ms > cur.lastMs) {
      cur.stepMs = ms - cur.lastMs;
      cur.lastMs = ms;
    }
    if (cur.bytes > this.limits.maxSegmentBytes) {
      // No key frame for far too long: keep memory bounded and start over at the next one.
      this.oversized++;
      this.cur = null;
      this.pendingDiscontinuity = true;
    }
  }

  private open(ms: number): void {
    const muxer = this.muxer!;
    muxer.setTracks(this.tracks!.tracks());
    const tables = muxer.tables();
    this.cur = { chunks: [tables], bytes: tables.length, startMs: ms, lastMs: ms, stepMs: 0, discontinuity: this.pendingDiscontinuity };
    this.pendingDiscontinuity = false;
  }

  private close(endMs: number): void {
    const cur = this.cur!;
    this.cur = null;
    const durationS = Math.max(0.001, (endMs - cur.startMs) / 1000);
    const seg: Segment = { seq: this.nextSeq++, durationS, data: Buffer.concat(cur.chunks, cur.bytes), discontinuity: cur.discontinuity };
    this.segments.push(seg);
    this.windowBytes += seg.data.length;
    if (durationS > this.maxDurationS) this.maxDurationS = durationS;
    this.trim();
    this.text = null;
    for (const w of [...this.waiters]) w();
    this.onSegment?.(seg);
  }

  /** Slides the window: at most hls_window seconds (and maxWindowBytes), never fewer than one segment. */
  private trim(): void {
    let total = this.segments.reduce((n, s) => n + s.durationS, 0);
    while (this.segments.length > 1 && (total - this.segments[0].durationS >= this.limits.windowS || this.windowBytes > this.limits.maxWindowBytes)) {
      const old = this.segments.shift()!;
      total -= old.durationS;
      this.windowBytes -= old.data.length;
      if (old.discontinuity) this.discontinuitySeq++;
      this.retired.push(old);
      if (this.retired.length > RETIRED_SEGMENTS) this.retired.shift();
    }
  }

  /**
   * The publisher stopped: the partial segment becomes the last one. ENDLIST waits for the owner
   * (`seal`), since an encoder that reconnects continues this playlist.
   */
  private finish(): void {
    const cur = this.cur;
    if (cur && cur.chunks.length > 1) this.close(cur.lastMs + cur.stepMs);
    this.cur = null;
    this.publishing = false;
  }
}
