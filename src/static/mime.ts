import mime from 'mime-types';

/**
 * Content types come from `mime-types` (the IANA/Apache/NGINX database Koa and Express use), with
 * `;charset=utf-8` on the types it gives a UTF-8 charset, written without a space as SRS writes it.
 *
 * Overrides: the table SRS's documentation gives for its HTTP server, kept byte for byte
 * because players and CDNs in front of SRS already accept it (`video/MP2T;charset=utf-8` for
 * segments, with SRS's odd charset on binary), except for playlists: RFC 8216 §4 says a playlist
 * served by type MUST be application/vnd.apple.mpegurl (what SRS itself and NGINX's mime.types send;
 * that documentation's x-mpegURL is a pre-RFC name). Unknown extensions are application/octet-stream
 * with nosniff (its "Others: text/html" would turn any uploaded file into a page).
 */
const SEED: Record<string, string> = {
  '.ts': 'video/MP2T;charset=utf-8',
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.json': 'application/json;charset=utf-8',
  '.css': 'text/css;charset=utf-8',
  '.swf': 'application/x-shockwave-flash',
  '.js': 'text/javascript;charset=utf-8',
  '.xml': 'text/xml;charset=utf-8',
};

export const UNKNOWN_TYPE = 'application/octet-stream';

/**
 * The database also names types no browser or player acts on (`.xyz` is chemical/x-xyz, `.obj`
 * model/obj): those stay octet-stream with nosniff, like an extension it does not know.
 */
const SERVED_TOP_LEVELS = new Set(['application', 'audio', 'font', 'image', 'text', 'video']);

export function contentType(path: string): string | undefined {
  const dot = path.lastIndexOf('.');
  if (dot < 0 || path.indexOf('/', dot) >= 0) return undefined;
  const ext = path.slice(dot).toLowerCase();
  const seeded = SEED[ext];
  if (seeded) return seeded;
  const type = mime.lookup(ext);
  if (!type || !SERVED_TOP_LEVELS.has(type.slice(0, type.indexOf('/')))) return undefined;
  const charset = mime.charset(type);
  return charset ? `${type};charset=${charset.toLowerCase()}` : type;
}

/**
 * Files on disk: playlists change every segment, and segments may too. ffmpeg's HLS muxer and SRS
 * number segments from 0 (or from what is in the directory) again after a restart, so `live-3.ts`
 * can name other bytes an hour later: a year of `immutable` would have a CDN or browser serve the
 * old segment. Every HLS/DASH file is revalidated by its ETag instead (a 304 when unchanged). The
 * live segments cut in memory are another matter: their names are never reused, and src/outputs
 * keeps them immutable.
 */
export function cacheControl(path: string): string | undefined {
  if (path.endsWith('.m3u8') || path.endsWith('.mpd')) return 'no-cache';
  if (path.endsWith('.ts') || path.endsWith('.m4s') || path.endsWith('.aac')) return 'no-cache';
  return undefined;
}
