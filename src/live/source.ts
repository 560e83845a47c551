import { EventEmitter } from 'node:events';
import type { MediaPacket } from '../media/packet.js';
import { Consumer, type ConsumerLimits } from './consumer.js';
import { RateMeter } from './rate.js';
import { makeBatch, type Batch, type Client, type EndReason, type Sink, type StreamName } from './types.js';

export interface SourceOptions {
  /** Merged-write window (SRS's `mw_latency`): packets are handed to players this often. 0 = next tick. */
  mwLatencyMs: number;
  /** The GOP cache stops growing past this and restarts at the next key frame. */
  gopCacheMaxBytes: number;
  /** Players beyond this number are refused (0 = unlimited). */
  maxPlayers: number;
  consumer: ConsumerLimits;
}

export const DEFAULT_SOURCE_OPTIONS: SourceOptions = {
  mwLatencyMs: 350,
  gopCacheMaxBytes: 16 * 1024 * 1024,
  maxPlayers: 0,
  consumer: { maxBacklogBytes: 4 * 1024 * 1024, stallTimeoutMs: 20_000 },
};

/**
 * One live stream: what its publisher sent last (metadata, sequence headers, the GOP since the
 * last key frame) and the players watching it. Events: 'end' (reason) once the publisher is gone,
 * 'idle' when the last player leaves.
 */
export class Source extends EventEmitter {
  readonly createdAt = Date.now();
  metadata: MediaPacket | null = null;
  videoHeader: MediaPacket | null = null;
  audioHeader: MediaPacket | null = null;
  /** Codec ids of the tracks seen so far (0 = none). */
  videoCodec = 0;
  audioCodec = 0;
  /** Tracks the publisher announced up front (FLV header flags), before any packet arrived. */
  declared = { audio: false, video: false };
  frames = 0;
  /** The newest audio/video timestamp pushed (ms), -1 before any. */
  lastDts = -1;
  readonly recv = new RateMeter();
  readonly send = new RateMeter();
  ended = false;

  private gop: MediaPacket[] = [];
  private gopBytes = 0;
  private gopActive = false;
  private pending: MediaPacket[] = [];
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private joinBurst: Batch | null = null;
  private readonly consumers = new Set<Consumer>();
  /** Consumers that are not players (the HLS segmenter): no seat, no say in 'idle'. */
  private readonly internal = new Set<Consumer>();

  constructor(
    readonly name: StreamName,
    readonly id: string,
    public publisher: Client | null,
    private readonly options: SourceOptions,
  ) {
    super();
  }

  get key(): string {
    return `${this.name.vhost}/${this.name.app}/${this.name.stream}`;
  }

  get hasVideo(): boolean {
    return this.videoCodec !== 0 || this.declared.video;
  }

  get hasAudio(): boolean {
    return this.audioCodec !== 0 || this.declared.audio;
  }

  get playerCount(): number {
    return this.consumers.size - this.internal.size;
  }

  players(): Iterable<Consumer> {
    return this.consumers;
  }

  push(pkt: MediaPacket): void {
    if (this.ended) return;
    this.recv.add(pkt.data.length + 15);
    this.joinBurst = null;
    if (pkt.kind !== 'script') this.lastDts = pkt.dts;
    if (pkt.kind === 'script') {
      this.metadata = pkt;
    } else if (pkt.kind === 'video') {
      this.videoCodec = pkt.codec;
      if (pkt.header) {
        this.videoHeader = pkt;
      } else {
        this.frames++;
        if (pkt.keyframe) this.restartGop();
        this.cache(pkt);
      }
    } else {
      this.audioCodec = pkt.codec;
      if (pkt.header) this.audioHeader = pkt;
      else this.cache(pkt);
    }
    this.pending.push(pkt);
    this.schedule();
  }

  /**
   * Seats a player: it gets the join burst now and every batch after it. An `internal` sink (a
   * segmenter in this process) takes no player seat and does not keep an edge pull alive.
   */
  subscribe(sink: Sink, client: Client | null, internal = false): Consumer {
    const c = new Consumer(sink, client, this.options.consumer, (x) => this.leave(x), () => this.hasVideo);
    this.consumers.add(c);
    if (internal) this.internal.add(c);
    // Pending packets newer than the last key frame are in the burst already; older ones predate it.
    c.skip = this.pending.length;
    const haveGop = this.gopActive || !this.hasVideo;
    c.join(this.burst(), haveGop);
    return c;
  }

  /** Whether a new player may join under the configured limit. */
  canAcceptPlayer(): boolean {
    return this.options.maxPlayers <= 0 || this.playerCount < this.options.maxPlayers;
  }

  /** The publisher is gone: hand out what is pending, then end every player. */
  end(reason: EndReason = 'unpublished'): void {
    if (this.ended) return;
    this.flush();
    this.ended = true;
    this.clearTimer();
    for (const c of [...this.consumers]) c.end(reason);
    this.gop = [];
    this.emit('end', reason);
  }

  private burst(): Batch {
    if (this.joinBurst) return this.joinBurst;
    const packets: MediaPacket[] = [];
    if (this.metadata) packets.push(this.metadata);
    if (this.videoHeader) packets.push(this.videoHeader);
    if (this.audioHeader) packets.push(this.audioHeader);
    if (this.gopActive) for (const p of this.gop) packets.push(p);
    this.joinBurst = makeBatch(packets);
    return this.joinBurst;
  }

  private restartGop(): void {
    this.gop = [];
    this.gopBytes = 0;
    this.gopActive = true;
  }

  private cache(pkt: MediaPacket): void {
    if (!this.gopActive) return;
    this.gopBytes += pkt.data.length;
    if (this.gopBytes > this.options.gopCacheMaxBytes) {
      // A GOP this large (or a stream with no key frames) would pin memory: stop caching until
      // the next key frame; joining players then wait for it instead of getting a burst.
      this.gop = [];
      this.gopBytes = 0;
      this.gopActive = false;
      return;
    }
    this.gop.push(pkt);
  }

  private schedule(): void {
    if (this.timer) return;
    if (this.options.mwLatencyMs <= 0) this.timer = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), this.options.mwLatencyMs);
  }

  private clearTimer(): void {
    if (!this.timer) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = null;
  }

  private flush(): void {
    this.timer = null;
    if (this.pending.length === 0) return;
    const batch = makeBatch(this.pending);
    this.pending = [];
    const now = Date.now();
    for (const c of this.consumers) c.deliver(batch, now);
  }

  private leave(c: Consumer): void {
    this.consumers.delete(c);
    if (this.internal.delete(c)) return;
    if (this.playerCount === 0 && !this.ended) this.emit('idle');
  }
}
