import type { Context } from 'koa';
import { flvHeader, flvTags } from '../media/flv/muxer.js';
import type { Hub } from '../live/hub.js';
import type { Source } from '../live/source.js';
import { playLive } from './live-http.js';

/**
 * Live HTTP-FLV play. FLV is stateless, so each merged batch is framed once and written as one
 * Buffer shared by every player in step. The header's audio/video flags are the tracks really
 * present (mpegts.js waits for a track the header promises).
 */
export function playHttpFlv(ctx: Context, source: Source, hub: Hub): void {
  playLive(ctx, source, hub, {
    clientType: 'flv-play',
    ext: 'flv',
    contentType: 'video/x-flv',
    encoder: { head: flvHeader(source.hasAudio, source.hasVideo), format: 'flv', encode: flvTags },
  });
}
