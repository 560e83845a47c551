import { timingSafeEqual, createHash } from 'node:crypto';
import { GatewayError } from '../errors.js';
import type { ApiAuth } from './types.js';

/** Methods that only read: open without auth, as in SRS. */
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** RFC 7617 §2: the challenge; the realm names what the credentials are for. */
export const BASIC_CHALLENGE = 'Basic realm="streamgate api", charset="UTF-8"';

export interface ApiRequest {
  method: string;
  /** The Authorization header, or '' when absent. */
  authorization: string;
  /** The peer's address as the socket reports it. */
  ip: string;
}

/**
 * The embedded API's door (and /metrics'): with `http_api.auth` on, HTTP Basic on every
 * request (SRS 5's SrsHttpAuthMux); without it, reads are open as in SRS and the write methods
 * (DELETE kicks a client) are accepted from loopback only, like publishing by default.
 * Throws the answer: 401 with a Basic challenge, or 403.
 */
export function checkApiRequest(auth: ApiAuth, r: ApiRequest): void {
  if (auth.enabled) {
    if (!basicMatches(auth, r.authorization)) throw new GatewayError('UNAUTHORIZED', undefined, { 'WWW-Authenticate': BASIC_CHALLENGE });
    return;
  }
  if (!READ_METHODS.has(r.method) && !isLoopback(r.ip)) {
    throw new GatewayError('FORBIDDEN', 'the API\'s write methods are accepted from loopback only unless http_api.auth is on');
  }
}

/** Whether the API may grant its write methods to another origin: only behind credentials. */
export function apiWritesCrossOrigin(auth: ApiAuth): boolean {
  return auth.enabled;
}

/**
 * `Authorization: Basic base64(user:pass)` against the configured pair, compared in constant
 * time over fixed-length digests so neither the length nor a common prefix leaks through timing.
 */
export function basicMatches(auth: ApiAuth, header: string): boolean {
  const m = /^Basic[ \t]+([A-Za-z0-9+/]+=*)[ \t]*$/i.exec(header);
  if (!m) return false;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const userOk = sameSecret(decoded.slice(0, colon), auth.username);
  const passOk = sameSecret(decoded.slice(colon + 1), auth.password);
  return userOk && passOk;
}

export function sameSecret(got: string, want: string): boolean {
  const a = createHash('sha256').update(got).digest();
  const b = createHash('sha256').update(want).digest();
  return timingSafeEqual(a, b);
}

export function isLoopback(ip: string): boolean {
  const a = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return a === '::1' || a.startsWith('127.');
}
