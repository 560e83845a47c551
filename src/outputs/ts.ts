import type { Context } from 'koa';
import { AUDIO_AAC, AUDIO_MP3, VIDEO_AVC, VIDEO_HEVC } from '../media/packet.js';
import { TsMuxer, type TsTracks } from '../media/ts/muxer.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import { playLive } from './live-http.js';

/**
 * The tracks an MPEG-TS program of this source carries. Before the first packet a codec is only
 * known to be "some audio/video" from the FLV header; H.264 and AAC are what encoders send then.
 * H.264 and H.265 (legacy or Enhanced FLV) are remuxed; AV1 has no TS mapping here, so such a
 * stream's TS carries its audio only.
 */
export function tsTracks(source: Source): TsTracks {
  const audio = source.audioCodec === AUDIO_MP3 ? 'mp3' : source.audioCodec === AUDIO_AAC ? 'aac'
    : source.audioCodec === 0 && source.declared.audio ? 'aac' : null;
  const hevc = source.videoCodec === VIDEO_HEVC;
  const video = hevc || source.videoCodec === VIDEO_AVC || (source.videoCodec === 0 && source.declared.video);
  return { video, videoCodec: hevc ? 'hevc' : 'avc', audio };
}

/**
 * Live MPEG-TS (`/{app}/{stream}.ts`): one continuous TS per player for VLC, ffplay and set-top
 * boxes. Continuity counters belong to each response, so every player has its own muxer; PAT/PMT
 * open the response and repeat before each key frame.
 */
export function playTs(ctx: Context, source: Source, hub: Hub): void {
  const muxer = new TsMuxer(tsTracks(source), { tablesAtKeyframes: true });
  playLive(ctx, source, hub, {
    clientType: 'ts-play',
    ext: 'ts',
    contentType: 'video/mp2t',
    encoder: { head: muxer.tables(), format: null, encode: (p) => muxer.muxAll(p) },
  });
}
