import { earliestDts, PASS_THROUGH, type MediaPacket } from '../media/packet.js';
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

/** A consumer's origin before its first audio/video packet has told what it is. */
const UNSET = -2;

/** A join burst: the batch a player starts with, and the origin it is stamped on. */
export interface Burst extends Batch {
  /** The burst's own origin (its header copies sit at it); PASS_THROUGH when time_jitter is off. */
  readonly origin: number;
  /** It holds audio/video frames (a GOP), so its origin is the player's. */
  readonly media: boolean;
}

export class Consumer {
  /** Packets of the source's pending batch this consumer already got in its join burst. */
  skip = 0;
  /**
   * The source time that is 0 on this player's timeline: the earliest timestamp of the first
   * frames it gets. PASS_THROUGH when the vhost's time_jitter is off.
   */
  private origin: number;
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
    timeline: boolean,
  ) {
    this.origin = timeline ? UNSET : PASS_THROUGH;
  }

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
    if (this.origin === UNSET) {
      const first = earliestDts(packets);
      if (first !== PASS_THROUGH) this.origin = first;
    }
    // Before any frame (script data only), any origin stamps what there is at 0.
    this.sink.write(packets === batch.packets ? batch : makeBatch(packets), this.origin === UNSET ? 0 : this.origin);
  }

  /**
   * Writes the join burst (metadata, headers, GOP) straight away: time to first frame is not
   * batched. Without a GOP to start from, the player waits for the next key frame instead.
   */
  join(burst: Burst, haveGop: boolean): void {
    if (!haveGop) this.waitKeyframe = true;
    if (burst.media && this.origin === UNSET) this.origin = burst.origin;
    if (burst.packets.length > 0) this.sink.write(burst, burst.origin);
  }

  end(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd(this);
    this.sink.end(reason);
  }
}

export type { MediaPacket };
