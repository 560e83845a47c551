import { AUDIO_AAC, AUDIO_MP3, type MediaPacket } from '../media/packet.js';
import { videoFrame } from '../media/video.js';
import type { FileEncoder, Headers, Timed } from './flv-file.js';
import { childBoxes } from '../media/mp4/box.js';
import { LATE_TRACK_MS } from './session.js';

/**
 * The fMP4 writer (src/media/mp4/) as this file uses it, by shape: tracks and samples in, init
 * segment and fragments out, and its packet→sample remuxer. Injected, so the recording's logic
 * does not depend on which build of the writer is present.
 */
export interface Mp4TrackLike { id: number; kind: 'video' | 'audio'; timescale: number }
export interface Mp4RunLike { track: Mp4TrackLike; samples: readonly { dts: number }[] }
export interface Mp4RemuxerLike {
  push(p: MediaPacket, ms: number): boolean;
  take(untilMs?: number): Mp4RunLike[];
  tracks(): Mp4TrackLike[] | null;
  readonly holding: boolean;
  /** MP3's track from its first frame (it has no configuration record); false when its header cannot be read. */
  setMp3(frame: Buffer): boolean;
}
export interface Mp4Writer {
  initSegment(tracks: readonly never[]): Buffer;
  mediaSegment(sequence: number, runs: readonly never[]): Buffer;
  remuxer(wantVideo: boolean, wantAudio: boolean): Mp4RemuxerLike;
}

/** A track that appears this soon after a file began joins it (session.ts): the moov of video alone waits this long. */
const JOIN_WINDOW_MS = LATE_TRACK_MS;

/** Audio-only fragments (no key frames to cut at) are cut this often; issue's "one moof+mdat per GOP or per second". */
const AUDIO_FRAGMENT_MS = 1000;
/** A GOP longer than this is cut inside (its fragment starts on a non-sync sample): a crash loses at most this much. */
const MAX_FRAGMENT_MS = 10_000;

/** Fragments the mfra indexes at most: 28 h of one-second GOPs, about 10 MiB held per recording. */
const MAX_INDEXED_FRAGMENTS = 100_000;

interface FragmentIndex {
  /** Start time of the fragment, per track id, in the track's timescale. */
  times: Map<number, number>;
  moofAt: number;
}

/**
 * A fragmented MP4 recording: moov up front, one moof+mdat per GOP (per second without video),
 * so a file cut short by a crash plays up to its last whole fragment. At a normal close the
 * moov's durations are filled in and an `mfra` index is appended (ISO/IEC 14496-12 §8.8.9), so
 * the finished file reports its length and seeks without reading every fragment.
 */
export class Mp4FileEncoder implements FileEncoder {
  private readonly remux: Mp4RemuxerLike;
  private seq = 1;
  private length = 0;
  private init: Buffer = Buffer.alloc(0);
  private fragStartMs = -1;
  private readonly index: FragmentIndex[] = [];
  private readonly timescales = new Map<number, number>();
  /** Fragments are cut at video key frames; without video, every AUDIO_FRAGMENT_MS. */
  private video = false;
  withoutAudio = false;
  /**
   * Video without audio yet: the moov (and with it the first fragment) waits up to JOIN_WINDOW_MS
   * for an audio track that joins the file (MP3's first frame can come after the first key frame).
   */
  private joinable = false;
  private initOut = false;

  private constructor(private readonly writer: Mp4Writer, headers: Headers) {
    this.remux = writer.remuxer(headers.video !== null, headers.audio?.codec === AUDIO_AAC);
    for (const h of [headers.video, headers.audio]) if (h?.header) this.remux.push(h, 0);
    // MP3's first frame stands for its header (session.ts); it comes again as the first sample.
    // A header that cannot be read leaves the audio out, the video is still recorded.
    const a = headers.audio;
    if (a?.codec === AUDIO_MP3 && a.data.length > 1) this.remux.setMp3(a.data.subarray(1));
  }

  /** Null when the tracks cannot go in MP4 here (no AVC/HEVC video and no AAC or readable MP3 audio). */
  static create(writer: Mp4Writer, headers: Headers): Mp4FileEncoder | null {
    const e = new Mp4FileEncoder(writer, headers);
    const tracks = e.remux.tracks();
    if (!tracks) return null;
    e.setTracks(tracks);
    e.video = tracks.some((t) => t.kind === 'video');
    const audio = tracks.some((t) => t.kind === 'audio');
    e.withoutAudio = headers.audio !== null && !audio;
    e.joinable = e.video && !audio;
    return e;
  }

  begin(): Buffer {
    return this.joinable ? Buffer.alloc(0) : this.writeInit();
  }

  /**
   * An audio track that appears just after the file began (AAC's sequence header, or MP3's first
   * frame): true when it is in the file, which it can be while the moov is not written yet.
   */
  join(p: MediaPacket): boolean {
    if (!this.joinable || this.initOut || p.kind !== 'audio') return false;
    if (p.codec === AUDIO_MP3 && p.data.length > 1) this.remux.setMp3(p.data.subarray(1));
    else if (p.header) this.remux.push(p, 0);
    const tracks = this.remux.tracks();
    if (!tracks?.some((t) => t.kind === 'audio')) return false;
    this.setTracks(tracks);
    this.joinable = false;
    return true;
  }

  private setTracks(tracks: Mp4TrackLike[]): void {
    for (const t of tracks) this.timescales.set(t.id, t.timescale);
    this.init = this.writer.initSegment(tracks as never[]);
  }

