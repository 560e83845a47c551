/** HTTP/2 framing (RFC 9113 §4, §6): frame types, flags, error codes, settings, and a frame reader. */

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PUSH_PROMISE = 0x5;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;

export const END_STREAM = 0x1;
export const ACK = 0x1;
export const END_HEADERS = 0x4;
export const PADDED = 0x8;
export const PRIORITY_FLAG = 0x20;

/** Error codes, RFC 9113 §7. */
export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const INTERNAL_ERROR = 0x2;
export const FLOW_CONTROL_ERROR = 0x3;
export const STREAM_CLOSED = 0x5;
export const FRAME_SIZE_ERROR = 0x6;
export const REFUSED_STREAM = 0x7;
export const CANCEL = 0x8;
export const COMPRESSION_ERROR = 0x9;
export const ENHANCE_YOUR_CALM = 0xb;

/** Settings identifiers, RFC 9113 §6.5.2. */
export const S_HEADER_TABLE_SIZE = 0x1;
export const S_ENABLE_PUSH = 0x2;
export const S_MAX_CONCURRENT_STREAMS = 0x3;
export const S_INITIAL_WINDOW_SIZE = 0x4;
export const S_MAX_FRAME_SIZE = 0x5;
export const S_MAX_HEADER_LIST_SIZE = 0x6;

export const DEFAULT_WINDOW = 65535;
export const MAX_WINDOW = 0x7fffffff;
export const MIN_MAX_FRAME_SIZE = 16384;
export const MAX_MAX_FRAME_SIZE = 16777215;

/** The 9-octet frame header. */
export function frameHead(type: number, flags: number, id: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = len >>> 16;
  b[1] = (len >>> 8) & 0xff;
  b[2] = len & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(id, 5);
  return b;
}

export function settingsPayload(pairs: [number, number][]): Buffer {
  const b = Buffer.allocUnsafe(6 * pairs.length);
  pairs.forEach(([k, v], i) => {
    b.writeUInt16BE(k, 6 * i);
    b.writeUInt32BE(v, 6 * i + 2);
  });
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v, 0);
  return b;
}

export function goawayPayload(lastId: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeUInt32BE(lastId, 0);
  b.writeUInt32BE(code, 4);
  return b;
}

export type FrameHandler = (type: number, flags: number, id: number, payload: Buffer) => void;

/**
 * Cuts a byte stream into frames. `maxFrameSize` is the SETTINGS_MAX_FRAME_SIZE we advertised:
 * a longer frame is a connection error (§4.2), reported through `onOversize` before any of its
 * payload is buffered.
 *
 * With `turnWork`, one call handles at most that much work (`frameWork`) and keeps the rest for
 * `resume()` on a later event-loop turn (`held` says so): one connection's read cannot keep the
 * loop from every other connection's, as a fair scheduler would have it.
 */
export class FrameReader {
  private buf: Buffer | null = null;
  stopped = false;
  /** Frames are waiting for `resume()`: the turn's work was spent. */
  held = false;

  constructor(private readonly maxFrameSize: number, private readonly onFrame: FrameHandler, private readonly onOversize: (len: number) => void, private readonly turnWork = Infinity) {}

  push(chunk: Buffer): void {
    this.buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    // A chunk that came while frames were held waits behind them.
    if (!this.held) this.run();
  }

  /** The next turn: frames held back by the last one are handled, up to `turnWork` again. */
  resume(): void {
    this.held = false;
    if (this.buf !== null) this.run();
  }

  private run(): void {
    let buf = this.buf!;
    let pos = 0;
    let work = 0;
    while (!this.stopped && buf.length - pos >= 9) {
      const len = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (len > this.maxFrameSize) {
        this.stopped = true;
        this.onOversize(len);
        break;
      }
      if (buf.length - pos < 9 + len) break;
      if (work >= this.turnWork) {
        this.held = true;
        break;
      }
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      const id = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      const payload = buf.subarray(pos + 9, pos + 9 + len);
      pos += 9 + len;
      work += frameWork(type, len);
      this.onFrame(type, flags, id, payload);
    }
    if (this.stopped || pos === buf.length) this.buf = null;
    else {
      buf = buf.subarray(pos);
      // A partial frame keeps a copy of its own, not the whole read it came in.
      this.buf = pos > 0 && buf.length < 4096 && !this.held ? Buffer.from(buf) : buf;
    }
  }
}

/**
 * What handling one frame costs, in units of a small control frame. A header block fragment is
 * decoded (HPACK) and usually opens a stream that may go on to Node: 8 (measured on a fresh
 * gateway, whose code is cold when a flood comes: 135 µs for a HEADERS and its RST_STREAM, 12-31
 * µs for a PING and its ACK). A DATA frame is copied: one more unit a 4 KiB.
 */
export function frameWork(type: number, len: number): number {
  if (type === HEADERS || type === CONTINUATION) return HEADER_WORK;
  if (type === DATA) return 1 + (len >> 12);
  return 1;
}

export const HEADER_WORK = 8;

/** Frames collected during one pass and written out in one go. */
export class Out {
  private parts: Buffer[] = [];
  private len = 0;

  frame(type: number, flags: number, id: number, payload?: Buffer): void {
    const n = payload === undefined ? 0 : payload.length;
    this.parts.push(frameHead(type, flags, id, n));
    this.len += 9;
    if (n > 0) {
      this.parts.push(payload!);
      this.len += n;
    }
  }

  /** A header block as HEADERS, then CONTINUATION frames past `maxFrame` (§6.10). */
  headers(id: number, block: Buffer, endStream: boolean, maxFrame: number): void {
    const end = endStream ? END_STREAM : 0;
    if (block.length <= maxFrame) {
      this.frame(HEADERS, END_HEADERS | end, id, block);
      return;
    }
    this.frame(HEADERS, end, id, block.subarray(0, maxFrame));
    for (let off = maxFrame; off < block.length; off += maxFrame) {
      this.frame(CONTINUATION, off + maxFrame >= block.length ? END_HEADERS : 0, id, block.subarray(off, Math.min(off + maxFrame, block.length)));
    }
  }

  raw(b: Buffer): void {
    this.parts.push(b);
    this.len += b.length;
  }

  /** Bytes collected and not yet taken. */
  get length(): number {
    return this.len;
  }

  take(): Buffer | null {
    if (this.len === 0) return null;
    const b = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.len);
    this.parts = [];
    this.len = 0;
    return b;
  }
}
