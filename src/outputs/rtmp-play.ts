import type { Socket } from 'node:net';
import type { CountingClient } from '../live/client.js';
import type { Source } from '../live/source.js';
import { encodeOnce, type Batch, type EndReason, type Sink } from '../live/types.js';
import { PASS_THROUGH, playerDts, tagTypeOf, type MediaPacket } from '../media/packet.js';
import { ChunkWriter, OUT_CHUNK_SIZE } from '../ingest/rtmp/chunk.js';

/**
 * Chunk streams for media sent to players, apart from the ones a session uses for control and
 * commands: those headers are compressed per connection, these are shared between players.
 */
const CSID_SCRIPT = 6;
const CSID_VIDEO = 7;
const CSID_AUDIO = 8;

/** The session side a play sink needs: sending its own status messages, and closing. */
export interface RtmpPlayConnection {
  readonly socket: Socket;
  /** Sends onStatus `code` on the play stream (level "status"). */
  status(code: string, description: string): void;
  /** Ends the connection once what is queued has been written. */
  closeAfterFlush(): void;
  /** Cuts the connection now, saying why in the log. */
  drop(why: string): void;
}

/**
 * A batch as RTMP messages on one message stream. Every chunk header is type 0 (always legal,
 * needs no per-peer state), so the bytes are the same for every player in step and are made
 * once per batch (the format key names chunk size and stream id).
 */
export function rtmpMediaChunks(packets: readonly MediaPacket[], streamId: number, origin = PASS_THROUGH): Buffer {
  const writer = new ChunkWriter(false);
  writer.chunkSize = OUT_CHUNK_SIZE;
  return writer.write(packets.map((p) => ({
    csid: p.kind === 'video' ? CSID_VIDEO : p.kind === 'audio' ? CSID_AUDIO : CSID_SCRIPT,
    type: tagTypeOf(p.kind),
    streamId,
    timestamp: playerDts(p, origin),
    payload: p.data,
  })));
}

/** An RTMP player's seat at a source: the hub writes batches, this writes chunks to the socket. */
export class RtmpPlaySink implements Sink {
  private closed = false;
  private readonly format: string;
  private origin = Number.NaN;
  private key = '';

  constructor(
    private readonly conn: RtmpPlayConnection,
    private readonly streamId: number,
    private readonly client: CountingClient,
    private readonly source: Source,
  ) {
    this.format = `rtmp:${OUT_CHUNK_SIZE}:${streamId}`;
  }

  backlog(): number {
    return this.conn.socket.writableLength;
  }

  write(batch: Batch, origin: number): void {
    if (this.closed || this.conn.socket.destroyed) return;
    // Players that joined at the same key frame share an origin, and so these bytes.
    if (origin !== this.origin) {
      this.origin = origin;
      this.key = `${this.format}@${origin}`;
    }
    const buf = encodeOnce(batch, this.key, (p) => rtmpMediaChunks(p, this.streamId, origin));
    this.conn.socket.write(buf);
    this.client.sent += buf.length;
    this.source.send.add(buf.length);
  }

  end(reason: EndReason): void {
    if (this.closed) return;
    this.closed = true;
    if (this.conn.socket.destroyed) return;
    if (reason === 'unpublished' || reason === 'shutdown') {
      // ffmpeg/ffplay and librtmp take UnpublishNotify (or Play.Stop) as the end of the stream, not an error.
      this.conn.status('NetStream.Play.UnpublishNotify', `${this.source.name.stream} is now unpublished.`);
      this.conn.status('NetStream.Play.Stop', 'Stopped playing.');
      this.conn.closeAfterFlush();
    } else if (reason === 'closed') {
      this.conn.socket.destroy();
    } else {
      this.conn.drop(reason === 'slow' ? 'the player stopped reading (backlog over its bound too long)' : `player ${reason}`);
    }
  }
}
