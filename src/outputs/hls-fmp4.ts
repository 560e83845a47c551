import { AUDIO_AAC, type MediaPacket } from '../media/packet.js';
import { initSegment, mediaSegment, Mp4Error, Mp4Remuxer } from '../media/mp4/index.js';
import { videoFrame } from '../media/video.js';
import { LiveHlsStream } from './hls-live.js';
import { type Fmp4Limits, type Fmp4Segment, type Fmp4TrackSource, type GrowingPart, type InitSection, newPart, type Part } from './hls-fmp4-types.js';
import { renderFmp4Playlist } from './hls-fmp4-playlist.js';

export type { Fmp4Limits, Fmp4Segment, Fmp4TrackSource, GrowingPart, InitSection, Part } from './hls-fmp4-types.js';

interface Building {
  seq: number;
  startMs: number;
  parts: Part[];
  bytes: number;
  discontinuity: boolean;
  init: InitSection;
  wallMs: number;
}

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
export class Fmp4HlsStream extends LiveHlsStream<Fmp4Segment, Fmp4TrackSource, Fmp4Limits> {
  private cur: Building | null = null;
  /** The part being cut (null before the first key frame and after the publisher left). */
  growing: GrowingPart | null = null;
  private rx: Mp4Remuxer | null = null;
  private init: InitSection | null = null;
  private tracks: Fmp4TrackSource | null = null;
  private chunkSeq = 1;
  private stepMs = 40;
  private lastMs = 0;
  private text: { version: number; full: string | null; delta: string | null } = { version: -1, full: null, delta: null };

  get ll(): boolean {
    return this.limits.partS > 0;
  }

  protected begin(tracks: Fmp4TrackSource): void {
    this.tracks = tracks;
    this.abandon();
    this.rx = new Mp4Remuxer(tracks.hasVideo, tracks.hasAudio);
    this.init = null;
  }

  get bytes(): number {
    let n = this.listedBytes() + (this.cur?.bytes ?? 0) + (this.growing?.bytes ?? 0);
    for (const s of this.segments) for (const p of s.parts) n += p.data.length;
    return n;
  }

  /** The segment being cut, with its parts so far (LL-HLS lists them). */
  building(): { seq: number; parts: readonly Part[]; discontinuity: boolean; init: InitSection; wallMs: number } | null {
    return this.cur;
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

  protected packet(p: MediaPacket): void {
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
    this.add({ seq: cur.seq, durationS, data, discontinuity: cur.discontinuity, init: cur.init, wallMs: cur.wallMs, parts: this.ll ? cur.parts : [] });
  }

  /** A segment out of the window lists no parts. */
  protected override retire(old: Fmp4Segment): void {
    old.parts = [];
    super.retire(old);
  }

  /** Slides the window, and unlists parts older than PART_LISTED_TARGETS target durations. */
  protected override trim(): void {
    super.trim();
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

  protected finish(): void {
    if (this.growing && this.rx) {
      const end = this.lastMs + this.stepMs;
      this.chunk(end);
      this.closePart(end);
    }
    if (this.cur) this.close();
    this.abandon();
  }
}
