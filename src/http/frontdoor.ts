import type { Server, Socket } from 'node:net';
import { NOT_DIRECT, SEND_FAILED, sendDirect } from '../net/sendfile.js';
import { BUSY, IDLE, type Tracked } from '../net/guard.js';
import { hookReads, type ReadHook } from '../net/raw-read.js';
import { queued } from '../proxy/raw-write.js';
import { NOT_PLAIN, type ParsedHead, parseHead } from './front-head.js';
import { type FastReply, type FrontDoorOptions, type ProxyRun, startClock, took, wireOf } from './front-reply.js';
import { serveH2, type H2Connection } from './h2/index.js';
import { logAddress } from '../net/address.js';

export { NOT_PLAIN } from './front-head.js';
export { installH2FrontDoor } from './front-h2.js';
export { type FastReply, type FastRequest, type FrontDoorOptions, httpDate, type ProxyRun, replyFields, startClock, took } from './front-reply.js';

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

const CRLFCRLF = Buffer.from('\r\n\r\n');
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

/** What every connection of one listener's front door shares. */
interface Door {
  server: Server;
  opts: FrontDoorOptions;
  /** Node's own listeners for the connection event: they take a connection handed over. */
  nodeListeners: ((s: Socket) => void)[];
  /**
   * Connections the front door owns. Shutdown closes those between requests; one whose proxied
   * answer is in flight says so with a flag rather than leaving the set and coming back (a set's
   * delete and add per request cost about 2% of a proxied request's CPU, measured on /api/).
   */
  conns: Set<FrontConnection>;
}

/**
 * Puts the front door on `server`: Node's own listeners for `event` run only for connections
 * handed over. A plain HTTP server is entered on 'connection'; an HTTPS server (HTTP/2 with
 * HTTP/1.1 fallback) on 'secureConnection', and only for connections that did not pick h2 by
 * ALPN. Returns a function that closes idle front-door connections (shutdown).
 */
export function installFrontDoor(server: Server, opts: FrontDoorOptions, event: 'connection' | 'secureConnection' = 'connection'): { closeIdle(): void } {
  const door: Door = { server, opts, nodeListeners: server.listeners(event) as ((s: Socket) => void)[], conns: new Set() };
  server.removeAllListeners(event);
  const h2 = new Set<H2Connection>();
  server.on(event, (sock: Socket) => {
    // Refused by the guard before this listener ran (per-address cap, far past max_connections).
    if (sock.destroyed) return;
    const tr = opts.tracked?.(sock) ?? null;
    if (event === 'secureConnection' && (sock as Socket & { alpnProtocol?: string | false }).alpnProtocol === 'h2') {
      // HTTP/2 bounds its own preface and idle time (src/http/h2/): not the guard's to reclaim.
      if (tr !== null) tr.state = BUSY;
      if (opts.ownH2?.() && opts.eligible(sock)) {
        const conn = serveH2(server, door.nodeListeners, sock, opts, NOT_PLAIN);
        h2.add(conn);
        sock.once('close', () => h2.delete(conn));
        return;
      }
      for (const l of door.nodeListeners) l.call(server, sock);
      return;
    }
    new FrontConnection(door, sock, tr);
  });
  return {
    closeIdle() {
      for (const c of door.conns) c.closeIfIdle();
      for (const c of h2) c.shutdown();
    },
  };
}

/** One HTTP/1.1 connection while the front door owns it. */
class FrontConnection {
  /** Bytes read and not yet answered. */
  private buf: Buffer | null = null;
  /**
   * A keep-alive client repeats heads byte for byte (a player polls its playlists between
   * segments, a load tool repeats one URL): the last few heads are kept with their parse, the
   * same object each time, so the answerer can memoise its routing on it too.
   */
  private kept: ParsedHead[] | null = null;
  private nextSlot = 0;
  private readonly ip: string;
  /** An answer is being looked up or relayed, or the client's backlog is draining. */
  private waiting = false;
  /** Closed, or handed over to Node. */
  private gone = false;
  /** A proxied answer is in flight: not idle, whatever else it waits for. */
  private proxying = false;
  /** The client sent its FIN. */
  private ended = false;
  /** Chunks read come to onData straight from the socket's handle (src/net/raw-read.ts); null: as 'data' events. */
  private reads: ReadHook | null = null;
  private readonly onTimeout = () => this.sock.destroy();
  private readonly onError = () => this.sock.destroy();
  // HTTP servers accept half-open sockets: a client's FIN is ours to answer with our own, once
  // any answer still being looked up has been written.
  private readonly onEnd = () => {
    this.ended = true;
    if (!this.waiting) this.sock.end();
  };
  private readonly onData = (chunk: Buffer) => {
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    // A client that pipelines while a proxied answer streams waits with a bounded buffer.
    if (this.waiting && this.buf.length > this.door.opts.maxHeaderBytes()) this.sock.pause();
    this.serve();
  };

