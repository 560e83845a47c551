import { AUDIO_AAC, type MediaPacket } from '../media/packet.js';
import { initSegment, mediaSegment, Mp4Error, Mp4Remuxer } from '../media/mp4/index.js';
import { videoFrame } from '../media/video.js';
import type { Batch, EndReason, Sink } from '../live/types.js';
import type { HlsLimits, Segment } from './hls-segmenter.js';
import { renderFmp4Playlist } from './hls-fmp4-playlist.js';

/** What the fMP4 segmenter needs to know about the stream it cuts. */
export interface Fmp4TrackSource {
  readonly hasVideo: boolean;
  readonly hasAudio: boolean;
}

export interface Fmp4Limits extends HlsLimits {
  /** LL-HLS part target in seconds (hls_part); 0: plain fMP4 HLS, no parts listed. */
  partS: number;
}

/** An init segment (EXT-X-MAP); `id` names it and is never reused for other bytes. */
export interface InitSection {
  readonly id: number;
  readonly data: Buffer;
}

/** A partial segment (RFC 8216bis §4.4.4.9): one or more CMAF chunks, a slice of its segment's bytes. */
export interface Part {
  readonly seq: number;
  readonly index: number;
  readonly durationS: number;
  /** Starts with a key frame (INDEPENDENT=YES). */
  readonly independent: boolean;
  readonly data: Buffer;
}

export interface Fmp4Segment extends Segment {
  readonly init: InitSection;
  /** Wall clock (ms) when its first frame arrived: EXT-X-PROGRAM-DATE-TIME, for players' latency readouts. */
  readonly wallMs: number;
  /** Its parts while it is near the live edge (listed as EXT-X-PART); emptied after. */
  parts: Part[];
}

/** The part being cut: its chunks so far, and who streams it as it grows (EXT-X-PRELOAD-HINT). */
export interface GrowingPart {
  readonly seq: number;
  readonly index: number;
  readonly independent: boolean;
  readonly startMs: number;
  chunks: Buffer[];
  bytes: number;
  /** Each chunk as it is cut; null when the part is complete (or abandoned). */
  readonly readers: Set<(chunk: Buffer | null) => void>;
}

interface Building {
  seq: number;
  startMs: number;
  parts: Part[];
  bytes: number;
  discontinuity: boolean;
  init: InitSection;
  wallMs: number;
}

/** Segments that just left the playlist stay fetchable this long in number (as for TS). */
const RETIRED_SEGMENTS = 3;
/**
 * A part closes before a frame that would take it past the target by more than this: frame
 * times in milliseconds jitter by one (30 fps arrives as 33, 33, 34 ms).
 */
const PART_JITTER_MS = 2;
/** Parts are listed for segments within this many target durations of the live edge (RFC 8216bis §6.2.2: at least 3). */
const PART_LISTED_TARGETS = 3;

/**
 * One stream's live HLS in fMP4 (CMAF), in memory: an init segment, segments cut at key frames,
 * and for LL-HLS parts of about `partS` seconds inside them. Every video frame (every AAC frame
 * for audio-only streams) closes one CMAF chunk (moof+mdat) holding the samples before it; a part
 * is a run of chunks and a segment the run of its parts, so parts concatenate to their segment's
 * bytes by construction. The playlist's rules are those of HlsStream (appended only, ENDLIST once).
 */
export class Fmp4HlsStream {
  private segments: Fmp4Segment[] = [];
  private retired: Fmp4Segment[] = [];
  private cur: Building | null = null;
  /** The part being cut (null before the first key frame and after the publisher left). */
  growing: GrowingPart | null = null;
  private rx: Mp4Remuxer | null = null;
  private init: InitSection | null = null;
  private tracks: Fmp4TrackSource | null = null;
  private nextSeq: number;
  private chunkSeq = 1;
  private generation = 0;
  private pendingDiscontinuity = false;
  private publishing = false;
  private stepMs = 40;
  private lastMs = 0;
  private windowBytes = 0;
  discontinuitySeq = 0;
  maxDurationS = 0;
  ended = false;
  oversized = 0;
  /** Each complete segment (the on_hls hook). */
  onSegment: ((seg: Segment) => void) | null = null;
  /** Called after every change a waiting request may want: a part, a segment, the end. */
  private readonly listeners = new Set<() => void>();
  /** Bumped at every change: renderers cache by it. */
  version = 0;
  private text: { version: number; full: string | null; delta: string | null } = { version: -1, full: null, delta: null };

  constructor(
    readonly stream: string,
    readonly limits: Fmp4Limits,
    firstSeq = 0,
  ) {
    this.nextSeq = firstSeq;
  }

  get ll(): boolean {
    return this.limits.partS > 0;
  }

