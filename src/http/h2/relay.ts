import type { Duplex } from 'node:stream';
import { OBJECT_OVERHEAD_BYTES } from '../../limits/budget.js';
import { Decoder, encode, type Field } from './hpack.js';
import {
  ACK, CANCEL, CONTINUATION, DATA, DEFAULT_WINDOW, END_HEADERS, END_STREAM, FrameReader, GOAWAY, HEADERS, INTERNAL_ERROR,
  MIN_MAX_FRAME_SIZE, NO_ERROR, Out, PADDED, PING, PREFACE, PRIORITY_FLAG, REFUSED_STREAM, RST_STREAM, S_ENABLE_PUSH,
  S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, SETTINGS, settingsPayload, u32, WINDOW_UPDATE,
} from './frames.js';
import { duplexPair, type RelayOwner } from './host.js';
import { HeaderBlock, holdAnswer, type Stream } from './stream.js';
import { CancelsInFlight } from './calm.js';

/**
 * The relay to Node's http2 server: an in-process HTTP/2 connection (a Duplex pair whose inner end
 * Node serves as if it were the client's socket) carrying, with the same stream ids, every
 * request the client-facing connection does not answer from memory.
 *
 * Flow control holds end to end, so what a client does not read is never read from Node either:
 * what Node sends on a stream is credited back to Node (stream and connection windows) only once
 * it has gone out to the client. A client whose window is 0 therefore holds at most
 * RELAY_STREAM_WINDOW per stream and the relay's connection window in all, and that memory is
 * charged to the connection's account. Request bodies are credited to the client only once Node
 * has taken them.
 */

/** Per-stream window we give Node: how much of one response may wait here for a slow client. */
const RELAY_STREAM_WINDOW = 256 * 1024;
/**
 * The connection window we give Node, at most: what all of one client's relayed responses may
 * hold here together. Clamped to a quarter of the connection's memory budget (the rest is for
 * streams in flight, header blocks and request bodies), and never below the protocol's 65,535.
 */
const RELAY_CONN_WINDOW = 1024 * 1024;
/**
 * What Node and Koa hold for a relayed stream in flight whose client reads nothing, charged to
 * the account while the stream is open on the relay: a file answer's read chunk (16 KiB on
 * HTTP/2), the stream's write buffer, the request and response objects. Measured: 50 connections
 * of 32 such streams grew the gateway by about 60 MiB, some 40 KiB a stream; the rest of it is
 * Node's session and is per connection.
 */
export const RELAYED_STREAM_BYTES = 16 * 1024;

export class Relay {
  private inner: Duplex | null = null;
  readonly out = new Out();
  private reader: FrameReader | null = null;
  private decoder: Decoder | null = null;
  private connWindow = DEFAULT_WINDOW;
  private initialWindow = DEFAULT_WINDOW;
  private maxFrame = MIN_MAX_FRAME_SIZE;
  /** Node's header block being assembled. */
  private header = new HeaderBlock();
  private cancels = new CancelsInFlight();
  /**
   * Streams opened and not yet sent to Node, with their header blocks: a stream goes to Node on
   * the event-loop turn after the one that read its HEADERS. One the client resets (or that
   * provokes a stream error) in the meantime never reaches Node: a rapid-reset flood's streams,
   * cancelled in the same read, then cost an HPACK decode each, not a Koa request and an upstream
   * request (measured: 12 such connections spent ~0.7 s of the gateway's CPU in Node's 'stream'
   * events and Koa, stalling every other client's answers by as much).
   */
  private readonly waiting = new Map<number, { s: Stream; fields: Field[] }>();
  private dispatchTimer: NodeJS.Immediate | null = null;

  constructor(private readonly owner: RelayOwner) {}

  /** Streams open on the relay or cancelled and not yet known closed by Node. */
  get inFlight(): number {
    let n = this.cancels.count;
    for (const s of this.owner.streams.values()) if (s.relayed && !s.nodeDone) n++;
    return n;
  }

