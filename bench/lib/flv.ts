import { flvHeader, flvTags } from '../../src/media/flv/muxer.js';
import type { MediaPacket } from '../../src/media/packet.js';

/**
 * Both ends of the fan-out workload without an encoder: a synthetic ~0.5 Mbps H.264 + AAC stream
 * whose video frames carry their send time, and a player-side parser that walks an HTTP-FLV
 * response (chunked or not) just far enough to know each tag's type, timestamp and the first
 * bytes of video payloads. Payloads are skipped by length, never copied.
 */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

// An AVCDecoderConfigurationRecord and an AudioSpecificConfig of the usual shape: the server
// keeps them as sequence headers and never decodes frames, so their values need not be real.
const AVC_CONFIG = Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80]);
const AAC_CONFIG = Buffer.from([0xaf, 0, 0x12, 0x10]);
/** Offset of the send time inside a video payload: after FrameType/CodecID, AVCPacketType and CTS. */
const STAMP_AT = 5;

export interface StreamShape {
  fps: number;
  /** Frames between key frames (50 at 25 fps: a key frame every 2 s, as encoders are told). */
  gop: number;
  keyframeBytes: number;
  frameBytes: number;
  audioBytes: number;
}

/** 12 KB key frames, 2 KB others, 200 B audio at 25 fps: about 60 KB/s, 0.49 Mbps. */
export const HALF_MBPS: StreamShape = { fps: 25, gop: 50, keyframeBytes: 12_000, frameBytes: 2_000, audioBytes: 200 };

