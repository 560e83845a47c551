/**
 * HLS VOD of recordings: what an index of one recorded file says, in the terms a playlist needs.
 * Both containers index to the same shape: byte ranges of the file that each start where a player
 * can begin decoding (a key frame), with their media times.
 */

/** One playlist segment: a byte range of the recorded file and its media time (ms from the file's 0). */
export interface VodSegment {
  offset: number;
  length: number;
  startMs: number;
  durationMs: number;
}

export interface VodIndex {
  container: 'mp4' | 'flv';
  /** fMP4: ftyp+moov, the playlist's EXT-X-MAP; FLV: null (each TS segment carries its own tables). */
  init: { offset: number; length: number } | null;
  /** Whole segments, in file order. While a file grows, the segment still being written is not here. */
  segments: VodSegment[];
  /** FLV: the codec headers' tags (offset, length, kind) a TS segment needs before its first frame. */
  headers: { offset: number; length: number; kind: 'audio' | 'video' }[];
  /** The index stopped at a bound (tags, boxes, a box's size): the file goes on but the playlist does not. */
  capped: boolean;
}

/** Bounds of an index read: a hostile or truncated file must not make the process read or hold unbounded data. */
export interface IndexLimits {
  /** FLV tags or MP4 top-level boxes looked at, at most. */
  maxItems: number;
  /** Segments listed per file, at most. */
  maxSegments: number;
  /** moov and moof boxes are read whole: at most this many bytes each. */
  maxBoxBytes: number;
  /** An FLV tag larger than this is not a tag (the FLV demuxer's bound). */
  maxTagBytes: number;
  /** A segment is closed at the next frame once it holds this many bytes, key frame or not. */
  maxSegmentBytes: number;
}

/** About 11 days of 60 fps video with audio, and of one-second GOPs: far beyond any sane recording file. */
export const DEFAULT_INDEX_LIMITS: IndexLimits = {
  maxItems: 100_000_000,
  maxSegments: 1_000_000,
  // A 10 s fragment of 60 fps video and 48 kHz AAC has a moof of about 13 KB; a moov about 1 KB.
  maxBoxBytes: 4 * 1024 * 1024,
  maxTagBytes: 8 * 1024 * 1024,
  maxSegmentBytes: 32 * 1024 * 1024,
};

/** Segments are cut at the first key frame at or past this length (hls.js seeks inside a segment, so this is about request count). */
export const SEGMENT_TARGET_MS = 4000;

/** Positioned reads of one file. */
export interface FileReader {
  size: number;
  read(position: number, length: number): Promise<Buffer>;
}