  private writeInit(): Buffer {
    this.initOut = true;
    this.length = this.init.length;
    return this.init;
  }

  add(run: readonly Timed[]): Buffer {
    const out: Buffer[] = [];
    const limit = this.video ? MAX_FRAGMENT_MS : AUDIO_FRAGMENT_MS;
    for (const { p, t } of run) {
      const key = this.video && p.kind === 'video' && videoFrame(p)?.key === true;
      const due = this.fragStartMs >= 0 && (key || t - this.fragStartMs >= limit);
      const waiting = this.joinable && !this.initOut && t - this.fragStartMs < JOIN_WINDOW_MS;
      if (due && !waiting && this.remux.holding) out.push(this.fragment(t));
      if (this.remux.push(p, t) && this.fragStartMs < 0) this.fragStartMs = t;
    }
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  end(durationMs: number): { tail: Buffer; patches: { at: number; data: Buffer }[] } {
    const parts: Buffer[] = [];
    if (!this.initOut) parts.push(this.writeInit());
    if (this.remux.holding) parts.push(this.fragment());
    parts.push(this.mfra());
    return { tail: Buffer.concat(parts), patches: durationPatches(this.init, durationMs) };
  }

  private fragment(untilMs?: number): Buffer {
    const head = this.initOut ? null : this.writeInit();
    const runs = this.remux.take(untilMs);
    const times = new Map<number, number>();
    for (const r of runs) if (r.samples.length > 0) times.set(r.track.id, r.samples[0].dts);
    const frag = this.writer.mediaSegment(this.seq++, runs as never[]);
    // The index stops growing past its bound: seeks beyond it read fragments as they come.
    if (this.index.length < MAX_INDEXED_FRAGMENTS) this.index.push({ times, moofAt: this.length });
    this.length += frag.length;
    this.fragStartMs = untilMs ?? -1;
    return head ? Buffer.concat([head, frag]) : frag;
  }

  /** mfra: per track a tfra (v1: 64-bit time and offset; traf, trun and sample number 1 each, in 1 byte), then mfro. */
  private mfra(): Buffer {
    const tfras: Buffer[] = [];
    for (const id of this.timescales.keys()) {
      const entries = this.index.filter((f) => f.times.has(id));
      const trafNumber = (f: FragmentIndex) => [...f.times.keys()].indexOf(id) + 1;
      const b = Buffer.alloc(12 + 12 + entries.length * 19);
      b.writeUInt32BE(b.length, 0);
      b.write('tfra', 4, 'latin1');
      b.writeUInt32BE(0x01000000, 8);
      b.writeUInt32BE(id, 12);
      b.writeUInt32BE(0, 16); // length_size_of_traf_num, trun_num, sample_num: 1 byte each
      b.writeUInt32BE(entries.length, 20);
      let o = 24;
      for (const f of entries) {
        b.writeBigUInt64BE(BigInt(f.times.get(id)!), o);
        b.writeBigUInt64BE(BigInt(f.moofAt), o + 8);
        b[o + 16] = trafNumber(f);
        b[o + 17] = 1;
        b[o + 18] = 1;
        o += 19;
      }
      tfras.push(b);
    }
    const size = 8 + tfras.reduce((n, b) => n + b.length, 0) + 16;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(size);
    head.write('mfra', 4, 'latin1');
    const mfro = Buffer.alloc(16);
    mfro.writeUInt32BE(16);
    mfro.write('mfro', 4, 'latin1');
    mfro.writeUInt32BE(size, 12);
    return Buffer.concat([head, ...tfras, mfro]);
  }
}

/**
 * The moov's durations (mvhd and tkhd in the movie timescale, mdhd in each track's), which a
 * fragmented file leaves 0 while it grows, as rewrites of the init segment's bytes at close.
 */
export function durationPatches(init: Buffer, durationMs: number): { at: number; data: Buffer }[] {
  const out: { at: number; data: Buffer }[] = [];
  const field = (at: number, v1: boolean, value: number) => {
    const d = Buffer.alloc(v1 ? 8 : 4);
    if (v1) d.writeBigUInt64BE(BigInt(Math.round(value)));
    else d.writeUInt32BE(Math.min(0xffffffff, Math.round(value)));
    out.push({ at, data: d });
  };
  for (const [type, s, e] of childBoxes(init, 0, init.length)) {
    if (type !== 'moov') continue;
    let movieScale = 1000;
    for (const [t, ms] of childBoxes(init, s + 8, e)) {
      if (t !== 'mvhd') continue;
      const v1 = init[ms + 8] === 1;
      movieScale = init.readUInt32BE(ms + (v1 ? 28 : 20));
      field(ms + (v1 ? 32 : 24), v1, (durationMs * movieScale) / 1000);
    }
    for (const [t, ts, te] of childBoxes(init, s + 8, e)) {
      if (t !== 'trak') continue;
      for (const [c, cs, ce] of childBoxes(init, ts + 8, te)) {
        if (c === 'tkhd') {
          const v1 = init[cs + 8] === 1;
          field(cs + (v1 ? 36 : 28), v1, (durationMs * movieScale) / 1000);
        }
        if (c !== 'mdia') continue;
        for (const [m, mds] of childBoxes(init, cs + 8, ce)) {
          if (m !== 'mdhd') continue;
          const v1 = init[mds + 8] === 1;
          const scale = init.readUInt32BE(mds + (v1 ? 28 : 20));
          field(mds + (v1 ? 32 : 24), v1, (durationMs * scale) / 1000);
        }
      }
    }
  }
  return out;
}
