import type { HlsLimits, Segment } from './hls-segmenter.js';

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

export function newPart(seq: number, index: number, independent: boolean, startMs: number): GrowingPart {
  return { seq, index, independent, startMs, chunks: [], bytes: 0, readers: new Set() };
}
