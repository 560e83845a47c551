import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { replyFields, startClock, took, type FastReply, type FastRequest } from '../frontdoor.js';
import { Decoder, encode, HpackError, TABLE_SIZE_ZERO, type Field } from './hpack.js';
import {
  ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, FrameReader, GOAWAY, goawayPayload, HEADERS, INTERNAL_ERROR, MAX_MAX_FRAME_SIZE,
  MAX_WINDOW, MIN_MAX_FRAME_SIZE, NO_ERROR, Out, PADDED, PING, PREFACE, PRIORITY, PRIORITY_FLAG, PROTOCOL_ERROR,
  PUSH_PROMISE, REFUSED_STREAM, RST_STREAM, S_ENABLE_PUSH, S_HEADER_TABLE_SIZE, S_INITIAL_WINDOW_SIZE,
  S_MAX_CONCURRENT_STREAMS, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE, SETTINGS, settingsPayload, STREAM_CLOSED, u32,
  WINDOW_UPDATE,
} from './frames.js';

/**
 * streamgate's own HTTP/2 server connection (RFC 9113), for TLS connections that chose h2 by
 * ALPN. Node's http2 server spends about twice the CPU per request of HTTP/1.1 over TLS (a
 * Duplex stream object per request, header objects converted both ways, nghttp2 callbacks into
 * JS), which capped a core at under half of NGINX's HTTP/2 rate on small files. Here a request
 * that the gateway answers from memory — the bulk of a streaming site's traffic: playlists,
 * segments, small files — costs one HPACK decode, a map lookup and frames copied into the
 * pass's single TLS write.
 *
 * Every other request is relayed, frame by frame, to Node's own http2 server over an in-process
 * HTTP/2 connection (a Duplex pair whose inner end mirrors this socket's address, `encrypted`
 * and ALPN), with the same stream ids: client stream ids only ever grow, and an id the relay
 * skips (a stream answered here) is, to Node, one the client never used (§5.1.1). So proxying,
 * the API, request bodies, Koa's static files with ranges and conditions, live HTTP-FLV over h2
 * and every error page stay exactly as Node and Koa produce them. Flow control holds end to end:
 * what Node sends us on a stream is credited back only once it has gone out to the client, so a
 * slow player backs up into Node's stream (where the live sink's queue bound applies), and
 * request bodies are credited to the client only once Node has taken them.
 */

export interface H2Host {
  answer(req: FastRequest, now: number): FastReply | null | Promise<FastReply | null>;
  /** As the front door's: `direct` (bytes sent by sendfile) is always 0 here, TLS encrypts in user space. */
  done(req: FastRequest, reply: FastReply, bytes: number, ms: number, direct: number): void;
  timed(): boolean;
  /** Gives Node's http2 server the inner end of a relay link, as if it were a new h2 connection. */
  relay(inner: Duplex): void;
  keepAliveTimeoutMs(): number;
  headerTimeoutMs(): number;
  maxHeaderBytes(): number;
  /** Headers whose presence means the request is not a plain cache hit. */
  notPlain: ReadonlySet<string>;
}

/** What we tell clients (NGINX's http2_max_concurrent_streams default). */
export const MAX_CONCURRENT_STREAMS = 128;
/** Per-stream window we give Node on the relay link: how much of one response may wait for a slow client here. */
const RELAY_STREAM_WINDOW = 256 * 1024;
/** A socket with this much unsent output stops being fed until it drains. */
const BACKLOG_PAUSE_BYTES = 1024 * 1024;
/** Header blocks (HEADERS + CONTINUATION) past this many octets are refused before decoding. */
const HEADER_BLOCK_SLACK = 2;

/** A header block (response headers or trailers) waiting its turn behind DATA. */
interface HeadItem {
  block: Buffer;
  end: boolean;
}

interface Stream {
  id: number;
  relayed: boolean;
  /** Our send window towards the client. */
  window: number;
  /** Our receive window for the client's DATA on this stream. */
  recv: number;
  /** Output waiting for window: DATA payloads and header blocks, in order. */
  queue: (Buffer | HeadItem)[];
  /** END_STREAM goes out after the queue. */
  endQueued: boolean;
  /** The client sent END_STREAM or RST_STREAM. */
  remoteClosed: boolean;
  /** We sent END_STREAM. */
  localClosed: boolean;
  // Relay state.
  /** Our send window towards Node. */
  nodeWindow: number;
  /** Request body (and trailers) waiting for Node's window. */
  toNode: (Buffer | HeadItem)[];
  toNodeEnd: boolean;
  /** We sent Node END_STREAM. */
  sentEnd: boolean;
  /** Node ended or reset its side: nothing more comes from it, nothing more goes to it. */
  nodeDone: boolean;
  /** Node reset with NO_ERROR after its answer: the client is told to stop sending once that answer is out. */
  resetAfter: boolean;
}

