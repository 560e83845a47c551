import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { checkTarget } from './request-rules.js';

/**
 * The request rules (src/http/request-rules.ts) applied to a request Node's parser built, on
 * HTTP/1.x and HTTP/2 alike, before the routing table sees it. What the table then reads is the
 * normalised request:
 * - `req.url` becomes origin-form with dot-segments removed ("/up/../x" → "/x"; the proxy sends
 *   that, and the route is decided on it);
 * - an absolute-form target's authority becomes the Host (RFC 9112 §3.2.2), so a vhost is chosen
 *   by what the request named, not by a Host header it also carried.
 * Returns null when the request may go on, else why it is a 400.
 */
export function applyTargetRules(req: IncomingMessage | Http2ServerRequest): string | null {
  const h2 = req.httpVersionMajor >= 2;
  const hosts: string[] = [];
  if (h2) {
    // RFC 9113 §8.3.1: :authority when present, else the Host field.
    const a = req.headers[':authority'] ?? req.headers.host;
    if (typeof a === 'string') hosts.push(a);
  } else {
    // Node keeps the first of two Host fields in req.headers: the raw list has them all.
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i];
      if (n.length === 4 && n.toLowerCase() === 'host') hosts.push(raw[i + 1]);
    }
  }
  const url = req.url ?? '';
  const v = checkTarget(req.method ?? 'GET', url, hosts, !h2 && req.httpVersionMinor >= 1);
  if (!v.ok) return v.reason;
  if (v.path === '*') return null;
  const origin = v.query === '' ? v.path : v.path + v.query;
  if (origin !== url) req.url = origin;
  if (!h2 && url.charCodeAt(0) !== 0x2f && v.host !== '') {
    // Every reader of the request (the vhost choice, the proxy's forwarded Host, which reads the
    // raw list) must see the authority, not a Host field the client also sent.
    req.headers.host = v.host;
    const raw = req.rawHeaders;
    let seen = false;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') {
        raw[i + 1] = v.host;
        seen = true;
      }
    }
    if (!seen) raw.push('Host', v.host);
  }
  return null;
}