  /** Sends the request's head to Node (on a later turn); false when the connection is closing or over budget. */
  open(s: Stream, fields: Field[]): boolean {
    if (this.owner.isDead() || !this.owner.account.take(RELAYED_STREAM_BYTES)) return false;
    s.nodeCharge = RELAYED_STREAM_BYTES;
    s.relayed = true;
    s.sentEnd = s.remoteClosed;
    this.waiting.set(s.id, { s, fields });
    this.dispatchTimer ??= setImmediate(() => this.dispatch());
    return true;
  }

  /**
   * The streams opened on an earlier turn and still wanted go to Node, in the order they came. Not
   * while the client's connection still holds frames of the read that opened them (their resets
   * may be among those), and the link to Node is made only now: a flood whose every stream is
   * reset never costs a Node session.
   */
  private dispatch(): void {
    this.dispatchTimer = null;
    if (this.waiting.size === 0) return;
    if (this.owner.framesHeld()) {
      this.dispatchTimer = setImmediate(() => this.dispatch());
      return;
    }
    if (!this.connectInner()) return this.waiting.clear();
    for (const { s, fields } of this.waiting.values()) {
      this.waiting.delete(s.id);
      if (this.owner.streams.get(s.id) !== s || s.nodeDone) continue;
      s.nodeWindow = this.initialWindow;
      // END_STREAM on the HEADERS when the request had no body (set when it was opened).
      this.out.headers(s.id, encode(fields), s.sentEnd, this.maxFrame);
      this.pumpToNode(s);
    }
    this.owner.flush();
  }

  private connectInner(): boolean {
    if (this.inner !== null) return true;
    if (this.owner.isDead()) return false;
    const [inner, outer] = duplexPair();
    this.inner = outer;
    this.decoder = new Decoder();
    this.connWindow = DEFAULT_WINDOW;
    this.initialWindow = DEFAULT_WINDOW;
    this.maxFrame = MIN_MAX_FRAME_SIZE;
    this.header = new HeaderBlock();
    this.cancels = new CancelsInFlight();
    this.reader = new FrameReader(MIN_MAX_FRAME_SIZE, (t, f, id, p) => this.onFrame(t, f, id, p), () => this.failed());
    outer.on('data', (c: Buffer) => {
      if (this.inner !== outer) return;
      this.reader!.push(c);
      this.owner.flush();
    });
    outer.on('end', () => this.inner === outer && this.failed());
    outer.on('close', () => this.inner === outer && this.failed());
    outer.on('error', () => {});
    this.out.raw(PREFACE);
    this.out.frame(SETTINGS, 0, 0, settingsPayload([[S_ENABLE_PUSH, 0], [S_INITIAL_WINDOW_SIZE, RELAY_STREAM_WINDOW]]));
    const window = Math.max(DEFAULT_WINDOW, Math.min(RELAY_CONN_WINDOW, Math.floor(this.owner.account.limit / 4)));
    if (window > DEFAULT_WINDOW) this.out.frame(WINDOW_UPDATE, 0, 0, u32(window - DEFAULT_WINDOW));
    this.owner.connect(inner);
    return true;
  }

  flush(): void {
    const b = this.out.take();
    if (b !== null && this.inner !== null && !this.inner.destroyed) this.inner.write(b);
  }

  close(): void {
    this.waiting.clear();
    const inner = this.inner;
    if (inner === null) return;
    this.inner = null;
    inner.end();
    inner.destroy();
  }

  /** The link is gone: relayed streams still open are reset, the rest go on. */
  private failed(): void {
    this.waiting.clear();
    const inner = this.inner;
    this.inner = null;
    if (inner !== null && !inner.destroyed) inner.destroy();
    for (const s of [...this.owner.streams.values()]) {
      if (s.relayed && !s.nodeDone) {
        this.owner.out.frame(RST_STREAM, 0, s.id, u32(INTERNAL_ERROR));
        this.owner.forget(s);
      }
    }
    this.owner.flush();
  }

  /** The stream is relayed and has not left for Node yet. */
  unsent(id: number): boolean {
    return this.waiting.has(id);
  }

