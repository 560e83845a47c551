/**
 * MediaPacket is the one seam between ingest (HTTP-FLV, RTMP, edge pull), the hub and every
 * output (FLV, TS, HLS, AAC, MP3, RTMP play). Its payload is the FLV tag body exactly as it
 * travels in an FLV file or an RTMP message, because both main ingests carry those bytes already
 * and the most common output (HTTP-FLV) can then write them without a copy.
 */

/** FLV tag types (FLV spec v10.1, E.4.1). */
export const TAG_AUDIO = 8;
export const TAG_VIDEO = 9;
export const TAG_SCRIPT = 18;

/** FLV SoundFormat values we recognise (E.4.2.1). */
export const AUDIO_MP3 = 2;
export const AUDIO_AAC = 10;
/** FLV CodecID values we recognise (E.4.3.1); 12 is the de-facto HEVC id used by SRS/ffmpeg. */
export const VIDEO_AVC = 7;
export const VIDEO_HEVC = 12;
/**
 * AV1 has no legacy CodecID; 13 is the value Chinese CDNs' FLV extension gave it. Here it only
 * names the codec of an Enhanced-FLV `av01` packet (MediaPacket.codec); the bytes keep the FourCC.
 */
export const VIDEO_AV1 = 13;

/**
 * Enhanced RTMP/FLV (veovera enhanced-rtmp v1): bit 7 of the first video byte is IsExHeader; then
 * bits 6-4 are the FrameType, bits 3-0 the PacketType, and a FourCC follows instead of a CodecID.
 */
export const EX_HEADER = 0x80;
export const EX_SEQUENCE_START = 0;
/** Coded frames behind an SI24 composition time (hvc1, avc1); for av01 there is no time. */
export const EX_CODED_FRAMES = 1;
export const EX_SEQUENCE_END = 2;
/** Coded frames whose composition time is implicitly 0 (no SI24 on the wire). */
export const EX_CODED_FRAMES_X = 3;
export const EX_METADATA = 4;
export const EX_MPEG2TS_SEQUENCE_START = 5;
/** FrameType 5: a command frame (seek start/end); with IsExHeader a UI8 command follows, no FourCC. */
const FRAME_COMMAND = 5;
/** The FourCCs this server understands, as big-endian 32-bit numbers, and their codec ids. */
export const FOURCC_AVC1 = 0x61766331;
export const FOURCC_HVC1 = 0x68766331;
export const FOURCC_AV01 = 0x61763031;
const FOURCC_CODECS = new Map([[FOURCC_AVC1, VIDEO_AVC], [FOURCC_HVC1, VIDEO_HEVC], [FOURCC_AV01, VIDEO_AV1]]);
/** IsExHeader byte + FourCC. */
export const EX_PREFIX_BYTES = 5;

export type PacketKind = 'audio' | 'video' | 'script';

export interface MediaPacket {
  kind: PacketKind;
  /** Decode timestamp in milliseconds, as in the FLV tag header / RTMP message (may wrap at 2^32). */
  dts: number;
  /** Composition-time offset in milliseconds (video only; 0 otherwise). PTS = dts + cts. */
  cts: number;
  /** A video key frame (FLV FrameType 1); audio and script packets are never key frames. */
  keyframe: boolean;
  /** A codec sequence header: avcC, hvcC, av1C (legacy or Enhanced FLV) or AAC AudioSpecificConfig. */
  header: boolean;
  /** FLV SoundFormat (audio) or CodecID (video: Enhanced FLV's FourCC mapped to VIDEO_*); 0 for script data. */
  codec: number;
  /** The FLV tag body: for audio/video it begins with FLV's codec byte(s); for script it is AMF0. */
  data: Buffer;
}

export function tagTypeOf(kind: PacketKind): number {
  return kind === 'audio' ? TAG_AUDIO : kind === 'video' ? TAG_VIDEO : TAG_SCRIPT;
}

/**
 * Classifies an FLV tag body (equally an RTMP audio/video/data message body) as a MediaPacket.
 * Returns null for empty audio/video bodies, for tag types the hub does not carry, and for
 * Enhanced-FLV video it cannot classify (unknown FourCC, multitrack, command frames): those are
 * dropped rather than relayed with a guessed key frame flag.
 */
