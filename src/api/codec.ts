import type { Source } from '../live/source.js';
import type { MediaPacket } from '../media/packet.js';
import { AUDIO_AAC, AUDIO_MP3, VIDEO_AV1, VIDEO_AVC, VIDEO_HEVC } from '../media/packet.js';
import { parseAvcConfig } from '../media/avc.js';
import { parseHvcc } from '../media/hevc.js';
import { parseAv1c } from '../media/av1.js';
import { videoFrame } from '../media/video.js';
import { FLV_AAC_PREFIX_BYTES, parseAudioSpecificConfig } from '../media/aac.js';
import { parseMp3Header } from '../media/mp3.js';

/** SRS's `video` object of a stream: codec, profile, level, size. */
export interface VideoInfo {
  codec: string;
  profile: string;
  level: string;
  width: number;
  height: number;
}

/** SRS's `audio` object of a stream. */
export interface AudioInfo {
  codec: string;
  sample_rate: number;
  channel: number;
  profile: string;
}

/** Parsed once per sequence header: the API is polled, headers change only on republish. */
const videoCache = new WeakMap<MediaPacket, VideoInfo>();
const audioCache = new WeakMap<MediaPacket, AudioInfo>();

/** FLV SoundRate (E.4.2.1) for codecs whose rate lives in the tag byte, not a config record. */
const FLV_RATES = [5512, 11025, 22050, 44100];

/** SRS's names: H264, H265 (SRS 6+), AV1. */
const VIDEO_NAMES = new Map([[VIDEO_AVC, 'H264'], [VIDEO_HEVC, 'H265'], [VIDEO_AV1, 'AV1']]);

export function videoInfo(s: Source): VideoInfo {
  const codec = VIDEO_NAMES.get(s.videoCodec) ?? (s.videoCodec ? `flv-codec-${s.videoCodec}` : 'unknown');
  const h = s.videoHeader;
  if (!h) return { codec, profile: '', level: '', width: 0, height: 0 };
  let info = videoCache.get(h);
  if (!info) {
    info = { codec, profile: '', level: '', width: 0, height: 0 };
    const f = videoFrame(h);
    try {
      // Legacy and Enhanced FLV alike: videoFrame hands over the record without FLV's prefix.
      if (f?.part === 'config') {
        const c = f.codec === 'avc' ? parseAvcConfig(f.body) : f.codec === 'hevc' ? parseHvcc(f.body) : parseAv1c(f.body);
        info = { codec, profile: c.profileName, level: c.level, width: c.width, height: c.height };
      }
    } catch {
      // A malformed record leaves the description empty; the stream itself is not affected.
    }
    videoCache.set(h, info);
  }
  return info;
}

export function audioInfo(s: Source): AudioInfo {
  const codec = s.audioCodec === AUDIO_AAC ? 'AAC' : s.audioCodec === AUDIO_MP3 ? 'MP3' : s.audioCodec ? `flv-sound-${s.audioCodec}` : 'unknown';
  if (s.audioCodec === AUDIO_MP3) return mp3Info(s, codec);
  const h = s.audioHeader;
  if (!h || s.audioCodec !== AUDIO_AAC) {
    // Without a config record the FLV tag byte is all there is; MP3 has no sequence header.
    return { codec, sample_rate: 0, channel: 0, profile: '' };
  }
  let info = audioCache.get(h);
  if (!info) {
    try {
      const c = parseAudioSpecificConfig(h.data.subarray(FLV_AAC_PREFIX_BYTES));
      info = { codec, sample_rate: c.sampleRate, channel: c.channels, profile: c.profileName };
    } catch {
      const b = h.data[0] ?? 0;
      info = { codec, sample_rate: FLV_RATES[(b >> 2) & 3], channel: (b & 1) + 1, profile: '' };
    }
    audioCache.set(h, info);
  }
  return info;
}

/**
 * MP3 has no sequence header: the rate and channels come from the first frame's header (the FLV
 * tag byte cannot say 48 kHz, and encoders set it loosely), falling back to that byte.
 */
function mp3Info(s: Source, codec: string): AudioInfo {
  const first = s.audioSample;
  if (!first || first.codec !== AUDIO_MP3) return { codec, sample_rate: 0, channel: 0, profile: '' };
  let info = audioCache.get(first);
  if (!info) {
    const h = parseMp3Header(first.data.subarray(1));
    const b = first.data[0] ?? 0;
    info = h ? { codec, sample_rate: h.sampleRate, channel: h.channels, profile: '' } : { codec, sample_rate: FLV_RATES[(b >> 2) & 3], channel: (b & 1) + 1, profile: '' };
    audioCache.set(first, info);
  }
  return info;
}
