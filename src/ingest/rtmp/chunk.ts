import { MAX_TAG_BYTES } from '../../media/flv/demuxer.js';
import { OBJECT_OVERHEAD_BYTES } from '../../limits/budget.js';
import { DEFAULT_CHUNK_SIZE, MESSAGE_HEADER_BYTES, TIMESTAMP_EXTENDED } from './chunk-writer.js';

export { ChunkWriter, DEFAULT_CHUNK_SIZE, type OutMessage } from './chunk-writer.js';

/**
 * The RTMP chunk stream (Adobe RTMP specification 1.0, §5.3): messages cut into chunks of at most
 * the sender's chunk size, each chunk led by a basic header (1 to 3 bytes) and a message header of
 * type 0 (11 bytes), 1 (7), 2 (3) or 3 (none), plus an extended timestamp when the 24-bit field
 * overflows. Bytes in any slicing, messages out; and messages in, chunks out.
 *
 * Memory is bounded whatever a peer sends: at most one partial chunk header is held; an unfinished
 * message is one buffer per chunk stream that grows (doubling, never past the declared length) as
 * its bytes arrive, so a 12-byte header claiming 8 MiB costs nothing and one-byte chunks cost no
 * object each; what is held is charged in real bytes (buffer capacity plus
 * OBJECT_OVERHEAD_BYTES per message) to the connection's account before it is allocated, and is
 * capped per connection across chunk streams, as is the number of chunk streams.
 */

/** The chunk size we send with (after announcing it): fewer headers, and what SRS and ffmpeg use. */
export const OUT_CHUNK_SIZE = 4096;
/**
 * The chunk sizes a peer may announce: SRS's range (SRS_CONSTS_RTMP_MIN_CHUNK_SIZE and _MAX_). The
 * spec allows 1..2^31-1, but one-byte chunks only serve to make a server do work per byte, and no
 * encoder goes below the initial 128 (ffmpeg, OBS and librtmp announce 4096 or more).
 */
export const MIN_PEER_CHUNK_SIZE = 128;
export const MAX_PEER_CHUNK_SIZE = 65536;
/** A message is at most an FLV tag: RTMP audio/video/data bodies are FLV tag bodies. */
export const MAX_MESSAGE_BYTES = MAX_TAG_BYTES;
/** Distinct chunk stream ids one connection may use; encoders use fewer than ten. */
export const MAX_CHUNK_STREAMS = 64;
/**
 * Real bytes of unfinished messages held at once across chunk streams (real senders interleave
 * two: audio and video), whatever the connection's account would allow: two whole messages, and
 * the object cost of every chunk stream.
 */
export const MAX_PENDING_BYTES = 2 * MAX_MESSAGE_BYTES + MAX_CHUNK_STREAMS * OBJECT_OVERHEAD_BYTES;

/** Who pays for held bytes: a connection's Account (src/limits/budget.ts). */
export interface MemoryAccount {
  /** Charge `n` bytes; false (charging nothing) when over budget. */
  take(n: number): boolean;
  give(n: number): void;
}

/** Message type ids (§5.4, §6.2, §7.1). */
export const MSG_SET_CHUNK_SIZE = 1;
export const MSG_ABORT = 2;
export const MSG_ACK = 3;
export const MSG_USER_CONTROL = 4;
export const MSG_WINDOW_ACK_SIZE = 5;
export const MSG_SET_PEER_BANDWIDTH = 6;
export const MSG_AUDIO = 8;
export const MSG_VIDEO = 9;
export const MSG_DATA_AMF3 = 15;
export const MSG_COMMAND_AMF3 = 17;
export const MSG_DATA_AMF0 = 18;
export const MSG_COMMAND_AMF0 = 20;


/** A peer broke the chunk stream protocol or a bound; the connection cannot continue. */
export class RtmpError extends Error {}

export interface RtmpMessage {
  csid: number;
  type: number;
  streamId: number;
  /** Absolute timestamp in milliseconds, modulo 2^32. */
  timestamp: number;
  payload: Buffer;
}

interface InStream {
  csid: number;
  /** Timestamp of the current (or last) message on this chunk stream. */
  timestamp: number;
  /** The last timestamp or delta field as sent, resolved through the extended field. */
  field: number;
  /** The last header carried an extended timestamp, so type-3 chunks may repeat it (§5.3.1.3). */
  extended: boolean;
  length: number;
  type: number;
  streamId: number;
  /** The message being reassembled (its capacity grows as bytes arrive); null between messages. */
  buf: Buffer | null;
  filled: number;
}

