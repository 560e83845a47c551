import type { MediaPacket } from '../media/packet.js';

/**
 * A batch is what one flush of a source hands to its players. Players that are in step with the
 * source all receive the same Batch object, so a stateless format (FLV) encodes it once and every
 * player writes the same Buffer: that is the merged write that lets one core feed thousands.
 */
export interface Batch {
  readonly packets: readonly MediaPacket[];
  /** Encodings of this exact batch, keyed by format and origin ("flv@0", "rtmp:4096:1@29000", …). */
  readonly encoded: Map<string, Buffer>;
}

export function makeBatch(packets: readonly MediaPacket[]): Batch {
  return { packets, encoded: new Map() };
}

/** Returns the batch's encoding for `format`, making it with `encode` the first time. */
export function encodeOnce(batch: Batch, format: string, encode: (p: readonly MediaPacket[]) => Buffer): Buffer {
  let out = batch.encoded.get(format);
  if (out === undefined) {
    out = encode(batch.packets);
    batch.encoded.set(format, out);
  }
  return out;
}

export type EndReason = 'unpublished' | 'kicked' | 'slow' | 'closed' | 'shutdown';

/**
 * What an output (HTTP-FLV response, live TS, RTMP play session, HLS segmenter) implements to
 * receive a stream. The hub never touches sockets: it only asks how far behind the sink is.
 */
export interface Sink {
  /** Bytes accepted but not yet handed to the kernel (socket.writableLength); 0 for in-memory sinks. */
  backlog(): number;
  /**
   * Delivers packets in decode order. The first call carries metadata, sequence headers and the
   * GOP. `origin` is the source time that is 0 on this player's timeline, or PASS_THROUGH: a
   * format with timestamps writes each packet at `playerDts(p, origin)`, and keys a shared
   * encoding by origin as well as format (players that joined at the same key frame share one).
   */
  write(batch: Batch, origin: number): void;
  /** The stream is over for this sink; it should end its response / session. Called once. */
  end(reason: EndReason): void;
}

/** A connection the API lists and can kick: SRS's /api/v1/clients/ entry. */
export interface Client {
  readonly id: string;
  /** SRS client type: fmle-publish, flv-publish, rtmp-play, flv-play, hls-play, edge-pull, … */
  readonly type: string;
  readonly ip: string;
  readonly vhost: string;
  readonly app: string;
  readonly stream: string;
  readonly url: string;
  readonly tcUrl: string;
  readonly pageUrl: string;
  readonly publish: boolean;
  readonly since: number;
  sendBytes(): number;
  recvBytes(): number;
  /** Ends the connection (DELETE /api/v1/clients/{id}). */
  kick(): void;
}

export interface StreamName {
  vhost: string;
  app: string;
  stream: string;
  /**
   * streamKey's answer, set by a name that is looked up again and again (the front door's
   * routing memo for a repeated request head): the lookups then build and hash no string.
   */
  readonly key?: string;
}

export function streamKey(n: StreamName): string {
  return n.key ?? `${n.vhost}/${n.app}/${n.stream}`;
}

/** A name that carries its key, for one that is kept and looked up again and again. */
export function keyedName(vhost: string, app: string, stream: string): StreamName & { key: string } {
  return { vhost, app, stream, key: streamKey({ vhost, app, stream }) };
}
