import type http2 from 'node:http2';
import type { Server, Socket } from 'node:net';
import { NOT_DIRECT, SEND_FAILED, sendDirect, type DirectBody } from '../net/sendfile.js';
import { relaySessions, serveH2, type H2Connection } from './h2/index.js';
import { headerLines } from './head.js';
import { checkTarget } from './request-rules.js';
import { BUSY, IDLE, type Tracked } from '../net/guard.js';

/**
 * The front door of a plain-HTTP listener: the hot requests of a streaming site — a GET of a
 * playlist, a segment or a small file already in memory — answered straight from the socket,
 * before Node's HTTP machinery builds a request, a response and a Koa context for them (that
 * machinery costs more than the rest of the request: measured, it caps a core at about half of
 * NGINX's rate on 1 KB files). Anything else — another method, a body, a condition, a range,
 * HTTP/1.0, an incomplete or odd head, a path the gateway does not answer from memory — hands
 * the connection, with the bytes read so far, to Node's HTTP server, which then owns it for good.
 * So every protocol decision that is not a plain cache hit stays with Node's parser. The one
 * exception is a plain GET/HEAD for a proxied prefix: its head goes as read to the proxy lane
 * (src/proxy/lane.ts), which relays the upstream's answer on this same connection.
 */

export interface FastRequest {
  method: 'GET' | 'HEAD';
  /** The request-target as sent (origin-form, starts with "/"). */
  url: string;
  host: string;
  /** The request carries Origin (CORS headers are then due). */
  origin: boolean;
  referer: string;
  agent: string;
  ip: string;
  httpVersion: '1.1' | '2.0';
  /** The request head as read (request line and header lines, no blank line), for the proxy lane; '' on HTTP/2. */
  head: string;
  /**
   * The answerer's own slot (null when made): what it worked out about this request. A repeated
   * head comes back as the same object, so it is worked out once per head, not per request.
   */
  memo: unknown;
}

/**
 * A proxied request in flight (src/proxy/lane.ts): it owns the connection until it calls
 * `finished`, with true when the connection is open for the next request.
 */
export type ProxyRun = (close: boolean, finished: (open: boolean) => void) => void;

/**
 * A reply the front door writes. Producers reuse one object per answer (per cached file, playlist
 * version, segment): the front door caches the rendered bytes and HTTP/2 headers by identity.
 */
export interface FastReply {
  status: number;
  /** Header lines after the status line, each ending in CRLF, without Date and Connection. */
  head: string;
  body: Buffer;
  route: string;
  /** The body's memfd copy: on a plain TCP socket a large body then goes out by sendfile(2). */
  direct?: DirectBody | null;
}