/** A pair of connected in-memory Duplex ends: what one writes, the other reads. */
function duplexPair(): [Duplex, Duplex] {
  const end = (peer: () => Duplex) => new Duplex({
    read() {},
    write(c: Buffer, _e, cb) {
      peer().push(c);
      cb();
    },
    final(cb) {
      peer().push(null);
      cb();
    },
    destroy(err, cb) {
      peer().destroy();
      cb(err);
    },
  });
  const a: Duplex = end(() => b);
  const b: Duplex = end(() => a);
  return [a, b];
}

// ---- fast replies as HEADERS blocks ------------------------------------------------------

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

function blockOf(r: FastReply, now = Date.now()): Buffer {
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

const TOO_LARGE_BODY = Buffer.from('431 request header fields too large\n');
const TOO_LARGE: FastReply = {
  status: 431,
  head: `Content-Type: text/plain;charset=utf-8\r\nContent-Length: ${TOO_LARGE_BODY.length}\r\n`,
  body: TOO_LARGE_BODY,
  route: 'none',
};

/** Header field names and values a request may carry on the fast path; anything else is Node's to judge (and refuse). */
const TOKEN_LOWER = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;
const BAD_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * "Rapid reset" (CVE-2023-44487): a client that opens streams and cancels them at once makes the
 * server start work (a relayed request reaches Koa and maybe an upstream) that nothing limits,
 * since a cancelled stream never counts against the concurrent-stream bound. Past this budget of
 * cancelled open streams the connection gets GOAWAY ENHANCE_YOUR_CALM. The figures are
 * nghttp2's defaults (Node's own HTTP/2 uses them): a burst of 1,000, then 33 a second.
 */
const RESET_BURST = 1000;
const RESET_PER_S = 33;

/** A header block being assembled from HEADERS and its CONTINUATIONs (§4.3), on either side of the relay. */
class HeaderBlock {
  /** The stream it belongs to; 0 when none is open. */
  id = 0;
  flags = 0;
  bytes = 0;
  private parts: Buffer[] = [];

  start(id: number, flags: number, frag: Buffer): void {
    this.id = id;
    this.flags = flags;
    this.parts = [frag];
    this.bytes = frag.length;
  }

  add(frag: Buffer): void {
    this.parts.push(frag);
    this.bytes += frag.length;
  }

  /** The whole block, and nothing open any more. */
  take(): Buffer {
    const block = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.id = 0;
    this.parts = [];
    return block;
  }
}

export class H2Connection {
  private readonly streams = new Map<number, Stream>();
  private readonly reader: FrameReader;
  private readonly decoder: Decoder;
  private readonly out = new Out();
  private preface = true;
  private prefaceBuf: Buffer | null = null;
  private gotSettings = false;
  /** Highest client stream id seen: ids at or below it that are not in `streams` are closed. */
  private lastId = 0;
  /** Client's settings. */
  private peerWindow = DEFAULT_WINDOW;
  private peerMaxFrame = MIN_MAX_FRAME_SIZE;
  private sendTableUpdate = false;
  /** Connection-level send window towards the client. */
  private connWindow = DEFAULT_WINDOW;
  /** The client's header block being assembled. */
  private readonly header = new HeaderBlock();
  private headerSelfDependent = false;
  private headerTimer: NodeJS.Timeout | null = null;
  /** Streams with output waiting for window or for the socket to drain. */
  private readonly blocked = new Set<Stream>();
  private draining = false;
  private dead = false;
  private paused = false;
  /** Resets of open streams the client may still make (a token bucket: RESET_BURST, refilled at RESET_PER_S). */
  private resetTokens = RESET_BURST;
  private resetAt = performance.now();
  // The relay link to Node's http2 server.
  private inner: Duplex | null = null;
  private innerOut = new Out();
  private innerReader: FrameReader | null = null;
  private innerDecoder: Decoder | null = null;
  private nodeConnWindow = DEFAULT_WINDOW;
  private nodeInitialWindow = DEFAULT_WINDOW;
  private nodeMaxFrame = MIN_MAX_FRAME_SIZE;
  /** Node's header block being assembled. */
  private innerHeader = new HeaderBlock();

