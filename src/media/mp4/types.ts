/** The fMP4 writer's view of a track and a sample: what a remuxer hands it, in the track's timescale. */

export interface Mp4Track {
  /** track_ID, from 1. */
  id: number;
  kind: 'video' | 'audio';
  codec: 'avc' | 'hevc' | 'av1' | 'aac' | 'mp3';
  /** Units per second of this track's times: e.g. 90000 for video, the sample rate for audio. */
  timescale: number;
  /** avcC / hvcC / av1C record contents, or AAC's AudioSpecificConfig; empty for MP3, which has none. */
  config: Buffer;
  width?: number;
  height?: number;
  sampleRate?: number;
  channels?: number;
}

export interface Mp4Sample {
  /** Decode time, in the track's timescale. */
  dts: number;
  /** Composition offset: pts - dts. */
  cts: number;
  duration: number;
  key: boolean;
  /** Length-prefixed NAL units (avc/hevc), OBUs (av1), one raw AAC frame, MP3 frame(s) header included. */
  data: Buffer;
}

export interface Mp4Run {
  track: Mp4Track;
  samples: readonly Mp4Sample[];
}

/** Tracks in one init segment at most (a live stream has one video and one audio). */
export const MAX_TRACKS = 16;
/** A decoder configuration larger than this is not one (real avcC/hvcC/av1C are a few hundred bytes). */
export const MAX_CONFIG_BYTES = 64 * 1024;
/**
 * Samples in one fragment, over all its tracks: a 10 s segment of 60 fps video and 48 kHz AAC is
 * about 1,100; a caller that hands more is cutting wrongly, and the moof would grow 16 bytes each.
 */
export const MAX_FRAGMENT_SAMPLES = 65_536;
/** mdat bytes in one fragment at most: a segment is held in memory whole. */
export const MAX_FRAGMENT_BYTES = 256 * 1024 * 1024;
