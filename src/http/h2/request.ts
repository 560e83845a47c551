import { replyFields, type FastReply, type FastRequest } from '../frontdoor.js';
import { badFieldValue, checkTarget, isToken } from '../request-rules.js';
import { encode, type Field } from './hpack.js';

/**
 * What a request's header block means, by the rules every lane applies (src/http/request-rules.ts)
 * and those of RFC 9113 §8.2 and §8.3: malformed (a stream error), refused (a 400, as the
 * HTTP/1.1 lanes answer the same target), or a request, plain enough for the fast path or not.
 */

const PSEUDO = new Set([':method', ':path', ':scheme', ':authority']);
/** §8.2.2: connection-specific fields make a request malformed. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Values the fast path leaves to Node (surrounding whitespace, which Node trims for us). */
const EDGE_SPACE = /^[ \t]|[ \t]$/;

/**
 * Why the block is a malformed request (§8.2.1, §8.3), or null. A field name must be a lower-case
 * token; a value must hold no control character but HTAB (CR, LF and NUL are what §8.2.1 names;
 * the other lanes refuse the rest too); pseudo-fields are the four of §8.3.1, once each, first.
 */
export function malformed(fields: readonly Field[]): string | null {
  let regular = false;
  const seen = new Set<string>();
  for (let i = 0; i < fields.length; i++) {
    const [name, value] = fields[i];
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return 'pseudo-header field after a regular one';
      if (!PSEUDO.has(name)) return `unknown pseudo-header field ${name}`;
      if (seen.has(name)) return `${name} twice`;
      seen.add(name);
    } else {
      regular = true;
      if (!isToken(name) || /[A-Z]/.test(name)) return 'field name not a lower-case token';
      if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
      if (name === 'te' && value !== 'trailers') return 'te other than trailers';
    }
    if (badFieldValue(value)) return `control character in ${name}`;
  }
  return null;
}

/** A request's target as routed: the path with dot-segments removed and the query, or why it is a 400. */
export type Target = { ok: true; url: string; changed: boolean } | { ok: false; reason: string };

/**
 * `:path` and the authority as the HTTP/1.1 lanes read a request-target and Host: dot-segments
 * removed before routing, climbing above "/" refused, more than one host refused. `:authority`
 * and a Host that says the same are one host (§8.3.1); a Host that differs is a second one.
 */
export function targetOf(fields: readonly Field[]): Target {
  let method = '';
  let path = '';
  let authority: string | null = null;
  const hostFields: string[] = [];
  for (const [name, value] of fields) {
    if (name === ':method') method = value;
    else if (name === ':path') path = value;
    else if (name === ':authority') authority = value;
    else if (name === 'host') hostFields.push(value);
  }
  const hosts = authority === null ? hostFields : [authority, ...hostFields.filter((h) => h !== authority)];
  // CONNECT (no :path) and the rest of §8.5 are Node's to judge.
  if (path === '' || method === 'CONNECT') return { ok: true, url: path, changed: false };
  const v = checkTarget(method, path, hosts, false);
  if (!v.ok) return v;
  const url = v.path + v.query;
  return { ok: true, url, changed: url !== path };
}

/** A plain GET/HEAD with nothing Node must judge, its target already checked (`url`); else null. */
export function plainRequest(fields: readonly Field[], url: string, notPlain: ReadonlySet<string>, ip: string): FastRequest | null {
  let method = '';
  let scheme = '';
  let authority: string | null = null;
  let host: string | null = null;
  let origin = false;
  let referer = '';
  let agent = '';
  for (let i = 0; i < fields.length; i++) {
    const [name, value] = fields[i];
    if (name === ':method') method = value;
    else if (name === ':scheme') scheme = value;
    else if (name === ':authority') authority = value;
    else if (name.charCodeAt(0) === 0x3a) continue;
    else if (notPlain.has(name) || EDGE_SPACE.test(value)) return null;
    else if (name === 'host') host = value;
    else if (name === 'origin') origin = true;
    else if (name === 'referer') referer = value;
    else if (name === 'user-agent') agent = value;
  }
  if ((method !== 'GET' && method !== 'HEAD') || scheme === '' || url.charCodeAt(0) !== 0x2f) return null;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return null;
  }
  const h = authority ?? host;
  if (h === null || EDGE_SPACE.test(h)) return null;
  return { method, url, host: h, origin, referer, agent, ip, httpVersion: '2.0', head: '', memo: null };
}

