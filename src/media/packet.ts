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

export type PacketKind = 'audio' | 'video' | 'script';

export interface MediaPacket {
  kind: PacketKind;
  /** Decode timestamp in milliseconds, as in the FLV tag header / RTMP message (may wrap at 2^32). */
  dts: number;
  /** Composition-time offset in milliseconds (video only; 0 otherwise). PTS = dts + cts. */
  cts: number;
  /** A video key frame (FLV FrameType 1); audio and script packets are never key frames. */
  keyframe: boolean;
  /** A codec sequence header: AVCDecoderConfigurationRecord or AAC AudioSpecificConfig. */
  header: boolean;
  /** FLV SoundFormat (audio) or CodecID (video); 0 for script data. */
  codec: number;
  /** The FLV tag body: for audio/video it begins with FLV's codec byte(s); for script it is AMF0. */
  data: Buffer;
}

export function tagTypeOf(kind: PacketKind): number {
  return kind === 'audio' ? TAG_AUDIO : kind === 'video' ? TAG_VIDEO : TAG_SCRIPT;
}