  /** The client cancelled a relayed stream, or we reset it: Node's stream is cancelled too. */
  reset(id: number, code: number): void {
    // Never sent: Node has nothing to cancel.
    if (this.waiting.delete(id)) return;
    if (this.inner === null) return;
    this.out.frame(RST_STREAM, 0, id, u32(code));
    if (this.cancels.add()) this.out.frame(PING, 0, 0, Buffer.alloc(8));
  }

  /**
   * `n` octets of a stream's answer went out to the client (or were dropped with it): Node may
   * send that much again, on the stream (while it is open) and on the connection.
   */
  credit(s: Stream, n: number): void {
    if (n <= 0 || this.inner === null) return;
    this.out.frame(WINDOW_UPDATE, 0, 0, u32(n));
    if (!s.nodeDone) this.out.frame(WINDOW_UPDATE, 0, s.id, u32(n));
  }

  /** Request body towards Node, within Node's windows; the client is credited with what went. */
  pumpToNode(s: Stream): void {
    if (this.inner === null || s.nodeDone || this.waiting.has(s.id)) return;
    while (s.toNode.length > 0) {
      const item = s.toNode[0];
      if (!Buffer.isBuffer(item)) {
        s.toNode.shift();
        this.out.headers(s.id, item.block, true, this.maxFrame);
        s.toNodeEnd = false;
        s.sentEnd = true;
        continue;
      }
      const n = Math.min(item.length, s.nodeWindow, this.connWindow, this.maxFrame);
      if (n <= 0) return;
      s.nodeWindow -= n;
      this.connWindow -= n;
      const whole = n === item.length;
      const last = whole && s.toNode.length === 1 && s.toNodeEnd;
      this.out.frame(DATA, last ? END_STREAM : 0, s.id, whole ? item : item.subarray(0, n));
      if (last) {
        s.toNodeEnd = false;
        s.sentEnd = true;
      }
      const given = n + (whole ? OBJECT_OVERHEAD_BYTES : 0);
      if (whole) s.toNode.shift();
      else s.toNode[0] = item.subarray(n);
      s.toNodeBytes -= given;
      this.owner.account.give(given);
      s.recv += n;
      // The client's stream and connection windows: what Node took may come again.
      this.owner.out.frame(WINDOW_UPDATE, 0, 0, u32(n));
      if (!s.remoteClosed) this.owner.out.frame(WINDOW_UPDATE, 0, s.id, u32(n));
    }
    if (s.toNodeEnd && !s.sentEnd) {
      this.out.frame(DATA, END_STREAM, s.id);
      s.toNodeEnd = false;
      s.sentEnd = true;
    }
    this.owner.closeIfDone(s);
  }

