import type { VodFile } from './library.js';

/** Segments one playlist lists at most (about 22 hours of 4-second segments, some 2 MB of text); `start`/`end` pick others. */
export const MAX_PLAYLIST_SEGMENTS = 20_000;
/** Version 3: decimal EXTINF; 7: EXT-X-MAP outside I-frame playlists (RFC 8216 §7). */
const TS_VERSION = 3;
const FMP4_VERSION = 7;

export interface PlaylistRange {
  /** Wall clock, ms since 1970; segments that end before or start after are left out. */
  fromMs: number;
  toMs: number;
}

/**
 * A stream's recordings as one media playlist (RFC 8216): an fMP4 file's segments are byte
 * ranges of the file under its EXT-X-MAP, an FLV file's are TS segments cut on request; a new
 * file is a new timeline (EXT-X-DISCONTINUITY, §4.3.2.3) with its EXT-X-PROGRAM-DATE-TIME. Only
 * finished segments are listed; while a listed file is still being recorded the playlist is an
 * EVENT playlist without EXT-X-ENDLIST, so players reload it and find the new segments (§6.2.1),
 * otherwise a VOD one. One container per playlist: files of the other container are left out.
 * `stream` is the playlist's file name, segment URIs are relative to it.
 */
export function renderPlaylist(files: readonly VodFile[], range: PlaylistRange, stream: string): string | null {
  const container = files.length > 0 ? files[files.length - 1].index.container : null;
  const dir = encodeURIComponent(stream);
  const lines: string[] = [];
  let target = 1;
  let count = 0;
  let growing = false;
  let first = true;
  for (const f of files) {
    if (f.index.container !== container || count >= MAX_PLAYLIST_SEGMENTS) continue;
    const segs = f.index.segments;
    if (segs.length === 0) continue;
    const t0 = segs[0].startMs;
    let opened = false;
    for (let i = 0; i < segs.length && count < MAX_PLAYLIST_SEGMENTS; i++) {
      const s = segs[i];
      const wall = f.wallMs === null ? null : f.wallMs + s.startMs - t0;
      if (wall !== null && (wall + s.durationMs <= range.fromMs || wall > range.toMs)) continue;
      if (!opened) {
        opened = true;
        if (!first) lines.push('#EXT-X-DISCONTINUITY');
        first = false;
        if (f.index.init) lines.push(`#EXT-X-MAP:URI="${dir}/${f.id}.mp4",BYTERANGE="${f.index.init.length}@${f.index.init.offset}"`);
        if (wall !== null) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(wall).toISOString()}`);
        growing ||= f.info.state === 'recording';
      }
      const seconds = s.durationMs / 1000;
      target = Math.max(target, Math.round(seconds));
      lines.push(`#EXTINF:${seconds.toFixed(3)},`);
      if (container === 'mp4') lines.push(`#EXT-X-BYTERANGE:${s.length}@${s.offset}`, `${dir}/${f.id}.mp4`);
      else lines.push(`${dir}/${f.id}/${i}.ts`);
      count++;
    }
  }
  if (count === 0) return null;
  // EXTINF rounded to the nearest integer must not exceed the target duration (§4.3.3.1).
  const head = ['#EXTM3U', `#EXT-X-VERSION:${container === 'mp4' ? FMP4_VERSION : TS_VERSION}`, `#EXT-X-TARGETDURATION:${target}`, '#EXT-X-MEDIA-SEQUENCE:0', `#EXT-X-PLAYLIST-TYPE:${growing ? 'EVENT' : 'VOD'}`];
  if (!growing) lines.push('#EXT-X-ENDLIST');
  return `${[...head, ...lines].join('\n')}\n`;
}
