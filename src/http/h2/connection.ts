import type { Socket } from 'node:net';
import { Decoder, encode, HpackError, TABLE_SIZE_ZERO, type Field } from './hpack.js';
import {
  ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,
  FRAME_SIZE_ERROR, GOAWAY, goawayPayload, HEADERS, MIN_MAX_FRAME_SIZE, NO_ERROR,
  Out, PING, PRIORITY, PRIORITY_FLAG, PROTOCOL_ERROR, PUSH_PROMISE, REFUSED_STREAM, RST_STREAM, S_MAX_CONCURRENT_STREAMS,
  S_MAX_HEADER_LIST_SIZE, SETTINGS, settingsPayload, STREAM_CLOSED, u32, WINDOW_UPDATE,
} from './frames.js';
import { BACKLOG_PAUSE_BYTES, MAX_CONCURRENT_STREAMS, MAX_RELAYED_IN_FLIGHT, ProgressTimer, ResetBudget, UNSENT_RESET_COST } from './calm.js';
import { ClientReads } from './reading.js';
import type { H2Host } from './host.js';
import { Relay } from './relay.js';
import { BAD_REQUEST, loggedRequest, malformed, plainRequest, RecentRequests, targetOf, TOO_LARGE, withPath } from './request.js';
import { HeaderBlock, newStream, type Stream } from './stream.js';
import { answerFast, answerOwn, onClientData, onSettings, onWindowUpdate, pump, unpad } from './flow.js';
import { logAddress } from '../../net/address.js';

/**
 * streamgate's own HTTP/2 server connection (RFC 9113), for TLS connections that chose h2 by
 * ALPN. Node's http2 server spends about twice the CPU per request of HTTP/1.1 over TLS; here a
 * request answered from memory (playlists, segments, small files: most of a streaming site's
 * traffic) costs one HPACK decode, a map lookup and frames copied into the pass's one TLS write.
 * Every other request is relayed, frame by frame and with the same stream id, to Node's own http2
 * server (relay.ts), so proxying, the API, bodies, ranges, live HTTP-FLV and error pages stay
 * exactly as Node and Koa make them; flow control (flow.ts) holds end to end.
 *
 * What a client can make this connection hold is charged to its `Account` first: header blocks
 * (at most MAX_CONTINUATIONS frames), request bodies waiting for Node, relayed answers waiting
 * for the client's window. Over budget, the client gets GOAWAY ENHANCE_YOUR_CALM.
 */

/**
 * The connection window we give the client beyond the initial 65,535: request bodies waiting for
 * Node (each stream's own window bounds one body) are credited back only as Node takes them.
 */
const CLIENT_CONN_WINDOW = 256 * 1024;

export class H2Connection {
  readonly streams = new Map<number, Stream>();
  readonly out = new Out();
  readonly account: H2Host['account'];
  /** Output waiting for window or for the socket to drain. */
  readonly blocked = new Set<Stream>();
  private readonly reads: ClientReads;
  private readonly decoder = new Decoder();
  private readonly recent = new RecentRequests();
  /** The client's address, read once: the socket's getter asks Node each time. */
  private readonly ip: string;
  gotSettings = false;
  /** Highest client stream id seen: ids at or below it that are not in `streams` are closed. */
  lastId = 0;
  /** Client's settings. */
  peerWindow = DEFAULT_WINDOW;
  peerMaxFrame = MIN_MAX_FRAME_SIZE;
  sendTableUpdate = false;
  /** Connection-level send window towards the client. */
  connWindow = DEFAULT_WINDOW;
  /** The client's header block being assembled. */
  private readonly header: HeaderBlock;
  private headerSelfDependent = false;
  private headerTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private dead = false;
  private readonly resets = new ResetBudget();
  /** Streams we reset before the client had ended its side: it may still send their trailers (the last few kept). */
  readonly resetByUs = new Set<number>();
  readonly progress: ProgressTimer;
  readonly relay: Relay;