export interface FrontDoorOptions {
  /**
   * The reply for a plain GET/HEAD, or null to leave the request to the full routing table. A
   * promise (a cold cache being filled) holds this connection's later requests until it settles.
   * `now` is Date.now() as the request was read: one clock read serves the answer and the Date.
   */
  answer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null>;
  /**
   * The proxy lane's runner for a plain GET/HEAD (conditions and ranges included: an upstream
   * answers those), or null. Asked before `answer`.
   */
  proxy?(req: FastRequest, sock: Socket): ProxyRun | null;
  /**
   * After a reply is written: access log and metrics. `bytes` are the body's; `direct` bytes of
   * the response went out by send/sendfile on the socket's fd, which bytesWritten does not count.
   */
  done(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number): void;
  /** Whether done() wants `ms`, the time the answer took (an access log is on); 0 is passed when not. */
  timed(): boolean;
  /** False hands the connection over at once (shutting down, past max_connections). */
  eligible(sock: Socket): boolean;
  keepAliveTimeoutMs(): number;
  maxHeaderBytes(): number;
  /** HTTPS only: serve h2 connections with streamgate's own HTTP/2 (src/http/h2/) instead of Node's. */
  ownH2?(): boolean;
  headerTimeoutMs?(): number;
  /**
   * The connection guard's entry for a connection (src/net/guard.ts), asked once per connection:
   * the front door marks it busy from a head to its answer and idle between requests, so a
   * connection that never sends a head can be closed at header_timeout and reclaimed first.
   */
  tracked?(sock: Socket): Tracked | undefined;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
/** Headers whose presence means the request is not a plain cache hit. */
export const NOT_PLAIN: ReadonlySet<string> = new Set(['range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range',
  'content-length', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings']);
/** Of NOT_PLAIN, those a proxied request carries to its upstream as ordinary headers. */
const CONDITIONAL = new Set(['range', 'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range']);
/** Bodies up to this size go out in the same write as the head. */
const SMALL_BODY_BYTES = 16 * 1024;
/** Request heads remembered per connection: a master playlist, media playlists, the last segment. */
const HEADS_KEPT = 4;
/**
 * Heads larger than this (a player's are a few hundred bytes) are parsed each time, not kept: what
 * an idle keep-alive connection holds stays small whatever its client sends.
 */
const HEAD_KEPT_MAX_BYTES = 2048;
/** A client that queues this much unread response is served again when it drains. */
const BACKLOG_PAUSE_BYTES = 1024 * 1024;

let dateSecond = 0;
let dateLine = '';

/** The Date header, rendered once per second as NGINX does. */
export function httpDate(now = Date.now()): string {
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateLine = `Date: ${new Date(now).toUTCString()}\r\n`;
  }
  return dateLine;
}

/**
 * The bytes of a reply as they go on the wire — status line, headers, Date, Connection and, for
 * small bodies, the body — rendered once per reply per second (the Date changes) and reused for
 * every request in between: a hot playlist costs one write of a ready buffer.
 */
interface Wire {
  second: number;
  /** Indexed by (close ? 1 : 0) + (with the body ? 2 : 0). */
  bufs: (Buffer | undefined)[];
}
const wires = new WeakMap<FastReply, Wire>();

function wireOf(r: FastReply, close: boolean, withBody: boolean, now: number): Buffer {
  const date = httpDate(now);
  let w = wires.get(r);
  if (w === undefined || w.second !== dateSecond) {
    w = { second: dateSecond, bufs: [] };
    wires.set(r, w);
  }
  const i = (close ? 1 : 0) + (withBody ? 2 : 0);
  let b = w.bufs[i];
  if (b === undefined) {
    const head = Buffer.from(`HTTP/1.1 ${r.status} ${REASONS[r.status] ?? ''}\r\n${r.head}${date}${close ? 'Connection: close\r\n' : 'Connection: keep-alive\r\n'}\r\n`, 'latin1');
    b = withBody ? Buffer.concat([head, r.body], head.length + r.body.length) : head;
    w.bufs[i] = b;
  }
  return b;
}

const REASONS: Record<number, string> = { 200: 'OK', 304: 'Not Modified', 404: 'Not Found' };

/**
 * An answer's start for done()'s `ms`, or -1 when nobody wants it: with the access log off (the
 * usual setting under load) a request read from memory costs no clock reads for its timing.
 */
export function startClock(opts: Pick<FrontDoorOptions, 'timed'>): number {
  return opts.timed() ? performance.now() : -1;
}

export function took(start: number): number {
  return start < 0 ? 0 : performance.now() - start;
}

/**
 * Puts the front door on `server`: Node's own listeners for `event` run only for connections
 * handed over. A plain HTTP server is entered on 'connection'; an HTTPS server (HTTP/2 with
 * HTTP/1.1 fallback) on 'secureConnection', and only for connections that did not pick h2 by
 * ALPN. Returns a function that closes idle front-door connections (shutdown).
 */
export function installFrontDoor(server: Server, opts: FrontDoorOptions, event: 'connection' | 'secureConnection' = 'connection'): { closeIdle(): void } {
  const nodeListeners = server.listeners(event) as ((s: Socket) => void)[];
  server.removeAllListeners(event);
  const idle = new Set<Socket>();
  const h2 = new Set<H2Connection>();
  server.on(event, (sock: Socket) => {
    // Refused by the guard before this listener ran (per-address cap, far past max_connections).
    if (sock.destroyed) return;
    const tr = opts.tracked?.(sock) ?? null;
    if (event === 'secureConnection' && (sock as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') {
      // HTTP/2 bounds its own preface and idle time (src/http/h2/): not the guard's to reclaim.
      if (tr !== null) tr.state = BUSY;
      if (opts.ownH2?.() && opts.eligible(sock)) {
        const conn = serveH2(server, nodeListeners, sock, opts, NOT_PLAIN);
        h2.add(conn);
        sock.once('close', () => h2.delete(conn));
        return;
      }
      for (const l of nodeListeners) l.call(server, sock);
      return;
    }
    let buf: Buffer | null = null;
    // A keep-alive client repeats heads byte for byte (a player polls its playlists between
    // segments, a load tool repeats one URL): the last few heads are kept with their parse, the
    // same object each time, so the answerer can memoise its routing on it too.
    let kept: ParsedHead[] | null = null;
    let nextSlot = 0;
    const ip = sock.remoteAddress ?? '-';
    let waiting = false;
    let gone = false;
    let ended = false;
    const onTimeout = () => sock.destroy();
    const onError = () => sock.destroy();
    // HTTP servers accept half-open sockets: a client's FIN is ours to answer with our own, once
    // any answer still being looked up has been written.
    const onEnd = () => {
      ended = true;
      if (!waiting) sock.end();
    };
    const onData = (chunk: Buffer) => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
      // A client that pipelines while a proxied answer streams waits with a bounded buffer.
      if (waiting && buf.length > opts.maxHeaderBytes()) sock.pause();
      serve();
    };
    sock.setNoDelay(true);
    sock.setTimeout(opts.keepAliveTimeoutMs(), onTimeout);
    idle.add(sock);
    sock.once('close', () => {
      gone = true;
      idle.delete(sock);
    });
    sock.on('error', onError);

    /** From here on Node's HTTP server owns the connection, starting with the bytes not yet answered. */
    const handOver = (_sock: Socket, pending: Buffer | null) => {
      gone = true;
      // The closure lives as long as the socket (a player's hours): what it kept goes now.
      kept = null;
      idle.delete(sock);
      sock.setTimeout(0);
      sock.off('timeout', onTimeout);
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('end', onEnd);
      if (pending && pending.length > 0) sock.unshift(pending);
      for (const l of nodeListeners) l.call(server, sock);
    };

    const serve = (): void => {
      if (waiting || gone) return;
      while (buf !== null) {
        if (!opts.eligible(sock)) return handOver(sock, buf);
        let req: ParsedHead | null = null;
        let end = -1;
        if (kept !== null) {
          // The usual chunk from a client that waits for each answer is one whole head: equal
          // bytes are found with no search for its end and no string made of it.
          for (let i = 0; i < kept.length; i++) {
            const raw = kept[i].raw;
            if (raw.length === buf.length && buf.equals(raw)) {
              req = kept[i];
              end = raw.length - 4;
              break;
            }
          }
        }
        if (req === null) {
          end = buf.indexOf(CRLFCRLF);
          if (end < 0 || end > opts.maxHeaderBytes()) return handOver(sock, buf);
          if (kept !== null) {
            // Pipelined heads, or a head in more than one chunk.
            for (let i = 0; i < kept.length; i++) {
              const raw = kept[i].raw;
              if (raw.length === end + 4 && buf.compare(raw, 0, raw.length, 0, raw.length) === 0) {
                req = kept[i];
                break;
              }
            }
          }
          if (req === null) {
            req = parseHead(buf.toString('latin1', 0, end), ip);
            if (req === null) return handOver(sock, buf);
            if (end + 4 <= HEAD_KEPT_MAX_BYTES) {
              // A copy in a buffer of its own: a slice would pin the whole chunk it was read into.
              req.raw = Buffer.allocUnsafeSlow(end + 4);
              buf.copy(req.raw, 0, 0, end + 4);
              kept ??= [];
              kept[nextSlot] = req;
              nextSlot = (nextSlot + 1) % HEADS_KEPT;
            }
          }
        } else if (end > opts.maxHeaderBytes()) {
          return handOver(sock, buf);
        }
        if (tr !== null) tr.state = BUSY;
        const run = opts.proxy?.(req.req, sock) ?? null;
        if (run !== null) return proxied(run, req, end);
        if (req.conditional) return handOver(sock, buf);
        const now = Date.now();
        const start = startClock(opts);
        const answer = opts.answer(req.req, now);
        if (answer instanceof Promise) {
          waiting = true;
          answer.catch(() => null).then((r) => {
            waiting = false;
            sock.resume();
            if (gone || buf === null || (r === null && ended)) return void (ended && sock.end());
            if (r === null) return handOver(sock, buf);
            if (write(req, r, Date.now(), start, end)) serve();
            if (ended && !waiting) sock.end();
            // A throw in this continuation would be an unhandled rejection, which ends the process:
            // it costs this connection only.
          }).catch(() => sock.destroy());
          return;
        }
        if (answer === null) return handOver(sock, buf);
        if (!write(req, answer, now, start, end)) return;
      }
    };

    /** Consumes a request the proxy lane takes and waits for its answer to be over. */
    const proxied = (run: ProxyRun, req: ParsedHead, headEnd: number): void => {
      buf = buf !== null && buf.length > headEnd + 4 ? buf.subarray(headEnd + 4) : null;
      waiting = true;
      // Not idle while an answer is in flight: shutdown must not cut it.
      idle.delete(sock);
      run(req.close, (open) => {
        waiting = false;
        if (!open || gone) return;
        if (tr !== null && buf === null) {
          tr.state = IDLE;
          tr.since = Date.now();
        }
        // Shutdown began during the answer: the connection it was keeping for the next request goes.
        if (buf === null && !opts.eligible(sock)) return void sock.end();
        idle.add(sock);
        const keepAlive = opts.keepAliveTimeoutMs();
        if (sock.timeout !== keepAlive) sock.setTimeout(keepAlive);
        sock.resume();
        serve();
        if (ended && !waiting) sock.end();
      });
    };

    /** Writes one answer and consumes its request; false when the connection must not go on now. */
    const write = (req: ParsedHead, r: FastReply, now: number, start: number, headEnd: number): boolean => {
      buf = buf !== null && buf.length > headEnd + 4 ? buf.subarray(headEnd + 4) : null;
      const withBody = req.req.method === 'GET' && r.body.length > 0;
      const small = withBody && r.body.length <= SMALL_BODY_BYTES;
      const wire = wireOf(r, req.close, small, now);
      let direct = 0;
      if (withBody && !small) {
        // Zero-copy where it can (not TLS: it encrypts in user space); what a full socket buffer
        // did not take goes through Node, in order.
        const n = r.direct && !(sock as Socket & { encrypted?: boolean }).encrypted ? sendDirect(sock, wire, r.direct, r.body.length) : NOT_DIRECT;
        if (n === SEND_FAILED) {
          // The client reset or closed: logged as what reached it (nothing we can count).
          opts.done(req.req, r, 0, took(start), 0);
          buf = null;
          sock.destroy();
          return false;
        }
        direct = Math.max(n, 0);
        if (direct < wire.length) {
          // Head and a large body in one writev.
          sock.cork();
          sock.write(direct > 0 ? wire.subarray(direct) : wire);
          sock.write(r.body);
          sock.uncork();
        } else if (direct < wire.length + r.body.length) {
          sock.write(r.body.subarray(direct - wire.length));
        }
      } else {
        sock.write(wire);
      }
      // The access log's bytes are the body's (NGINX's $body_bytes_sent), as on every lane.
      opts.done(req.req, r, withBody ? r.body.length : 0, took(start), direct);
      if (req.close) {
        buf = null;
        sock.end();
        return false;
      }
      if (tr !== null && buf === null) {
        tr.state = IDLE;
        tr.since = now;
      }
      if (sock.writableLength > BACKLOG_PAUSE_BYTES) {
        waiting = true;
        sock.pause();
        sock.once('drain', () => {
          waiting = false;
          sock.resume();
          serve();
          if (ended && !waiting) sock.end();
        });
        return false;
      }
      return true;
    };

    sock.on('data', onData);
    sock.on('end', onEnd);
  });

  return {
    closeIdle() {
      for (const s of idle) if (s.writableLength === 0) s.destroy();
      for (const c of h2) c.shutdown();
    },
  };
}

/**
 * Reads a request head that must be exactly `GET|HEAD target HTTP/1.1` plus ordinary header
 * lines with none of NOT_PLAIN; anything else returns null and Node's parser decides.
 */
interface ParsedHead {
  req: FastRequest;
  /** The head's bytes as read, with the blank line (set once it is kept). */
  raw: Buffer;
  close: boolean;
  /** It carries a condition or a range: not for the cache, fine for a proxy. */
  conditional: boolean;
}

function parseHead(head: string, ip: string): ParsedHead | null {
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

/** Response headers of a reply, as HTTP/2 wants them; parsed once per reply (replies are reused). */
const h2Heads = new WeakMap<FastReply, http2.OutgoingHttpHeaders>();

function h2HeadersOf(r: FastReply): http2.OutgoingHttpHeaders {
  let h = h2Heads.get(r);
  if (h === undefined) {
    h = { ':status': r.status };
    for (const [name, value] of replyFields(r).slice(1)) h[name] = value;
    h2Heads.set(r, h);
  }
  return h;
}

/** A reply's status and header lines as HTTP/2 fields (lower-case names), in order. */
export function replyFields(r: FastReply): [string, string][] {
  const fields: [string, string][] = [[':status', String(r.status)]];
  for (const line of r.head.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return fields;
}

/**
 * The same front door for HTTP/2 streams: a plain GET/HEAD whose answer is already in memory is
 * answered on the stream itself, skipping the compatibility layer's request and response
 * objects and the Koa context; anything else goes to Node's own 'stream' listener (which builds
 * them) untouched. A cold cache is not waited for on HTTP/2: the request takes the full table.
 */
export function installH2FrontDoor(server: http2.Http2SecureServer, opts: Pick<FrontDoorOptions, 'answer' | 'done' | 'timed'>): void {
  type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => void;
  const nodeListeners = server.listeners('stream') as StreamListener[];
  server.removeAllListeners('stream');
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
    const relayed = stream.session !== undefined && relaySessions.has(stream.session);
    const req = relayed ? null : plainH2(headers, stream.session?.socket?.remoteAddress ?? '-');
    const answer = req === null ? null : opts.answer(req, Date.now());
    if (req === null || answer === null || answer instanceof Promise) {
      for (const l of nodeListeners) l.call(server, stream, headers, flags, raw);
      return;
    }
    // 'stream' is emitted a tick after nghttp2 opened it: a client may have reset it since
    // (respond() then throws), and a stream error with no listener would end the process.
    stream.on('error', () => {});
    if (stream.destroyed) return;
    const start = startClock(opts);
    const withBody = req.method === 'GET' && answer.body.length > 0;
    stream.respond(h2HeadersOf(answer), { endStream: !withBody });
    if (withBody) stream.end(answer.body);
    opts.done(req, answer, withBody ? answer.body.length : 0, took(start), 0);
  });
}

function plainH2(h: http2.IncomingHttpHeaders, ip: string): FastRequest | null {
  const method = h[':method'];
  if (method !== 'GET' && method !== 'HEAD') return null;
  const url = h[':path'];
  if (typeof url !== 'string' || url.charCodeAt(0) !== 0x2f) return null;
  for (const name of NOT_PLAIN) if (h[name] !== undefined) return null;
  const host = h[':authority'] ?? h.host;
  if (typeof host !== 'string') return null;
  const str = (v: string | string[] | undefined) => (typeof v === 'string' ? v : '');
  return { method, url, host, origin: h.origin !== undefined, referer: str(h.referer), agent: str(h['user-agent']), ip, httpVersion: '2.0', head: '', memo: null };
}