  private pumpAll(): void {
    for (const s of this.owner.streams.values()) if (s.relayed && s.toNode.length > 0) this.pumpToNode(s);
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.header.id !== 0 && (type !== CONTINUATION || id !== this.header.id)) return this.failed();
    switch (type) {
      case SETTINGS: return this.onSettings(flags, p);
      case WINDOW_UPDATE: {
        const inc = p.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          this.connWindow += inc;
          return this.pumpAll();
        }
        const s = this.owner.streams.get(id);
        if (s !== undefined) {
          s.nodeWindow += inc;
          this.pumpToNode(s);
        }
        return;
      }
      case PING:
        if ((flags & ACK) === 0) this.out.frame(PING, ACK, 0, Buffer.from(p));
        else if (this.cancels.acked()) this.out.frame(PING, 0, 0, Buffer.alloc(8));
        return;
      case HEADERS: {
        let frag = p;
        if (flags & PADDED) frag = frag.subarray(1, frag.length - frag[0]);
        if (flags & PRIORITY_FLAG) frag = frag.subarray(5);
        this.header.start(id, flags, frag);
        if (flags & END_HEADERS) this.endHeaders();
        return;
      }
      case CONTINUATION:
        this.header.add(p);
        if (flags & END_HEADERS) this.endHeaders();
        return;
      case DATA: return this.onData(flags, id, p);
      case RST_STREAM: {
        const s = this.owner.streams.get(id);
        if (s === undefined || s.nodeDone) return;
        const code = p.readUInt32BE(0);
        s.nodeDone = true;
        this.dropToNode(s);
        this.owner.out.frame(RST_STREAM, 0, id, u32(code === NO_ERROR ? CANCEL : code));
        return this.owner.forget(s);
      }
      case GOAWAY: {
        // Node is shutting down (the gateway closes its sessions): so does this connection.
        const last = p.readUInt32BE(0) & 0x7fffffff;
        for (const s of [...this.owner.streams.values()]) {
          if (s.relayed && s.id > last && !s.nodeDone) {
            this.owner.out.frame(RST_STREAM, 0, s.id, u32(REFUSED_STREAM));
            this.owner.forget(s);
          }
        }
        return this.owner.shutdown();
      }
      default:
        return;
    }
  }

  private onSettings(flags: number, p: Buffer): void {
    if (flags & ACK) return;
    for (let i = 0; i + 6 <= p.length; i += 6) {
      const k = p.readUInt16BE(i);
      const v = p.readUInt32BE(i + 2);
      if (k === S_INITIAL_WINDOW_SIZE) {
        const delta = v - this.initialWindow;
        this.initialWindow = v;
        for (const s of this.owner.streams.values()) if (s.relayed) s.nodeWindow += delta;
      } else if (k === S_MAX_FRAME_SIZE) this.maxFrame = v;
    }
    this.out.frame(SETTINGS, ACK, 0);
    this.pumpAll();
  }

  /** A DATA frame of Node's answer: queued for the client, charged to the connection, credited back once sent. */
  private onData(flags: number, id: number, p: Buffer): void {
    const s = this.owner.streams.get(id);
    let body = p;
    if (flags & PADDED) body = p.subarray(1, p.length - p[0]);
    if (s === undefined || s.nodeDone) {
      // Nobody will send these: the connection window is Node's again at once.
      if (p.length > 0) this.out.frame(WINDOW_UPDATE, 0, 0, u32(p.length));
      return;
    }
    if (p.length > body.length) this.credit(s, p.length - body.length);
    if (body.length > 0 && !holdAnswer(s, body, this.owner.account)) return this.refuse(s);
    if (flags & END_STREAM) {
      s.endQueued = true;
      this.nodeEnd(s);
    }
    this.owner.pump(s);
  }

  /** Over the budget with a piece of Node's answer: the stream and the client are cut off. */
  private refuse(s: Stream): void {
    this.reset(s.id, CANCEL);
    s.nodeDone = true;
    this.owner.overBudget(`relayed answer on stream ${s.id}`);
  }

  private endHeaders(): void {
    const { id, flags } = this.header;
    const block = this.header.take();
    let fields: Field[];
    try {
      fields = this.decoder!.decode(block).fields;
    } catch {
      return this.failed();
    }
    const s = this.owner.streams.get(id);
    if (s === undefined || s.nodeDone) return;
    const end = (flags & END_STREAM) !== 0;
    s.queue.push({ block: encode(fields), end });
    if (end) this.nodeEnd(s);
    this.owner.pump(s);
  }

  /**
   * Node's answer is complete. If the request is not (Node answered without reading all of it),
   * Node's stream is cancelled and the client told, once the answer is out, to stop sending (§8.1).
   */
  private nodeEnd(s: Stream): void {
    s.nodeDone = true;
    this.dropToNode(s);
    if (!s.sentEnd) {
      if (this.inner !== null) this.out.frame(RST_STREAM, 0, s.id, u32(CANCEL));
      s.resetAfter = true;
    }
  }

  /** Request body nobody will read: its charge is given back, and the client's connection window. */
  dropToNode(s: Stream): void {
    if (s.nodeCharge > 0) this.owner.account.give(s.nodeCharge);
    s.nodeCharge = 0;
    let bytes = 0;
    for (const item of s.toNode) if (Buffer.isBuffer(item)) bytes += item.length;
    s.toNode = [];
    if (s.toNodeBytes > 0) this.owner.account.give(s.toNodeBytes);
    s.toNodeBytes = 0;
    if (bytes > 0) this.owner.out.frame(WINDOW_UPDATE, 0, 0, u32(bytes));
  }
}