  constructor(readonly sock: Socket, readonly host: H2Host) {
    this.ip = logAddress(sock.remoteAddress);
    this.account = host.account;
    this.header = new HeaderBlock(this.account);
    this.reads = new ClientReads(sock, (t, f, id, p) => this.onFrame(t, f, id, p), (len) => this.fail(FRAME_SIZE_ERROR, `frame of ${len} octets`),
      () => this.fail(PROTOCOL_ERROR, 'bad connection preface'), () => this.flush());
    this.relay = new Relay({
      streams: this.streams, out: this.out, account: this.account, isDead: () => this.dead, framesHeld: () => this.reads.held, connect: (inner) => host.relay(inner),
      pump: (s) => this.pump(s), forget: (s) => this.forget(s), closeIfDone: (s) => this.closeIfDone(s), shutdown: () => this.shutdown(),
      flush: () => this.flush(), overBudget: (what) => this.calm(`memory budget: ${what}`),
    });
    this.progress = new ProgressTimer(() => host.keepAliveTimeoutMs(), () => host.requestTimeoutMs(), () => this.streams.size > 0, () => this.onIdle());
    sock.setNoDelay(true);
    sock.on('data', (c: Buffer) => this.onData(c));
    sock.on('end', () => this.onPeerEnd());
    sock.on('error', () => this.destroy());
    sock.on('close', () => this.destroy());
    sock.on('drain', () => this.onDrain());
    // §3.4: the server preface is a SETTINGS frame, sent at once.
    this.out.frame(SETTINGS, 0, 0, settingsPayload([[S_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS], [S_MAX_HEADER_LIST_SIZE, host.maxHeaderBytes()]]));
    this.out.frame(WINDOW_UPDATE, 0, 0, u32(CLIENT_CONN_WINDOW - DEFAULT_WINDOW));
    this.flush();
  }

  /** Shutdown: GOAWAY with the last stream we took, finish what is open, then close. */
  shutdown(): void {
    if (this.draining || this.dead) return;
    this.draining = true;
    this.out.frame(GOAWAY, 0, 0, goawayPayload(this.lastId, NO_ERROR));
    this.flush();
    this.endIfIdle();
  }

