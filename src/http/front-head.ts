import { headerLines } from './head.js';
import type { FastRequest } from './front-reply.js';
import { checkTarget } from './request-rules.js';

const EMPTY = Buffer.alloc(0);
/** Headers whose presence means the request is not a plain cache hit. */
export const NOT_PLAIN: ReadonlySet<string> = new Set(['range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range',
  'content-length', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
/** Of NOT_PLAIN, those a proxied request carries to its upstream as ordinary headers. */
const CONDITIONAL = new Set(['range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range']);

/**
 * Reads a request head that must be exactly `GET|HEAD target HTTP/1.1` plus ordinary header
 * lines with none of NOT_PLAIN; anything else returns null and Node's parser decides.
 */
export interface ParsedHead {
  req: FastRequest;
  /** The head's bytes as read, with the blank line (set once it is kept). */
  raw: Buffer;
  close: boolean;
  /** It carries a condition or a range: not for the cache, fine for a proxy. */
  conditional: boolean;
}

export function parseHead(head: string, ip: string): ParsedHead | null {
  const eol = head.indexOf('\r\n');
  const line = eol < 0 ? head : head.slice(0, eol);
  let method: 'GET' | 'HEAD';
  let at: number;
  if (line.startsWith('GET /')) {
    method = 'GET';
    at = 4;
  } else if (line.startsWith('HEAD /')) {
    method = 'HEAD';
    at = 5;
  } else {
    return null;
  }
  const sp = line.indexOf(' ', at);
  if (sp < 0 || line.length !== sp + 9 || !line.endsWith(' HTTP/1.1')) return null;
  const url = line.slice(at, sp);
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return null;
  }
  let host: string | null = null;
  let origin = false;
  let close = false;
  let conditional = false;
  let referer = '';
  let agent = '';
  // Folded lines, spaces in names, control characters: Node's parser answers those (400).
  const hl = headerLines(head, eol < 0 ? head.length : eol + 2);
  if (hl === null) return null;
  const { names, lines, colons } = hl;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const value = lines[i].slice(colons[i] + 1).trim();
    if (CONDITIONAL.has(name)) conditional = true;
    else if (NOT_PLAIN.has(name)) return null;
    if (name === 'host') {
      if (host !== null) return null;
      host = value;
    } else if (name === 'connection') {
      const v = value.toLowerCase();
      if (v.includes('upgrade')) return null;
      if (v.includes('close')) close = true;
    } else if (name === 'origin') {
      origin = true;
    } else if (name === 'referer') {
      referer = value;
    } else if (name === 'user-agent') {
      agent = value;
    }
  }
  // HTTP/1.1 requires Host (RFC 9112 §3.2): without one, Node answers 400.
  if (host === null) return null;
  // The request rules every lane applies: a malformed Host, a fragment, a dot-segment to remove
  // or one that climbs above "/" go to Node's lane, which refuses or normalises them before the
  // routing table; what the front door routes is a target already in normal form.
  const v = checkTarget(method, url, [host], true);
  if (!v.ok || v.path.length + v.query.length !== url.length) return null;
  return { req: { method, url, host, origin, referer, agent, ip, httpVersion: '1.1', head, memo: null }, raw: EMPTY, close, conditional };
}
