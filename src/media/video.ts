/**
 * One view of a video packet whatever the FLV flavour that carried it: the codec, whether the body
 * is a decoder configuration record or coded frames, and those bytes without FLV's prefix. Every
 * remuxer (MPEG-TS, fMP4) reads video through this seam, so a new way of signalling a codec in
 * FLV is taught here once. Legacy FLV (CodecID 7 AVC, 12 HEVC as SRS and ffmpeg write it) and
 * Enhanced FLV (IsExHeader with FourCC avc1, hvc1, av01) are both understood.
 */
import {
  EX_CODED_FRAMES,
  EX_CODED_FRAMES_X,
  EX_HEADER,
  EX_PREFIX_BYTES,
  EX_SEQUENCE_END,
  EX_SEQUENCE_START,
  type MediaPacket,
  VIDEO_AV1,
  VIDEO_AVC,
  VIDEO_HEVC,
} from './packet.js';

export type VideoCodec = 'avc' | 'hevc' | 'av1';

export interface VideoFrame {
  codec: VideoCodec;
  /** config: body is the AVC/HEVC/AV1 decoder configuration record; frame: coded data; end: end of sequence. */
  part: 'config' | 'frame' | 'end';
  key: boolean;
  /** Composition-time offset in milliseconds (0 where the form carries none). */
  cts: number;
  /**
   * AVC/HEVC frames: NAL units, each behind the length prefix the configuration record declares.
   * AV1 frames: low-overhead OBUs. Config: the record itself (avcC, hvcC or av1C contents).
   */
  body: Buffer;
}

/** Legacy FLV video body: FrameType|CodecID, AVCPacketType, SI24 CompositionTime (FLV spec E.4.3.1). */
const LEGACY_PREFIX = 5;
/** Enhanced CodedFrames for hvc1/avc1: the SI24 composition time after the FourCC. */
const EX_CTS_BYTES = 3;

const CODECS = new Map<number, VideoCodec>([[VIDEO_AVC, 'avc'], [VIDEO_HEVC, 'hevc'], [VIDEO_AV1, 'av1']]);

/** Reads a video packet; null for bodies that carry no frame this seam knows (unknown codec, too short). */
export function videoFrame(p: MediaPacket): VideoFrame | null {
  if (p.kind !== 'video') return null;
  const d = p.data;
  if (d.length > 0 && d[0] & EX_HEADER) return exFrame(p);
  if (d.length < LEGACY_PREFIX) return null;
  const id = d[0] & 0x0f;
  const codec: VideoCodec | null = id === VIDEO_AVC ? 'avc' : id === VIDEO_HEVC ? 'hevc' : null;
  if (!codec) return null;
  const type = d[1];
  const part = type === 0 ? 'config' : type === 1 ? 'frame' : type === 2 ? 'end' : null;
  if (!part) return null;
  return { codec, part, key: d[0] >> 4 === 1, cts: part === 'frame' ? d.readIntBE(2, 3) : 0, body: d.subarray(LEGACY_PREFIX) };
}

/**
 * Enhanced FLV: packetFromTag has mapped the FourCC to p.codec. CodedFrames of hvc1/avc1 carry
 * an SI24 composition time before the data, av01's never do (enhanced-rtmp v1, ExVideoTagBody).
 */
function exFrame(p: MediaPacket): VideoFrame | null {
  const codec = CODECS.get(p.codec);
  const d = p.data;
  if (!codec || d.length < EX_PREFIX_BYTES) return null;
  const type = d[0] & 0x0f;
  const key = ((d[0] >> 4) & 7) === 1;
  if (type === EX_SEQUENCE_START) return { codec, part: 'config', key, cts: 0, body: d.subarray(EX_PREFIX_BYTES) };
  if (type === EX_SEQUENCE_END) return { codec, part: 'end', key, cts: 0, body: d.subarray(EX_PREFIX_BYTES) };
  if (type === EX_CODED_FRAMES_X) return { codec, part: 'frame', key, cts: 0, body: d.subarray(EX_PREFIX_BYTES) };
  if (type !== EX_CODED_FRAMES) return null;
  const at = codec === 'av1' ? EX_PREFIX_BYTES : EX_PREFIX_BYTES + EX_CTS_BYTES;
  if (d.length < at) return null;
  return { codec, part: 'frame', key, cts: codec === 'av1' ? 0 : d.readIntBE(EX_PREFIX_BYTES, EX_CTS_BYTES), body: d.subarray(at) };
}
