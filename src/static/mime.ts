/**
 * Content types. The first group is the table SRS documents for its HTTP server (the "seed"
 * table), kept byte for byte because players and CDNs in front of SRS already accept it, except
 * for playlists: RFC 8216 §4 says a playlist served by type MUST be application/vnd.apple.mpegurl
 * (what SRS itself and NGINX's mime.types send; the seed's x-mpegURL is a pre-RFC name). The
 * second is the usual web table. Unknown extensions are application/octet-stream with nosniff
 * (the seed's "Others: text/html" would turn any uploaded file into a page).
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

const COMMON: Record<string, string> = {
  '.flv': 'video/x-flv',
  '.aac': 'audio/aac',
  '.mp3': 'audio/mpeg',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.m4a': 'audio/mp4',
  '.m4s': 'video/iso.segment',
  '.mpd': 'application/dash+xml',
  '.webm': 'video/webm',
  '.ogg': 'audio/ogg',
  '.wav': 'audio/wav',
  '.html': 'text/html;charset=utf-8',
  '.htm': 'text/html;charset=utf-8',
  '.txt': 'text/plain;charset=utf-8',
  '.mjs': 'text/javascript;charset=utf-8',
  '.map': 'application/json;charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.vtt': 'text/vtt;charset=utf-8',
};

export const UNKNOWN_TYPE = 'application/octet-stream';

export function contentType(path: string): string | undefined {
  const dot = path.lastIndexOf('.');
  if (dot < 0 || path.indexOf('/', dot) >= 0) return undefined;
  const ext = path.slice(dot).toLowerCase();
  return SEED[ext] ?? COMMON[ext];
}

/** HLS behind a CDN: playlists change every segment, segments never change once written. */
export function cacheControl(path: string): string | undefined {
  if (path.endsWith('.m3u8') || path.endsWith('.mpd')) return 'no-cache';
  if (path.endsWith('.ts') || path.endsWith('.m4s') || path.endsWith('.aac')) return 'public, max-age=31536000, immutable';
  return undefined;
}
