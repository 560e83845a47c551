import type { Context, Next } from 'koa';
import type { Config, VhostConfig } from '../config/index.js';
import type { Hub } from '../live/hub.js';
import type { Logger } from '../log.js';
import { GatewayError } from '../errors.js';
import type { AccessControl } from '../auth/policy.js';
import { HlsGrants } from '../auth/hls-grants.js';
import { authoriseHls, authorisePlay, authoriseUpload, carryToken } from '../auth/doors.js';
import { publishHttpFlv } from '../ingest/http-flv.js';
import { edgeResolver } from '../ingest/edge.js';
import { handleUpload, serveUpload, uploadKey, UploadStore, type UploadLimits } from '../ingest/hls-put.js';
import { playHttpFlv } from './http-flv.js';
import { HlsOutput, type HlsName, type HlsViewer } from './hls.js';
import type { FastReply } from '../http/frontdoor.js';
import { playTs } from './ts.js';
import { checkAudioTrack, playAudio } from './audio.js';
import { VERSION } from '../version.js';

export type StreamExt = 'flv' | 'm3u8' | 'ts' | 'm4s' | 'aac' | 'mp3';

/** A request the routing table recognised as a stream: /{app}/{stream}.{ext} on a vhost. */
export interface StreamRequest extends HlsName {
  ext: StreamExt;
}

export interface OriginDeps {
  hub: Hub;
  config: () => Config;
  vhost: (name: string) => VhostConfig;
  log: Logger;
  /** The policy chain every publish and play passes (src/auth/policy.ts). */
  access: AccessControl;
  /** Upload store bounds (tests); defaults otherwise. */
  uploads?: UploadLimits;
  /** Live HLS segments may go out by sendfile (src/net/sendfile.ts). */
  sendfile?: boolean;
}

export interface Origin {
  /** Serves or ingests the stream; calls next() to let static files answer when nothing is live. */
  handle(ctx: Context, req: StreamRequest, next: Next): Promise<void>;
  /** Whether a GET of this stream path is the origin's to answer now (live, pulled or uploaded), not a file's. */
  claims(req: StreamRequest): boolean;
  /**
   * The front door's answer for a GET/HEAD that memory answers now (live HLS); null when the
   * origin claims the path but the full table must answer it; undefined when it does not claim
   * it (a file may).
   */
  fast(req: StreamRequest, head: boolean, viewer: HlsViewer): FastReply | null | undefined;
  close(): void;
  readonly hls: HlsOutput;
  readonly uploads: UploadStore;
}

const ALLOW_FLV = 'GET, HEAD, POST, PUT, OPTIONS';
const ALLOW_HLS = 'GET, HEAD, PUT, DELETE, OPTIONS';
const ALLOW_AUDIO = 'GET, HEAD, OPTIONS';
const LIVE_TYPES = { ts: 'video/mp2t', aac: 'audio/aac', mp3: 'audio/mpeg' } as const;

/**
 * The stream origin: dispatches /{app}/{stream}.{ext} by method and extension to ingest
 * (publish, HLS upload) or output (play). For a GET the order is: an uploaded HLS file, then the
 * live HLS playlist or segment (`{stream}-{seq}.ts`), then the live stream itself (.flv, .ts,
 * .aac, .mp3). Nothing live falls through to files, so HLS written to disk by another tool is
 * still served; if there is no file either, the answer is 404 at once (SRS hangs here: SRS
 * #1134, #2253).
 */