function noise(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export class StampedStream {
  private frame = 0;
  private readonly key: Buffer;
  private readonly inter: Buffer;
  private readonly audio: Buffer;

  constructor(readonly shape: StreamShape = HALF_MBPS) {
    this.key = noise(shape.keyframeBytes, 11);
    this.inter = noise(shape.frameBytes, 13);
    this.audio = Buffer.concat([Buffer.from([0xaf, 1]), noise(shape.audioBytes - 2, 17)]);
  }

  /** The publisher's first bytes: FLV header and both sequence headers. */
  start(): Buffer {
    return Buffer.concat([
      flvHeader(true, true),
      flvTags([
        { kind: 'video', dts: 0, cts: 0, keyframe: true, header: true, codec: 7, data: AVC_CONFIG },
        { kind: 'audio', dts: 0, cts: 0, keyframe: false, header: true, codec: 10, data: AAC_CONFIG },
      ]),
    ]);
  }

  /** The next frame (video and its audio) as FLV tags, the video payload stamped with `now`. */
  next(now: number): Buffer {
    const i = this.frame++;
    const dts = Math.round((i * 1000) / this.shape.fps);
    const keyframe = i % this.shape.gop === 0;
    const body = keyframe ? this.key : this.inter;
    const video = Buffer.from(body);
    video[0] = keyframe ? 0x17 : 0x27;
    video[1] = 1;
    video[2] = video[3] = video[4] = 0;
    video.writeDoubleBE(now, STAMP_AT);
    const pkts: MediaPacket[] = [
      { kind: 'video', dts, cts: 0, keyframe, header: false, codec: 7, data: video },
      { kind: 'audio', dts, cts: 0, keyframe: false, header: false, codec: 10, data: this.audio },
    ];
    return flvTags(pkts);
  }

  get frames(): number {
    return this.frame;
  }
}

const enum Chunk {
  Size,
  Data,
  Crlf,
  Done,
}

/** Bytes of a video payload kept for inspection: the header bytes and the stamp. */
const PEEK_BYTES = STAMP_AT + 8;

/**
 * One player's view of an HTTP-FLV response. Feed it what the socket reads; it keeps the last
 * timestamp, the time the first key frame (not a sequence header) completed, and, when `probe`
 * is set, hands every stamped video frame's send time to `onStamp`.
 */
export class FlvPlayerParser {
  status = 0;
  /** DTS of the last complete audio/video tag; -1 before the first. */
  lastDts = -1;
  tags = 0;
  /** performance.now() when the first key frame tag was complete; 0 before. */
  firstKeyAt = 0;
  /** The response ended cleanly (last chunk). */
  ended = false;
  /** Not an FLV stream (bad status or header): the player stops reading. */
  failed: string | null = null;
  onStamp: ((sentAt: number) => void) | null = null;

  private head = '';
  private headDone = false;
  private chunked = false;
  private cstate = Chunk.Size;
  private csize = 0;
  private cext = false;
  private cleft = 0;
  private crlf = 0;
  private flvSkip = 13;
  private readonly tagHead = Buffer.alloc(11);
  private tagHeadN = 0;
  private bodyLeft = 0;
  private tagType = 0;
  private tagSize = 0;
  private tagDts = 0;
  private payloadPos = 0;
  private readonly peek = Buffer.alloc(PEEK_BYTES);

  feed(buf: Buffer, start: number, end: number, now: number): void {
    let i = start;
    if (!this.headDone) {
      const text = buf.toString('latin1', start, end);
      const at = (this.head + text).indexOf('\r\n\r\n');
      if (at < 0) {
        this.head += text;
        if (this.head.length > 16_384) this.failed = 'response head too long';
        return;
      }
      const all = this.head + text;
      const headText = all.slice(0, at);
      i = start + (at + 4 - this.head.length);
      this.head = '';
      this.headDone = true;
      this.status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(headText);
      if (this.status !== 200) {
        this.failed = `status ${this.status}`;
        return;
      }
    }
    if (this.chunked) this.dechunk(buf, i, end, now);
    else this.flv(buf, i, end, now);
  }

  private dechunk(buf: Buffer, i: number, end: number, now: number): void {
    while (i < end && this.failed === null) {
      switch (this.cstate) {
        case Chunk.Size: {
          const c = buf[i++];
          if (c === 0x0a) {
            if (this.csize === 0) {
              this.cstate = Chunk.Done;
              this.ended = true;
              return;
            }
            this.cleft = this.csize;
            this.cstate = Chunk.Data;
          } else if (c === 0x3b) {
            // A chunk extension (RFC 9112 §7.1.1): the size has been read.
            this.cext = true;
          } else if (c !== 0x0d && !this.cext) {
            this.csize = this.csize * 16 + (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);
          }
          break;
        }
        case Chunk.Data: {
          const n = Math.min(this.cleft, end - i);
          this.flv(buf, i, i + n, now);
          i += n;
          this.cleft -= n;
          if (this.cleft === 0) {
            this.cstate = Chunk.Crlf;
            this.crlf = 2;
          }
          break;
        }
        case Chunk.Crlf:
          i++;
          if (--this.crlf === 0) {
            this.cstate = Chunk.Size;
            this.csize = 0;
            this.cext = false;
          }
          break;
        case Chunk.Done:
          return;
      }
    }
  }

  private flv(buf: Buffer, s: number, e: number, now: number): void {
    while (s < e) {
      if (this.flvSkip > 0) {
        if (this.flvSkip === 13 && buf[s] !== 0x46) {
          this.failed = 'not FLV';
          return;
        }
        const n = Math.min(this.flvSkip, e - s);
        this.flvSkip -= n;
        s += n;
        continue;
      }
      if (this.bodyLeft === 0) {
        const n = Math.min(11 - this.tagHeadN, e - s);
        buf.copy(this.tagHead, this.tagHeadN, s, s + n);
        this.tagHeadN += n;
        s += n;
        if (this.tagHeadN === 11) {
          const h = this.tagHead;
          this.tagHeadN = 0;
          this.tagType = h[0] & 0x1f;
          this.tagSize = (h[1] << 16) | (h[2] << 8) | h[3];
          this.tagDts = ((h[7] << 24) | (h[4] << 16) | (h[5] << 8) | h[6]) >>> 0;
          this.bodyLeft = this.tagSize + 4;
          this.payloadPos = 0;
        }
        continue;
      }
      const n = Math.min(this.bodyLeft, e - s);
      if (this.tagType === 9 && this.payloadPos < PEEK_BYTES) {
        const k = Math.min(n, PEEK_BYTES - this.payloadPos);
        buf.copy(this.peek, this.payloadPos, s, s + k);
      }
      this.payloadPos += n;
      this.bodyLeft -= n;
      s += n;
      if (this.bodyLeft === 0) this.tagDone(now);
    }
  }

  private tagDone(now: number): void {
    if (this.tagType !== 8 && this.tagType !== 9) return;
    this.tags++;
    this.lastDts = this.tagDts;
    if (this.tagType !== 9 || this.tagSize < PEEK_BYTES) return;
    // FrameType 1 with AVCPacketType 1: a key frame's pictures, not the sequence header.
    if (this.peek[0] >> 4 === 1 && this.peek[1] === 1 && this.firstKeyAt === 0) this.firstKeyAt = now;
    if (this.onStamp && this.peek[1] === 1) this.onStamp(this.peek.readDoubleBE(STAMP_AT));
  }
}