  constructor(private readonly sock: Socket, private readonly host: H2Host) {
    this.decoder = new Decoder();
    this.reader = new FrameReader(MIN_MAX_FRAME_SIZE, (t, f, id, p) => this.onFrame(t, f, id, p), (len) => this.fail(FRAME_SIZE_ERROR, `frame of ${len} octets`));
    sock.setNoDelay(true);
    sock.setTimeout(host.keepAliveTimeoutMs(), () => this.onIdle());
    sock.on('data', (c: Buffer) => this.onData(c));
    sock.on('end', () => this.onPeerEnd());
    sock.on('error', () => this.destroy());
    sock.on('close', () => this.destroy());
    sock.on('drain', () => this.onDrain());
    // §3.4: the server preface is a SETTINGS frame, sent at once.
    this.out.frame(SETTINGS, 0, 0, settingsPayload([
      [S_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS],
      [S_MAX_HEADER_LIST_SIZE, host.maxHeaderBytes()],
    ]));
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
    if (this.preface) {
      const got = this.prefaceBuf === null ? chunk : Buffer.concat([this.prefaceBuf, chunk]);
      const n = Math.min(got.length, PREFACE.length);
      if (got.compare(PREFACE, 0, n, 0, n) !== 0) return this.fail(PROTOCOL_ERROR, 'bad connection preface');
      if (got.length < PREFACE.length) {
        this.prefaceBuf = got;
        return;
      }
      this.preface = false;
      this.prefaceBuf = null;
      chunk = got.subarray(PREFACE.length);
      if (chunk.length === 0) return;
    }
    this.reader.push(chunk);
    this.flush();
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.dead) return;
    if (!this.gotSettings && type !== SETTINGS) return this.fail(PROTOCOL_ERROR, 'the first frame is not SETTINGS');
    // §6.10: nothing may come between HEADERS and its CONTINUATIONs.
    if (this.header.id !== 0 && (type !== CONTINUATION || id !== this.header.id)) return this.fail(PROTOCOL_ERROR, 'header block interrupted');
    switch (type) {
      case DATA: return this.onClientData(flags, id, p);
      case HEADERS: return this.onHeaders(flags, id, p);
      case CONTINUATION: return this.onContinuation(flags, id, p);
      case PRIORITY:
        if (id === 0) return this.fail(PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (p.length !== 5) return this.resetStream(id, FRAME_SIZE_ERROR);
        // RFC 9113 §5.3.1 (of RFC 7540, still binding): a stream cannot depend on itself.
        if ((p.readUInt32BE(0) & 0x7fffffff) === id) return this.resetStream(id, PROTOCOL_ERROR);
        return;
      case RST_STREAM: return this.onClientReset(id, p);
      case SETTINGS: return this.onSettings(flags, id, p);
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
      case WINDOW_UPDATE: return this.onWindowUpdate(id, p);
      default:
        // §4.1: unknown frame types are ignored.
        return;
    }
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) return this.fail(PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) {
      if (p.length !== 0) return this.fail(FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (p.length % 6 !== 0) return this.fail(FRAME_SIZE_ERROR, 'SETTINGS length');
    this.gotSettings = true;
    for (let i = 0; i < p.length; i += 6) {
      const k = p.readUInt16BE(i);
      const v = p.readUInt32BE(i + 2);
      if (k === S_ENABLE_PUSH && v > 1) return this.fail(PROTOCOL_ERROR, 'ENABLE_PUSH');
      if (k === S_INITIAL_WINDOW_SIZE) {
        if (v > MAX_WINDOW) return this.fail(FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE');
        // §6.9.2: the change applies to every open stream's window, which may go negative.
        const delta = v - this.peerWindow;
        this.peerWindow = v;
        for (const s of this.streams.values()) {
          s.window += delta;
          if (s.window > MAX_WINDOW) return this.fail(FLOW_CONTROL_ERROR, 'window overflow');
        }
      } else if (k === S_MAX_FRAME_SIZE) {
        if (v < MIN_MAX_FRAME_SIZE || v > MAX_MAX_FRAME_SIZE) return this.fail(PROTOCOL_ERROR, 'MAX_FRAME_SIZE');
        this.peerMaxFrame = v;
      } else if (k === S_HEADER_TABLE_SIZE) {
        // Our encoder never indexes, but the client's decoder must hear that its new size is in force (RFC 7541 §4.2).
        this.sendTableUpdate = true;
      }
    }
    this.out.frame(SETTINGS, ACK, 0);
    this.pumpAll();
  }

  private onWindowUpdate(id: number, p: Buffer): void {
    if (p.length !== 4) return this.fail(FRAME_SIZE_ERROR, 'WINDOW_UPDATE length');
    const inc = p.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (inc === 0) return this.fail(PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.connWindow += inc;
      if (this.connWindow > MAX_WINDOW) return this.fail(FLOW_CONTROL_ERROR, 'connection window overflow');
      return this.pumpAll();
    }
    if (id > this.lastId) return this.fail(PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (inc === 0) return this.resetStream(id, PROTOCOL_ERROR);
    s.window += inc;
    if (s.window > MAX_WINDOW) return this.resetStream(id, FLOW_CONTROL_ERROR);
    this.pump(s);
  }

  private onClientReset(id: number, p: Buffer): void {
    if (id === 0) return this.fail(PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (p.length !== 4) return this.fail(FRAME_SIZE_ERROR, 'RST_STREAM length');
    if (id > this.lastId) return this.fail(PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (!this.spendReset()) return this.fail(ENHANCE_YOUR_CALM, 'too many stream resets');
    if (s.relayed && !s.nodeDone) this.toNodeReset(id, p.readUInt32BE(0));
    this.forget(s);
  }

  /** False once the client has cancelled open streams faster than the budget allows. */
  private spendReset(): boolean {
    const now = performance.now();
    this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetAt) / 1000) * RESET_PER_S);
    this.resetAt = now;
    if (this.resetTokens < 1) return false;
    this.resetTokens -= 1;
    return true;
  }

  private onClientData(flags: number, id: number, p: Buffer): void {
    if (id === 0) return this.fail(PROTOCOL_ERROR, 'DATA on stream 0');
    if (id > this.lastId) return this.fail(PROTOCOL_ERROR, 'DATA on an idle stream');
    // §6.9.1: the whole frame, padding included, counts against the connection window; we
    // give it back at once (each stream's own window bounds what is buffered here).
    if (p.length > 0) this.out.frame(WINDOW_UPDATE, 0, 0, u32(p.length));
    const body = this.unpad(flags, p);
    if (body === null) return;
    const s = this.streams.get(id);
    if (s === undefined || s.remoteClosed) {
      // §5.1: DATA on a closed or half-closed (remote) stream.
      return this.resetStream(id, STREAM_CLOSED);
    }
    s.recv -= p.length;
    if (s.recv < 0) return this.resetStream(id, FLOW_CONTROL_ERROR);
    const padding = p.length - body.length;
    if (padding > 0) {
      s.recv += padding;
      this.out.frame(WINDOW_UPDATE, 0, id, u32(padding));
    }
    if (flags & END_STREAM) s.remoteClosed = true;
    if (!s.relayed || s.nodeDone) {
      // Nobody reads this body any more: give the window back so the client is not stuck.
      if (body.length > 0 && !s.remoteClosed) {
        s.recv += body.length;
        this.out.frame(WINDOW_UPDATE, 0, id, u32(body.length));
      }
      return this.closeIfDone(s);
    }
    if (body.length > 0) s.toNode.push(Buffer.from(body));
    if (flags & END_STREAM) s.toNodeEnd = true;
    this.pumpToNode(s);
  }

  /** The payload without its padding (§6.1), or null after a protocol error. */
  private unpad(flags: number, p: Buffer): Buffer | null {
    if ((flags & PADDED) === 0) return p;
    if (p.length < 1 || p[0] >= p.length) {
      this.fail(PROTOCOL_ERROR, 'padding longer than the frame');
      return null;
    }
    return p.subarray(1, p.length - p[0]);
  }

  private onHeaders(flags: number, id: number, p: Buffer): void {
    if (id === 0 || (id & 1) === 0) return this.fail(PROTOCOL_ERROR, 'HEADERS on a server or zero stream id');
    let frag = this.unpad(flags, p);
    if (frag === null) return;
    this.headerSelfDependent = false;
    if (flags & PRIORITY_FLAG) {
      if (frag.length < 5) return this.fail(FRAME_SIZE_ERROR, 'HEADERS priority fields');
      this.headerSelfDependent = (frag.readUInt32BE(0) & 0x7fffffff) === id;
      frag = frag.subarray(5);
    }
    this.header.start(id, flags, frag);
    if (flags & END_HEADERS) return this.endHeaders();
    this.headerTimer ??= setTimeout(() => this.fail(PROTOCOL_ERROR, 'header block not finished in time'), this.host.headerTimeoutMs());
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    if (this.header.id === 0 || id !== this.header.id) return this.fail(PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    this.header.add(p);
    if (this.header.bytes > HEADER_BLOCK_SLACK * this.host.maxHeaderBytes() + 1024) return this.fail(ENHANCE_YOUR_CALM, 'header block too large');
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
    if (s !== undefined) {
      // Trailers: only after the request's headers, and they must end the stream (§8.1).
      if (s.remoteClosed) return this.resetStream(id, STREAM_CLOSED);
      if ((flags & END_STREAM) === 0) return this.resetStream(id, PROTOCOL_ERROR);
      s.remoteClosed = true;
      if (s.relayed && !s.nodeDone) {
        s.toNode.push({ block: encode(fields), end: true });
        s.toNodeEnd = true;
        this.pumpToNode(s);
      } else {
        this.closeIfDone(s);
      }
      return;
    }
    // A stream already closed (or reset by us while the client was still sending).
    if (id <= this.lastId) return this.resetStream(id, STREAM_CLOSED);
    this.lastId = id;
    // §6.8: streams above the GOAWAY's last id are ignored.
    if (this.draining) return;
    if (this.streams.size >= MAX_CONCURRENT_STREAMS) return this.resetStream(id, REFUSED_STREAM);
    if (this.headerSelfDependent) return this.resetStream(id, PROTOCOL_ERROR);
    const ns = this.newStream(id);
    if (tooLarge) return this.refuseTooLarge(ns, (flags & END_STREAM) !== 0);
    ns.remoteClosed = (flags & END_STREAM) !== 0;
    if (ns.remoteClosed) {
      const req = this.plain(fields);
      const now = Date.now();
      const start = req === null ? -1 : startClock(this.host);
      const answer = req === null ? null : this.host.answer(req, now);
      if (req !== null && answer !== null && !(answer instanceof Promise)) return this.answerFast(ns, req, answer, now, start);
    }
    this.relayStream(ns, fields);
  }

  private newStream(id: number): Stream {
    const s: Stream = {
      id, relayed: false, window: this.peerWindow, recv: DEFAULT_WINDOW, queue: [], endQueued: false, remoteClosed: false,
      localClosed: false, nodeWindow: this.nodeInitialWindow, toNode: [], toNodeEnd: false, sentEnd: false, nodeDone: false,
      resetAfter: false,
    };
    this.streams.set(id, s);
    return s;
  }

  /** A plain GET/HEAD, well formed by §8.3.1 and with nothing Node must judge; else null. */
  private plain(fields: Field[]): FastRequest | null {
    let method = '';
    let path = '';
    let scheme = '';
    let authority: string | null = null;
    let host: string | null = null;
    let origin = false;
    let referer = '';
    let agent = '';
    let regular = false;
    const notPlain = this.host.notPlain;
    for (let i = 0; i < fields.length; i++) {
      const [name, value] = fields[i];
      if (name.charCodeAt(0) === 0x3a) {
        if (regular) return null;
        if (name === ':method' && method === '') method = value;
        else if (name === ':path' && path === '') path = value;
        else if (name === ':scheme' && scheme === '') scheme = value;
        else if (name === ':authority' && authority === null) authority = value;
        else return null;
        continue;
      }
      regular = true;
      if (!TOKEN_LOWER.test(name) || BAD_VALUE.test(value) || notPlain.has(name) || CONNECTION_SPECIFIC.has(name)) return null;
      if (name === 'host') {
        if (host !== null) return null;
        host = value;
      } else if (name === 'origin') origin = true;
      else if (name === 'referer') referer = value;
      else if (name === 'user-agent') agent = value;
      else if (name === 'te' && value !== 'trailers') return null;
    }
    if ((method !== 'GET' && method !== 'HEAD') || scheme === '' || path.charCodeAt(0) !== 0x2f) return null;
    for (let i = 0; i < path.length; i++) {
      const c = path.charCodeAt(i);
      if (c <= 0x20 || c >= 0x7f) return null;
    }
    const h = authority ?? host;
    if (h === null || BAD_VALUE.test(h)) return null;
    return { method, url: path, host: h, origin, referer, agent, ip: this.sock.remoteAddress ?? '-', httpVersion: '2.0', head: '', memo: null };
  }

  private answerFast(s: Stream, req: FastRequest, r: FastReply, now: number, start: number): void {
    const withBody = req.method === 'GET' && r.body.length > 0;
    this.writeHeaders(s.id, blockOf(r, now), !withBody);
    if (withBody) {
      s.queue.push(r.body);
      s.endQueued = true;
      this.pump(s);
    } else {
      s.localClosed = true;
      this.closeIfDone(s);
    }
    this.host.done(req, r, withBody ? r.body.length : 0, took(start), 0);
  }

  /** Headers past max_header_size: 431, as Node answers an HTTP/1.1 head past it (RFC 9113 §10.5.1). */
  private refuseTooLarge(s: Stream, ended: boolean): void {
    s.remoteClosed = ended;
    s.resetAfter = true;
    this.writeHeaders(s.id, blockOf(TOO_LARGE), false);
    s.queue.push(TOO_LARGE.body);
    s.endQueued = true;
    this.pump(s);
  }

  /** HEADERS (and CONTINUATION) to the client; the first block after a table size change says so. */
  private writeHeaders(id: number, block: Buffer, end: boolean): void {
    if (this.sendTableUpdate) {
      this.sendTableUpdate = false;
      block = Buffer.concat([TABLE_SIZE_ZERO, block]);
    }
    this.out.headers(id, block, end, this.peerMaxFrame);
  }

  /** Sends what the windows allow of a stream's queue. */
  private pump(s: Stream): void {
    while (s.queue.length > 0) {
      // What this pass has collected counts too: one read of many requests must not queue a
      // whole flow-control window's worth of bodies before the socket is looked at again.
      if (this.sock.writableLength + this.out.length > BACKLOG_PAUSE_BYTES) {
        this.blocked.add(s);
        return;
      }
      const item = s.queue[0];
      if (!Buffer.isBuffer(item)) {
        s.queue.shift();
        this.writeHeaders(s.id, item.block, item.end);
        if (item.end) s.localClosed = true;
        continue;
      }
      const last = s.queue.length === 1 && s.endQueued;
      if (item.length === 0) {
        s.queue.shift();
        if (last) this.endData(s);
        continue;
      }
      const n = Math.min(item.length, s.window, this.connWindow, this.peerMaxFrame);
      if (n <= 0) {
        this.blocked.add(s);
        return;
      }
      s.window -= n;
      this.connWindow -= n;
      const whole = n === item.length;
      this.out.frame(DATA, whole && last ? END_STREAM : 0, s.id, whole ? item : item.subarray(0, n));
      if (whole) s.queue.shift();
      else s.queue[0] = item.subarray(n);
      if (whole && last) s.localClosed = true;
      // What has gone to the client may come from Node again.
      if (s.relayed && !s.nodeDone) this.innerOut.frame(WINDOW_UPDATE, 0, s.id, u32(n));
    }
    if (s.endQueued && !s.localClosed) this.endData(s);
    this.blocked.delete(s);
    this.closeIfDone(s);
  }

  private endData(s: Stream): void {
    this.out.frame(DATA, END_STREAM, s.id);
    s.localClosed = true;
  }

  private pumpAll(): void {
    for (const s of this.blocked) this.pump(s);
  }

  private closeIfDone(s: Stream): void {
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

  private forget(s: Stream): void {
    if (!this.streams.delete(s.id)) return;
    this.blocked.delete(s);
    this.endIfIdle();
  }

  /** A stream error (§5.4.2): RST_STREAM to the client, and to Node if the stream is relayed. */
  private resetStream(id: number, code: number): void {
    this.out.frame(RST_STREAM, 0, id, u32(code));
    const s = this.streams.get(id);
    if (s === undefined) return;
    if (s.relayed && !s.nodeDone) this.toNodeReset(id, CANCEL);
    this.forget(s);
  }

  /** A connection error (§5.4.1), or an idle close (NO_ERROR): GOAWAY with the code, then close. */
  private fail(code: number, _why: string): void {
    if (this.dead) return;
    this.out.frame(GOAWAY, 0, 0, goawayPayload(this.lastId, code));
    this.reader.stopped = true;
    this.flush();
    this.dead = true;
    this.sock.end();
    // A client that never reads must not keep the socket.
    setTimeout(() => this.sock.destroy(), 1000).unref();
    this.closeInner();
  }

  /**
   * Nothing moved either way for keepalive_timeout: closed, open streams or not, as Node's
   * session timeout did (a stalled request body, a player that stopped reading, a client that
   * opened the connection and said nothing). A live player always moves bytes.
   */
  private onIdle(): void {
    if (this.dead) {
      this.sock.destroy();
      return;
    }
    this.fail(NO_ERROR, 'idle');
  }

  private onPeerEnd(): void {
    this.draining = true;
    if (this.streams.size === 0) this.sock.end();
  }

  private endIfIdle(): void {
    if (this.draining && this.streams.size === 0 && !this.dead) {
      this.flush();
      this.dead = true;
      this.sock.end();
      this.closeInner();
    }
  }

  private onDrain(): void {
    if (this.paused) {
      this.paused = false;
      this.sock.resume();
    }
    this.pumpAll();
    this.flush();
  }

  private flush(): void {
    const b = this.out.take();
    if (b !== null && !this.sock.destroyed) this.sock.write(b);
    this.flushInner();
    // A client that sends faster than it reads is not read until it catches up.
    if (!this.paused && !this.dead && this.sock.writableLength > BACKLOG_PAUSE_BYTES) {
      this.paused = true;
      this.sock.pause();
    }
  }

  private destroy(): void {
    if (this.headerTimer !== null) clearTimeout(this.headerTimer);
    this.headerTimer = null;
    this.dead = true;
    this.reader.stopped = true;
    this.streams.clear();
    this.blocked.clear();
    this.closeInner();
    if (!this.sock.destroyed) this.sock.destroy();
  }

  // ---- the relay to Node -----------------------------------------------------------------

  private relayStream(s: Stream, fields: Field[]): void {
    if (!this.openInner()) return this.resetStream(s.id, REFUSED_STREAM);
    s.relayed = true;
    s.nodeWindow = this.nodeInitialWindow;
    const block = encode(fields);
    const end = s.remoteClosed;
    s.sentEnd = end;
    this.innerOut.headers(s.id, block, end, this.nodeMaxFrame);
    // The request body's window is credited as Node takes it, so the client's initial window
    // is our buffer: nothing more to do until DATA arrives.
  }

  private openInner(): boolean {
    if (this.inner !== null) return true;
    if (this.dead) return false;
    const [inner, outer] = duplexPair();
    const sock = this.sock as Socket & { alpnProtocol?: string | false; encrypted?: boolean; servername?: string | false };
    Object.assign(inner, { alpnProtocol: 'h2', encrypted: true, servername: sock.servername });
    this.inner = outer;
    this.innerOut = new Out();
    this.innerDecoder = new Decoder();
    this.nodeConnWindow = DEFAULT_WINDOW;
    this.nodeInitialWindow = DEFAULT_WINDOW;
    this.nodeMaxFrame = MIN_MAX_FRAME_SIZE;
    this.innerHeader = new HeaderBlock();
    this.innerReader = new FrameReader(MIN_MAX_FRAME_SIZE, (t, f, id, p) => this.onInnerFrame(t, f, id, p), () => this.innerFailed());
    outer.on('data', (c: Buffer) => {
      if (this.inner !== outer) return;
      this.innerReader!.push(c);
      this.flush();
    });
    outer.on('end', () => this.inner === outer && this.innerFailed());
    outer.on('close', () => this.inner === outer && this.innerFailed());
    outer.on('error', () => {});
    this.innerOut.raw(PREFACE);
    this.innerOut.frame(SETTINGS, 0, 0, settingsPayload([[S_ENABLE_PUSH, 0], [S_INITIAL_WINDOW_SIZE, RELAY_STREAM_WINDOW]]));
    // The connection window is given back as DATA arrives; each stream's window bounds the buffering.
    this.innerOut.frame(WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW - DEFAULT_WINDOW));
    this.host.relay(inner);
    return true;
  }

  private flushInner(): void {
    const b = this.innerOut.take();
    if (b !== null && this.inner !== null && !this.inner.destroyed) this.inner.write(b);
  }

  private closeInner(): void {
    const inner = this.inner;
    if (inner === null) return;
    this.inner = null;
    inner.end();
    inner.destroy();
  }

  /** The relay link is gone: relayed streams still open are reset, the rest go on. */
  private innerFailed(): void {
    const inner = this.inner;
    this.inner = null;
    if (inner !== null && !inner.destroyed) inner.destroy();
    for (const s of [...this.streams.values()]) {
      if (s.relayed && !s.nodeDone) {
        this.out.frame(RST_STREAM, 0, s.id, u32(INTERNAL_ERROR));
        this.forget(s);
      }
    }
    this.flush();
  }

  private toNodeReset(id: number, code: number): void {
    if (this.inner !== null) this.innerOut.frame(RST_STREAM, 0, id, u32(code));
  }

  /** Request body towards Node, within Node's windows; the client is credited with what went. */
  private pumpToNode(s: Stream): void {
    if (this.inner === null || s.nodeDone) return;
    while (s.toNode.length > 0) {
      const item = s.toNode[0];
      if (!Buffer.isBuffer(item)) {
        s.toNode.shift();
        this.innerOut.headers(s.id, item.block, true, this.nodeMaxFrame);
        s.toNodeEnd = false;
        s.sentEnd = true;
        continue;
      }
      const n = Math.min(item.length, s.nodeWindow, this.nodeConnWindow, this.nodeMaxFrame);
      if (n <= 0) return;
      s.nodeWindow -= n;
      this.nodeConnWindow -= n;
      const whole = n === item.length;
      const last = whole && s.toNode.length === 1 && s.toNodeEnd;
      this.innerOut.frame(DATA, last ? END_STREAM : 0, s.id, whole ? item : item.subarray(0, n));
      if (last) {
        s.toNodeEnd = false;
        s.sentEnd = true;
      }
      if (whole) s.toNode.shift();
      else s.toNode[0] = item.subarray(n);
      s.recv += n;
      if (!s.remoteClosed) this.out.frame(WINDOW_UPDATE, 0, s.id, u32(n));
    }
    if (s.toNodeEnd && !s.sentEnd) {
      this.innerOut.frame(DATA, END_STREAM, s.id);
      s.toNodeEnd = false;
      s.sentEnd = true;
    }
    this.closeIfDone(s);
  }

  private onInnerFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.innerHeader.id !== 0 && (type !== CONTINUATION || id !== this.innerHeader.id)) return this.innerFailed();
    switch (type) {
      case SETTINGS: {
        if (flags & ACK) return;
        for (let i = 0; i + 6 <= p.length; i += 6) {
          const k = p.readUInt16BE(i);
          const v = p.readUInt32BE(i + 2);
          if (k === S_INITIAL_WINDOW_SIZE) {
            const delta = v - this.nodeInitialWindow;
            this.nodeInitialWindow = v;
            for (const s of this.streams.values()) if (s.relayed) s.nodeWindow += delta;
          } else if (k === S_MAX_FRAME_SIZE) this.nodeMaxFrame = v;
        }
        this.innerOut.frame(SETTINGS, ACK, 0);
        return this.pumpAllToNode();
      }
      case WINDOW_UPDATE: {
        const inc = p.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          this.nodeConnWindow += inc;
          return this.pumpAllToNode();
        }
        const s = this.streams.get(id);
        if (s !== undefined) {
          s.nodeWindow += inc;
          this.pumpToNode(s);
        }
        return;
      }
      case PING:
        if ((flags & ACK) === 0) this.innerOut.frame(PING, ACK, 0, Buffer.from(p));
        return;
      case HEADERS: {
        let frag = p;
        if (flags & PADDED) frag = frag.subarray(1, frag.length - frag[0]);
        if (flags & PRIORITY_FLAG) frag = frag.subarray(5);
        this.innerHeader.start(id, flags, frag);
        if (flags & END_HEADERS) this.innerEndHeaders();
        return;
      }
      case CONTINUATION:
        this.innerHeader.add(p);
        if (flags & END_HEADERS) this.innerEndHeaders();
        return;
      case DATA: {
        if (p.length > 0) this.innerOut.frame(WINDOW_UPDATE, 0, 0, u32(p.length));
        const s = this.streams.get(id);
        let body = p;
        if (flags & PADDED) {
          body = p.subarray(1, p.length - p[0]);
          if (s !== undefined && !s.nodeDone && p.length > body.length) this.innerOut.frame(WINDOW_UPDATE, 0, id, u32(p.length - body.length));
        }
        if (s === undefined || s.nodeDone) return;
        if (body.length > 0) s.queue.push(Buffer.from(body));
        if (flags & END_STREAM) {
          s.endQueued = true;
          this.nodeEnd(s);
        }
        return this.pump(s);
      }
      case RST_STREAM: {
        const s = this.streams.get(id);
        if (s === undefined || s.nodeDone) return;
        const code = p.readUInt32BE(0);
        s.nodeDone = true;
        s.toNode = [];
        this.out.frame(RST_STREAM, 0, id, u32(code === NO_ERROR ? CANCEL : code));
        return this.forget(s);
      }
      case GOAWAY: {
        // Node is shutting down (the gateway closes its sessions): so does this connection.
        const last = p.readUInt32BE(0) & 0x7fffffff;
        for (const s of [...this.streams.values()]) {
          if (s.relayed && s.id > last && !s.nodeDone) {
            this.out.frame(RST_STREAM, 0, s.id, u32(REFUSED_STREAM));
            this.forget(s);
          }
        }
        return this.shutdown();
      }
      default:
        return;
    }
  }

  private innerEndHeaders(): void {
    const { id, flags } = this.innerHeader;
    const block = this.innerHeader.take();
    let fields: Field[];
    try {
      fields = this.innerDecoder!.decode(block).fields;
    } catch {
      return this.innerFailed();
    }
    const s = this.streams.get(id);
    if (s === undefined || s.nodeDone) return;
    const end = (flags & END_STREAM) !== 0;
    s.queue.push({ block: encode(fields), end });
    if (end) this.nodeEnd(s);
    this.pump(s);
  }

  /**
   * Node's answer is complete. If the request is not (Node answered without reading all of it),
   * Node's stream is cancelled and the client told, once the answer is out, to stop sending (§8.1).
   */
  private nodeEnd(s: Stream): void {
    s.nodeDone = true;
    s.toNode = [];
    if (!s.sentEnd) {
      this.toNodeReset(s.id, CANCEL);
      s.resetAfter = true;
    }
  }

  private pumpAllToNode(): void {
    for (const s of this.streams.values()) if (s.relayed && s.toNode.length > 0) this.pumpToNode(s);
  }
}
