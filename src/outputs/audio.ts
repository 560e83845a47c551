import type { Context } from 'koa';
import { GatewayError } from '../errors.js';
import { adtsHeader, FLV_AAC_PREFIX_BYTES, parseAudioSpecificConfig, type AacConfig } from '../media/aac.js';
import { AUDIO_AAC, AUDIO_MP3, type MediaPacket } from '../media/packet.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import { playLive, type LiveEncoder } from './live-http.js';

const EMPTY = Buffer.alloc(0);

/** ADTS frames of an FLV AAC track: the codec config comes from the sequence header in the stream. */
export function adtsEncoder(): LiveEncoder {
  let config: AacConfig | null = null;
  return {
    head: EMPTY,
    // The config is read from the packets themselves, so each player keeps its own.
    format: null,
    encode(packets: readonly MediaPacket[]): Buffer {
      const out: Buffer[] = [];
      for (const p of packets) {
        if (p.kind !== 'audio' || p.codec !== AUDIO_AAC || p.data.length <= FLV_AAC_PREFIX_BYTES) continue;
        const body = p.data.subarray(FLV_AAC_PREFIX_BYTES);
        if (p.header) {
          try {
            config = parseAudioSpecificConfig(body);
          } catch {
            config = null;
          }
        } else if (config && body.length + 7 <= 0x1fff) {
          out.push(adtsHeader(config, body.length), body);
        }
      }
      return out.length > 0 ? Buffer.concat(out) : EMPTY;
    },
  };
}

/** MP3 frames are self-describing: FLV carries them whole after its one codec byte. */
export function mp3Encoder(): LiveEncoder {
  return {
    head: EMPTY,
    format: 'mp3',
    timed: false,
    encode(packets: readonly MediaPacket[]): Buffer {
      const out: Buffer[] = [];
      for (const p of packets) if (p.kind === 'audio' && p.codec === AUDIO_MP3 && p.data.length > 1) out.push(p.data.subarray(1));
      return out.length > 0 ? Buffer.concat(out) : EMPTY;
    },
  };
}

/**
 * `.aac` and `.mp3`: the audio track alone, for radio-style players. A stream whose audio is
 * absent or of the other codec is a 404 that says so, rather than an empty, endless response.
 */
export function playAudio(ctx: Context, source: Source, hub: Hub, ext: 'aac' | 'mp3'): void {
  checkAudioTrack(source, ext);
  if (ext === 'aac') playLive(ctx, source, hub, { clientType: 'aac-play', ext, contentType: 'audio/aac', encoder: adtsEncoder() });
  else playLive(ctx, source, hub, { clientType: 'mp3-play', ext, contentType: 'audio/mpeg', encoder: mp3Encoder() });
}

/** Throws TRACK_ABSENT unless the source carries audio of the codec `ext` names. */
export function checkAudioTrack(source: Source, ext: 'aac' | 'mp3'): void {
  const label = `${source.name.app}/${source.name.stream}`;
  if (ext === 'aac' && (source.audioCodec !== AUDIO_AAC || !source.audioHeader)) throw new GatewayError('TRACK_ABSENT', `stream ${label} has no AAC audio`);
  if (ext === 'mp3' && source.audioCodec !== AUDIO_MP3) throw new GatewayError('TRACK_ABSENT', `stream ${label} has no MP3 audio`);
}
