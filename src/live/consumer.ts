import type { MediaPacket } from '../media/packet.js';
import { makeBatch, type Batch, type Client, type EndReason, type Sink } from './types.js';

/**
 * A player's seat at a source. Its queue is the sink's own socket buffer, bounded by
 * `maxBacklogBytes`: when a player falls that far behind, the packets it missed are dropped and it
 * resumes at the next key frame, so it never delays the publisher or the other players; when it
 * stays behind for `stallTimeoutMs`, it is disconnected.
 */
export interface ConsumerLimits {
  /** Unsent bytes a player may hold before it is skipped to the next key frame. */
  maxBacklogBytes: number;
  /** How long a player may stay over the backlog bound before it is dropped. */
  stallTimeoutMs: number;
}

export const DEFAULT_CONSUMER_LIMITS: ConsumerLimits = {
  maxBacklogBytes: 4 * 1024 * 1024,
  stallTimeoutMs: 20_000,
};

export class Consumer {
  /** Packets of the source's pending batch this consumer already got in its join burst. */
  skip = 0;
  /** True after an overflow: nothing is sent until the next key frame (or audio, if no video). */
  private waitKeyframe = false;
  private stalledSince = 0;
  /** Packets dropped because the player was too slow. */
  dropped = 0;
  private ended = false;

  constructor(
    readonly sink: Sink,
    readonly client: Client | null,
    private readonly limits: ConsumerLimits,
    private readonly onEnd: (c: Consumer) => void,
    private readonly hasVideo: () => boolean,
  ) {}

  get closed(): boolean {
    return this.ended;
  }

  /** Hands a batch to the sink, applying the join offset and the slow-player policy. */
  deliver(batch: Batch, now: number): void {
    if (this.ended) return;
    let packets = batch.packets;
    if (this.skip > 0) {
      packets = packets.slice(this.skip);
      this.skip = 0;
    }
    if (this.sink.backlog() > this.limits.maxBacklogBytes) {
      if (this.stalledSince === 0) this.stalledSince = now;
      this.dropped += packets.length;
      this.waitKeyframe = true;
      if (now - this.stalledSince > this.limits.stallTimeoutMs) this.end('slow');
      return;
    }
    this.stalledSince = 0;
    if (this.waitKeyframe) {
      const video = this.hasVideo();
      const at = packets.findIndex((p) => (video ? p.kind === 'video' && p.keyframe : p.kind === 'audio'));
      if (at < 0) {
        this.dropped += packets.length;
        return;
      }
      this.dropped += at;
      packets = packets.slice(at);
      this.waitKeyframe = false;
    }
    if (packets.length === 0) return;
    this.sink.write(packets === batch.packets ? batch : makeBatch(packets));
  }

  /**
   * Writes the join burst (metadata, headers, GOP) straight away: time to first frame is not
   * batched. Without a GOP to start from, the player waits for the next key frame instead.
   */
  join(burst: Batch, haveGop: boolean): void {
    if (!haveGop) this.waitKeyframe = true;
    if (burst.packets.length > 0) this.sink.write(burst);
  }

  end(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
    this.sink.end(reason);
  }
}

export type { MediaPacket };