/**
 * Reassembles messages from a peer's chunks. Set Chunk Size and Abort take effect here, at
 * once, because they change how the very next chunk is read; they are still returned.
 */
export class ChunkReader {
  chunkSize = DEFAULT_CHUNK_SIZE;
  private readonly streams = new Map<number, InStream>();
  /** An incomplete chunk header held between pushes (at most 17 bytes). */
  private rest: Buffer = Buffer.alloc(0);
  /** The chunk stream whose chunk payload is being read, and how much of it is left. */
  private current: InStream | null = null;
  private chunkLeft = 0;
  /** Real bytes held for unfinished messages, all charged to `account`. */
  private held = 0;

  /** `account` pays for unfinished messages; null: only this reader's own bounds apply. */
  constructor(private account: MemoryAccount | null = null) {}

  /** Bytes held for the peer: a partial chunk header plus unfinished messages (buffers and objects). */
  get bufferedBytes(): number {
    return this.rest.length + this.held;
  }

  /**
   * Moves what is held to another account (the connection became trusted and detached from the
   * anonymous pool): the new account is charged at once, so it never pays back more than it took.
   */
  moveTo(account: MemoryAccount | null): void {
    if (account && !account.take(this.held)) throw new RtmpError(`unfinished messages of ${this.held} bytes are over the new account's budget`);
    this.account = account;
  }

  push(data: Buffer): RtmpMessage[] {
    const buf = this.rest.length > 0 ? Buffer.concat([this.rest, data]) : data;
    const out: RtmpMessage[] = [];
    let off = 0;
    for (;;) {
      if (this.current === null) {
        const next = this.header(buf, off);
        if (next < 0) break;
        off = next;
      }
      const cs = this.current!;
      const n = Math.min(this.chunkLeft, buf.length - off);
      if (n > 0) {
        this.reserve(cs, cs.filled + n);
        // A copy, so a message never pins the socket's read buffer.
        buf.copy(cs.buf!, cs.filled, off, off + n);
        cs.filled += n;
        this.chunkLeft -= n;
        off += n;
      }
      if (this.chunkLeft > 0) break;
      this.current = null;
      if (cs.filled === cs.length) {
        const msg = this.complete(cs);
        out.push(msg);
        this.control(msg);
      }
    }
    this.rest = off < buf.length ? Buffer.from(buf.subarray(off)) : Buffer.alloc(0);
    return out;
  }

  /**
   * Makes room for `need` bytes of the chunk stream's message, charging the growth before it is
   * allocated. Capacity doubles (so copying stays linear) but never passes the declared length,
   * and a message's first chunk costs its object as well as its bytes.
   */
  private reserve(cs: InStream, need: number): void {
    const cap = cs.buf?.length ?? 0;
    if (need <= cap && cs.buf) return;
    const next = Math.min(cs.length, Math.max(need, cap * 2));
    const cost = next - cap + (cs.buf ? 0 : OBJECT_OVERHEAD_BYTES);
    if (this.held + cost > MAX_PENDING_BYTES) throw new RtmpError(`unfinished messages over ${MAX_PENDING_BYTES} bytes`);
    if (this.account && !this.account.take(cost)) {
      throw new RtmpError(`unfinished messages over the memory budget (${this.held} bytes held, ${cost} more asked)`);
    }
    this.held += cost;
    const grown = Buffer.allocUnsafe(next);
    if (cs.buf) cs.buf.copy(grown, 0, 0, cs.filled);
    cs.buf = grown;
  }

  /** Gives back what an unfinished (or just completed) message was charged. */
  private release(cs: InStream): void {
    if (!cs.buf) return;
    const cost = cs.buf.length + OBJECT_OVERHEAD_BYTES;
    this.held -= cost;
    this.account?.give(cost);
    cs.buf = null;
    cs.filled = 0;
  }

