import { AUDIO_AAC, AUDIO_MP3, packetFromTag, VIDEO_AVC, VIDEO_HEVC, type MediaPacket } from '../../media/packet.js';
import { TsMuxer, type TsTracks } from '../../media/ts/muxer.js';
import type { VodIndex, VodSegment } from './types.js';

const TAG_HEAD_BYTES = 11;
const TAG_TRAILER_BYTES = 4;

/**
 * One TS segment of an FLV recording, cut on request: the codec headers in force at the
 * segment's start (the last ones before it in the file), then the segment's tags, through the
 * live TS muxer. Each segment opens with PAT/PMT (RFC 8216 §3.2). The bytes read are the
 * segment's own, which the index bounds (its maxSegmentBytes plus one tag).
 */
export async function cutTs(read: (position: number, length: number) => Promise<Buffer>, index: VodIndex, seg: VodSegment): Promise<Buffer> {
  const heads: MediaPacket[] = [];
  for (const kind of ['video', 'audio'] as const) {
    const h = index.headers.filter((x) => x.kind === kind && x.offset < seg.offset).pop();
    if (h) heads.push(...tags(await read(h.offset, h.length)));
  }
  const packets = tags(await read(seg.offset, seg.length));
  const muxer = new TsMuxer(tracksOf([...heads, ...packets]));
  return Buffer.concat([muxer.tables(), muxer.muxAll(heads), muxer.muxAll(packets)]);
}

/** The whole tags in `b` (which starts at a tag), as packets. */
function tags(b: Buffer): MediaPacket[] {
  const out: MediaPacket[] = [];
  let at = 0;
  while (at + TAG_HEAD_BYTES <= b.length) {
    const size = b.readUIntBE(at + 1, 3);
    const end = at + TAG_HEAD_BYTES + size;
    if (end > b.length) break;
    const ms = (b[at + 7] * 0x1000000 + b.readUIntBE(at + 4, 3)) >>> 0;
    const p = packetFromTag(b[at] & 0x1f, ms, b.subarray(at + TAG_HEAD_BYTES, end));
    if (p !== null && p.kind !== 'script') out.push(p);
    at = end + TAG_TRAILER_BYTES;
  }
  return out;
}

/** The program's streams: H.264 or H.265 video, AAC or MP3 audio (what the TS muxer carries). */
function tracksOf(pkts: readonly MediaPacket[]): TsTracks {
  const t: TsTracks = { video: false, audio: null };
  for (const p of pkts) {
    if (p.kind === 'video' && (p.codec === VIDEO_AVC || p.codec === VIDEO_HEVC)) {
      t.video = true;
      t.videoCodec = p.codec === VIDEO_HEVC ? 'hevc' : 'avc';
    }
    if (p.kind === 'audio' && t.audio === null) t.audio = p.codec === AUDIO_AAC ? 'aac' : p.codec === AUDIO_MP3 ? 'mp3' : null;
  }
  return t;
}