export function packetFromTag(type: number, dts: number, data: Buffer): MediaPacket | null {
  if (type === TAG_AUDIO && data.length > 0) {
    const codec = data[0] >> 4;
    return { kind: 'audio', dts, cts: 0, keyframe: false, header: codec === AUDIO_AAC && data[1] === 0, codec, data };
  }
  if (type === TAG_VIDEO && data.length > 0) {
    if (data[0] & EX_HEADER) return exVideoPacket(dts, data);
    const codec = data[0] & 0x0f;
    const avc = codec === VIDEO_AVC || codec === VIDEO_HEVC;
    // E.4.3.1: CompositionTime is a signed 24-bit offset, present for AVC (and HEVC) NALU packets.
    const cts = avc && data.length >= 5 && data[1] === 1 ? data.readIntBE(2, 3) : 0;
    return { kind: 'video', dts, cts, keyframe: data[0] >> 4 === 1, header: avc && data[1] === 0, codec, data };
  }
  if (type === TAG_SCRIPT) return { kind: 'script', dts, cts: 0, keyframe: false, header: false, codec: 0, data };
  return null;
}

/**
 * An Enhanced-FLV video body: FrameType (3 bits), PacketType (4 bits), FourCC. Sequence starts
 * are headers; coded frames with FrameType 1 are key frames; metadata, sequence end and MPEG-2 TS
 * sequence start travel through unchanged as neither. Multitrack and ModEx (v2) are dropped.
 */
function exVideoPacket(dts: number, data: Buffer): MediaPacket | null {
  const frameType = (data[0] >> 4) & 7;
  const packetType = data[0] & 0x0f;
  if (frameType === FRAME_COMMAND && packetType !== EX_METADATA) return null;
  if (packetType > EX_MPEG2TS_SEQUENCE_START || data.length < EX_PREFIX_BYTES) return null;
  const codec = FOURCC_CODECS.get(data.readUInt32BE(1));
  if (codec === undefined) return null;
  const frames = packetType === EX_CODED_FRAMES || packetType === EX_CODED_FRAMES_X;
  let cts = 0;
  if (packetType === EX_CODED_FRAMES && codec !== VIDEO_AV1) {
    if (data.length < EX_PREFIX_BYTES + 3) return null;
    cts = data.readIntBE(EX_PREFIX_BYTES, 3);
  }
  return { kind: 'video', dts, cts, keyframe: frames && frameType === 1, header: packetType === EX_SEQUENCE_START, codec, data };
}

/** A player's origin that means "no timeline of its own": timestamps go out as the publisher sent them. */
export const PASS_THROUGH = -1;
/**
 * A timestamp this close below a player's origin (FLV and RTMP timestamps are 32-bit and wrap) is
 * earlier than the origin, not 49 days later: an audio frame interleaved a few milliseconds
 * before the key frame a player starts at. It is stamped 0. A quarter of the ring leaves a player
 * 37 days of continuous play before its own timeline could be misread.
 */
const BEFORE_ORIGIN = 0xc0000000;

/**
 * The timestamp `p` carries on a player's timeline whose 0 is the source time `origin`: script
 * data (onMetaData) at 0, as SRS's time_jitter does and as ffmpeg's FLV reader needs (an
 * onMetaData tag at any other timestamp becomes an extra data stream); media relative to the
 * origin. With PASS_THROUGH, the source time unchanged.
 */
export function playerDts(p: MediaPacket, origin: number): number {
  if (origin < 0) return p.dts;
  if (p.kind === 'script') return 0;
  const t = (p.dts - origin) >>> 0;
  return t >= BEFORE_ORIGIN ? 0 : t;
}

/**
 * The earliest audio/video timestamp of `pkts` (32-bit wrap-aware), the natural 0 of a player
 * whose first packets these are; PASS_THROUGH when they hold no audio or video.
 */
export function earliestDts(pkts: readonly MediaPacket[]): number {
  let first = -1;
  let least = 0;
  for (const p of pkts) {
    if (p.kind === 'script') continue;
    if (first < 0) first = p.dts;
    const d = (p.dts - first) | 0;
    if (d < least) least = d;
  }
  return first < 0 ? PASS_THROUGH : (first + least) >>> 0;
}
