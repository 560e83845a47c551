/**
 * The syntax rules every lane applies to a request before the routing table sees it: the front
 * door, Node's HTTP/1.1 parser (through the Koa app and the proxy path), the HTTP/2 servers and the
 * proxy lane. One set of rules, so no two lanes can disagree about what a request is (a request
 * that one lane routes and another refuses is how smuggling and cache poisoning start).
 *
 * Pure functions on strings: no I/O, no Node request objects.
 */

/**
 * Whether a field value holds a control character other than HTAB (NUL, CR, LF, DEL…). RFC 9110
 * §5.5 allows only VCHAR, obs-text, SP and HTAB; Node's llhttp answers 400 to the rest and RFC 9113
 * §8.2.1 makes CR, LF and NUL a malformed HTTP/2 request.
 */
export function badFieldValue(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/** RFC 9110 §5.6.2 token characters, as a lookup by char code. */
const TCHAR = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** Whether a field name (or method) is a non-empty token. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) return false;
  }
  return true;
}

/**
 * A Host value we route on: a reg-name, IPv4 or bracketed IPv6 literal with an optional port
 * (RFC 3986 §3.2.2). Anything else (a slash, a userinfo "@", spaces) would let a vhost match or a
 * forwarded Host mean something other than what the client's neighbour sees.
 */
export function validHost(h: string): boolean {
  if (h.length === 0 || h.length > 255) return false;
  let i = 0;
  if (h.charCodeAt(0) === 0x5b) {
    const end = h.indexOf(']');
    if (end < 0) return false;
    for (let j = 1; j < end; j++) {
      const c = h.charCodeAt(j);
      const hex = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
      if (!hex && c !== 0x3a && c !== 0x2e) return false;
    }
    i = end + 1;
    if (i === h.length) return true;
    if (h.charCodeAt(i) !== 0x3a) return false;
  } else {
    for (; i < h.length; i++) {
      const c = h.charCodeAt(i);
      if (c === 0x3a) break;
      const ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
      if (!ok) return false;
    }
    if (i === 0) return false;
    if (i === h.length) return true;
  }
  // ":" then digits (an empty port is allowed by RFC 3986 and means the default).
  for (let j = i + 1; j < h.length; j++) {
    const c = h.charCodeAt(j);
    if (c < 0x30 || c > 0x39) return false;
  }
  return h.length - i - 1 <= 5;
}

/** Whether a raw path segment is "." or "..", percent-encoded dots included (RFC 3986 §2.3, §6.2.2.2). */
function dots(seg: string): 0 | 1 | 2 {
  const s = seg.length <= 6 && seg.includes('%') ? seg.replace(/%2e/gi, '.') : seg;
  return s === '.' ? 1 : s === '..' ? 2 : 0;
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments on a still percent-encoded absolute path ("/a/./b/../c" →
 * "/a/c"); null when a ".." climbs above "/" (NGINX answers 400 there too). The path is returned
 * as it came when it has no dot segment, so the common case allocates nothing.
 */
export function normalizePath(path: string): string | null {
  if (path.charCodeAt(0) !== 0x2f) return null;
  if (!path.includes('/.') && !/\/%2e/i.test(path)) return path;
  const segs = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const seg = segs[i];
    const d = dots(seg);
    const last = i === segs.length - 1;
    if (d === 0) out.push(seg);
    else if (d === 2) {
      if (out.length === 0) return null;
      out.pop();
      if (last) out.push('');
    } else if (last) out.push('');
  }
  return `/${out.join('/')}`;
}

/** What the rules make of a request's target and Host, or why it is refused (always a 400). */
export type TargetVerdict =
  | { ok: true; path: string; query: string; host: string }
  | { ok: false; reason: string };

/**
 * The request-target (RFC 9112 §3.2) and Host fields of a request, as every lane must read them:
 * - origin-form "/path?query", its path normalised (dot-segments removed; climbing above "/" is refused);
 * - absolute-form "http://authority/path" (what proxies are sent): its authority is the Host and
 *   the Host field is ignored (RFC 9112 §3.2.2);
 * - "*" (OPTIONS only) passes with path "*"; authority-form (CONNECT) and anything else are refused;
 * - more than one Host is refused (RFC 9112 §3.2: a 400), as is an HTTP/1.1 request with none
 *   (`hostRequired`), and a Host that is not a host[:port].
 *
 * `hosts` are the Host field values as received (HTTP/2 passes :authority as the first).
 */
export function checkTarget(method: string, target: string, hosts: readonly string[], hostRequired: boolean): TargetVerdict {
  if (hosts.length > 1) return { ok: false, reason: 'more than one Host header' };
  let host = hosts.length === 1 ? hosts[0].trim() : '';
  let rest = target;
  if (target.charCodeAt(0) !== 0x2f) {
    if (target === '*') {
      if (method !== 'OPTIONS') return { ok: false, reason: 'asterisk-form target on a method other than OPTIONS' };
      return { ok: true, path: '*', query: '', host };
    }
    const m = /^(https?):\/\/([^/?#]*)/i.exec(target);
    if (!m) return { ok: false, reason: 'request-target is not origin-form or absolute-form' };
    if (m[2].includes('@')) return { ok: false, reason: 'userinfo in an absolute-form target' };
    host = m[2];
    rest = target.slice(m[0].length) || '/';
    if (rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  } else if (hostRequired && hosts.length === 0) {
    return { ok: false, reason: 'HTTP/1.1 request without Host' };
  }
  if (host !== '' && !validHost(host)) return { ok: false, reason: 'malformed Host' };
  if (rest.includes('#')) return { ok: false, reason: 'fragment in the request-target' };
  const q = rest.indexOf('?');
  const raw = q < 0 ? rest : rest.slice(0, q);
  const path = normalizePath(raw);
  if (path === null) return { ok: false, reason: 'path climbs above the root' };
  return { ok: true, path, query: q < 0 ? '' : rest.slice(q), host };
}