export function createOrigin(deps: OriginDeps): Origin {
  const { hub, log } = deps;
  const { access } = deps;
  hub.resolver = edgeResolver({ hub, log, vhost: deps.vhost });
  const hls = new HlsOutput({ hub, vhost: deps.vhost, log, maxHeld: deps.config().limits.hlsHeldRequests, sendfile: deps.sendfile ?? false, onSegment: (source, seg) => access.hlsSegment(source.name, seg, source.id) });
  const uploads = new UploadStore(deps.uploads);

  /** An HLS PUT upload is stored at this URL (no key is built while there are none, the usual case). */
  const uploaded = (req: StreamRequest): boolean => uploads.size > 0 && uploads.has(uploadKey(req));
  /** Claimed by a live stream published here or one an edge vhost may pull (the full path decides). */
  const claimsStream = (req: StreamRequest): boolean => hub.find(req) !== undefined || (req.ext !== 'm3u8' && deps.vhost(req.vhost).edge.origin !== null);
  const claims = (req: StreamRequest): boolean =>
    ((req.ext === 'm3u8' || req.ext === 'ts') && (uploaded(req) || hls.claims(req, req.ext))) || (req.ext === 'm4s' ? hls.claims(req, 'm4s') : claimsStream(req));

  return {
    async handle(ctx, req, next) {
      const name = { vhost: req.vhost, app: req.app, stream: req.stream };
      const v = deps.vhost(req.vhost);
      if (req.ext === 'flv') return handleFlv(ctx, name, v, deps, next);
      const method = ctx.method;
      const hlsFile = req.ext === 'm3u8' || req.ext === 'ts' || req.ext === 'm4s';
      // ffmpeg -f hls -method PUT: uploads win over everything else at their URL.
      if (hlsFile && req.ext !== 'm4s' && (method === 'PUT' || method === 'DELETE')) return handleUpload(ctx, req, { store: uploads, authorise: (c, r) => authoriseUpload(access, c, r), log });
      if (method !== 'GET' && method !== 'HEAD') throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: hlsFile ? ALLOW_HLS : ALLOW_AUDIO });
      const uploaded = hlsFile ? uploads.get(uploadKey(req)) : undefined;
      const guarded = access.guardsPlay(req.vhost);
      if (guarded && hlsFile && (uploaded || hls.claims(req, req.ext))) await authoriseHls(access, ctx, name, req.ext);
      if (uploaded) return serveUpload(ctx, uploaded);
      if (hlsFile && (await hls.serve(ctx, name, req.ext))) {
        if (req.ext === 'm3u8' && typeof ctx.body === 'string') ctx.body = carryToken(ctx.body, ctx);
        return;
      }
      if (req.ext === 'm3u8' || req.ext === 'm4s' || !v.httpRemux.enabled) return notLive(next);
      return playLive(ctx, name, req.ext as keyof typeof LIVE_TYPES, v, deps, next);
    },
    fast(req, head, viewer) {
      if (req.ext === 'm3u8' || req.ext === 'ts' || req.ext === 'm4s') {
        // The same order as handle(): an upload at this URL wins.
        if (req.ext !== 'm4s' && uploaded(req)) return null;
        // A controlled vhost: playlists (which may carry a token) and a session's first segment take the full path.
        if (access.guardsPlay(req.vhost) && (req.ext === 'm3u8' || !access.hls.has(HlsGrants.key(req.vhost, req.app, req.stream, req.ext, viewer.ip, viewer.agent)))) {
          return claims(req) ? null : undefined;
        }
        const reply = hls.fast(req, req.ext, head, viewer);
        if (reply !== undefined) return reply;
      }
      return req.ext !== 'm4s' && claimsStream(req) ? null : undefined;
    },
    claims,
    close() {
      hub.resolver = null;
      hls.close();
      uploads.close();
    },
    hls,
    uploads,
  };
}

/** What nothing live answers goes on to files; if no file either, the answer says the stream is not live. */
async function notLive(next: Next): Promise<void> {
  try {
    await next();
  } catch (err) {
    if (err instanceof GatewayError && err.code === 'NOT_FOUND') throw new GatewayError('STREAM_NOT_FOUND');
    throw err;
  }
}

/** /{app}/{stream}.flv: POST/PUT publishes (ffmpeg's FLV over HTTP), GET/HEAD plays. */
async function handleFlv(ctx: Context, name: HlsName, v: VhostConfig, deps: OriginDeps, next: Next): Promise<void> {
  const { hub, log, access } = deps;
  if (!v.httpRemux.enabled) return next();
  if (ctx.method === 'POST' || ctx.method === 'PUT') return publishHttpFlv(ctx, name, { hub, log, access });
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new GatewayError('METHOD_NOT_ALLOWED', undefined, { Allow: ALLOW_FLV });
  // Authorised before acquire: on an edge vhost, acquiring starts a pull from the origin.
  if (ctx.method === 'GET') await authorisePlay(access, ctx, name, 'HTTP-FLV', hub.find(name)?.id);
  const source = await hub.acquire(name);
  if (!source) return notLive(next);
  if (!source.canAcceptPlayer()) throw new GatewayError('LIMIT_REACHED', `at most ${v.play.maxPlayers} players per stream`);
  if (ctx.method === 'HEAD') {
    // Headers only: SRS crashed on exactly this request (SRS #4140).
    ctx.status = 200;
    ctx.set({ 'Content-Type': 'video/x-flv', 'Cache-Control': 'no-cache', Server: `streamgate/${VERSION}` });
    return;
  }
  // ffprobe/ffplay send `Range: bytes=0-` on live URLs: a live stream has no ranges, it is a fresh play.
  return playHttpFlv(ctx, source, hub);
}

/** A live stream as one continuous MPEG-TS, or its audio track as ADTS/MP3. */
async function playLive(ctx: Context, name: HlsName, ext: keyof typeof LIVE_TYPES, v: VhostConfig, deps: OriginDeps, next: Next): Promise<void> {
  const { hub, access } = deps;
  if (ctx.method === 'GET') await authorisePlay(access, ctx, name, ext.toUpperCase(), hub.find(name)?.id);
  const source = await hub.acquire(name);
  if (!source) return notLive(next);
  if (ext !== 'ts') checkAudioTrack(source, ext);
  if (!source.canAcceptPlayer()) throw new GatewayError('LIMIT_REACHED', `at most ${v.play.maxPlayers} players per stream`);
  if (ctx.method === 'HEAD') {
    ctx.status = 200;
    ctx.set({ 'Content-Type': LIVE_TYPES[ext], 'Cache-Control': 'no-cache', Server: `streamgate/${VERSION}` });
    return;
  }
  if (ext === 'ts') return playTs(ctx, source, hub);
  return playAudio(ctx, source, hub, ext);
}