  constructor(private readonly door: Door, private readonly sock: Socket, private readonly tr: Tracked | null) {
    this.ip = logAddress(sock.remoteAddress);
    sock.setNoDelay(true);
    sock.setTimeout(door.opts.keepAliveTimeoutMs(), this.onTimeout);
    door.conns.add(this);
    sock.once('close', () => {
      this.gone = true;
      door.conns.delete(this);
    });
    sock.on('error', this.onError);
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    this.reads = hookReads(sock, this.onData);
  }

  /** Shutdown: closed unless an answer is in flight or its last one is still leaving (the proxy lane writes on the handle too). */
  closeIfIdle(): void {
    if (!this.proxying && !queued(this.sock)) this.sock.destroy();
  }

  /** From here on Node's HTTP server owns the connection, starting with the bytes not yet answered. */
  private handOver(): void {
    const { sock, door } = this;
    const pending = this.buf;
    this.gone = true;
    // This object lives as long as the socket (a player's hours): what it kept goes now.
    this.kept = null;
    door.conns.delete(this);
    sock.setTimeout(0);
    sock.off('timeout', this.onTimeout);
    sock.off('data', this.onData);
    sock.off('error', this.onError);
    sock.off('end', this.onEnd);
    this.reads?.release();
    this.reads = null;
    if (pending && pending.length > 0) sock.unshift(pending);
    for (const l of door.nodeListeners) l.call(door.server, sock);
  }

  /** Answers the whole requests buffered, in order, until one must wait or leaves the front door. */
  private serve(): void {
    if (this.waiting || this.gone) return;
    const opts = this.door.opts;
    while (this.buf !== null) {
      if (!opts.eligible(this.sock)) return this.handOver();
      const found = this.nextHead(this.buf);
      if (found === null) return this.handOver();
      const { req, end } = found;
      if (this.tr !== null) this.tr.state = BUSY;
      const run = opts.proxy?.(req.req, this.sock) ?? null;
      if (run !== null) return this.proxied(run, req, end);
      if (req.conditional) return this.handOver();
      const now = Date.now();
      const answer = opts.answer(req.req, now);
      if (answer instanceof Promise) return this.awaitAnswer(answer, req, startClock(opts), end);
      if (answer === null) return this.handOver();
      // An answer from memory is written in the turn that read its request. NGINX takes
      // $time_local and $request_time from the time it caches once per event-loop turn, so such
      // an answer logs 0.000 there; here too, with the time read for the request: two clock
      // reads a request were a third of the access log's cost on 1 KB answers (measured).
      if (!this.write(req, answer, now, -1, end)) return;
    }
  }

  /** The next head in `buf` and where it ends (before its blank line), or null for Node's parser. */
  private nextHead(buf: Buffer): { req: ParsedHead; end: number } | null {
    const max = this.door.opts.maxHeaderBytes();
    const kept = this.kept;
    if (kept !== null) {
      // The usual chunk from a client that waits for each answer is one whole head: equal
      // bytes are found with no search for its end and no string made of it.
      for (let i = 0; i < kept.length; i++) {
        const raw = kept[i].raw;
        if (raw.length === buf.length && buf.equals(raw)) return raw.length - 4 > max ? null : { req: kept[i], end: raw.length - 4 };
      }
    }
    const end = buf.indexOf(CRLFCRLF);
    if (end < 0 || end > max) return null;
    if (kept !== null) {
      // Pipelined heads, or a head in more than one chunk.
      for (let i = 0; i < kept.length; i++) {
        const raw = kept[i].raw;
        if (raw.length === end + 4 && buf.compare(raw, 0, raw.length, 0, raw.length) === 0) return { req: kept[i], end };
      }
    }
    const req = parseHead(buf.toString('latin1', 0, end), this.ip);
    if (req === null) return null;
    if (end + 4 <= HEAD_KEPT_MAX_BYTES) {
      // A copy in a buffer of its own: a slice would pin the whole chunk it was read into.
      req.raw = Buffer.allocUnsafeSlow(end + 4);
      buf.copy(req.raw, 0, 0, end + 4);
      this.kept ??= [];
      this.kept[this.nextSlot] = req;
      this.nextSlot = (this.nextSlot + 1) % HEADS_KEPT;
    }
    return { req, end };
  }

