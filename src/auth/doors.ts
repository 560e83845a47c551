import type { Context } from 'koa';
import { clientIp } from '../net/address.js';
import type { StreamName } from '../live/types.js';
import { GatewayError } from '../errors.js';
import type { AccessControl, DoorRequest, Verdict } from './policy.js';
import { HlsGrants, SEGMENT } from './hls-grants.js';
import type { Action } from './types.js';

/** The door request of an HTTP publish or play. */
export function doorRequest(ctx: Context, action: Action, name: StreamName, protocol: string, streamId?: string): DoorRequest {
  const bearer = /^Bearer[ \t]+(\S+)\s*$/i.exec(ctx.get('Authorization'))?.[1] ?? null;
  return {
    action,
    name: { vhost: name.vhost, app: name.app, stream: name.stream },
    ip: clientIp(ctx.req.socket?.remoteAddress),
    query: new URLSearchParams(ctx.querystring),
    bearer,
    tcUrl: `${ctx.protocol}://${ctx.host}/${name.app}`,
    pageUrl: ctx.get('Referer'),
    protocol,
    streamId,
  };
}

/** The answer to a refused HTTP publish or play. */
export function refusal(v: Verdict & { ok: false }, action: Action): GatewayError {
  if (v.status === 401) return new GatewayError('UNAUTHORIZED', undefined, { 'WWW-Authenticate': 'Bearer' });
  return new GatewayError(action === 'publish' ? 'PUBLISH_FORBIDDEN' : 'PLAY_FORBIDDEN');
}

/**
 * A live HTTP play (FLV, TS, AAC, MP3): one check, and its on_stop when the response ends.
 * Throws the refusal.
 */
export async function authorisePlay(access: AccessControl, ctx: Context, name: StreamName, protocol: string, streamId?: string): Promise<void> {
  const v = await access.authorise(doorRequest(ctx, 'play', name, protocol, streamId));
  if (!v.ok) throw refusal(v, 'play');
  // The player the API lists is this grant's client (the id its hooks were told).
  ctx.state.clientId = v.clientId;
  ctx.res.once('close', () => v.end());
}

/** The HLS viewer session of a Koa request (address, User-Agent, stream). */
export function hlsSessionKey(ctx: Context, name: StreamName, ext: string): string {
  // The credential is part of the session: a grant earned with one token is not another's.
  return HlsGrants.key(name.vhost, name.app, name.stream, ext, clientIp(ctx.req.socket?.remoteAddress), ctx.get('User-Agent'), credentialOf(ctx));
}

function credentialOf(ctx: Context): string {
  const q = ctx.query;
  const one = (v: unknown) => (typeof v === 'string' ? v : '');
  return `${one(q.token)}\n${one(q.secret)}\n${ctx.get('Authorization')}`;
}

/** An HLS playlist or segment GET on a vhost that controls play: the chain once per viewer session. */
export async function authoriseHls(access: AccessControl, ctx: Context, name: StreamName, ext: string): Promise<void> {
  const base = ext === 'ts' || ext === 'm4s' ? { ...name, stream: SEGMENT.exec(name.stream)?.[1] ?? name.stream } : name;
  const v = await access.hls.check(hlsSessionKey(ctx, name, ext), doorRequest(ctx, 'play', base, 'HLS'));
  if (!v.ok) throw refusal(v, 'play');
}

/**
 * The playlist as this viewer must see it: with a token in the playlist URL, every segment URL
 * it lists carries the same token, so a player (hls.js) needs one token for the whole stream.
 */
export function carryToken(playlist: string, ctx: Context): string {
  const token = typeof ctx.query.token === 'string' ? ctx.query.token : null;
  if (!token) return playlist;
  const q = `token=${encodeURIComponent(token)}`;
  const carry = (uri: string) => `${uri}${uri.includes('?') ? '&' : '?'}${q}`;
  // fMP4 and LL-HLS name URIs inside tags too: EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT (URI="…").
  return playlist.split('\n').map((line) => (line === '' ? line : line.startsWith('#') ? line.replace(/URI="([^"]*)"/, (_, u: string) => `URI="${carry(u)}"`) : carry(line))).join('\n');
}

/** HLS PUT: the chain once per uploader (address, User-Agent, app), not once per file. */
export function authoriseUpload(access: AccessControl, ctx: Context, name: StreamName): Promise<Verdict> {
  const key = `${name.vhost}/${name.app}\n${clientIp(ctx.req.socket?.remoteAddress)}\n${ctx.get('User-Agent')}\n${credentialOf(ctx)}`;
  return access.uploads.check(key, doorRequest(ctx, 'publish', name, 'HLS PUT'));
}