  attach(tracks: Fmp4TrackSource): Sink {
    if (this.ended) throw new Error(`HLS playlist ${this.stream} has ended: a playlist never loses EXT-X-ENDLIST (RFC 8216 §6.2.1)`);
    const gen = ++this.generation;
    this.tracks = tracks;
    this.publishing = true;
    this.abandon();
    this.rx = new Mp4Remuxer(tracks.hasVideo, tracks.hasAudio);
    this.init = null;
    this.pendingDiscontinuity = gen > 1;
    this.changed();
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

  get idle(): boolean {
    return !this.publishing;
  }

  get nextSequence(): number {
    return this.nextSeq;
  }

  seal(): boolean {
    if (this.publishing) return false;
    if (!this.ended) {
      this.ended = true;
      this.changed();
    }
    return true;
  }

  get bytes(): number {
    let n = this.windowBytes + (this.cur?.bytes ?? 0) + (this.growing?.bytes ?? 0);
    for (const s of this.retired) n += s.data.length;
    for (const s of this.segments) for (const p of s.parts) n += p.data.length;
    return n;
  }

  window(): readonly Fmp4Segment[] {
    return this.segments;
  }

  /** The segment being cut, with its parts so far (LL-HLS lists them). */
  building(): { seq: number; parts: readonly Part[]; discontinuity: boolean; init: InitSection; wallMs: number } | null {
    return this.cur;
  }

  segment(seq: number): Fmp4Segment | undefined {
    return this.segments.find((s) => s.seq === seq) ?? this.retired.find((s) => s.seq === seq);
  }

  /** A complete part still listed (or just unlisted), or undefined. */
  part(seq: number, index: number): Part | undefined {
    if (this.cur?.seq === seq) return this.cur.parts[index];
    return this.segment(seq)?.parts[index];
  }

  initSection(id: number): InitSection | undefined {
    if (this.init?.id === id) return this.init;
    return this.segments.find((s) => s.init.id === id)?.init ?? this.retired.find((s) => s.init.id === id)?.init;
  }

  uri(seq: number): string {
    return `${this.stream}-${seq}.m4s`;
  }

  partUri(seq: number, index: number): string {
    return `${this.stream}-${seq}.${index}.m4s`;
  }

  initUri(init: InitSection): string {
    return `${this.stream}-i${init.id}.m4s`;
  }

  /** The last complete segment's number, or the one before the first. */
  get lastSeq(): number {
    return this.segments.length > 0 ? this.segments[this.segments.length - 1].seq : this.nextSeq - 1;
  }

  /**
   * Whether the playlist holds segment `msn` complete, or (with `part`) that part of it: what a
   * blocking reload waits for (RFC 8216bis §6.2.5.2: that one "or later").
   */
  reached(msn: number, part: number | null): boolean {
    if (this.ended || msn <= this.lastSeq) return true;
    if (part === null || !this.cur) return false;
    return msn < this.cur.seq || (msn === this.cur.seq && part < this.cur.parts.length);
  }

  /**
   * The playlist, rendered once per change and kind (`skip`: the delta update): a thousand held
   * reloads released by one part share one text.
   */
  playlist(skip = false): string {
    if (this.text.version !== this.version) this.text = { version: this.version, full: null, delta: null };
    if (skip && this.ll) return (this.text.delta ??= renderFmp4Playlist(this, true));
    return (this.text.full ??= renderFmp4Playlist(this, false));
  }

  listen(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

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

  private changed(): void {
    this.version++;
    for (const fn of [...this.listeners]) fn();
  }

  private packet(p: MediaPacket): void {
    if (p.kind === 'script') return;
    const rx = this.rx!;
    const ms = rx.timeOf(p);
    const video = this.tracks!.hasVideo;
    if (!p.header) {
      let clock = false;
      let key = false;
      if (video && p.kind === 'video') {
        const f = videoFrame(p);
        clock = f?.part === 'frame';
        key = clock && f!.key;
      } else if (!video && p.kind === 'audio' && p.codec === AUDIO_AAC) {
        clock = true;
        key = true;
      }
      if (clock) this.clock(ms, key);
    }
    rx.push(p, ms);
    if (rx.configChanged) {
      // A new decoder configuration mid-publish: a new init segment from the next key frame on.
      rx.configChanged = false;
      this.abandon();
      this.init = null;
      this.pendingDiscontinuity = true;
    }
  }

  /** A frame of the clock track arrives at `ms`: the samples before it become a chunk, and parts and segments are cut. */
  private clock(ms: number, key: boolean): void {
    if (ms > this.lastMs) {
      this.stepMs = ms - this.lastMs;
      this.lastMs = ms;
    }
    if (this.growing) this.chunk(ms);
    else this.rx!.take(); // before the first key frame: nothing to start a segment with
    const cur = this.cur;
    if (!cur) {
      if (key) this.open(ms);
      return;
    }
    if (key && ms - cur.startMs >= this.limits.fragmentS * 1000) {
      this.closePart(ms);
      this.close();
      this.open(ms);
      return;
    }
    const part = this.growing;
    if (this.ll && part && part.chunks.length > 0 && ms + this.stepMs + PART_JITTER_MS > part.startMs + this.limits.partS * 1000) {
      this.closePart(ms);
      this.growing = newPart(cur.seq, cur.parts.length, key, ms);
    }
  }

  private chunk(untilMs: number): void {
    const rx = this.rx!;
    if (!rx.holding) return;
    let bytes: Buffer;
    try {
      bytes = mediaSegment(this.chunkSeq++ >>> 0, rx.take(untilMs));
    } catch (e) {
      if (!(e instanceof Mp4Error)) throw e;
      return;
    }
    const part = this.growing!;
    part.chunks.push(bytes);
    part.bytes += bytes.length;
    for (const r of [...part.readers]) r(bytes);
    if (this.cur && this.cur.bytes + part.bytes > this.limits.maxSegmentBytes) {
      // No key frame for far too long: keep memory bounded and start over at the next one.
      this.oversized++;
      this.abandon();
      this.pendingDiscontinuity = true;
      this.changed();
    }
  }

  private open(ms: number): void {
    const tracks = this.rx!.tracks();
    if (!tracks) return;
    if (!this.init) this.init = { id: this.nextSeq, data: initSegment(tracks) };
    this.cur = { seq: this.nextSeq++, startMs: ms, parts: [], bytes: 0, discontinuity: this.pendingDiscontinuity, init: this.init, wallMs: Date.now() };
    this.pendingDiscontinuity = false;
    this.growing = newPart(this.cur.seq, 0, true, ms);
  }

  private closePart(endMs: number): void {
    const g = this.growing;
    const cur = this.cur;
    this.growing = null;
    if (!g || !cur) return;
    for (const r of [...g.readers]) r(null);
    if (g.chunks.length === 0) return;
    const part: Part = { seq: g.seq, index: g.index, durationS: Math.max(0.001, (endMs - g.startMs) / 1000), independent: g.independent, data: Buffer.concat(g.chunks, g.bytes) };
    cur.parts.push(part);
    cur.bytes += part.data.length;
    this.changed();
  }

  private close(): void {
    const cur = this.cur!;
    this.cur = null;
    if (cur.parts.length === 0) return;
    let durationS = 0;
    for (const p of cur.parts) durationS += p.durationS;
    const data = Buffer.concat(cur.parts.map((p) => p.data), cur.bytes);
    const seg: Fmp4Segment = { seq: cur.seq, durationS, data, discontinuity: cur.discontinuity, init: cur.init, wallMs: cur.wallMs, parts: this.ll ? cur.parts : [] };
    this.segments.push(seg);
    this.windowBytes += data.length;
    if (durationS > this.maxDurationS) this.maxDurationS = durationS;
    this.trim();
    this.changed();
    this.onSegment?.(seg);
  }

  /** Slides the window as HlsStream does, and unlists parts older than PART_LISTED_TARGETS target durations. */
  private trim(): void {
    let total = this.segments.reduce((n, s) => n + s.durationS, 0);
    while (this.segments.length > 1 && (total - this.segments[0].durationS >= this.limits.windowS || this.windowBytes > this.limits.maxWindowBytes)) {
      const old = this.segments.shift()!;
      total -= old.durationS;
      this.windowBytes -= old.data.length;
      if (old.discontinuity) this.discontinuitySeq++;
      old.parts = [];
      this.retired.push(old);
      if (this.retired.length > RETIRED_SEGMENTS) this.retired.shift();
    }
    const horizon = PART_LISTED_TARGETS * Math.max(1, Math.ceil(this.maxDurationS));
    let fromEnd = 0;
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (fromEnd >= horizon) s.parts = [];
      fromEnd += s.durationS;
    }
  }

  /** Drops the segment being cut (a republish, a new configuration, an oversized segment). */
  private abandon(): void {
    const g = this.growing;
    this.growing = null;
    if (g) for (const r of [...g.readers]) r(null);
    this.cur = null;
  }

  /** The publisher stopped: what was cut so far becomes the last segment. */
  private finish(): void {
    if (this.growing && this.rx) {
      const end = this.lastMs + this.stepMs;
      this.chunk(end);
      this.closePart(end);
    }
    if (this.cur) this.close();
    this.abandon();
    this.publishing = false;
    this.changed();
  }
}

function newPart(seq: number, index: number, independent: boolean, startMs: number): GrowingPart {
  return { seq, index, independent, startMs, chunks: [], bytes: 0, readers: new Set() };
}
