import type { MediaPacket } from '../media/packet.js';
import type { Batch, EndReason, Sink } from '../live/types.js';

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

export interface Segment {
  readonly seq: number;
  readonly durationS: number;
  readonly data: Buffer;
  /** A publish began here (EXT-X-DISCONTINUITY before it). */
  readonly discontinuity: boolean;
}

/**
 * Segments that just left the playlist stay fetchable this long in number: a player that read the
 * playlist a moment before the window moved still gets the segment it asks for.
 */
const RETIRED_SEGMENTS = 3;

/**
 * What one stream's live HLS playlist is, whatever its segments hold (MPEG-TS in hls-segmenter.ts,
 * fMP4 in hls-fmp4.ts): publishes that come and go, the sliding window of segments, and the
 * end. It outlives a publish, so a publisher that comes back continues the playlist after an
 * EXT-X-DISCONTINUITY, until its owner ends it (`seal`: EXT-X-ENDLIST). The playlist only ever
 * changes as RFC 8216 §6.2.1 allows: lines appended, segments removed from the front, and ENDLIST
 * added once, never taken back, so an ended stream takes no publisher again. Memory is bounded by
 * the window (hls_window seconds and maxWindowBytes) plus the segment being cut.
 *
 * A subclass cuts segments from packets (`packet`), starts afresh for each publish (`begin`),
 * keeps what is cut when the publisher leaves (`finish`), and hands each segment to `add`.
 */
export abstract class LiveHlsStream<S extends Segment, Tracks, L extends HlsLimits = HlsLimits> {
  protected segments: S[] = [];
  protected retired: S[] = [];
  protected nextSeq: number;
  /** The next segment follows a gap: a new publish, a new decoder configuration, a dropped segment. */
  protected pendingDiscontinuity = false;
  protected windowBytes = 0;
  /** Discontinuities that slid out of the window (EXT-X-DISCONTINUITY-SEQUENCE, RFC 8216 §4.3.3.3). */
  discontinuitySeq = 0;
  /** The longest segment so far: the target duration covers it and only grows (RFC 8216 §4.3.3.1). */
  maxDurationS = 0;
  /** EXT-X-ENDLIST: the playlist is final. */
  ended = false;
  /** Segments dropped for exceeding maxSegmentBytes. */
  oversized = 0;
  /** Called with each segment as it is cut (the on_hls hook). */
  onSegment: ((seg: Segment) => void) | null = null;
  /** Bumped at every change a reader may see: renderers cache by it. */
  version = 0;
  /** The publish whose packets are taken: an older publisher's sink goes quiet. */
  private generation = 0;
  /** A publisher's sink is attached (from attach to its end). */
  private publishing = false;
  /** Called after every change a waiting request may want: a part, a segment, the end. */
  private readonly listeners = new Set<() => void>();

  /**
   * @param firstSeq where numbering starts. Names must not repeat what a cache may still hold from
   * an earlier stream of the same name, so the owner starts from the clock rather than from 0.
   */
  constructor(
    readonly stream: string,
    readonly limits: L,
    firstSeq = 0,
  ) {
    this.nextSeq = firstSeq;
  }

  /** A publish starts (or starts again): the returned sink receives its packets. */
  attach(tracks: Tracks): Sink {
    if (this.ended) throw new Error(`HLS playlist ${this.stream} has ended: a playlist never loses EXT-X-ENDLIST (RFC 8216 §6.2.1)`);
    const gen = ++this.generation;
    this.publishing = true;
    this.begin(tracks);
    this.pendingDiscontinuity = gen > 1;
    this.changed();
    return {
      backlog: () => 0,
      write: (batch: Batch) => {
        if (gen !== this.generation) return;
        for (const p of batch.packets) this.packet(p);
      },
      end: (_reason: EndReason) => {
        if (gen !== this.generation) return;
        this.finish();
        this.publishing = false;
        this.changed();
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
      this.changed();
    }
    return true;
  }

  /** Segments in the playlist now, oldest first. */
  window(): readonly S[] {
    return this.segments;
  }

  /** A segment in the playlist or just out of it. */
  segment(seq: number): S | undefined {
    return this.segments.find((s) => s.seq === seq) ?? this.retired.find((s) => s.seq === seq);
  }

  listen(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves true once the playlist lists a segment (or the stream ended), false after `ms`. */
  ready(ms: number): Promise<boolean> {
    if (this.segments.length > 0) return Promise.resolve(true);
    if (this.ended) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        if (this.segments.length === 0 && !this.ended && !timedOut) return;
        clearTimeout(timer);
        off();
        resolve(this.segments.length > 0);
      };
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        done();
      }, ms);
      const off = this.listen(done);
    });
  }

  /** The bytes of the window and of the segments just out of it. */
  protected listedBytes(): number {
    let n = this.windowBytes;
    for (const s of this.retired) n += s.data.length;
    return n;
  }

  protected changed(): void {
    this.version++;
    for (const fn of [...this.listeners]) fn();
  }

  /** A publish starts: what the last one left half-cut is dropped. */
  protected abstract begin(tracks: Tracks): void;
  protected abstract packet(p: MediaPacket): void;
  /** The publisher stopped: what was cut so far becomes the last segment (ENDLIST waits for `seal`). */
  protected abstract finish(): void;

  /** A segment is complete: into the playlist, the window slid, readers told. */
  protected add(seg: S): void {
    this.segments.push(seg);
    this.windowBytes += seg.data.length;
    if (seg.durationS > this.maxDurationS) this.maxDurationS = seg.durationS;
    this.trim();
    this.changed();
    this.onSegment?.(seg);
  }

  /** Slides the window: at most hls_window seconds (and maxWindowBytes), never fewer than one segment. */
  protected trim(): void {
    let total = this.segments.reduce((n, s) => n + s.durationS, 0);
    while (this.segments.length > 1 && (total - this.segments[0].durationS >= this.limits.windowS || this.windowBytes > this.limits.maxWindowBytes)) {
      const old = this.segments.shift()!;
      total -= old.durationS;
      this.windowBytes -= old.data.length;
      if (old.discontinuity) this.discontinuitySeq++;
      this.retire(old);
    }
  }

  /** A segment left the window: still fetchable for a while. */
  protected retire(old: S): void {
    this.retired.push(old);
    if (this.retired.length > RETIRED_SEGMENTS) this.retired.shift();
  }
}
