import { OBJECT_OVERHEAD_BYTES, type Account } from '../../limits/budget.js';
import { DEFAULT_WINDOW } from './frames.js';

/** A header block (response headers or trailers) waiting its turn behind DATA. */
export interface HeadItem {
  block: Buffer;
  end: boolean;
}

/** One client stream: its windows, its queued output, and its state on the relay to Node. */
export interface Stream {
  id: number;
  relayed: boolean;
  /** Our send window towards the client. */
  window: number;
  /** Our receive window for the client's DATA on this stream. */
  recv: number;
  /** Output waiting for window: DATA payloads and header blocks, in order. */
  queue: (Buffer | HeadItem)[];
  /** Bytes of `queue` charged to the connection's account (payloads plus OBJECT_OVERHEAD_BYTES each). */
  queued: number;
  /** END_STREAM goes out after the queue. */
  endQueued: boolean;
  /** The client sent END_STREAM or RST_STREAM. */
  remoteClosed: boolean;
  /** We sent END_STREAM. */
  localClosed: boolean;
  /** Body octets sent to the client (the access log's $body_bytes_sent). */
  sent: number;
  // Relay state.
  /** Our send window towards Node. */
  nodeWindow: number;
  /** Request body (and trailers) waiting for Node's window. */
  toNode: (Buffer | HeadItem)[];
  /** What Node and Koa are deemed to hold for this stream while it is in flight (RELAYED_STREAM_BYTES), charged. */
  nodeCharge: number;
  /** Bytes of `toNode` charged to the account. */
  toNodeBytes: number;
  toNodeEnd: boolean;
  /** We sent Node END_STREAM. */
  sentEnd: boolean;
  /** Node ended or reset its side: nothing more comes from it, nothing more goes to it. */
  nodeDone: boolean;
  /** Node reset with NO_ERROR after its answer: the client is told to stop sending once that answer is out. */
  resetAfter: boolean;
}

export function newStream(id: number, window: number, nodeWindow: number): Stream {
  return {
    id, relayed: false, window, recv: DEFAULT_WINDOW, queue: [], queued: 0, endQueued: false, remoteClosed: false,
    localClosed: false, sent: 0, nodeWindow, nodeCharge: 0, toNode: [], toNodeBytes: 0, toNodeEnd: false, sentEnd: false, nodeDone: false,
    resetAfter: false,
  };
}

/**
 * Node writes a live stream in small DATA frames (an FLV tag each). Queued behind a closed window,
 * frames smaller than this are joined to the one before, so the objects held stay few.
 */
const JOIN_BELOW = 4096;

/**
 * Queues a piece of a relayed answer for the client, charged to `account` first (its bytes, and
 * the object when it is not joined to the one before); false, holding nothing, when over budget.
 */
export function holdAnswer(s: Stream, body: Buffer, account: Account): boolean {
  const last = s.queue.length > 0 ? s.queue[s.queue.length - 1] : undefined;
  if (Buffer.isBuffer(last) && last.length + body.length <= JOIN_BELOW * 4 && (last.length < JOIN_BELOW || body.length < JOIN_BELOW)) {
    if (!account.take(body.length)) return false;
    s.queued += body.length;
    s.queue[s.queue.length - 1] = Buffer.concat([last, body]);
    return true;
  }
  const n = body.length + OBJECT_OVERHEAD_BYTES;
  if (!account.take(n)) return false;
  s.queued += n;
  s.queue.push(Buffer.from(body));
  return true;
}

/** What holding `b` costs the account: its bytes and the object. */
export function cost(b: Buffer): number {
  return b.length + OBJECT_OVERHEAD_BYTES;
}

/**
 * nghttp2's bound (`nghttp2_option_set_max_continuations`, default 8): a header block split into
 * more CONTINUATION frames than this is a flood, whatever the frames carry. Zero-length
 * CONTINUATIONs cost no header bytes but an object each; without a count, 10 s of them grew the
 * process by 2.6 GB.
 */
export const MAX_CONTINUATIONS = 8;

/**
 * A header block being assembled from HEADERS and its CONTINUATIONs (§4.3), on either side of the
 * relay. Each fragment is charged to `account` (when given) before it is held; `add` says false
 * when the block is over the count or the account is out of budget.
 */
export class HeaderBlock {
  /** The stream it belongs to; 0 when none is open. */
  id = 0;
  flags = 0;
  bytes = 0;
  private parts: Buffer[] = [];
  private charged = 0;

  constructor(private readonly account: Account | null = null) {}

  /** False, holding nothing, when the account refuses the first fragment. */
  start(id: number, flags: number, frag: Buffer): boolean {
    this.release();
    this.id = id;
    this.flags = flags;
    this.parts = [frag];
    this.bytes = frag.length;
    return this.charge(frag);
  }

  add(frag: Buffer): boolean {
    if (this.parts.length > MAX_CONTINUATIONS) return false;
    if (!this.charge(frag)) return false;
    this.parts.push(frag);
    this.bytes += frag.length;
    return true;
  }

  /** CONTINUATION frames received so far for the open block. */
  get continuations(): number {
    return Math.max(0, this.parts.length - 1);
  }

  /** The whole block, and nothing open any more. */
  take(): Buffer {
    const block = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.id = 0;
    this.parts = [];
    this.release();
    return block;
  }

  /** Drops what is held (the connection is closing). */
  release(): void {
    if (this.charged > 0) this.account?.give(this.charged);
    this.charged = 0;
  }

  private charge(frag: Buffer): boolean {
    if (this.account === null) return true;
    const n = cost(frag);
    if (!this.account.take(n)) return false;
    this.charged += n;
    return true;
  }
}
