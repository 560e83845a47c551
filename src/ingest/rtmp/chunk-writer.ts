/**
 * Writing the RTMP chunk stream (Adobe RTMP specification 1.0, §5.3): messages in, chunks out.
 * The header sizes and the extended-timestamp marker are shared with the reader (chunk.ts).
 */

/** The chunk size both ends start with (§5.4.1). */
export const DEFAULT_CHUNK_SIZE = 128;
/** Message header bytes of chunk types 0..3 (§5.3.1.2). */
export const MESSAGE_HEADER_BYTES = [11, 7, 3, 0];
/** A 24-bit timestamp field of this value means "extended timestamp follows" (§5.3.1.3). */
export const TIMESTAMP_EXTENDED = 0xffffff;

export interface OutMessage {
  csid: number;
  type: number;
  streamId: number;
  timestamp: number;
  payload: Buffer;
}

interface OutStream {
  type: number;
  streamId: number;
  length: number;
  timestamp: number;
  delta: number;
}

function basicHeaderBytes(csid: number): number {
  return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

function writeBasicHeader(out: Buffer, o: number, fmt: number, csid: number): number {
  if (csid < 64) {
    out[o] = (fmt << 6) | csid;
    return o + 1;
  }
  if (csid < 320) {
    out[o] = fmt << 6;
    out[o + 1] = csid - 64;
    return o + 2;
  }
  out[o] = (fmt << 6) | 1;
  out.writeUInt16LE(csid - 64, o + 1);
  return o + 3;
}

/**
 * Cuts messages into chunks. With `compress`, it keeps the last header per chunk stream and
 * sends the smallest header type that reproduces it (§5.3.1.2); a writer that shares its output
 * between connections must not compress, since each peer's reader state would differ.
 */
export class ChunkWriter {
  chunkSize = DEFAULT_CHUNK_SIZE;
  private readonly last = new Map<number, OutStream>();

  constructor(private readonly compress = true) {}

  write(msgs: readonly OutMessage[]): Buffer {
    const plans: { fmt: number; field: number }[] = [];
    let size = 0;
    for (const m of msgs) {
      if (m.csid < 2 || m.csid > 65599) throw new RangeError(`chunk stream id ${m.csid} is outside 2..65599`);
      if (m.payload.length > 0xffffff) throw new RangeError(`message of ${m.payload.length} bytes does not fit RTMP's 24-bit length`);
      const ts = m.timestamp >>> 0;
      const plan = this.plan(m, ts);
      plans.push(plan);
      const chunks = Math.max(1, Math.ceil(m.payload.length / this.chunkSize));
      const ext = plan.field >= TIMESTAMP_EXTENDED ? 4 : 0;
      const basic = basicHeaderBytes(m.csid);
      size += m.payload.length + basic + MESSAGE_HEADER_BYTES[plan.fmt] + ext + (chunks - 1) * (basic + ext);
    }
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    msgs.forEach((m, i) => {
      const { fmt, field } = plans[i];
      const ext = field >= TIMESTAMP_EXTENDED;
      const stamp = ext ? TIMESTAMP_EXTENDED : field;
      o = writeBasicHeader(out, o, fmt, m.csid);
      if (fmt <= 2) {
        out.writeUIntBE(stamp, o, 3);
        o += 3;
      }
      if (fmt <= 1) {
        out.writeUIntBE(m.payload.length, o, 3);
        out[o + 3] = m.type;
        o += 4;
      }
      if (fmt === 0) {
        // §5.3.1.2.1: the message stream id is little-endian, unlike every other field.
        out.writeUInt32LE(m.streamId, o);
        o += 4;
      }
      if (ext) o = out.writeUInt32BE(field, o);
      let pos = 0;
      for (;;) {
        const n = Math.min(this.chunkSize, m.payload.length - pos);
        o += m.payload.copy(out, o, pos, pos + n);
        pos += n;
        if (pos >= m.payload.length) break;
        // Continuation chunks repeat the extended timestamp, as ffmpeg and librtmp expect.
        o = writeBasicHeader(out, o, 3, m.csid);
        if (ext) o = out.writeUInt32BE(field, o);
      }
    });
    return out;
  }

  /** The header type for a message, and the timestamp field it carries (absolute or delta). */
  private plan(m: OutMessage, ts: number): { fmt: number; field: number } {
    const prev = this.last.get(m.csid);
    const next: OutStream = { type: m.type, streamId: m.streamId, length: m.payload.length, timestamp: ts, delta: 0 };
    if (this.compress) this.last.set(m.csid, next);
    if (!this.compress || !prev || prev.streamId !== m.streamId || ts < prev.timestamp) {
      next.delta = ts;
      return { fmt: 0, field: ts };
    }
    const delta = ts - prev.timestamp;
    next.delta = delta;
    if (prev.type !== m.type || prev.length !== m.payload.length) return { fmt: 1, field: delta };
    if (prev.delta !== delta) return { fmt: 2, field: delta };
    // Type 3 for a new message means "same delta again" (§5.3.1.2.4); its field is that delta.
    return { fmt: 3, field: delta };
  }
}