/** Requests remembered per connection: a player's master playlist, media playlists, the last segment (as on HTTP/1.1). */
const RECENT_KEPT = 4;
/** Requests larger than this (URL, Referer and User-Agent together) are not kept: a connection's memory stays small. */
const RECENT_MAX_CHARS = 2048;

/**
 * A connection's last few plain requests. Each HTTP/2 request arrives as a new header block,
 * but a client repeats them (a player polls its playlists, a load tool one URL): handing back the
 * object of an equal earlier request lets the answerer's memo on it (its route, its reply, its
 * access-log pieces) serve again, as a repeated HTTP/1.1 head does. Measured on the HTTP/2 row,
 * routing each request afresh was about a tenth of its CPU.
 */
export class RecentRequests {
  private readonly kept: FastRequest[] = [];
  private next = 0;

  /** `r`, or an equal request kept earlier (with its memo). */
  same(r: FastRequest): FastRequest {
    const kept = this.kept;
    for (let i = 0; i < kept.length; i++) {
      const k = kept[i];
      if (k.url === r.url && k.method === r.method && k.host === r.host && k.origin === r.origin && k.agent === r.agent && k.referer === r.referer && k.ip === r.ip) return k;
    }
    if (r.url.length + r.agent.length + r.referer.length + r.host.length <= RECENT_MAX_CHARS) {
      kept[this.next] = r;
      this.next = (this.next + 1) % RECENT_KEPT;
    }
    return r;
  }
}

/** The fields with `:path` replaced by the routed target. */
export function withPath(fields: Field[], url: string): Field[] {
  return fields.map((f) => (f[0] === ':path' ? [':path', url] : f));
}

/** The request as the access log shows a refused one. */
export function loggedRequest(fields: readonly Field[], ip: string): FastRequest {
  const get = (n: string) => fields.find((f) => f[0] === n)?.[1] ?? '';
  return {
    method: get(':method') as 'GET', url: get(':path'), host: get(':authority') || get('host'), origin: false, referer: get('referer'),
    agent: get('user-agent'), ip, httpVersion: '2.0', head: '', memo: null,
  };
}

// ---- replies written by this connection ------------------------------------------------------

/** The `date` field, encoded once per second, and the second it is for. */
let dateSecond = -1;
let dateBlock: Buffer = Buffer.alloc(0);

function dateField(now: number): Buffer {
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateBlock = encode([['date', new Date(s * 1000).toUTCString()]]);
  }
  return dateBlock;
}

/** A reply's header block, date included: encoded once per reply, joined to the date once a second (replies are reused). */
const blocks = new WeakMap<FastReply, { fields: Buffer; second: number; block: Buffer }>();

export function blockOf(r: FastReply, now = Date.now()): Buffer {
  const date = dateField(now);
  let b = blocks.get(r);
  if (b === undefined) {
    b = { fields: encode(replyFields(r)), second: -1, block: date };
    blocks.set(r, b);
  }
  if (b.second !== dateSecond) {
    b.second = dateSecond;
    b.block = Buffer.concat([b.fields, date], b.fields.length + date.length);
  }
  return b.block;
}

function textReply(status: number, text: string): FastReply {
  const body = Buffer.from(`${text}\n`);
  return { status, head: `Content-Type: text/plain;charset=utf-8\r\nContent-Length: ${body.length}\r\n`, body, route: 'none' };
}

export const TOO_LARGE = textReply(431, '431 request header fields too large');
export const BAD_REQUEST = textReply(400, '400 bad request');
