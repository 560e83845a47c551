import { AUDIO_AAC, EX_HEADER, EX_SEQUENCE_START, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, VIDEO_AVC, VIDEO_HEVC } from '../../media/packet.js';
import { SEGMENT_TARGET_MS, type FileReader, type IndexLimits, type VodIndex } from './types.js';

/** FLV file header (9 bytes) and the PreviousTagSize0 after it (FLV spec E.2, E.3). */
const FILE_HEAD_BYTES = 13;
/** Tag header (E.4.1) and the PreviousTagSize that follows each tag. */
const TAG_HEAD_BYTES = 11;
const TAG_TRAILER_BYTES = 4;
/** Enough of a tag body to tell a key frame and a sequence header apart (Enhanced FLV's is 5 bytes). */
const PEEK_BYTES = 5;
/** Tags are read in chunks of this size; a tag that does not fit is skipped by position. */
const CHUNK_BYTES = 1024 * 1024;
/** Codec header tags remembered, at most (a codec change starts a new file; a few resolution changes do not). */
const MAX_HEADERS = 64;

/**
 * Indexes an FLV recording into TS segment cuts: a segment starts at a video key frame (at any
 * audio tag when the file has no video) once the one before holds SEGMENT_TARGET_MS, so each TS
 * segment cut from it starts decodable. Reads only tag headers and the first bytes of each body,
 * resumes where it stopped when the file has grown, and stops at its bounds.
 */
export class FlvIndexer {
  private pos = 0;
  private items = 0;
  private open: { offset: number; startMs: number } | null = null;
  private video = false;
  private maxMs = 0;
  private lastVideoMs = -1;
  private frameMs = 0;
  /** A bound was hit or the bytes are not FLV: nothing more is read. */
  private stopped = false;
  readonly index: VodIndex = { container: 'flv', init: null, segments: [], headers: [], capped: false };

  constructor(private readonly limits: IndexLimits) {}

  /** Reads what was added since the last call; `finished` closes the last segment (the file will not grow). */
  async update(file: FileReader, finished: boolean): Promise<VodIndex> {
    if (this.pos === 0) {
      if (file.size < FILE_HEAD_BYTES) return this.index;
      const head = await file.read(0, FILE_HEAD_BYTES);
      if (head.toString('latin1', 0, 3) !== 'FLV') return this.stop(false);
      this.video = (head[4] & 0x01) !== 0;
      this.pos = head.readUInt32BE(5) + TAG_TRAILER_BYTES;
    }
    while (!this.stopped && this.pos + TAG_HEAD_BYTES <= file.size) {
      const chunk = await file.read(this.pos, Math.min(CHUNK_BYTES, file.size - this.pos));
      let at = 0;
      while (at + TAG_HEAD_BYTES + PEEK_BYTES <= chunk.length || (at === 0 && at + TAG_HEAD_BYTES <= chunk.length)) {
        const size = chunk.readUIntBE(at + 1, 3);
        const end = this.pos + TAG_HEAD_BYTES + size + TAG_TRAILER_BYTES;
        // A size past the bound is refused before waiting for bytes that would never make a tag.
        if (size > this.limits.maxTagBytes) return this.stop(true);
        if (end > file.size) break;
        if (++this.items > this.limits.maxItems) return this.stop(true);
        const body = chunk.subarray(at + TAG_HEAD_BYTES, Math.min(chunk.length, at + TAG_HEAD_BYTES + Math.min(size, PEEK_BYTES)));
        if (!this.tag(chunk[at] & 0x1f, this.pos, end - this.pos, timestamp(chunk, at), body)) return this.stop(true);
        at += end - this.pos;
        this.pos = end;
      }
      if (at === 0) break;
    }
    if (finished && this.open) this.close(this.maxMs + this.frameMs, this.pos);
    return this.index;
  }

  private stop(capped: boolean): VodIndex {
    this.stopped = true;
    this.index.capped = capped;
    return this.index;
  }

  /** One tag; false when the segment list is full. */
  private tag(type: number, offset: number, length: number, ms: number, body: Buffer): boolean {
    if (type === TAG_SCRIPT || (type !== TAG_AUDIO && type !== TAG_VIDEO) || body.length === 0) return true;
    const kind = type === TAG_VIDEO ? 'video' : 'audio';
    if (isHeader(type, body)) {
      if (this.index.headers.length < MAX_HEADERS) this.index.headers.push({ offset, length, kind });
      return true;
    }
    if (kind === 'video') {
      this.video = true;
      if (this.lastVideoMs >= 0 && ms > this.lastVideoMs) this.frameMs = ms - this.lastVideoMs;
      this.lastVideoMs = ms;
    }
    const key = kind === 'video' ? ((body[0] & EX_HEADER ? (body[0] >> 4) & 7 : body[0] >> 4) === 1) : !this.video;
    const o = this.open;
    if (o === null) {
      this.open = { offset, startMs: ms };
    } else if ((key && ms - o.startMs >= SEGMENT_TARGET_MS) || offset - o.offset >= this.limits.maxSegmentBytes) {
      if (this.index.segments.length >= this.limits.maxSegments) return false;
      this.close(ms, offset);
      this.open = { offset, startMs: ms };
    }
    if (ms > this.maxMs) this.maxMs = ms;
    return true;
  }

  private close(endMs: number, endOffset: number): void {
    const o = this.open!;
    this.index.segments.push({ offset: o.offset, length: endOffset - o.offset, startMs: o.startMs, durationMs: Math.max(0, endMs - o.startMs) });
    this.open = null;
  }
}

/** E.4.1: 24-bit Timestamp, then TimestampExtended as its upper 8 bits. */
function timestamp(b: Buffer, at: number): number {
  return (b[at + 7] * 0x1000000 + b.readUIntBE(at + 4, 3)) >>> 0;
}

/** An AVC/HEVC/AAC sequence header, or Enhanced FLV's SequenceStart. */
function isHeader(type: number, body: Buffer): boolean {
  if (type === TAG_AUDIO) return body[0] >> 4 === AUDIO_AAC && body.length > 1 && body[1] === 0;
  if (body[0] & EX_HEADER) return (body[0] & 0x0f) === EX_SEQUENCE_START;
  const codec = body[0] & 0x0f;
  return (codec === VIDEO_AVC || codec === VIDEO_HEVC) && body.length > 1 && body[1] === 0;
}
