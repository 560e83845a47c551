import type { MediaPacket } from '../media/packet.js';
import { TimestampUnwrapper, TsMuxer } from '../media/ts/muxer.js';
import type { TsTracks } from '../media/ts/muxer.js';
import { LiveHlsStream, type Segment } from './hls-live.js';

/** What a segmenter needs to know about the stream it cuts: its tracks, asked at each cut. */
export interface TrackSource {
  readonly hasVideo: boolean;
  tracks(): TsTracks;
}

export { DEFAULT_HLS_LIMITS, type HlsLimits, type Segment } from './hls-live.js';

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
 * streams) and the sliding-window playlist over them (RFC 8216). Publishes, the window and the
 * end are LiveHlsStream's (src/outputs/hls-live.ts).
 */
export class HlsStream extends LiveHlsStream<Segment, TrackSource> {
  private cur: Building | null = null;
  private muxer: TsMuxer | null = null;
  private clock = new TimestampUnwrapper();
  private tracks: TrackSource | null = null;

  protected begin(tracks: TrackSource): void {
    this.tracks = tracks;
    this.cur = null;
    this.muxer = new TsMuxer(tracks.tracks());
    this.clock = new TimestampUnwrapper();
  }

  get bytes(): number {
    return this.listedBytes() + (this.cur?.bytes ?? 0);
  }

  uri(seq: number): string {
    return `${this.stream}-${seq}.ts`;
  }

  /** The playlist as last rendered, and the version it shows. */
  private text = { version: -1, text: '' };

  /** Rendered once per change: every viewer polls it, and the front door compares it by identity. */
  playlist(): string {
    if (this.text.version !== this.version) this.text = { version: this.version, text: this.render() };
    return this.text.text;
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

  protected packet(p: MediaPacket): void {
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
    this.add({ seq: this.nextSeq++, durationS, data: Buffer.concat(cur.chunks, cur.bytes), discontinuity: cur.discontinuity });
  }

  /** The partial segment becomes the last one: an encoder that reconnects continues this playlist. */
  protected finish(): void {
    const cur = this.cur;
    if (cur && cur.chunks.length > 1) this.close(cur.lastMs + cur.stepMs);
    this.cur = null;
  }
}