  /**
   * Parses one chunk header at `off` and makes its chunk stream current. Returns the offset of
   * the chunk's payload, or -1 when the header is not complete yet.
   */
  private header(buf: Buffer, off: number): number {
    const left = buf.length - off;
    if (left < 1) return -1;
    const fmt = buf[off] >> 6;
    let csid = buf[off] & 0x3f;
    let p = off + 1;
    // §5.3.1.1: ids 0 and 1 mean a 2- or 3-byte basic header (ids 64..65599).
    if (csid === 0) {
      if (left < 2) return -1;
      csid = 64 + buf[p];
      p += 1;
    } else if (csid === 1) {
      if (left < 3) return -1;
      csid = 64 + buf[p] + buf[p + 1] * 256;
      p += 2;
    }
    const mh = MESSAGE_HEADER_BYTES[fmt];
    if (buf.length - p < mh) return -1;
    let cs = this.streams.get(csid);
    if (!cs) {
      // Types 1-3 reuse fields of the previous message on the chunk stream (§5.3.1.2): there is none.
      if (fmt !== 0) throw new RtmpError(`chunk stream ${csid} starts with a type-${fmt} header, which needs a previous message`);
      if (this.streams.size >= MAX_CHUNK_STREAMS) throw new RtmpError(`more than ${MAX_CHUNK_STREAMS} chunk streams`);
      cs = { csid, timestamp: 0, field: 0, extended: false, length: 0, type: 0, streamId: 0, buf: null, filled: 0 };
      this.streams.set(csid, cs);
    }
    const continuing = cs.filled > 0;
    if (continuing && fmt !== 3) throw new RtmpError(`type-${fmt} header on chunk stream ${csid} before its ${cs.length}-byte message was complete`);
    let field = cs.field;
    let length = cs.length;
    let type = cs.type;
    let streamId = cs.streamId;
    if (fmt <= 2) field = buf.readUIntBE(p, 3);
    if (fmt <= 1) {
      length = buf.readUIntBE(p + 3, 3);
      type = buf[p + 6];
    }
    if (fmt === 0) streamId = buf.readUInt32LE(p + 7);
    p += mh;
    let extended = cs.extended;
    if (fmt <= 2) {
      extended = field === TIMESTAMP_EXTENDED;
      if (extended) {
        if (buf.length - p < 4) return -1;
        field = buf.readUInt32BE(p);
        p += 4;
      }
    } else if (extended) {
      if (buf.length - p < 4) return -1;
      if (!continuing) {
        field = buf.readUInt32BE(p);
        p += 4;
      } else if (buf.readUInt32BE(p) === cs.field) {
        // Senders disagree on whether continuation chunks repeat the extended timestamp: ffmpeg
        // and librtmp do, some do not. Take the 4 bytes when they match the field (as SRS does).
        p += 4;
      }
    }
    if (!continuing) {
      if (length > MAX_MESSAGE_BYTES) throw new RtmpError(`message of ${length} bytes is over the ${MAX_MESSAGE_BYTES}-byte bound`);
      cs.timestamp = fmt === 0 ? field : (cs.timestamp + field) >>> 0;
      cs.field = field;
      cs.extended = extended;
      cs.length = length;
      cs.type = type;
      cs.streamId = streamId;
      // Nothing is allocated for the declared length: a 12-byte header claiming 8 MiB must not
      // cost 8 MiB. A message holds only (at most twice) the bytes that really arrived.
      cs.filled = 0;
    }
    this.current = cs;
    this.chunkLeft = Math.min(this.chunkSize, cs.length - cs.filled);
    return p;
  }

  private complete(cs: InStream): RtmpMessage {
    // Whole, the buffer's capacity is exactly the length; an empty message never had one.
    const payload = cs.buf ?? Buffer.alloc(0);
    this.release(cs);
    return { csid: cs.csid, type: cs.type, streamId: cs.streamId, timestamp: cs.timestamp, payload };
  }

  private control(msg: RtmpMessage): void {
    if (msg.type === MSG_SET_CHUNK_SIZE) {
      if (msg.payload.length < 4) throw new RtmpError('Set Chunk Size without a size');
      // §5.4.1: the top bit must be zero.
      const size = msg.payload.readUInt32BE(0) & 0x7fffffff;
      if (size < MIN_PEER_CHUNK_SIZE || size > MAX_PEER_CHUNK_SIZE) {
        throw new RtmpError(`Set Chunk Size ${size} is outside ${MIN_PEER_CHUNK_SIZE}..${MAX_PEER_CHUNK_SIZE}`);
      }
      this.chunkSize = size;
    } else if (msg.type === MSG_ABORT) {
      if (msg.payload.length < 4) throw new RtmpError('Abort without a chunk stream id');
      const cs = this.streams.get(msg.payload.readUInt32BE(0));
      if (cs) this.release(cs);
    }
  }
}
