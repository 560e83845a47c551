import { headerLines } from '../http/head.js';
import { connectionTokenSet, isHopByHop } from './headers.js';
import { IDLE_MS } from './pool.js';

/**
 * The upstream's response head as the proxy lane reads it: what it says (status, framing,
 * keep-alive) and the header lines the client gets. One parse per distinct head: an upstream
 * answers the same head byte for byte until its Date moves on (once a second), so the lane keeps
 * the last head's bytes with their parse and a byte comparison stands in for the parse (measured:
 * the parse was the lane's largest function). Equal bytes read the same, so nothing is decided
 * differently.
 */

/** The body framing of a response, as RFC 9112 §6.3 decides it for this request. */
export const enum Body { None, Length, Chunked, Close }

/**
 * A control character in a head, or a CR or LF that is not part of a CRLF: forwarded as is, a
 * bare LF in a value would start a new header line (or a new request) for the next parser.
 */
export const BAD_HEAD = /[\0-\x08\x0b\x0c\x0e-\x1f\x7f]|\r[^\n]|\r$|[^\r]\n|^\n/;

/** What an upstream's final (non-1xx) response head says, whatever the request. */
export interface UpstreamHead {
  status: number;
  /** The status line after `HTTP/1.x ` (code and reason phrase), as sent. */
  statusRest: string;
  /** HTTP/1.1 and no `Connection: close`: the connection may carry another request. */
  persistent: boolean;
  /** How long the upstream keeps an idle connection, less a second; IDLE_MS without a hint. */
  idleMs: number;
  /** Content-Length, -1 for none. */
  length: number;
  /** Transfer-Encoding present; `chunked` when its last coding is chunked. */
  te: boolean;
  chunked: boolean;
  /** The header lines the client gets, each with its CRLF: hop-by-hop ones out, one Content-Length. */
  lines: string;
  /** Trailer fields, relayed only to a client that reads trailers. */
  trailerLines: string;
  hasDate: boolean;
  /** The upstream set Access-Control-Allow-Origin: no CORS lines of ours. */
  hasAcao: boolean;
}

/** The framing of `u`'s body in answer to `method`. */
export function framing(u: UpstreamHead, method: string): Body {
  if (method === 'HEAD' || u.status === 204 || u.status === 304) return Body.None;
  // Transfer-Encoding wins over Content-Length; a last coding other than chunked runs to the close.
  if (u.te) return u.chunked ? Body.Chunked : Body.Close;
  if (u.length >= 0) return u.length === 0 ? Body.None : Body.Length;
  return Body.Close;
}

/** The status code of a head's status line, or -1 when it is not `HTTP/1.x NNN[ reason]`. */
function statusOf(text: string, eol: number): number {
  if (!text.startsWith('HTTP/1.')) return -1;
  const minor = text.charCodeAt(7);
  if ((minor !== 0x31 && minor !== 0x30) || text.charCodeAt(8) !== 0x20) return -1;
  const d0 = text.charCodeAt(9) - 0x30;
  const d1 = text.charCodeAt(10) - 0x30;
  const d2 = text.charCodeAt(11) - 0x30;
  if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) || (eol > 12 && text.charCodeAt(12) !== 0x20)) return -1;
  return d0 * 100 + d1 * 10 + d2;
}

/**
 * Parses a response head (status line and header lines, without the blank line): an
 * UpstreamHead, 'info' for a 1xx to skip, or null when it is not a response head the lane relays
 * (a malformed line, two Content-Lengths that differ, a 101).
 */
