import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FrontDoorOptions } from '../../http/frontdoor.js';
import { validHost } from '../../http/request-rules.js';
import { CHALLENGE_PREFIX, type ChallengeBook } from './challenges.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** What the plain-HTTP step needs to know, read per request (a reload changes it). */
export interface PlainHttpPolicy {
  book: ChallengeBook;
  /** ACME is on: `/.well-known/acme-challenge/` tokens of ours are answered before any route. */
  acme(): boolean;
  /** https_redirect is on. */
  redirect(): boolean;
  /** The port of the first HTTPS listener (for the Location), or null when there is none. */
  httpsPort(): number | null;
  /** Peers that keep plain HTTP under https_redirect (loopback: a local encoder, a health check). */
  local(ip: string | undefined): boolean;
  /** The routing table's live stream paths, which are never redirected. */
  streamPath: RegExp;
}

/** Loopback peers (a local encoder, a health check) keep plain HTTP under https_redirect by default. */
export function isLoopback(ip: string | undefined): boolean {
  if (ip === undefined) return false;
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}

/**
 * The first step on a plain-HTTP listener, before the routing table: an ACME HTTP-01 answer, or a
 * 301 to HTTPS. Returns false when the request goes on to the table.
 */
export function plainHttpStep(p: PlainHttpPolicy, req: IncomingMessage, res: ServerResponse): boolean {
  const url = req.url ?? '/';
  if (url.startsWith(CHALLENGE_PREFIX) && p.acme()) {
    const token = url.slice(CHALLENGE_PREFIX.length);
    const answer = p.book.httpAnswer(token);
    // Not one of ours (a certbot webroot for other names, say): the table answers as before.
    if (answer === undefined) return false;
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': Buffer.byteLength(answer), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : answer);
    return true;
  }
  const location = redirectTo(p, req.socket, url, req.headers.host);
  if (location === null) return false;
  const body = `moved to ${location}\n`;
  res.writeHead(301, { Location: location, 'Content-Type': 'text/plain;charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

/** The https:// URL a plain-HTTP request is sent to, or null when it stays on HTTP. */
function redirectTo(p: PlainHttpPolicy, sock: Socket, url: string, hostHeader: string | undefined): string | null {
  if (!p.redirect() || p.local(sock.remoteAddress)) return null;
  const port = p.httpsPort();
  if (port === null || !url.startsWith('/') || url.startsWith(CHALLENGE_PREFIX)) return null;
  const q = url.indexOf('?');
  if (p.streamPath.test(q < 0 ? url : url.slice(0, q))) return null;
  // No Host (HTTP/1.0) or a malformed one: no name to send the client to; the table answers.
  if (hostHeader === undefined || !validHost(hostHeader)) return null;
  const host = hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.replace(/:\d*$/, '');
  return `https://${host}${port === 443 ? '' : `:${port}`}${url}`;
}

/** A plain-HTTP listener's request handler with the step in front. */
export function wrapHandler(p: PlainHttpPolicy, handler: Handler): Handler {
  return (req, res) => {
    if (!plainHttpStep(p, req, res)) handler(req, res);
  };
}

/**
 * The plain-HTTP front door under the same step: it never answers a challenge path itself (nor
 * sends it down the proxy lane), and while https_redirect is on, a connection from a non-loopback
 * peer goes to Node's parser, where the step decides per request.
 */
export function wrapFrontDoor(p: PlainHttpPolicy, opts: FrontDoorOptions): FrontDoorOptions {
  const proxy = opts.proxy;
  return {
    ...opts,
    eligible: (sock) => opts.eligible(sock) && !(p.redirect() && !p.local(sock.remoteAddress)),
    proxy: proxy === undefined ? undefined : (r, sock) => (r.url.startsWith(CHALLENGE_PREFIX) && p.acme() ? null : proxy(r, sock)),
  };
}
