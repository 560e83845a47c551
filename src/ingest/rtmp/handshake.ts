import { randomFillSync } from 'node:crypto';

/**
 * The server side of the RTMP handshake (RTMP spec 1.0, §5.2): C0+C1 in, S0+S1+S2 out, then C2.
 *
 * This is the simple handshake. Clients that open with the digest ("complex", Flash Player 9)
 * form of C1 check the server's digest only when S1 announces a server version in bytes 4-7:
 * librtmp (so OBS and GStreamer's rtmpsink) drops to the simple form when S1[4] is 0
 * (handshake.h: `if (FP9HandShake && type == 3 && !serversig[4])`), ffmpeg's native client
 * validates only when it is 3 or more (rtmpproto.c: `serverdata[5] >= 3`, after S0). An S1 with
 * zeros there and S2 an exact echo of C1 is accepted by all of them; SRS falls back to the same.
 */

export const RTMP_VERSION = 3;
/** C1, C2, S1 and S2 are this long (§5.2.3). */
export const HANDSHAKE_BYTES = 1536;

export class HandshakeError extends Error {}

export type HandshakeStep =
  | { state: 'more' }
  /** Send `reply` (S0+S1+S2), then keep feeding bytes. */
  | { state: 'reply'; reply: Buffer }
  /** The handshake is over; `rest` is the start of the chunk stream. */
  | { state: 'done'; rest: Buffer };

export class ServerHandshake {
  private buf: Buffer = Buffer.alloc(0);
  private replied = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** Feeds bytes; never holds more than C0+C1 or C2 (plus what the peer sent past it). */
  push(data: Buffer): HandshakeStep {
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, data]) : data;
    if (!this.replied) {
      if (this.buf.length >= 1 && this.buf[0] !== RTMP_VERSION) {
        // 6 is RTMPE (encrypted), anything else is not RTMP at all (often an HTTP request on the wrong port).
        throw new HandshakeError(`unsupported RTMP version byte ${this.buf[0]} (expected ${RTMP_VERSION})`);
      }
      if (this.buf.length < 1 + HANDSHAKE_BYTES) return { state: 'more' };
      const c1 = this.buf.subarray(1, 1 + HANDSHAKE_BYTES);
      this.buf = this.buf.subarray(1 + HANDSHAKE_BYTES);
      this.replied = true;
      const reply = Buffer.allocUnsafe(1 + 2 * HANDSHAKE_BYTES);
      reply[0] = RTMP_VERSION;
      // S1: time (4 bytes), zero (4 bytes: no server version, so no digest check), random.
      reply.writeUInt32BE(this.now() >>> 0, 1);
      reply.writeUInt32BE(0, 5);
      randomFillSync(reply, 9, HANDSHAKE_BYTES - 8);
      // S2 echoes C1 (§5.2.4), which is what a client checks.
      c1.copy(reply, 1 + HANDSHAKE_BYTES);
      return { state: 'reply', reply };
    }
    if (this.buf.length < HANDSHAKE_BYTES) return { state: 'more' };
    // C2 should echo S1; clients differ in what they put there, and nothing depends on it.
    const rest = Buffer.from(this.buf.subarray(HANDSHAKE_BYTES));
    this.buf = Buffer.alloc(0);
    return { state: 'done', rest };
  }
}
