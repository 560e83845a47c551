import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { badFieldValue, isToken } from '../http/request-rules.js';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy Keep-Alive and Proxy-Connection): they
 * describe one connection, so a proxy never forwards them in either direction.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // The gateway's own server answers `Expect: 100-continue`; the upstream gets the body as it comes.
  'expect',
]);

/** Whether a header (lower-case name) describes one connection and so is never forwarded. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/** Headers named in `Connection: a, b` are hop-by-hop for this message too (RFC 9110 §7.6.1). */
function connectionTokens(h: IncomingHttpHeaders): Set<string> | null {
  return connectionTokenSet(h.connection);
}

/** The header names a Connection value lists, lower-case, without close and keep-alive; null if none. */
export function connectionTokenSet(c: string | string[] | undefined): Set<string> | null {
  // The usual values name no header: skip the split.
  if (c === undefined || c === 'keep-alive' || c === 'close' || c === 'Keep-Alive') return null;
  const out = new Set<string>();
  for (const t of String(c).split(',')) {
    const n = t.trim().toLowerCase();
    if (n && n !== 'close' && n !== 'keep-alive') out.add(n);
  }
  return out.size > 0 ? out : null;
}

export interface ForwardInfo {
  /** The client's address, appended to X-Forwarded-For. */
  clientIp: string;
  /** http or https: what the client spoke to us. */
  proto: string;
  /** The Host the client asked for (HTTP/2's :authority). */
  host: string;
  /** The Host header to send upstream. */
  upstreamHost: string;
}

/**
 * The request headers to send upstream: the client's, minus hop-by-hop and HTTP/2 pseudo-headers,
 * plus X-Forwarded-* (For appended, as NGINX's $proxy_add_x_forwarded_for and Caddy do).
 */
export function upstreamRequestHeaders(h: IncomingHttpHeaders, f: ForwardInfo, keepUpgrade: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const extra = connectionTokens(h);
  for (const name in h) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name) || (extra !== null && extra.has(name))) continue;
    if (name === 'host' || name === 'x-forwarded-for' || name === 'x-forwarded-proto' || name === 'x-forwarded-host') continue;
    out[name] = h[name];
  }
  const prior = h['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${f.clientIp}` : f.clientIp;
  out['x-forwarded-proto'] = f.proto;
  out['x-forwarded-host'] = f.host;
  out.host = f.upstreamHost;
  if (keepUpgrade) {
    out.connection = 'Upgrade';
    out.upgrade = h.upgrade;
  }
  return out;
}

/** The upstream's response headers for the client, minus hop-by-hop ones. */
export function clientResponseHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const extra = connectionTokens(h);
  for (const name in h) {
    if (HOP_BY_HOP.has(name) || (extra !== null && extra.has(name))) continue;
    out[name] = h[name];
  }
  return out;
}

/** Serialises a status line and headers for a raw socket (WebSocket handshakes, early errors). */
export function rawHead(status: number, reason: string, headers: OutgoingHttpHeaders | IncomingHttpHeaders | string[]): string {
  let s = `HTTP/1.1 ${status} ${reason}\r\n`;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  } else {
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
    }
  }
  return `${s}\r\n`;
}

/**
 * Fields a trailer section may not carry (RFC 9110 §6.5.1: framing, routing, authentication,
 * response control and content metadata a recipient has already acted on): dropped, not relayed.
 */
const NOT_IN_TRAILERS = new Set([
  'content-length', 'content-type', 'content-encoding', 'content-range', 'trailer', 'host', 'authorization', 'set-cookie',
  'cache-control', 'expect', 'max-forwards', 'pragma', 'range', 'age', 'expires', 'date', 'location', 'retry-after',
  'vary', 'www-authenticate', 'proxy-authenticate',
]);

/** Whether a trailer field (lower-case name) is relayed to the client. */
export function trailerAllowed(name: string, value: string): boolean {
  return !HOP_BY_HOP.has(name) && !NOT_IN_TRAILERS.has(name) && isToken(name) && !badFieldValue(value);
}

/** The upstream's trailer fields (raw name/value pairs, as undici gives them) to relay, or null for none. */
export function trailerFields(raw: readonly (string | Buffer)[]): OutgoingHttpHeaders | null {
  const out: OutgoingHttpHeaders = {};
  let any = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toString('latin1').toLowerCase();
    const value = raw[i + 1].toString('latin1');
    if (!trailerAllowed(name, value)) continue;
    const prior = out[name];
    out[name] = prior === undefined ? value : `${String(prior)}, ${value}`;
    any = true;
  }
  return any ? out : null;
}

/** Whether a TE field value offers "trailers" (RFC 9110 §10.1.4): the client reads a trailer section. */
export function acceptsTrailers(te: string | string[] | undefined): boolean {
  if (te === undefined) return false;
  for (const t of String(te).split(',')) if (t.trim().toLowerCase() === 'trailers') return true;
  return false;
}