export function parseResponseHead(text: string): UpstreamHead | 'info' | null {
  if (BAD_HEAD.test(text)) return null;
  let eol = text.indexOf('\r\n');
  if (eol < 0) eol = text.length;
  const status = statusOf(text, eol);
  if (status < 0 || status === 101) return null;
  if (status < 200) return 'info';
  const h = headerLines(text, eol === text.length ? eol : eol + 2);
  if (h === null) return null;
  const { names, lines, colons } = h;
  const u: UpstreamHead = {
    status, statusRest: text.slice(9, eol), persistent: text.charCodeAt(7) === 0x31, idleMs: IDLE_MS, length: -1, te: false, chunked: false,
    lines: '', trailerLines: '', hasDate: false, hasAcao: false,
  };
  let te: string | null = null;
  let connection: string | null = null;
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    if (name === 'content-length') {
      const value = lines[i].slice(colons[i] + 1).trim();
      if (!/^\d{1,15}$/.test(value)) return null;
      const n = Number(value);
      // Two different lengths: no way to know where the response ends (RFC 9112 §6.3).
      if (u.length >= 0 && n !== u.length) return null;
      u.length = n;
    } else if (name === 'transfer-encoding') {
      const value = lines[i].slice(colons[i] + 1).trim();
      te = te === null ? value : `${te}, ${value}`;
    } else if (name === 'connection') {
      const value = lines[i].slice(colons[i] + 1).trim();
      connection = connection === null ? value : `${connection}, ${value}`;
    } else if (name === 'keep-alive') {
      // A server that said it keeps an idle connection N s: give it up a second earlier, so
      // that our next request does not cross its close (undici does the same with the hint).
      const m = /timeout=(\d+)/i.exec(lines[i]);
      if (m) u.idleMs = Math.max(0, Math.min(IDLE_MS, Number(m[1]) * 1000 - 1000));
    } else if (name === 'access-control-allow-origin') {
      u.hasAcao = true;
    } else if (name === 'date') {
      u.hasDate = true;
    }
  }
  u.te = te !== null;
  u.chunked = te !== null && /(?:^|,)\s*chunked\s*$/i.test(te);
  if (connection !== null && /(?:^|,)\s*close\s*(?:,|$)/i.test(connection)) u.persistent = false;
  const tokens = connectionTokenSet(connection ?? undefined);
  let lengthSent = false;
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (tokens !== null && tokens.has(n)) continue;
    if (n === 'trailer') {
      u.trailerLines += `${lines[i]}\r\n`;
      continue;
    }
    if (isHopByHop(n)) continue;
    if (n === 'content-length') {
      // Repeats of the one length are sent once; with Transfer-Encoding not at all (RFC 9112 §6.3).
      if (te !== null || lengthSent) continue;
      lengthSent = true;
    }
    u.lines += `${lines[i]}\r\n`;
  }
  return u;
}

/** What the client's head depends on besides the upstream's. */
export interface HeadAsk {
  body: Body;
  /** The client reads trailers (TE: trailers): the Trailer field is relayed. */
  trailers: boolean;
  close: boolean;
  cors: string;
  /** Our Date line, used when the upstream sent none. */
  date: string;
}

/** The client's response head for an upstream head and a request. */
export function clientHead(u: UpstreamHead, a: HeadAsk): string {
  let out = `HTTP/1.1 ${u.statusRest}\r\n${u.lines}`;
  if (a.trailers) out += u.trailerLines;
  if (!u.hasDate) out += a.date;
  if (!u.hasAcao) out += a.cors;
  // A close-delimited body goes to a keep-alive client in our own chunked framing.
  if (a.body === Body.Chunked || (a.body === Body.Close && !a.close)) out += 'Transfer-Encoding: chunked\r\n';
  return `${out}${a.close ? 'Connection: close' : 'Connection: keep-alive'}\r\n\r\n`;
}

/** Heads longer than this are parsed every time, not kept (an API's are a few hundred bytes). */
const HEAD_KEPT_MAX_BYTES = 2048;

/**
 * The last final head one upstream sent, kept as bytes with its parse, and the last client head
 * rendered from it: per pool, so what it holds is bounded by HEAD_KEPT_MAX_BYTES twice.
 */
export class HeadMemo {
  private raw: Buffer | null = null;
  private head: UpstreamHead | null = null;
  private ask: HeadAsk | null = null;
  private out: Buffer = Buffer.alloc(0);

  /** The parse of the head at the start of `buf` if it is byte for byte the one kept, with its length. */
  match(buf: Buffer): UpstreamHead | null {
    const raw = this.raw;
    if (raw === null || buf.length < raw.length || buf.compare(raw, 0, raw.length, 0, raw.length) !== 0) return null;
    return this.head;
  }

  /** Length of the kept head, blank line included (valid after a match). */
  get rawLength(): number {
    return this.raw?.length ?? 0;
  }

  keep(buf: Buffer, headEnd: number, u: UpstreamHead): void {
    if (headEnd + 4 > HEAD_KEPT_MAX_BYTES) return;
    const raw = Buffer.allocUnsafeSlow(headEnd + 4);
    buf.copy(raw, 0, 0, headEnd + 4);
    this.raw = raw;
    this.head = u;
    this.ask = null;
  }

  /**
   * clientHead(u, a) as bytes, rendered again only when the head or one of the asks changed. The
   * bytes are shared by every answer that uses them: written, never modified.
   */
  render(u: UpstreamHead, a: HeadAsk): Buffer {
    const k = this.ask;
    if (u === this.head && k !== null && k.body === a.body && k.trailers === a.trailers && k.close === a.close && k.cors === a.cors && (u.hasDate || k.date === a.date)) return this.out;
    const out = Buffer.from(clientHead(u, a), 'latin1');
    if (u === this.head) {
      this.ask = a;
      this.out = out;
    }
    return out;
  }
}