  // ---- client side ---------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    this.reads.push(chunk);
    this.flush();
    this.reads.holdIfSpent();
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.dead) return;
    if (!this.gotSettings && type !== SETTINGS) return this.fail(PROTOCOL_ERROR, 'the first frame is not SETTINGS');
    // §6.10: nothing may come between HEADERS and its CONTINUATIONs.
    if (this.header.id !== 0 && (type !== CONTINUATION || id !== this.header.id)) return this.fail(PROTOCOL_ERROR, 'header block interrupted');
    switch (type) {
      case DATA: return onClientData(this, flags, id, p);
      case HEADERS: return this.onHeaders(flags, id, p);
      case CONTINUATION: return this.onContinuation(flags, id, p);
      case PRIORITY:
        if (id === 0) return this.fail(PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (p.length !== 5) return this.streamError(id, FRAME_SIZE_ERROR);
        // RFC 9113 §5.3.1 (of RFC 7540, still binding): a stream cannot depend on itself.
        if ((p.readUInt32BE(0) & 0x7fffffff) === id) return this.streamError(id, PROTOCOL_ERROR);
        return;
      case RST_STREAM: return this.onClientReset(id, p);
      case SETTINGS: return onSettings(this, flags, id, p);
      case PUSH_PROMISE: return this.fail(PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case PING:
        if (id !== 0) return this.fail(PROTOCOL_ERROR, 'PING on a stream');
        if (p.length !== 8) return this.fail(FRAME_SIZE_ERROR, 'PING length');
        if ((flags & ACK) === 0) this.out.frame(PING, ACK, 0, Buffer.from(p));
        return;
      case GOAWAY:
        if (id !== 0) return this.fail(PROTOCOL_ERROR, 'GOAWAY on a stream');
        // The client leaves: answer what is open, take nothing new.
        this.draining = true;
        return this.endIfIdle();
      case WINDOW_UPDATE: return onWindowUpdate(this, id, p);
      default:
        // §4.1: unknown frame types are ignored.
        return;
    }
  }

  private onClientReset(id: number, p: Buffer): void {
    if (id === 0) return this.fail(PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (p.length !== 4) return this.fail(FRAME_SIZE_ERROR, 'RST_STREAM length');
    if (id > this.lastId) return this.fail(PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (!this.resets.spend(this.relay.unsent(id) ? UNSENT_RESET_COST : 1)) return this.calm('too many stream resets');
    if (s.relayed && !s.nodeDone) this.relay.reset(id, p.readUInt32BE(0));
    this.forget(s);
  }

  private onHeaders(flags: number, id: number, p: Buffer): void {
    if (id === 0 || (id & 1) === 0) return this.fail(PROTOCOL_ERROR, 'HEADERS on a server or zero stream id');
    // §5.1.1: a new stream's id must exceed every id the client used before; a HEADERS on an
    // id at or below that which is not an open stream's trailers is a connection error.
    if (id <= this.lastId && !this.streams.has(id) && !this.resetByUs.has(id)) return this.fail(PROTOCOL_ERROR, `stream id ${id} reused or decreasing`);
    let frag = unpad(this, flags, p);
    if (frag === null) return;
    this.headerSelfDependent = false;
    if (flags & PRIORITY_FLAG) {
      if (frag.length < 5) return this.fail(FRAME_SIZE_ERROR, 'HEADERS priority fields');
      this.headerSelfDependent = (frag.readUInt32BE(0) & 0x7fffffff) === id;
      frag = frag.subarray(5);
    }
    if (!this.header.start(id, flags, frag)) return this.calm('memory budget: header block');
    if (flags & END_HEADERS) return this.endHeaders();
    this.headerTimer ??= setTimeout(() => this.fail(PROTOCOL_ERROR, 'header block not finished in time'), this.host.headerTimeoutMs());
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    if (this.header.id === 0 || id !== this.header.id) return this.fail(PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    if (!this.header.add(p)) return this.calm(`header block in more than ${this.header.continuations} CONTINUATION frames or over the memory budget`);
    // A block twice max_header_size is refused before decoding (past the size, a 431 is still due).
    if (this.header.bytes > 2 * this.host.maxHeaderBytes() + 1024) return this.calm('header block too large');
    if (flags & END_HEADERS) this.endHeaders();
  }

  private endHeaders(): void {
    const { id, flags } = this.header;
    const block = this.header.take();
    if (this.headerTimer !== null) {
      clearTimeout(this.headerTimer);
      this.headerTimer = null;
    }
    let fields: Field[];
    let tooLarge: boolean;
    try {
      ({ fields, tooLarge } = this.decoder.decode(block, this.host.maxHeaderBytes()));
    } catch (err) {
      if (err instanceof HpackError) return this.fail(COMPRESSION_ERROR, err.message);
      throw err;
    }
    const s = this.streams.get(id);
    if (s !== undefined) return this.onTrailers(s, flags, fields);
    // Trailers of a stream we reset while the client was still sending: decoded (the HPACK
    // table must stay in step) and ignored, as §5.1 allows and nghttp2 does.
    if (id <= this.lastId) return;
    this.lastId = id;
    // §6.8: streams above the GOAWAY's last id are ignored.
    if (this.draining) return;
    if (this.streams.size >= MAX_CONCURRENT_STREAMS) return this.streamError(id, REFUSED_STREAM);
    if (this.headerSelfDependent) return this.streamError(id, PROTOCOL_ERROR);
    this.progress.moved();
    const ns = newStream(id, this.peerWindow, DEFAULT_WINDOW);
    this.streams.set(id, ns);
    ns.remoteClosed = (flags & END_STREAM) !== 0;
    if (tooLarge) return answerOwn(this, ns, TOO_LARGE, null);
    // §8.2.1, §8.3: a malformed request is a stream error PROTOCOL_ERROR.
    if (malformed(fields) !== null) return this.streamError(id, PROTOCOL_ERROR);
    const target = targetOf(fields);
    if (!target.ok) return answerOwn(this, ns, BAD_REQUEST, loggedRequest(fields, this.ip));
    if (target.changed) fields = withPath(fields, target.url);
    if (ns.remoteClosed) {
      const plain = plainRequest(fields, target.url, this.host.notPlain, this.ip);
      const req = plain === null ? null : this.recent.same(plain);
      const now = Date.now();
      const answer = req === null ? null : this.host.answer(req, now);
      // An answer from memory logs 0.000 and the time read for the request, as on HTTP/1.1
      // (src/http/frontdoor.ts, where two clock reads a request were a third of the log's cost).
      if (req !== null && answer !== null && !(answer instanceof Promise)) return answerFast(this, ns, req, answer, now);
    }
    if (this.relay.inFlight >= MAX_RELAYED_IN_FLIGHT) return this.streamError(id, REFUSED_STREAM);
    // Over the stream bound or the memory budget: refused, which a client may retry.
    if (!this.relay.open(ns, fields)) this.streamError(id, REFUSED_STREAM);
  }

  /** Trailers: only after the request's headers, and they must end the stream (§8.1). */
  private onTrailers(s: Stream, flags: number, fields: Field[]): void {
    if (s.remoteClosed) return this.streamError(s.id, STREAM_CLOSED);
    if ((flags & END_STREAM) === 0 || malformed(fields) !== null) return this.streamError(s.id, PROTOCOL_ERROR);
    s.remoteClosed = true;
    if (s.relayed && !s.nodeDone) {
      s.toNode.push({ block: encode(fields), end: true });
      s.toNodeEnd = true;
      this.relay.pumpToNode(s);
    } else {
      this.closeIfDone(s);
    }
  }

  /** HEADERS (and CONTINUATION) to the client; the first block after a table size change says so. */
  writeHeaders(id: number, block: Buffer, end: boolean): void {
    if (this.sendTableUpdate) {
      this.sendTableUpdate = false;
      block = Buffer.concat([TABLE_SIZE_ZERO, block]);
    }
    this.out.headers(id, block, end, this.peerMaxFrame);
  }

  pump(s: Stream): void {
    pump(this, s);
  }

  pumpAll(): void {
    for (const s of this.blocked) this.pump(s);
  }

  closeIfDone(s: Stream): void {
    if (!s.localClosed || s.queue.length > 0) return;
    if (s.resetAfter && !s.remoteClosed) {
      // Node answered without reading the whole request (§8.1): the client may stop sending.
      this.out.frame(RST_STREAM, 0, s.id, u32(NO_ERROR));
      s.remoteClosed = true;
    }
    if (!s.remoteClosed) return;
    if (s.relayed && !s.nodeDone) return;
    this.forget(s);
  }

  /** The stream is gone: what it held is given back (the account, and Node's windows for an answer never sent). */
  forget(s: Stream): void {
    if (!this.streams.delete(s.id)) return;
    this.blocked.delete(s);
    if (s.queued > 0) {
      let bytes = 0;
      if (s.relayed) for (const item of s.queue) if (Buffer.isBuffer(item)) bytes += item.length;
      this.account.give(s.queued);
      s.queued = 0;
      this.relay.credit(s, bytes);
    }
    s.queue = [];
    this.relay.dropToNode(s);
    this.endIfIdle();
  }

  /**
   * A stream error (§5.4.2): RST_STREAM to the client, and to Node if the stream is relayed.
   * Charged to the reset budget like a client's own reset (nghttp2 charges the errors it provokes,
   * Node closes a session after 100 refused streams): a client must not be able to make the
   * server start and abandon streams without limit by provoking errors.
   */
  streamError(id: number, code: number): void {
    this.out.frame(RST_STREAM, 0, id, u32(code));
    const s = this.streams.get(id);
    const cost = this.relay.unsent(id) ? UNSENT_RESET_COST : 1;
    if (s === undefined || !s.remoteClosed) {
      this.resetByUs.add(id);
      if (this.resetByUs.size > MAX_CONCURRENT_STREAMS) this.resetByUs.delete(this.resetByUs.values().next().value!);
    }
    if (s !== undefined) {
      if (s.relayed && !s.nodeDone) this.relay.reset(id, CANCEL);
      this.forget(s);
    }
    if (!this.resets.spend(cost)) this.calm('too many stream errors');
  }

  /** Over a budget: GOAWAY ENHANCE_YOUR_CALM and one log line. */
  calm(why: string): void {
    if (this.dead) return;
    this.host.warn(`h2 ${this.ip}: ${why}: GOAWAY ENHANCE_YOUR_CALM`);
    this.fail(ENHANCE_YOUR_CALM, why);
  }

  /** A connection error (§5.4.1), or an idle close (NO_ERROR): GOAWAY with the code, then close. */
  fail(code: number, _why: string): void {
    if (this.dead) return;
    this.out.frame(GOAWAY, 0, 0, goawayPayload(this.lastId, code));
    this.reads.stop();
    this.flush();
    this.dead = true;
    this.sock.end();
    // A client that never reads must not keep the socket.
    setTimeout(() => this.sock.destroy(), 1000).unref();
    this.release();
  }

  /** No stream moved for request_timeout, or nothing at all for keepalive_timeout: closed. */
  private onIdle(): void {
    if (this.dead) {
      this.sock.destroy();
      return;
    }
    this.fail(NO_ERROR, 'idle');
  }

  private onPeerEnd(): void {
    this.reads.finish();
    this.flush();
    this.draining = true;
    if (this.streams.size === 0) this.sock.end();
  }

  private endIfIdle(): void {
    if (this.draining && this.streams.size === 0 && !this.dead) {
      this.flush();
      this.dead = true;
      this.sock.end();
      this.release();
    }
  }

  private onDrain(): void {
    this.reads.backlog(false);
    this.pumpAll();
    this.flush();
  }

  flush(): void {
    const b = this.out.take();
    if (b !== null && !this.sock.destroyed) this.sock.write(b);
    this.relay.flush();
    // A client that sends faster than it reads is not read until it catches up.
    if (!this.reads.backlogged && !this.dead && this.sock.writableLength > BACKLOG_PAUSE_BYTES) this.reads.backlog(true);
  }

  /** Everything held goes back: the relay link, timers, the account. */
  private release(): void {
    this.relay.close();
    this.progress.stop();
    if (this.headerTimer !== null) clearTimeout(this.headerTimer);
    this.headerTimer = null;
    this.reads.stop();
    this.header.release();
    this.account.close();
  }

  private destroy(): void {
    this.dead = true;
    this.reads.stop();
    this.streams.clear();
    this.blocked.clear();
    this.release();
    if (!this.sock.destroyed) this.sock.destroy();
  }
}