  /** A cold cache being filled: this connection's later requests wait for it. */
  private awaitAnswer(answer: Promise<FastReply | null>, req: ParsedHead, start: number, end: number): void {
    const sock = this.sock;
    this.waiting = true;
    answer.catch(() => null).then((r) => {
      this.waiting = false;
      sock.resume();
      if (this.gone || this.buf === null || (r === null && this.ended)) return void (this.ended && sock.end());
      if (r === null) return this.handOver();
      if (this.write(req, r, Date.now(), start, end)) this.serve();
      if (this.ended && !this.waiting) sock.end();
      // A throw in this continuation would be an unhandled rejection, which ends the process:
      // it costs this connection only.
    }).catch(() => sock.destroy());
  }

  /** Consumes a request the proxy lane takes and waits for its answer to be over. */
  private proxied(run: ProxyRun, req: ParsedHead, headEnd: number): void {
    this.consume(headEnd);
    this.waiting = true;
    // Not idle while an answer is in flight: shutdown must not cut it.
    this.proxying = true;
    run(req.close, this.proxyOver);
  }

  /** The proxied answer is over (`open`: the connection carries on); one function per connection, not one per request. */
  private readonly proxyOver = (open: boolean): void => {
    const { sock, door } = this;
    this.waiting = false;
    if (!open || this.gone) return;
    if (this.tr !== null && this.buf === null) {
      this.tr.state = IDLE;
      this.tr.since = Date.now();
    }
    // Shutdown began during the answer: the connection it was keeping for the next request goes.
    if (this.buf === null && !door.opts.eligible(sock)) return void sock.end();
    this.proxying = false;
    const keepAlive = door.opts.keepAliveTimeoutMs();
    if (sock.timeout !== keepAlive) sock.setTimeout(keepAlive);
    sock.resume();
    this.serve();
    if (this.ended && !this.waiting) sock.end();
  };

  /** Drops the request just taken (its head, up to and with the blank line) from the buffer. */
  private consume(headEnd: number): void {
    const buf = this.buf;
    this.buf = buf !== null && buf.length > headEnd + 4 ? buf.subarray(headEnd + 4) : null;
  }

  /** Writes one answer and consumes its request; false when the connection must not go on now. */
  private write(req: ParsedHead, r: FastReply, now: number, start: number, headEnd: number): boolean {
    const { sock, door } = this;
    this.consume(headEnd);
    const withBody = req.req.method === 'GET' && r.body.length > 0;
    const small = withBody && r.body.length <= SMALL_BODY_BYTES;
    const wire = wireOf(r, req.close, small, now);
    let direct = 0;
    if (withBody && !small) {
      direct = this.sendLarge(wire, r);
      if (direct < 0) {
        // The client reset or closed: logged as what reached it (nothing we can count).
        door.opts.done(req.req, r, 0, took(start), 0, now);
        this.buf = null;
        sock.destroy();
        return false;
      }
    } else {
      sock.write(wire);
    }
    // The access log's bytes are the body's (NGINX's $body_bytes_sent), as on every lane.
    door.opts.done(req.req, r, withBody ? r.body.length : 0, took(start), direct, now);
    if (req.close) {
      this.buf = null;
      sock.end();
      return false;
    }
    if (this.tr !== null && this.buf === null) {
      this.tr.state = IDLE;
      this.tr.since = now;
    }
    if (sock.writableLength > BACKLOG_PAUSE_BYTES) {
      this.waiting = true;
      sock.pause();
      sock.once('drain', () => {
        this.waiting = false;
        sock.resume();
        this.serve();
        if (this.ended && !this.waiting) sock.end();
      });
      return false;
    }
    return true;
  }

  /**
   * A head and a large body: zero-copy where it can (not TLS: it encrypts in user space), what a
   * full socket buffer did not take through Node, in order. Returns the bytes sendfile sent, or
   * -1 when the client reset or closed.
   */
  private sendLarge(wire: Buffer, r: FastReply): number {
    const sock = this.sock;
    const n = r.direct && !(sock as Socket & { encrypted?: boolean }).encrypted ? sendDirect(sock, wire, r.direct, r.body.length) : NOT_DIRECT;
    if (n === SEND_FAILED) return -1;
    const direct = Math.max(n, 0);
    if (direct < wire.length) {
      // Head and a large body in one writev.
      sock.cork();
      sock.write(direct > 0 ? wire.subarray(direct) : wire);
      sock.write(r.body);
      sock.uncork();
    } else if (direct < wire.length + r.body.length) {
      sock.write(r.body.subarray(direct - wire.length));
    }
    return direct;
  }
}
